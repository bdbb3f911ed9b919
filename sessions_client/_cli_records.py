"""The record commands: ``append``, ``tail`` and ``drain`` (a session's .in / .out),
each parser beside the function that runs it."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Mapping, TextIO, Tuple

from ._cli_args import PROG, add_command, channel_option, resume_group, seq, session_argument
from ._cli_errors import EXIT_OK, CLIUsageError
from ._cli_io import Progress, close_iterator, json_line, open_client, open_session, parse_json
from ._config import MAX_RECORD_BYTES
from .errors import NotFoundError, SessionsError

if TYPE_CHECKING:
    from ._cli_args import Commands

# ----------------------------------------------------------------- append


def add_append(commands: Commands, common: argparse.ArgumentParser) -> None:
    append = add_command(
        commands,
        "append",
        "append records to a session's .in (or .out)",
        "Append one record, or one record per line of standard input.\n\n"
        "A record is sent as its exact text. Readers decode text that parses as JSON into "
        'the JSON value (so \'{"type": "text"}\' arrives as an object, 42 as a number, '
        'hello as the string "hello"). With --json each record must be valid JSON and goes '
        "out as application/json; a record that is not is never sent (with -, the lines "
        "before it have been appended; the command stops there with exit code 2).\n\n"
        'Prints one JSON line per record: {"ok": true, "seq": N, "part_id": ...}. '
        "Appends are idempotent per part id: a retried append is never stored twice.",
        "examples:\n"
        '  sessions-client append chat-1 \'{"type": "text", "text": "hi"}\'\n'
        '  sessions-client append chat-1 --out --json \'{"type": "text-delta"}\'\n'
        "  cat messages.jsonl | sessions-client append chat-1 --json -\n"
        "  sessions-client append chat-1 --part-id import-42 - < batch.txt   "
        "# re-running stores nothing twice",
        cmd_append,
        common,
    )
    session_argument(append)
    append.add_argument(
        "record",
        metavar="RECORD",
        nargs="?",
        help="the record's text, or - (the default) for one record per line of stdin "
        "(blank lines are skipped)",
    )
    channel_option(append, "in")
    append.add_argument(
        "--part-id",
        metavar="ID",
        help="idempotency key (X-Part-Id); with -, the Nth record gets ID-N (default: random)",
    )
    append.add_argument("--json", action="store_true", help="records must be valid JSON")


def cmd_append(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = open_session(args)
    append: Callable[..., Dict[str, Any]] = (
        session.append_out if args.channel == "out" else session.append_in
    )
    from_stdin = args.record == "-"
    progress = Progress(err, f"appended to .{args.channel}")
    try:
        for number, (where, text) in enumerate(_records_to_append(args, err), start=1):
            record: Any = parse_json(text, where) if args.json else text
            part_id = args.part_id
            if part_id is not None and from_stdin:
                part_id = f"{part_id}-{number}"
            result = append(record, part_id=part_id)
            json_line(out, result)
            progress.tick(result.get("seq"))
    finally:
        progress.done()
        session.close()
    return EXIT_OK


def _records_to_append(args: argparse.Namespace, err: TextIO) -> Iterator[Tuple[str, str]]:
    """``(where, text)`` per record: the RECORD argument, or each non-blank line of stdin.

    Lines are read with a bound: a line longer than a record may be is refused
    (usage error) once that many characters were read, never read whole."""
    if args.record != "-":
        yield "record 1", args.record
        return
    stdin = sys.stdin
    if stdin.isatty():
        err.write(f"{PROG}: reading records from standard input, one per line (Ctrl-D ends)\n")
    limit = MAX_RECORD_BYTES + 2  # the largest record, plus "\r\n"
    number = 0
    while True:
        line = stdin.readline(limit)
        if not line:
            return
        number += 1
        if len(line) >= limit and not line.endswith("\n"):
            raise CLIUsageError(
                f"line {number} of standard input is longer than a record may be "
                f"({MAX_RECORD_BYTES} bytes); it was not sent, nor anything after it"
            )
        text = line.rstrip("\r\n")
        if text.strip():
            yield f"line {number} of standard input", text


# ------------------------------------------------------------------- tail


def add_tail(commands: Commands, common: argparse.ArgumentParser) -> None:
    tail = add_command(
        commands,
        "tail",
        "stream a channel's records as JSON lines",
        "Print a channel's records as they arrive, one JSON object per line, flushed at once: "
        '{"seq", "data", "part_id", "timestamp", "headers", "control"}. '
        "Reconnects by itself after network failures, resuming after the last printed seq. "
        "Runs until Ctrl-C, or with --no-follow until it has caught up.",
        "examples:\n"
        "  sessions-client tail chat-1                     # new and old .out records, forever\n"
        "  sessions-client tail chat-1 --in --from 10 --no-follow\n"
        "  sessions-client tail chat-1 --controls | jq -c 'select(.control)'\n"
        "  sessions-client tail chat-1 --cursor chat-1.cursor --limit 1   # the next record",
        cmd_tail,
        common,
    )
    session_argument(tail)
    channel_option(tail, "out")
    resume_group(tail)
    tail.add_argument(
        "--no-follow", action="store_true", help="stop once caught up instead of waiting"
    )
    tail.add_argument(
        "--controls",
        action="store_true",
        help="also print control records (turn-complete, upgrade-required)",
    )
    tail.add_argument("--limit", type=seq, metavar="N", help="stop after N records")
    tail.add_argument(
        "--timeout-seconds",
        type=int,
        default=60,
        metavar="S",
        help="long-poll window the server keeps an idle stream open, 1..600 (default 60)",
    )


def cmd_tail(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = open_session(args)
    _note_unknown_external_id(args, err)
    read = session.iter_out if args.channel == "out" else session.iter_in
    records = read(
        follow=not args.no_follow,
        include_control=args.controls,
        timeout_seconds=args.timeout_seconds,
        **_resume_options(args),
    )
    count = 0
    try:
        if args.limit == 0:
            return EXIT_OK
        for record in records:
            json_line(out, _printable(record))
            count += 1
            if args.limit is not None and count >= args.limit:
                break
    finally:
        close_iterator(records)
        session.close()
    return EXIT_OK


def _note_unknown_external_id(args: argparse.Namespace, err: TextIO) -> None:
    """Say so on stderr when SESSION is an external id no session has (yet).

    Production reads an unknown external id as an empty stream, so a mistyped id
    would otherwise wait in silence. Friendly ids (``session_...``) 404 on their
    own; when the check itself fails (e.g. a token that may not read sessions)
    nothing is said."""
    if args.session.startswith("session_"):
        return
    try:
        with open_client(args) as client:
            client.get_session(args.session)
    except NotFoundError:
        err.write(
            f"{PROG}: note: no session has the external id {args.session!r} (yet); "
            "the server reads it as an empty stream\n"
        )
        err.flush()
    except SessionsError:
        logging.getLogger("sessions_client.cli").debug("session lookup failed", exc_info=True)


# ------------------------------------------------------------------ drain


def add_drain(commands: Commands, common: argparse.ArgumentParser) -> None:
    drain = add_command(
        commands,
        "drain",
        "print every stored record of a channel and exit",
        "Fetch a channel's records page by page without streaming (GET .../records) and "
        "print them as JSON lines, like tail. Shows a counter on stderr when it is a terminal.\n\n"
        "With --cursor FILE, each record's seq is stored in FILE once it is printed (so a "
        "killed run re-prints at most one record) and the next run starts after it; the "
        "stored seq never moves backwards. Two runs on one cursor without --lock both print "
        "what is new (records twice); with --lock the second exits at once with code 75.",
        "examples:\n"
        "  sessions-client drain chat-1 > out.jsonl\n"
        "  sessions-client drain chat-1 --in --after 99 | jq -r .data.text\n"
        "  sessions-client drain chat-1 --cursor chat-1.cursor   # only what is new since last run"
        "\n"
        "  sessions-client drain chat-1 --cursor c1.cursor --lock   # from cron: never overlaps",
        cmd_drain,
        common,
    )
    session_argument(drain)
    channel_option(drain, "out")
    resume_group(drain)
    drain.add_argument("--controls", action="store_true", help="also print control records")
    drain.add_argument(
        "--lock",
        action="store_true",
        help="with --cursor: hold a run lock (FILE.run-lock) while draining; if another run "
        "holds it, exit at once with code 75 and one line on stderr (cron jobs that overlap)",
    )


def cmd_drain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.lock and args.cursor is None:
        raise CLIUsageError("--lock needs --cursor FILE (the run lock belongs to that cursor)")
    options = _resume_options(args, lock=args.lock)  # a locked-out run stops here
    cursor = options.get("cursor")
    after = options.get("last_event_id", None if cursor is None else cursor.get())
    session = open_session(args)
    progress = Progress(err, f"drained .{args.channel}")
    try:
        drain_pages = session.drain_out_pages if args.channel == "out" else session.drain_in_pages
        for page in drain_pages(after=after, include_control=True):
            for record in page:
                progress.tick(record["seq"])
                if record["control"] is None or args.controls:
                    json_line(out, _printable(record))
                if cursor is not None:
                    cursor.set(record["seq"])  # once printed: a kill re-prints at most one
    finally:
        progress.done()
        session.close()
        if cursor is not None:
            cursor.close()
    return EXIT_OK


# ---------------------------------------------------------------- shared


def _resume_options(args: argparse.Namespace, lock: bool = False) -> Dict[str, Any]:
    """``last_event_id`` / ``cursor`` keyword arguments from --from / --after / --cursor.

    With ``lock``, the ``FileCursor`` takes its run lock (``CursorLockedError`` if
    another run holds it)."""
    if args.cursor is not None:
        from .cursor import FileCursor

        return {"cursor": FileCursor(args.cursor, lock=lock)}
    if args.from_seq is not None:
        return {"last_event_id": args.from_seq - 1 if args.from_seq > 0 else None}
    if args.after is not None:
        return {"last_event_id": args.after}
    return {}


def _printable(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """A record as printed: control records with their tokens hidden."""
    if record.get("control") is None:
        return record
    from ._redact import redact_tokens

    return redact_tokens(record)
