"""An embedded local Trigger.dev Sessions server, for tests, demos and offline work.

Standard library only (``http.server``, ``sqlite3``, ``threading``). It speaks the
wire protocol of docs/protocol.md: management routes, append, SSE read in both wire
shapes (``v2`` batches as production, ``v1`` per-record events), drain, auth with
the secret key and session public tokens, limits, control and command records, an
optional echo agent and fault injection (:class:`FaultInjector`, ``srv.faults``).

::

    from sessions_client.testing import LocalServer

    with LocalServer() as srv:
        ...  # point a client at srv.url with srv.secret_key
"""

from __future__ import annotations

from .agent import chat_message, reply_text
from .faults import FaultInjector
from .handler import ServerLimits
from .server import LocalServer, serve
from .store import DatabaseInUseError

__all__ = [
    "DatabaseInUseError",
    "FaultInjector",
    "LocalServer",
    "ServerLimits",
    "chat_message",
    "reply_text",
    "serve",
]
