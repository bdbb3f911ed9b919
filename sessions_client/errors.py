"""One exception hierarchy, rooted at :class:`SessionsError`.

Every error the library raises on purpose is a ``SessionsError``. Errors that
come from an HTTP answer carry its ``status`` and the server's ``message``;
none of them ever carries the token.
"""

from __future__ import annotations

from typing import Any, Dict, Optional


class SessionsError(Exception):
    """Base class of every error raised by ``sessions_client``.

    ``status`` is the HTTP status when the error comes from an answer, else
    ``None``; ``message`` is the server's (or the library's) message.
    """

    def __init__(self, message: str, *, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"{self.message} (HTTP {self.status})"


class ConfigurationError(SessionsError):
    """Missing or invalid configuration: no token, a bad URL, a bad argument."""


class APIError(SessionsError):
    """The server answered with an error status."""


class BadRequestError(APIError):
    """400 or 422: the request was malformed or failed validation."""


class AuthenticationError(APIError):
    """401: the token is missing, unknown or expired."""


class PermissionDeniedError(APIError):
    """403: the token lacks the scope for this call (e.g. a public token on ``.out``)."""


class NotFoundError(APIError):
    """404: no such session."""


class SessionClosedError(APIError):
    """The session is closed or expired (400 on append, 409 on some deployments)."""


class RecordTooLargeError(APIError):
    """413, or a record over the 1 MiB limit detected before any request."""


class RateLimitedError(APIError):
    """429 after the retry budget is spent; ``retry_after`` is in seconds, if known."""

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = 429,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx (or 408) after the retry budget is spent, or 501: no sessions backend."""


class RedirectError(APIError):
    """A 3xx answer to a call that never follows redirects (appends and other writes,
    which a redirect would turn into a ``GET`` without their body); ``location`` is
    the ``Location`` header (None when absent)."""

    def __init__(
        self, message: str, *, status: Optional[int] = None, location: Optional[str] = None
    ) -> None:
        super().__init__(message, status=status)
        self.location = location


class NetworkError(SessionsError):
    """The server could not be reached, or the connection broke or stalled."""


class DeadlineExceededError(NetworkError, TimeoutError):
    """A call (append, drain, management call) did not complete within its ``timeout``:
    connecting, waiting for the answer, reading it and retrying all count."""


class ProtocolError(SessionsError):
    """The server sent something that does not follow the wire protocol."""


class ResponseTooLargeError(ProtocolError):
    """An answer was larger than the client's cap (before or after decompression)."""


class TurnTimeoutError(SessionsError, TimeoutError):
    """A chat turn (``read_turn`` / ``ask``, an ``AgentChat`` reply) did not complete in time."""


class ReaderTimeoutError(SessionsError, TimeoutError):
    """A reader (``iter_out`` / ``iter_in``) ran past its ``total_timeout``."""


class AgentError(SessionsError):
    """A chat agent's reply failed: it carried an ``error`` chunk (``message`` is its
    ``errorText``). ``reply`` is what arrived of the reply: the ``ChatStream.result()``
    dict (``text``, ``tool_calls``, ``tool_results``, ``message``)."""

    def __init__(self, message: str, *, reply: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.reply: Dict[str, Any] = reply if reply is not None else {}


class EmptyReplyError(AgentError):
    """The agent completed a turn without a single chunk in reply to a message: most
    often it rejected the message's client data (``metadata``) or failed at once."""


class PoolTimeoutError(SessionsError, TimeoutError):
    """No pooled connection became free within the call's connect timeout."""


class CursorLockedError(SessionsError):
    """Another run holds a ``FileCursor``'s run lock (``FileCursor(..., lock=True)``)."""


__all__ = [
    "SessionsError",
    "ConfigurationError",
    "APIError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "SessionClosedError",
    "RecordTooLargeError",
    "RateLimitedError",
    "ServerError",
    "RedirectError",
    "NetworkError",
    "DeadlineExceededError",
    "ProtocolError",
    "ResponseTooLargeError",
    "TurnTimeoutError",
    "ReaderTimeoutError",
    "AgentError",
    "EmptyReplyError",
    "CursorLockedError",
    "PoolTimeoutError",
]
