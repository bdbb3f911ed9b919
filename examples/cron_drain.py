"""A cron job: process every record written to a session's ``.out`` since the last run.

Run it as often as you like (crontab: ``*/5 * * * * python /path/cron_drain.py ID``).
Each run reads the records after the position stored in a ``FileCursor``, handles
them one by one, and exits once it has caught up. The cursor is saved after each
record is handled, so a run that is killed part-way resumes at the record it was
working on: nothing is skipped, and at most that one record is seen twice.

Overlapping runs: the cursor is opened with ``lock=True``, so while one run is
still working, the next one exits at once (exit code 75, one line on stderr)
without reading anything; the following run picks up where the first stopped.
The stored position never moves backwards, even if two runs did overlap
(say, one started by hand with another cursor object on the same file).

A run that has nothing to report prints nothing (cron mails only errors and the
records your ``handle`` prints). Errors are one line on stderr: exit code 2 for
configuration (no token, unwritable cursor path), 1 for anything else.

Usage::

    export TRIGGER_API_URL=...  TRIGGER_SECRET_KEY=tr_dev_...
    python examples/cron_drain.py SESSION_ID [--cursor-file PATH] [--verbose]

The default cursor file is ``./<SESSION_ID>.out.cursor``. Delete it to start over.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from sessions_client import (
    ConfigurationError,
    CursorLockedError,
    FileCursor,
    Session,
    SessionsError,
)

EXIT_LOCKED = 75  # EX_TEMPFAIL: the previous run is still going


def handle(record: Dict[str, Any]) -> None:
    """Do the real work here (store it, forward it, ...). The example prints it."""
    print(json.dumps({"seq": record["seq"], "data": record["data"]}), flush=True)


def drain(session_id: str, cursor: FileCursor) -> int:
    """Handle every record after the cursor; return how many were handled."""
    count = 0
    with Session(session_id) as session:  # TRIGGER_API_URL, TRIGGER_SECRET_KEY
        # follow=False: stop once caught up instead of waiting for new records.
        for record in session.iter_out(cursor=cursor, follow=False):
            handle(record)
            count += 1
    return count


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Process new records of a session's .out.")
    parser.add_argument("session", help="session friendly id or external id")
    parser.add_argument("--cursor-file", help="where the position is kept between runs")
    parser.add_argument("--verbose", action="store_true", help="print a summary on stderr")
    args = parser.parse_args(argv)

    path = args.cursor_file or f"{args.session}.out.cursor"
    try:
        with FileCursor(path, lock=True) as cursor:
            count = drain(args.session, cursor)
    except CursorLockedError as exc:
        print(f"cron_drain: skipped, {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except ConfigurationError as exc:
        print(f"cron_drain: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the cursor's directory is missing or not writable
        print(f"cron_drain: cannot use cursor file {path!r}: {exc.strerror}", file=sys.stderr)
        return 2
    except SessionsError as exc:
        print(f"cron_drain: {exc}", file=sys.stderr)
        return 1
    if args.verbose:
        print(f"cron_drain: {count} new record(s); cursor at {cursor.get()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
