"""The command line's exit codes, and the one line on stderr that reports an error.

Every error a command raises ends as one line ``sessions-client: error: ...`` and the
exit code documented for its type (``EXIT_CODES_HELP``); tracebacks only with --debug.
"""

from __future__ import annotations

import re
import traceback
from typing import TextIO

from ._cli_args import PROG
from .errors import (
    AuthenticationError,
    ConfigurationError,
    CursorLockedError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    SessionsError,
)

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


class CLIUsageError(Exception):
    """A usage mistake found after argument parsing (exit code 2)."""


def exit_code_for(exc: BaseException) -> int:
    """The exit code documented for an error (see ``EXIT_CODES_HELP``)."""
    if isinstance(exc, CursorLockedError):
        return EXIT_LOCKED
    if isinstance(exc, (ConfigurationError, CLIUsageError)):
        return EXIT_USAGE
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
        return EXIT_AUTH
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, NetworkError):
        return EXIT_NETWORK
    return EXIT_ERROR


def report(exc: Exception, err: TextIO, debug: bool) -> int:
    """Write ``exc`` to ``err`` as one line (after its traceback with ``debug``);
    returns its exit code."""
    if debug:
        traceback.print_exc(file=err)
    if isinstance(exc, (SessionsError, CLIUsageError)):
        text = network_line(exc) if isinstance(exc, NetworkError) else one_line(str(exc))
        err.write(f"{PROG}: error: {text}{_hint(exc)}\n")
        return exit_code_for(exc)
    err.write(
        f"{PROG}: error: {type(exc).__name__}: {one_line(str(exc))}"
        f"{'' if debug else ' (run with --debug for the traceback)'}\n"
    )
    return EXIT_ERROR


def _hint(exc: BaseException) -> str:
    if isinstance(exc, AuthenticationError):
        return " (check --token / TRIGGER_SECRET_KEY)"
    if isinstance(exc, PermissionDeniedError):
        return " (this token may not do that: .out appends, update and close need a secret key)"
    return ""


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) as one space."""
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


def network_line(exc: NetworkError) -> str:
    """A network error in a few words: what failed, why, and where
    (``GET /api/v1/sessions/x failed: connection refused (127.0.0.1:9)``)."""
    text = one_line(str(exc))
    what, sep, detail = text.partition(" failed: ")
    reason = next((short for marker, short in _NETWORK_REASONS if marker in detail), None)
    if not sep or reason is None:
        return text if len(text) <= 200 else text[:197] + "..."
    where = _HOST_PORT.search(detail)
    return f"{what} failed: {reason}" + (f" ({where[1]}:{where[2]})" if where else "")
