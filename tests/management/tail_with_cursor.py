"""Tail a session's .out with a FileCursor, printing "<seq> <data>" per record.

Used by test_resume_after_kill.py as a subprocess that gets SIGKILLed mid-stream:
``python tail_with_cursor.py URL TOKEN SESSION CURSOR_PATH DELAY_SECONDS``.
"""

from __future__ import annotations

import sys
import time

from sessions_client import FileCursor, Session


def main() -> None:
    url, token, session_id, cursor_path, delay = sys.argv[1:6]
    cursor = FileCursor(cursor_path)
    with Session(session_id, token, url) as session:
        for record in session.iter_out(cursor=cursor, follow=True, timeout_seconds=5):
            print(record["seq"], record["data"], flush=True)
            time.sleep(float(delay))  # "processing" the record


if __name__ == "__main__":
    main()
