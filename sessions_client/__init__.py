"""sessions_client: a synchronous Python client for Trigger.dev Sessions."""

from __future__ import annotations

from ._http import RetryPolicy
from ._version import __version__
from .chat import AgentChat, ChatStream
from .client import Client
from .cursor import Cursor, FileCursor, MemoryCursor
from .errors import (
    AgentError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    CursorLockedError,
    DeadlineExceededError,
    EmptyReplyError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    PoolTimeoutError,
    ProtocolError,
    RateLimitedError,
    ReaderTimeoutError,
    RecordTooLargeError,
    RedirectError,
    ResponseTooLargeError,
    ServerError,
    SessionClosedError,
    SessionsError,
    TurnTimeoutError,
)
from .session import Session

__all__ = [
    "__version__",
    "AgentChat",
    "AgentError",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ChatStream",
    "Client",
    "ConfigurationError",
    "Cursor",
    "CursorLockedError",
    "DeadlineExceededError",
    "EmptyReplyError",
    "FileCursor",
    "MemoryCursor",
    "NetworkError",
    "NotFoundError",
    "PermissionDeniedError",
    "PoolTimeoutError",
    "ProtocolError",
    "RateLimitedError",
    "ReaderTimeoutError",
    "RecordTooLargeError",
    "RedirectError",
    "ResponseTooLargeError",
    "RetryPolicy",
    "ServerError",
    "Session",
    "SessionClosedError",
    "SessionsError",
    "TurnTimeoutError",
]
