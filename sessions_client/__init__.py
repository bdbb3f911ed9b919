"""sessions_client: a synchronous Python client for Trigger.dev Sessions."""

from __future__ import annotations

from ._version import __version__
from .client import Client
from .cursor import Cursor, FileCursor, MemoryCursor
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    ReaderTimeoutError,
    RecordTooLargeError,
    ServerError,
    SessionClosedError,
    SessionsError,
    TurnTimeoutError,
)
from .http import RetryPolicy
from .session import Session

__all__ = [
    "__version__",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConfigurationError",
    "Cursor",
    "FileCursor",
    "MemoryCursor",
    "NetworkError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitedError",
    "ReaderTimeoutError",
    "RecordTooLargeError",
    "RetryPolicy",
    "ServerError",
    "Session",
    "SessionClosedError",
    "SessionsError",
    "TurnTimeoutError",
]
