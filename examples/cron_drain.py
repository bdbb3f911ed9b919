"""A cron job: process every record written to a session's ``.out`` since the last run.

Run it as often as you like (crontab: ``*/5 * * * * python /path/cron_drain.py ID``).
Each run reads the records after the position stored in a ``FileCursor``, handles
them one by one, and exits once it has caught up. The cursor is saved after each
record is handled, so a run that is killed part-way resumes at the record it was
working on: nothing is skipped, and at most that one record is seen twice.

Usage::

    export TRIGGER_API_URL=...  TRIGGER_SECRET_KEY=tr_dev_...
    python examples/cron_drain.py SESSION_ID [--cursor-file PATH]

The default cursor file is ``./<SESSION_ID>.out.cursor``. Delete it to start over.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from sessions_client import FileCursor, Session, SessionsError


def handle(record: Dict[str, Any]) -> None:
    """Do the real work here (store it, forward it, ...). The example prints it."""
    print(json.dumps({"seq": record["seq"], "data": record["data"]}), flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Process new records of a session's .out.")
    parser.add_argument("session", help="session friendly id or external id")
    parser.add_argument("--cursor-file", help="where the position is kept between runs")
    args = parser.parse_args(argv)

    cursor = FileCursor(args.cursor_file or f"{args.session}.out.cursor")
    session = Session(args.session)  # TRIGGER_API_URL, TRIGGER_SECRET_KEY
    count = 0
    try:
        # follow=False: stop once caught up instead of waiting for new records.
        for record in session.iter_out(cursor=cursor, follow=False):
            handle(record)
            count += 1
    except SessionsError as exc:
        print(f"cron_drain: {exc}", file=sys.stderr)
        return 1
    finally:
        session.close()
    print(f"cron_drain: {count} new record(s); cursor at {cursor.get()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
