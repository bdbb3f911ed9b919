"""The ``sessions-client`` command (also ``python -m sessions_client``).

Configured like the library: ``--api-url`` / ``TRIGGER_API_URL``, ``--token`` /
``TRIGGER_SECRET_KEY`` then ``TRIGGER_ACCESS_TOKEN``, ``--branch`` /
``TRIGGER_PREVIEW_BRANCH``. Records and sessions are printed as JSON (one object per
line for streams and lists); messages, progress and errors go to stderr.

Exit codes: 0 success, 1 any other error, 2 usage or configuration error,
3 authentication or permission error, 4 session not found, 5 network error,
75 another run holds the cursor's lock (``drain --lock``), 130 interrupted (Ctrl-C).

This module holds ``main`` and the top-level parser. Each command's parser sits beside
the function that runs it: ``_cli_records`` (append, tail, drain), ``_cli_manage``
(create, get, update, close, list), ``_cli_chat`` (chat, ask), ``_cli_demo``,
``_cli_serve``. They share ``_cli_args`` (help formatter, common options, argument
types), ``_cli_io`` (connections, JSON output) and ``_cli_errors`` (exit codes, the
one-line error report).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from typing import Optional, Sequence

from . import _cli_chat, _cli_demo, _cli_manage, _cli_records, _cli_serve
from ._cli_args import PROG, Formatter, common_options
from ._cli_errors import (
    EXIT_AUTH,
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_NETWORK,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    exit_code_for,
    report,
)
from ._config import DEFAULT_API_URL
from ._version import __version__

__all__ = [
    "EXIT_AUTH",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_NETWORK",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "exit_code_for",
    "main",
]

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

# Each adds one sub-command (its parser and the function that runs it), in the
# order `sessions-client --help` lists them.
_COMMANDS = (
    _cli_demo.add_demo,
    _cli_serve.add_serve,
    _cli_chat.add_chat,
    _cli_records.add_append,
    _cli_records.add_tail,
    _cli_records.add_drain,
    _cli_chat.add_ask,
    _cli_manage.add_create,
    _cli_manage.add_get,
    _cli_manage.add_update,
    _cli_manage.add_close,
    _cli_manage.add_list,
)

_NUMBER = re.compile(r"-\d+(\.\d+)?([eE][-+]?\d+)?")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sessions-client`` (every sub-command)."""
    common = common_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Talk to Trigger.dev Sessions from the command line: append to and read "
        "a session's .in/.out channels, manage sessions, or run an embedded local server.",
        epilog=MAIN_EPILOG,
        formatter_class=Formatter,
        parents=[common_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for add in _COMMANDS:
        add(commands, common)
    return parser


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
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        return report(exc, err, args.debug)
