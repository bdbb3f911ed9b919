"""What the commands share when they run: the connection the options describe, JSON
output on stdout, a progress counter on stderr, and JSON arguments read as usage
errors."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Optional, TextIO

from ._cli_errors import CLIUsageError

if TYPE_CHECKING:  # imported when a command runs: `--help` stays quick
    from .client import Client
    from .session import Session


def open_client(args: argparse.Namespace) -> Client:
    """A ``Client`` configured by --token / --api-url / --branch (or the environment)."""
    from .client import Client

    return Client(token=args.token, api_url=args.api_url, branch=args.branch)


def open_session(args: argparse.Namespace) -> Session:
    """The ``Session`` of ``args.session``, configured as ``open_client``."""
    from .session import Session

    return Session(args.session, token=args.token, api_url=args.api_url, branch=args.branch)


def close_iterator(iterator: Iterator[Any]) -> None:
    """Close a generator at once (its HTTP response with it); iterators lack close()."""
    close: Optional[Callable[[], None]] = getattr(iterator, "close", None)
    if close is not None:
        close()


def parse_json(text: str, what: str) -> Any:
    """``text`` as JSON; ``CLIUsageError`` naming ``what`` when it is not."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIUsageError(f"{what} is not valid JSON ({exc.msg} at char {exc.pos})") from None


def json_line(out: TextIO, value: Any) -> None:
    """``value`` as one compact JSON line, flushed."""
    out.write(json.dumps(value, separators=(",", ":")) + "\n")
    out.flush()


def json_document(out: TextIO, value: Any) -> None:
    """``value`` as indented JSON, flushed."""
    out.write(json.dumps(value, indent=2) + "\n")
    out.flush()


def hide_tokens(obj: Dict[str, Any], show: bool) -> Dict[str, Any]:
    """A session as printed: its publicAccessToken hidden unless ``show``."""
    if show or "publicAccessToken" not in obj:
        return obj
    shown = dict(obj)
    shown["publicAccessToken"] = "<hidden: pass --show-token to print it>"
    return shown


class Progress:
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
