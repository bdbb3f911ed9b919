"""The ``sessions-client`` command (also ``python -m sessions_client``).

Configured like the library: ``--api-url`` / ``TRIGGER_API_URL``, ``--token`` /
``TRIGGER_SECRET_KEY`` then ``TRIGGER_ACCESS_TOKEN``, ``--branch`` /
``TRIGGER_PREVIEW_BRANCH``. Records and sessions are printed as JSON (one object per
line for streams and lists); messages, progress and errors go to stderr.

Exit codes: 0 success, 1 any other error, 2 usage or configuration error,
3 authentication or permission error, 4 session not found, 5 network error,
75 another run holds the cursor's lock (``drain --lock``), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import textwrap
import traceback
from datetime import datetime
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    Mapping,
    Optional,
    Sequence,
    TextIO,
    Tuple,
    Union,
)

from ._config import DEFAULT_API_URL, MAX_RECORD_BYTES
from ._version import __version__
from .errors import (
    AuthenticationError,
    ConfigurationError,
    CursorLockedError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    SessionsError,
)

if TYPE_CHECKING:  # imported lazily at run time: `--help` stays quick
    from .client import Client
    from .session import Session

PROG = "sessions-client"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_NETWORK = 5
EXIT_LOCKED = 75  # EX_TEMPFAIL: a previous run is still going; try again later
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    any other error (server error, closed session, record too large, ...)
  2    usage or configuration error (bad option, no token, bad URL)
  3    authentication or permission error (401, 403)
  4    session not found (404)
  5    network error (server unreachable, connection broken)
  75   another run holds the cursor's run lock (drain --cursor FILE --lock)
  130  interrupted (Ctrl-C)"""

ENVIRONMENT_HELP = f"""\
environment:
  TRIGGER_API_URL        server URL (default {DEFAULT_API_URL})
  TRIGGER_SECRET_KEY     secret key (tr_dev_..., tr_prod_...): may do everything
  TRIGGER_ACCESS_TOKEN   used when TRIGGER_SECRET_KEY is unset (e.g. a session token)
  TRIGGER_PREVIEW_BRANCH preview branch name (sent as x-trigger-branch); else
                         VERCEL_GIT_COMMIT_REF"""

MAIN_EPILOG = (
    """\
examples:
  sessions-client demo                          # a 5-step tour on an embedded server
  sessions-client serve --echo-agent            # a local server for your own tests
  export TRIGGER_API_URL=http://127.0.0.1:8030 TRIGGER_SECRET_KEY=tr_dev_local
  sessions-client chat echo --message hello     # talk to its echo chat agent
  sessions-client create --task echo --external-id chat-1
  sessions-client append chat-1 '{"type": "text", "text": "hi"}'
  sessions-client tail chat-1 --out | jq -r .data.text
  sessions-client drain chat-1 --in --from 0 > in.jsonl

"""
    + ENVIRONMENT_HELP
    + "\n\n"
    + EXIT_CODES_HELP
    + "\n"
)


_NUMBER = re.compile(r"-\d+(\.\d+)?([eE][-+]?\d+)?")


class _CLIUsageError(Exception):
    """A usage mistake found after argument parsing (exit code 2)."""


# --------------------------------------------------------------------- output


def _json_line(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, separators=(",", ":")) + "\n")
    out.flush()


def _json_document(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=2) + "\n")
    out.flush()


def _hide_tokens(obj: Dict[str, Any], show: bool) -> Dict[str, Any]:
    if show or "publicAccessToken" not in obj:
        return obj
    shown = dict(obj)
    shown["publicAccessToken"] = "<hidden: pass --show-token to print it>"
    return shown


class _Progress:
    """A one-line counter on stderr, only when stderr is a terminal."""

    def __init__(self, err: TextIO, label: str, every: int = 200) -> None:
        self._err = err
        self._label = label
        self._every = every
        self._enabled = bool(getattr(err, "isatty", lambda: False)())
        self._shown = False
        self.count = 0

    def tick(self, seq: Optional[int] = None) -> None:
        self.count += 1
        if self._enabled and self.count % self._every == 0:
            where = "" if seq is None else f" (last seq {seq})"
            self._err.write(f"\r{self._label}: {self.count:,} records{where}")
            self._err.flush()
            self._shown = True

    def done(self) -> None:
        if self._shown:
            self._err.write(f"\r{self._label}: {self.count:,} records, done.\n")
            self._err.flush()


# ---------------------------------------------------------------- connections


def _client(args: argparse.Namespace) -> Client:
    from .client import Client

    return Client(token=args.token, api_url=args.api_url, branch=args.branch)


def _session(args: argparse.Namespace) -> Session:
    from .session import Session

    return Session(args.session, token=args.token, api_url=args.api_url, branch=args.branch)


def _close(iterator: Iterator[Any]) -> None:
    """Close a generator at once (its HTTP response with it); iterators lack close()."""
    close: Optional[Callable[[], None]] = getattr(iterator, "close", None)
    if close is not None:
        close()


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _CLIUsageError(f"{what} is not valid JSON ({exc.msg} at char {exc.pos})") from None


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


# ------------------------------------------------------------------- commands


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import _cli_demo

    configured = args.api_url or os.environ.get("TRIGGER_API_URL")
    if configured and not args.local:
        if args.task:
            return _cli_demo.run_remote(
                out,
                api_url=args.api_url,
                token=args.token,
                branch=args.branch,
                task=args.task,
                timeout=args.timeout,
            )
        err.write(
            f"{PROG}: note: a server is configured ({configured}), but the demo needs an "
            "agent there that answers; pass --task TASK_ID to run it there. "
            "Using the embedded local server instead.\n"
        )
    elif args.task and not args.local:
        err.write(
            f"{PROG}: note: --task needs a configured server (--api-url or TRIGGER_API_URL); "
            "using the embedded local server and its echo agent.\n"
        )
    return _cli_demo.run_local(out, wire=args.wire, timeout=args.timeout)


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the local server until Ctrl-C; print where it listens.

    The secret key is ``--secret-key``, else ``$TRIGGER_SECRET_KEY``, else the public
    ``tr_dev_local``, which is refused on a non-loopback ``--host`` (exit 2)."""
    from .testing import LocalServer, serve

    secret_key = args.secret_key or "tr_dev_local"

    def ready(server: LocalServer) -> None:
        out.write(
            f"{PROG}: local Sessions server on {server.url} "
            f"(wire {server.wire}, db {server.db}"
            f"{', echo agent' if args.echo_agent else ''}); Ctrl-C to stop\n"
        )
        key = "tr_dev_local" if secret_key == "tr_dev_local" else "<your secret key>"
        out.write(f"  export TRIGGER_API_URL={server.url} TRIGGER_SECRET_KEY={key}\n")
        out.flush()

    try:
        serve(
            args.port,
            args.db,
            args.wire,
            secret_key,
            args.echo_agent,
            host=args.host,
            on_ready=ready,
            cors_origins=args.cors_origin,
            agent_delay=args.agent_delay,
            agent_client_data=args.agent_client_data or (),
        )
    except OSError as exc:
        err.write(f"{PROG}: error: cannot serve on {args.host}:{args.port}: {exc}\n")
        return EXIT_ERROR
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
            raise _CLIUsageError(
                f"line {number} of standard input is longer than a record may be "
                f"({MAX_RECORD_BYTES} bytes); it was not sent, nor anything after it"
            )
        text = line.rstrip("\r\n")
        if text.strip():
            yield f"line {number} of standard input", text


def cmd_append(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = _session(args)
    append: Callable[..., Dict[str, Any]] = (
        session.append_out if args.channel == "out" else session.append_in
    )
    from_stdin = args.record == "-"
    progress = _Progress(err, f"appended to .{args.channel}")
    try:
        for number, (where, text) in enumerate(_records_to_append(args, err), start=1):
            record: Any = _parse_json(text, where) if args.json else text
            part_id = args.part_id
            if part_id is not None and from_stdin:
                part_id = f"{part_id}-{number}"
            result = append(record, part_id=part_id)
            _json_line(out, result)
            progress.tick(result.get("seq"))
    finally:
        progress.done()
        session.close()
    return EXIT_OK


def _printable(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """A record as printed: control records with their tokens hidden."""
    if record.get("control") is None:
        return record
    from ._redact import redact_tokens

    return redact_tokens(record)


def _note_unknown_external_id(args: argparse.Namespace, err: TextIO) -> None:
    """Say so on stderr when SESSION is an external id no session has (yet).

    Production reads an unknown external id as an empty stream, so a mistyped id
    would otherwise wait in silence. Friendly ids (``session_...``) 404 on their
    own; when the check itself fails (e.g. a token that may not read sessions)
    nothing is said."""
    if args.session.startswith("session_"):
        return
    try:
        with _client(args) as client:
            client.get_session(args.session)
    except NotFoundError:
        err.write(
            f"{PROG}: note: no session has the external id {args.session!r} (yet); "
            "the server reads it as an empty stream\n"
        )
        err.flush()
    except SessionsError:
        logging.getLogger("sessions_client.cli").debug("session lookup failed", exc_info=True)


def cmd_tail(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = _session(args)
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
            _json_line(out, _printable(record))
            count += 1
            if args.limit is not None and count >= args.limit:
                break
    finally:
        _close(records)
        session.close()
    return EXIT_OK


def cmd_drain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.lock and args.cursor is None:
        raise _CLIUsageError("--lock needs --cursor FILE (the run lock belongs to that cursor)")
    options = _resume_options(args, lock=args.lock)  # a locked-out run stops here
    cursor = options.get("cursor")
    after = options.get("last_event_id", None if cursor is None else cursor.get())
    session = _session(args)
    progress = _Progress(err, f"drained .{args.channel}")
    try:
        drain_pages = session.drain_out_pages if args.channel == "out" else session.drain_in_pages
        for page in drain_pages(after=after, include_control=True):
            for record in page:
                progress.tick(record["seq"])
                if record["control"] is None or args.controls:
                    _json_line(out, _printable(record))
                if cursor is not None:
                    cursor.set(record["seq"])  # once printed: a kill re-prints at most one
    finally:
        progress.done()
        session.close()
        if cursor is not None:
            cursor.close()
    return EXIT_OK


def cmd_ask(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = _session(args)
    record: Any = _parse_json(args.record, "the record") if args.json else args.record
    try:
        turn = session.ask(record, timeout=args.timeout)
    finally:
        session.close()
    for reply in turn["records"]:
        _json_line(out, reply)
    if args.controls:
        _json_line(out, turn["control"])
    return EXIT_OK


def cmd_chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import _cli_chat

    return _cli_chat.run(args, out, err, sys.stdin)


def cmd_create(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.trigger_config is not None:
        trigger_config = _parse_json(args.trigger_config, "--trigger-config")
    else:
        trigger_config = {"basePayload": _parse_json(args.payload, "--payload")}
    metadata = None if args.metadata is None else _parse_json(args.metadata, "--metadata")
    with _client(args) as client:
        created = client.create_session(
            args.type,
            args.task,
            trigger_config,
            external_id=args.external_id,
            tags=args.tag or None,
            metadata=metadata,
            expires_at=args.expires_at,
        )
    _json_document(out, _hide_tokens(created, args.show_token))
    return EXIT_OK


def cmd_get(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        _json_document(out, _hide_tokens(client.get_session(args.session), False))
    return EXIT_OK


def cmd_update(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    changes: Dict[str, Any] = {}
    if args.tag is not None:
        changes["tags"] = args.tag
    if args.metadata is not None:
        changes["metadata"] = _parse_json(args.metadata, "--metadata")
    if not changes:
        raise _CLIUsageError("nothing to update: give --tag or --metadata")
    with _client(args) as client:
        _json_document(out, _hide_tokens(client.update_session(args.session, **changes), False))
    return EXIT_OK


def cmd_close(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        closed = client.close_session(args.session, reason=args.reason)
    _json_document(out, _hide_tokens(closed, False))
    return EXIT_OK


def cmd_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    filters: Dict[str, Any] = {
        "type": args.type,
        "tag": args.tag,
        "task_identifier": args.task,
        "external_id": args.external_id,
        "status": None if args.status is None else [s.strip() for s in args.status.split(",")],
        "period": args.period,
        "created_from": args.created_from,
        "created_to": args.created_to,
    }
    count = 0
    with _client(args) as client:
        sessions = client.list_sessions(
            page_size=args.page_size, **{k: v for k, v in filters.items() if v is not None}
        )
        try:
            for found in sessions:
                if args.limit is not None and count >= args.limit:
                    break
                _json_line(out, _hide_tokens(found, False))
                count += 1
        finally:
            _close(sessions)
    return EXIT_OK


# --------------------------------------------------------------------- parser


class _Formatter(argparse.HelpFormatter):
    """Wraps prose paragraphs; keeps multi-line blocks (examples, tables) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if "\n" in paragraph.strip("\n"):
                paragraphs.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                paragraphs.append(
                    textwrap.fill(
                        paragraph.strip(),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                        break_on_hyphens=False,
                    )
                )
        return "\n\n".join(paragraphs)


def _common_options(defaults: bool) -> argparse.ArgumentParser:
    """--api-url/--token/--branch/--debug, accepted before or after the command."""
    parent = argparse.ArgumentParser(add_help=False)
    suppress: Dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    group = parent.add_argument_group("connection options")
    group.add_argument(
        "--api-url",
        metavar="URL",
        help=f"server URL (default: $TRIGGER_API_URL, else {DEFAULT_API_URL})",
        **suppress,
    )
    group.add_argument(
        "--token",
        metavar="TOKEN",
        help="secret key or session token (default: $TRIGGER_SECRET_KEY, then "
        "$TRIGGER_ACCESS_TOKEN); prefer the environment: command lines are visible to "
        "other users of the machine",
        **suppress,
    )
    group.add_argument(
        "--branch",
        metavar="NAME",
        help="preview branch (default: $TRIGGER_PREVIEW_BRANCH, then $VERCEL_GIT_COMMIT_REF)",
        **suppress,
    )
    group.add_argument(
        "--debug",
        action="store_true",
        help="log HTTP traffic (without tokens) and show tracebacks on stderr",
        **suppress,
    )
    return parent


def _channel_option(parser: argparse.ArgumentParser, default: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--in",
        dest="channel",
        action="store_const",
        const="in",
        help="the .in channel (clients -> task)" + (" (default)" if default == "in" else ""),
    )
    group.add_argument(
        "--out",
        dest="channel",
        action="store_const",
        const="out",
        help="the .out channel (task -> clients)" + (" (default)" if default == "out" else ""),
    )
    parser.set_defaults(channel=default)


def _seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a sequence number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"sequence numbers are >= 0, got {value}")
    return value


def _when(text: str) -> Union[int, datetime]:
    """A moment: Unix milliseconds, or ISO 8601 (``2026-01-31``, ``...T12:00:00Z``)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use ISO 8601 like 2026-01-31T12:00:00Z, or Unix ms)"
        ) from None
    return moment


def _positive_int(text: str) -> int:
    value = _seq(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _json_object(text: str) -> Dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _add_chat_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    chat = _add_command(
        commands,
        "chat",
        "chat with an agent in the terminal (or send one message with --message)",
        "Talk to a chat agent (a chat.agent task) through AgentChat: the session is "
        "started on first use (external id = the chat id), each line you type is a "
        "message, and the reply streams to stdout as it arrives. Ctrl-C during a reply "
        "stops it; a second Ctrl-C quits. At the prompt: /stop sends a stop, /close ends "
        "the agent's loop and leaves, /quit or Ctrl-D leaves. The chat id is printed on "
        "stderr: --chat-id ID continues that conversation.\n\n"
        "With --message the reply to that one message is printed and the command exits: "
        "0 on success; an agent error, an empty reply or a closed session is one line on "
        "stderr and exit code 1.",
        "examples:\n"
        "  sessions-client serve --echo-agent --agent-delay 0.1 &\n"
        "  export TRIGGER_API_URL=http://127.0.0.1:8030 TRIGGER_SECRET_KEY=tr_dev_local\n"
        "  sessions-client chat echo\n"
        '  sessions-client chat echo --message "hello" --chat-id chat-1\n'
        '  sessions-client chat my-agent --client-data \'{"userId": "u1"}\'',
        cmd_chat,
        common,
    )
    chat.add_argument("agent", metavar="AGENT", help="the agent's task identifier")
    chat.add_argument("--chat-id", metavar="ID", help="continue this chat (default: a new one)")
    chat.add_argument("--message", metavar="TEXT", help="send TEXT, print the reply and exit")
    chat.add_argument(
        "--client-data",
        type=_json_object,
        metavar="JSON",
        help="the agent's client data (a JSON object), sent with every message",
    )
    chat.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="seconds a reply may take (default 120)",
    )


def _resume_group(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--from",
        dest="from_seq",
        type=_seq,
        metavar="SEQ",
        help="start at record SEQ (inclusive; default: the oldest record retained)",
    )
    group.add_argument(
        "--after",
        type=_seq,
        metavar="SEQ",
        help="start after record SEQ (what Last-Event-ID means)",
    )
    group.add_argument(
        "--cursor",
        metavar="FILE",
        help="resume after the seq stored in FILE and store each record's seq there once "
        "it is printed (a FileCursor; created if missing)",
    )


def _session_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "session", metavar="SESSION", help="session id (session_...) or external id"
    )


def _add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    epilog: str,
    func: Callable[[argparse.Namespace, TextIO, TextIO], int],
    common: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=_Formatter,
        parents=[common],
    )
    parser.set_defaults(func=func)
    return parser


def _add_serve_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    serve = _add_command(
        commands,
        "serve",
        "run the embedded local Sessions server until Ctrl-C",
        "Run the embedded local Sessions server (SQLite storage, standard library only) "
        "until Ctrl-C. It speaks the same protocol as Trigger.dev: point TRIGGER_API_URL at "
        "it and use its secret key. With --echo-agent, every chat.agent session has an echo "
        "chat agent that the official AgentChat cannot tell from a real one: a message T "
        'is answered "echo: T", streamed word by word, then a turn-complete; "/tool X" calls '
        "a tool first. Fault injection is available from Python "
        "(sessions_client.testing.LocalServer().faults).",
        "examples:\n"
        "  sessions-client serve --echo-agent\n"
        "  sessions-client serve --echo-agent --agent-delay 0.1   # watch replies stream\n"
        "  sessions-client serve --port 0 --db :memory:\n"
        "  sessions-client serve --db /tmp/sessions.db   # survives restarts\n"
        "  sessions-client serve --cors-origin http://localhost:3000   # one page origin\n"
        "  export TRIGGER_SECRET_KEY=tr_dev_$(openssl rand -hex 16)   # then, for other machines:\n"
        "  sessions-client serve --host 0.0.0.0",
        cmd_serve,
        common,
    )
    serve.add_argument("--port", type=int, default=8030, help="TCP port (default 8030; 0 = any)")
    serve.add_argument(
        "--db", default="sessions.db", help="SQLite file, or :memory: (default sessions.db)"
    )
    serve.add_argument(
        "--wire", choices=("v1", "v2"), default="v2", help="SSE wire shape (default v2)"
    )
    serve.add_argument(
        "--secret-key",
        default=os.environ.get("TRIGGER_SECRET_KEY") or "tr_dev_local",
        help="the secret key (default: $TRIGGER_SECRET_KEY, else tr_dev_local, which is "
        "refused with a --host other than loopback)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="a browser origin allowed to read answers, e.g. http://localhost:3000 "
        "(repeatable; default: every origin, as production)",
    )
    serve.add_argument(
        "--echo-agent",
        action="store_true",
        help="answer chat.agent sessions with the echo chat agent",
    )
    serve.add_argument(
        "--agent-delay",
        type=_non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="with --echo-agent: wait this long before each streamed delta (default 0)",
    )
    serve.add_argument(
        "--agent-client-data",
        action="append",
        metavar="KEY",
        help="with --echo-agent: a message whose metadata lacks KEY fails its turn (repeatable)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sessions-client`` (every sub-command)."""
    common = _common_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Talk to Trigger.dev Sessions from the command line: append to and read "
        "a session's .in/.out channels, manage sessions, or run an embedded local server.",
        epilog=MAIN_EPILOG,
        formatter_class=_Formatter,
        parents=[_common_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    demo = _add_command(
        commands,
        "demo",
        "a short narrated tour on an embedded server (offline, seconds)",
        "Start the embedded Sessions server with its echo agent (database in a temporary "
        "directory, 127.0.0.1 only), create a session, send a message with ask() and print "
        "the reply, stop a read part-way and resume it from its cursor, and recover from a "
        "cut connection, explaining each step. Needs no network and no account.\n\n"
        "With --task and a configured server (--api-url or $TRIGGER_API_URL), the same "
        "conversation runs against that server's agent task instead, in a new session that "
        "is closed at the end.",
        "examples:\n  sessions-client demo\n"
        "  sessions-client demo --api-url https://api.trigger.dev --task my-chat-agent",
        cmd_demo,
        common,
    )
    demo.add_argument(
        "--wire", choices=["v1", "v2"], default="v2", help="wire shape of the local server"
    )
    demo.add_argument(
        "--local",
        action="store_true",
        help="use the embedded server even when a server is configured",
    )
    demo.add_argument("--task", help="agent task id on the configured server (remote demo)")
    demo.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for a reply (default 60)"
    )

    _add_serve_command(commands, common)
    _add_chat_command(commands, common)

    append = _add_command(
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
    _session_argument(append)
    append.add_argument(
        "record",
        metavar="RECORD",
        nargs="?",
        help="the record's text, or - (the default) for one record per line of stdin "
        "(blank lines are skipped)",
    )
    _channel_option(append, "in")
    append.add_argument(
        "--part-id",
        metavar="ID",
        help="idempotency key (X-Part-Id); with -, the Nth record gets ID-N (default: random)",
    )
    append.add_argument("--json", action="store_true", help="records must be valid JSON")

    tail = _add_command(
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
    _session_argument(tail)
    _channel_option(tail, "out")
    _resume_group(tail)
    tail.add_argument(
        "--no-follow", action="store_true", help="stop once caught up instead of waiting"
    )
    tail.add_argument(
        "--controls",
        action="store_true",
        help="also print control records (turn-complete, upgrade-required)",
    )
    tail.add_argument("--limit", type=_seq, metavar="N", help="stop after N records")
    tail.add_argument(
        "--timeout-seconds",
        type=int,
        default=60,
        metavar="S",
        help="long-poll window the server keeps an idle stream open, 1..600 (default 60)",
    )

    drain = _add_command(
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
    _session_argument(drain)
    _channel_option(drain, "out")
    _resume_group(drain)
    drain.add_argument("--controls", action="store_true", help="also print control records")
    drain.add_argument(
        "--lock",
        action="store_true",
        help="with --cursor: hold a run lock (FILE.run-lock) while draining; if another run "
        "holds it, exit at once with code 75 and one line on stderr (cron jobs that overlap)",
    )

    ask = _add_command(
        commands,
        "ask",
        "send a message and print the agent's reply (one chat turn)",
        "Append RECORD to .in, then print the .out records of the agent's answer as JSON "
        "lines, up to the turn-complete control record for that message.",
        "examples:\n  # a chat agent reads ChatInputChunks and streams AI SDK chunks\n"
        '  sessions-client ask chat-1 --json \'{"kind": "message", "payload": '
        '{"trigger": "submit-message", "message": {"id": "m1", "role": "user", '
        '"parts": [{"type": "text", "text": "hi"}]}}}\' | jq -j ".data.delta // empty"',
        cmd_ask,
        common,
    )
    _session_argument(ask)
    ask.add_argument("record", metavar="RECORD", help="the message (text; see append)")
    ask.add_argument("--json", action="store_true", help="RECORD must be valid JSON")
    ask.add_argument("--controls", action="store_true", help="also print the turn-complete")
    ask.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the reply (default 60)"
    )

    create = _add_command(
        commands,
        "create",
        "create a session (or get the existing one with that external id)",
        "Create a session for an agent task and print it as JSON. With an --external-id "
        'that already exists, the existing session is returned ("isCached": true). The '
        "session's publicAccessToken is hidden unless --show-token is given.",
        "examples:\n"
        "  sessions-client create --task my-agent --external-id chat-1 --tag user:42\n"
        '  sessions-client create --task my-agent --payload \'{"model": "small"}\'',
        cmd_create,
        common,
    )
    create.add_argument("--task", required=True, help="the task identifier that serves it")
    create.add_argument("--type", default="chat.agent", help="session type (default chat.agent)")
    create.add_argument("--external-id", metavar="ID", help="your own id for the session")
    create.add_argument(
        "--payload", default="{}", metavar="JSON", help="triggerConfig.basePayload (default {})"
    )
    create.add_argument(
        "--trigger-config", metavar="JSON", help="the whole triggerConfig (overrides --payload)"
    )
    create.add_argument(
        "--tag", action="append", metavar="TAG", help="a tag (repeat for more, at most 10)"
    )
    create.add_argument("--metadata", metavar="JSON", help="metadata object")
    create.add_argument("--expires-at", metavar="ISO8601", help="expiry time")
    create.add_argument(
        "--show-token", action="store_true", help="print the session's publicAccessToken"
    )

    get = _add_command(
        commands,
        "get",
        "print a session as JSON",
        "Retrieve a session by id or external id and print it as JSON.",
        "examples:\n  sessions-client get chat-1 | jq .closedAt",
        cmd_get,
        common,
    )
    _session_argument(get)

    update = _add_command(
        commands,
        "update",
        "change a session's tags or metadata",
        "Update a session (needs a secret key) and print it as JSON.",
        "examples:\n  sessions-client update chat-1 --tag vip --tag user:42\n"
        '  sessions-client update chat-1 --metadata \'{"plan": "pro"}\'',
        cmd_update,
        common,
    )
    _session_argument(update)
    update.add_argument(
        "--tag", action="append", metavar="TAG", help="replace the tags (repeat for more)"
    )
    update.add_argument("--metadata", metavar="JSON", help="replace the metadata")

    close = _add_command(
        commands,
        "close",
        "close a session (idempotent)",
        "Close a session (needs a secret key) and print it as JSON. Appends to a closed "
        "session fail; reads still work.",
        "examples:\n  sessions-client close chat-1 --reason 'user left'",
        cmd_close,
        common,
    )
    _session_argument(close)
    close.add_argument("--reason", help="why, stored with the session")

    listing = _add_command(
        commands,
        "list",
        "list sessions as JSON lines (every page)",
        "List sessions, newest first, one JSON object per line, following every page.",
        "examples:\n"
        "  sessions-client list --status ACTIVE --tag user:42\n"
        "  sessions-client list --period 7d | jq -r .id\n"
        "  sessions-client list --from 2026-01-01T00:00:00Z --limit 5",
        cmd_list,
        common,
    )
    listing.add_argument("--type", help="only this session type")
    listing.add_argument("--tag", help="only sessions with this tag")
    listing.add_argument("--task", help="only this task identifier")
    listing.add_argument("--external-id", metavar="ID", help="only this external id")
    listing.add_argument(
        "--status",
        help="ACTIVE, CLOSED or EXPIRED (comma-separated for several: one listing each, merged)",
    )
    listing.add_argument("--period", help="created within this period, e.g. 1h, 7d")
    listing.add_argument(
        "--from",
        dest="created_from",
        type=_when,
        metavar="WHEN",
        help="created at or after WHEN (ISO 8601, UTC unless it has an offset, or Unix ms)",
    )
    listing.add_argument(
        "--to", dest="created_to", type=_when, metavar="WHEN", help="created at or before WHEN"
    )
    listing.add_argument("--limit", type=_seq, metavar="N", help="print at most N sessions")
    listing.add_argument(
        "--page-size", type=_positive_int, default=20, metavar="N", help="per request (20)"
    )
    return parser


# ----------------------------------------------------------------------- main


def exit_code_for(exc: BaseException) -> int:
    """The exit code documented for an error (see the module docstring)."""
    if isinstance(exc, CursorLockedError):
        return EXIT_LOCKED
    if isinstance(exc, (ConfigurationError, _CLIUsageError)):
        return EXIT_USAGE
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
        return EXIT_AUTH
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, NetworkError):
        return EXIT_NETWORK
    return EXIT_ERROR


def _hint(exc: BaseException) -> str:
    if isinstance(exc, AuthenticationError):
        return " (check --token / TRIGGER_SECRET_KEY)"
    if isinstance(exc, PermissionDeniedError):
        return " (this token may not do that: .out appends, update and close need a secret key)"
    return ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


_NETWORK_REASONS = (
    ("Connection refused", "connection refused"),
    ("Name or service not known", "unknown host"),
    ("Failed to resolve", "unknown host"),
    ("nodename nor servname", "unknown host"),
    ("Temporary failure in name resolution", "host name lookup failed"),
    ("timed out", "timed out"),
    ("Connection reset", "connection reset"),
    ("RemoteDisconnected", "the server closed the connection"),
    ("Connection aborted", "the server closed the connection"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ("SSLError", "TLS error"),
    ("Network is unreachable", "network unreachable"),
    ("No route to host", "no route to host"),
)
_HOST_PORT = re.compile(r"host='([^']+)', port=(\d+)")


def _network_line(exc: NetworkError) -> str:
    """A network error in a few words: what failed, why, and where
    (``GET /api/v1/sessions/x failed: connection refused (127.0.0.1:9)``)."""
    text = _one_line(str(exc))
    what, sep, detail = text.partition(" failed: ")
    reason = next((short for marker, short in _NETWORK_REASONS if marker in detail), None)
    if not sep or reason is None:
        return text if len(text) <= 200 else text[:197] + "..."
    where = _HOST_PORT.search(detail)
    return f"{what} failed: {reason}" + (f" ({where[1]}:{where[2]})" if where else "")


def _parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """``parse_args``, except that append's optional RECORD may follow its options.

    (argparse gives an optional positional its default as soon as the positionals
    before the first option are consumed, so ``append S --out text`` would reject
    ``text``.)
    """
    args, extras = parser.parse_known_args(argv)
    if getattr(args, "command", None) == "append":
        if args.record is None and len(extras) == 1 and _looks_like_record(extras[0]):
            args.record = extras.pop()
        if args.record is None:
            args.record = "-"
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _looks_like_record(text: str) -> bool:
    return text == "-" or not text.startswith("-") or _NUMBER.fullmatch(text) is not None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = _parse(parser, argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    out, err = sys.stdout, sys.stderr
    if args.debug:
        logging.basicConfig(
            level=logging.DEBUG, stream=err, format="%(asctime)s %(name)s %(message)s"
        )
    try:
        code: int = args.func(args, out, err)
        return code
    except KeyboardInterrupt:
        err.write(f"\n{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): stop quietly, and keep the
        # interpreter's final flush of stdout from failing again.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (SessionsError, _CLIUsageError) as exc:
        if args.debug:
            traceback.print_exc(file=err)
        text = _network_line(exc) if isinstance(exc, NetworkError) else _one_line(str(exc))
        err.write(f"{PROG}: error: {text}{_hint(exc)}\n")
        return exit_code_for(exc)
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        if args.debug:
            traceback.print_exc(file=err)
        err.write(
            f"{PROG}: error: {type(exc).__name__}: {_one_line(str(exc))}"
            f"{'' if args.debug else ' (run with --debug for the traceback)'}\n"
        )
        return EXIT_ERROR
