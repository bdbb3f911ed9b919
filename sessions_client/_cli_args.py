"""What the command line's parsers share: the help formatter, the connection options,
the arguments several commands take, ``add_command``, and the argument types.

Each command's own parser is built beside its ``cmd_*`` function (``_cli_records``,
``_cli_manage``, ``_cli_chat``, ``_cli_demo``, ``_cli_serve``).
"""

from __future__ import annotations

import argparse
import json
import textwrap
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Dict, TextIO, Union

from ._config import DEFAULT_API_URL

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "sessions-client"

Command = Callable[[argparse.Namespace, TextIO, TextIO], int]
"""A command: ``(args, out, err) -> exit code``."""


class Formatter(argparse.HelpFormatter):
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


def common_options(defaults: bool) -> argparse.ArgumentParser:
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


def add_command(
    commands: Commands,
    name: str,
    summary: str,
    description: str,
    epilog: str,
    func: Command,
    common: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """Add the sub-command ``name``, run by ``func``, with the connection options."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=Formatter,
        parents=[common],
    )
    parser.set_defaults(func=func)
    return parser


def session_argument(parser: argparse.ArgumentParser) -> None:
    """The SESSION positional argument."""
    parser.add_argument(
        "session", metavar="SESSION", help="session id (session_...) or external id"
    )


def channel_option(parser: argparse.ArgumentParser, default: str) -> None:
    """--in / --out, stored as ``args.channel`` (``default`` when neither is given)."""
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


def resume_group(parser: argparse.ArgumentParser) -> None:
    """--from SEQ / --after SEQ / --cursor FILE: where a read starts."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--from",
        dest="from_seq",
        type=seq,
        metavar="SEQ",
        help="start at record SEQ (inclusive; default: the oldest record retained)",
    )
    group.add_argument(
        "--after",
        type=seq,
        metavar="SEQ",
        help="start after record SEQ (what Last-Event-ID means)",
    )
    group.add_argument(
        "--cursor",
        metavar="FILE",
        help="resume after the seq stored in FILE and store each record's seq there once "
        "it is printed (a FileCursor; created if missing)",
    )


# ------------------------------------------------------------- argument types


def seq(text: str) -> int:
    """A sequence number (an integer >= 0)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a sequence number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"sequence numbers are >= 0, got {value}")
    return value


def when(text: str) -> Union[int, datetime]:
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


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = seq(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def json_object(text: str) -> Dict[str, Any]:
    """A JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value
