"""``LocalServer``: the embedded Sessions server, started from Python or the CLI.

::

    from sessions_client.testing import LocalServer

    with LocalServer(secret_key="tr_dev_local", db=":memory:", wire="v2", port=0,
                     echo_agent=False, ping_interval=(5.0, 15.0), host="127.0.0.1",
                     part_id_ttl=300.0, agent_delay=0.0, agent_client_data=()) as srv:
        srv.url                     # "http://127.0.0.1:<port>"
        info = srv.create_session("chat-1")   # convenience, no HTTP
        token = srv.mint_token("chat-1", read=True, write=True, ttl=3600)
        seq = srv.append("chat-1", "in", '{"text": "hi"}', part_id="p1")
        seqs = srv.append_many("chat-1", "out", ['"a"', '"b"'])  # one transaction
        srv.write_control("chat-1", "turn-complete", headers=[["session-in-event-id", "0"]])
        srv.trim("chat-1", "out", before_seq=5)

The server starts in the constructor (a daemon thread serving HTTP/1.1 with
keep-alive, one daemon thread per connection) and stops in :meth:`LocalServer.close`
(also on leaving the ``with`` block): every connection is shut down, long-lived SSE
streams notice at once, every thread is joined and the port is free again (the
listening socket sets ``SO_REUSEADDR``, so a restart on the same port works).

Sessions may be named by friendly id (``session_…``) or externalId everywhere.

Browsers on other origins may use it (CORS as production: every origin is allowed
unless ``cors_origins`` lists the allowed ones; see ``cors``). Binding an address
other than loopback (``127.0.0.0/8``, ``::1``, ``localhost``) requires a secret key
of your own: the default ``tr_dev_local`` is public, so
``LocalServer(host="0.0.0.0")`` without ``secret_key`` raises
:class:`~sessions_client.errors.ConfigurationError`.

``echo_agent=True`` runs the echo chat agent (:mod:`sessions_client.testing.agent`) on
every session of type ``"chat.agent"``: it answers ``AgentChat`` messages as a
Trigger.dev ``chat.agent`` task does. ``agent_delay`` is the seconds it waits before
each streamed delta (so streaming is visible; 0 by default); ``agent_client_data``
lists the client-data keys every message's ``metadata`` must carry (a message
without them fails its turn, as a client-data schema error does).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from ..errors import ConfigurationError
from . import channels, management
from .agent import EchoAgent
from .auth import TokenAuthority
from .cors import CorsPolicy
from .faults import FaultInjector
from .handler import RequestHandler, ServerContext, ServerLimits
from .management import serialize
from .store import Store, StoredRecord, _dumps

logger = logging.getLogger("sessions_client.testing")

WIRE_SHAPES = ("v1", "v2")
DEFAULT_PING_INTERVAL = (5.0, 15.0)
DEFAULT_PART_ID_TTL = 300.0

PingInterval = Union[float, Tuple[float, float]]


_ROUTES = {
    "append": channels.handle_append,
    "read": channels.handle_read,
    "records": channels.handle_records,
    "sessions": management.handle,
    "claims": management.handle_claims,
}


def _check_options(
    wire: str, part_id_ttl: float, agent_delay: float, agent_client_data: Sequence[str]
) -> None:
    """Raise ValueError for a ``LocalServer`` option out of its range."""
    if wire not in WIRE_SHAPES:
        raise ValueError(f"wire must be 'v1' or 'v2', not {wire!r}")
    if not part_id_ttl > 0:
        raise ValueError("part_id_ttl must be positive")
    if agent_delay < 0:
        raise ValueError("agent_delay must be zero or positive")
    if isinstance(agent_client_data, str):
        raise ValueError("agent_client_data must be a list of keys, not a string")


def _ping_range(interval: PingInterval) -> Tuple[float, float]:
    """``interval`` as a ``(low, high)`` range of seconds; raises ValueError."""
    low, high = (interval, interval) if isinstance(interval, (int, float)) else interval
    if not 0 < low <= high:
        raise ValueError("ping_interval must be positive seconds, or a (low, high) range")
    return float(low), float(high)


DEFAULT_SECRET_KEY = "tr_dev_local"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` listens on the loopback interface only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, secret_key: str) -> None:
    """Refuse to bind beyond loopback with the public default secret key (or none):
    raises :class:`ConfigurationError`."""
    if is_loopback(host):
        return
    if not secret_key or secret_key == DEFAULT_SECRET_KEY:
        where = host or "every interface"
        raise ConfigurationError(
            f"refusing to listen on {where} (not loopback) with the public default "
            f"secret key {DEFAULT_SECRET_KEY}: choose one with --secret-key or "
            "TRIGGER_SECRET_KEY (LocalServer(secret_key=...))"
        )


ACCEPT_BACKOFF = 0.1
"""Seconds the accept loop waits when the process is out of file descriptors."""

_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_BUSY_BODY = b'{"error":"Too many connections"}'
_BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%b"
    % (len(_BUSY_BODY), _BUSY_BODY)
)


def _connection_cap(wanted: int) -> int:
    """``wanted``, lowered to leave room under the process's open-file limit."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to respect
        return wanted
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - 64))


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections and their threads."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: Tuple[str, int], ctx: ServerContext, family: int) -> None:
        self.address_family = family
        self.ctx = ctx
        self._lock = threading.Lock()
        self._connections: Set[socket.socket] = set()
        self._conn_threads: Set[threading.Thread] = set()
        self.total_connections = 0
        self.refused_connections = 0
        self._warned_at = -1e9
        self.max_connections = _connection_cap(ctx.limits.max_connections)
        super().__init__(address, RequestHandler)

    def get_request(self) -> Tuple[socket.socket, Any]:
        """Accept one connection; out of file descriptors, wait a little before the
        next try (the pending connection stays ready, so retrying at once would spin)."""
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in _OUT_OF_DESCRIPTORS:
                now = time.monotonic()
                if now - self._warned_at > 10.0:
                    self._warned_at = now
                    logger.warning("cannot accept connections: %s; retrying", exc)
                self.ctx.stopping.wait(ACCEPT_BACKOFF)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        sock: socket.socket = request
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.open_connections >= self.max_connections:
            self._refuse(sock)
            return
        thread = threading.Thread(
            target=self._serve_connection,
            args=(sock, client_address),
            name=f"sessions-local-conn-{self.total_connections}",
            daemon=True,
        )
        with self._lock:
            self.total_connections += 1
            self._connections.add(sock)
            self._conn_threads.add(thread)
        thread.start()

    def _serve_connection(self, sock: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(sock, client_address)
        except Exception:
            logger.debug("connection from %s ended with an error", client_address, exc_info=True)
        finally:
            self.shutdown_request(sock)
            with self._lock:
                self._connections.discard(sock)
                self._conn_threads.discard(threading.current_thread())

    def _refuse(self, sock: socket.socket) -> None:
        """Answer 503 without blocking the accept loop, and close."""
        self.refused_connections += 1
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.recv(65536)  # what already came, so the close sends no reset
            sock.send(_BUSY_ANSWER)
        self.shutdown_request(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("error serving %s", client_address, exc_info=True)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def close_connections(self, timeout: float) -> None:
        """Shut every open connection down and join the connection threads."""
        with self._lock:
            connections = list(self._connections)
            threads = list(self._conn_threads)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)


class LocalServer:
    """The embedded local Sessions server (see the module docstring).

    ``db`` is a file path (durable across restarts) or ``":memory:"``; ``wire`` is
    ``"v2"`` (batch shape, as production; the default) or ``"v1"`` (per-record shape);
    ``ping_interval`` is the seconds between pings on an idle SSE stream: a
    ``(low, high)`` range each gap is drawn from at random (production: 5-15 s), or
    one number for a fixed gap; a ping also goes out at once when a reader reaches
    the live edge. ``part_id_ttl`` is how many seconds an ``X-Part-Id`` is
    remembered (production: 5 minutes). ``clock`` (Unix seconds, default
    :func:`time.time`) is what token expiry and part id memory are measured with.
    ``cors_origins`` lists the browser origins allowed to read answers (None: every
    origin, as production; e.g. ``["http://localhost:3000"]``). A ``host`` other than
    loopback needs a ``secret_key`` other than the public default
    (:class:`~sessions_client.errors.ConfigurationError`).
    ``limits`` bounds what clients can make the server hold (default
    :class:`ServerLimits` with its defaults). A database file already used by another server raises
    :class:`~sessions_client.testing.store.DatabaseInUseError`.
    ``echo_agent``, ``agent_delay`` and ``agent_client_data``: see the module docstring.
    """

    def __init__(
        self,
        secret_key: str = DEFAULT_SECRET_KEY,
        db: Union[str, os.PathLike[str]] = ":memory:",
        wire: str = "v2",
        port: int = 0,
        echo_agent: bool = False,
        ping_interval: PingInterval = DEFAULT_PING_INTERVAL,
        host: str = "127.0.0.1",
        *,
        part_id_ttl: float = DEFAULT_PART_ID_TTL,
        clock: Callable[[], float] = time.time,
        cors_origins: Optional[Iterable[str]] = None,
        limits: Optional[ServerLimits] = None,
        agent_delay: float = 0.0,
        agent_client_data: Sequence[str] = (),
    ) -> None:
        check_exposure(host, secret_key)
        _check_options(wire, part_id_ttl, agent_delay, agent_client_data)
        ping_range, cors = _ping_range(ping_interval), CorsPolicy(cors_origins)
        self._secret_key = secret_key
        self._host = host
        self._wire = wire
        self._db = os.fspath(db)
        self._stopping = threading.Event()
        self._closed = False
        self._store = Store(self._db)
        self._tokens = TokenAuthority(secret_key, clock=clock)
        self.faults = FaultInjector(self._stopping)
        self._ctx = ServerContext(
            store=self._store,
            tokens=self._tokens,
            faults=self.faults,
            wire=wire,
            ping_interval=ping_range,
            stopping=self._stopping,
            routes=dict(_ROUTES),
            part_id_ttl=part_id_ttl,
            clock=clock,
            cors=cors,
            limits=limits if limits is not None else ServerLimits(),
        )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._httpd = _HTTPServer((host, port), self._ctx, family)
        except BaseException:
            self._store.close()
            raise
        self._agent: Optional[EchoAgent] = None
        if echo_agent:
            self._agent = EchoAgent(
                self._store, self._tokens, delay=agent_delay, client_data=agent_client_data
            )
            self._agent.start()
        self._thread = self._serve()
        logger.debug("local sessions server listening on %s", self.url)

    def _serve(self) -> threading.Thread:
        """Start the accept loop in a daemon thread. close() waits for the loop to see the
        shutdown request, which it checks once per poll interval: a short one keeps every
        test's teardown short."""
        thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="sessions-local-server",
            daemon=True,
        )
        thread.start()
        return thread

    # ------------------------------------------------------------ properties

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8030``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with ``port=0``)."""
        return int(self._httpd.server_address[1])

    @property
    def secret_key(self) -> str:
        """The secret key that may do everything."""
        return self._secret_key

    @property
    def wire(self) -> str:
        """The SSE wire shape, ``"v1"`` or ``"v2"``."""
        return self._wire

    @property
    def db(self) -> str:
        """The database path (or ``":memory:"``)."""
        return self._db

    @property
    def open_connections(self) -> int:
        """Client TCP connections currently open."""
        return self._httpd.open_connections

    @property
    def total_connections(self) -> int:
        """Client TCP connections accepted since start."""
        return self._httpd.total_connections

    @property
    def refused_connections(self) -> int:
        """Connections answered 503 because ``limits.max_connections`` were open."""
        return self._httpd.refused_connections

    @property
    def limits(self) -> ServerLimits:
        """The bounds in force (``max_connections`` as given, before the file-limit cap)."""
        return self._ctx.limits

    @property
    def request_counts(self) -> Dict[str, int]:
        """Requests per route name (``append``, ``read``, ``records``, ``sessions``)."""
        with self._ctx.counts_lock:
            return dict(self._ctx.request_counts)

    # ------------------------------------------------------------- direct API

    def _session_id(self, session: str) -> str:
        record = self._store.get_session(session)
        if record is None:
            raise KeyError(f"no session {session!r}")
        return record.id

    def mint_token(
        self, session: str, read: bool = True, write: bool = True, ttl: float = 3600
    ) -> str:
        """A session public token with ``read:sessions:{session}`` and/or
        ``write:sessions:{session}`` (the id form given is the one scoped), valid
        ``ttl`` seconds (a negative ttl makes an already expired token)."""
        return self._tokens.mint(session, read=read, write=write, ttl=ttl)

    def create_session(
        self,
        external_id: Optional[str] = None,
        *,
        type: str = "chat.agent",
        task_identifier: str = "echo",
        trigger_config: Optional[Dict[str, Any]] = None,
        tags: Optional[List[str]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        expires_at: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Create (or find, by ``external_id``) a session without HTTP.

        Returns the session object plus ``publicAccessToken`` (read+write) and
        ``isCached``; ``expires_at`` is Unix ms.
        """
        record, created = self._store.find_or_create_session(
            external_id=external_id,
            type=type,
            task_identifier=task_identifier,
            trigger_config=trigger_config or {"basePayload": {}},
            tags=list(tags or []),
            metadata=metadata,
            expires_at=expires_at,
        )
        answer = serialize(record)
        answer["runId"] = record.current_run_id
        answer["publicAccessToken"] = self.mint_token(record.external_id or record.id)
        answer["isCached"] = not created
        return answer

    def get_session(self, session: str) -> Optional[Dict[str, Any]]:
        """The session object, or None when no session has that id."""
        record = self._store.get_session(session)
        return serialize(record) if record else None

    def close_session(self, session: str, reason: Optional[str] = None) -> Dict[str, Any]:
        """Close a session (idempotent) and return its object."""
        record = self._store.get_session(session)
        if record is None:
            raise KeyError(f"no session {session!r}")
        if record.closed_at is None:
            from .store import now_ms

            record = self._store.update_session(
                record.id, {"closed_at": now_ms(), "closed_reason": reason}
            )
        return serialize(record)

    def append(self, session: str, io: str, body: str, part_id: Optional[str] = None) -> int:
        """Append ``body`` as an HTTP append would (envelope data = the raw text), with
        no auth or limit checks; returns the seq (the original one on a replayed part id)."""
        envelope = {"data": body, "id": part_id or os.urandom(6).hex()}
        text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
        seq, _ = self._store.append(self._session_id(session), _io(io), text, part_id=part_id)
        return seq

    def append_many(self, session: str, io: str, bodies: Sequence[str]) -> List[int]:
        """Append each of ``bodies`` as :meth:`append` without a part id would, in one
        database transaction (a fast preload for tests); returns their seqs."""
        envelopes = [
            '{"data":' + _dumps(body) + ',"id":"' + os.urandom(6).hex() + '"}' for body in bodies
        ]
        return self._store.append_many(self._session_id(session), _io(io), envelopes)

    def write(self, session: str, io: str, value: Any, part_id: Optional[str] = None) -> int:
        """Append a record whose envelope data is the JSON ``value`` itself (as a task's
        direct writer does); returns its seq."""
        envelope = {"data": value, "id": part_id or os.urandom(6).hex()}
        text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
        seq, _ = self._store.append(self._session_id(session), _io(io), text, part_id=part_id)
        return seq

    def write_control(
        self,
        session: str,
        subtype: str,
        headers: Optional[List[List[str]]] = None,
        io: str = "out",
    ) -> int:
        """Append a control record ``[["trigger-control", subtype], *headers]`` with an
        empty body; returns its seq."""
        all_headers = [["trigger-control", subtype]] + [[str(n), str(v)] for n, v in headers or []]
        seq, _ = self._store.append(self._session_id(session), _io(io), "", headers=all_headers)
        return seq

    def trim(self, session: str, io: str, before_seq: int) -> int:
        """Append a ``["", "trim"]`` command record and delete the records with a seq
        below ``before_seq``; returns the command record's seq."""
        return self._store.trim(self._session_id(session), _io(io), before_seq)

    def records(self, session: str, io: str) -> List[Dict[str, Any]]:
        """Every retained record of a channel as stored: ``seq``, ``timestamp``,
        ``headers``, ``body`` (the envelope JSON text, '' for control records)."""
        out: List[Dict[str, Any]] = []
        start = 0
        sid = self._session_id(session)
        while True:
            page: List[StoredRecord] = self._store.read(sid, _io(io), start)
            if not page:
                return out
            for r in page:
                out.append(
                    {"seq": r.seq, "timestamp": r.timestamp, "headers": r.headers, "body": r.body}
                )
            start = page[-1].seq + 1

    # -------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stop serving: end every stream and connection, join every thread, free the
        port and close the database. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._store.wake_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections(timeout=5)
        self._thread.join(timeout=5)
        if self._agent is not None:
            self._agent.stop()
        self._store.close()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.url
        return f"LocalServer({state}, wire={self._wire!r}, db={self._db!r})"


def _io(io: str) -> str:
    if io not in ("in", "out"):
        raise ValueError(f"io must be 'in' or 'out', not {io!r}")
    return io


def serve(
    port: int,
    db: str,
    wire: str,
    secret_key: str,
    echo_agent: bool,
    host: str = "127.0.0.1",
    *,
    on_ready: Optional[Callable[[LocalServer], None]] = None,
    ping_interval: PingInterval = DEFAULT_PING_INTERVAL,
    cors_origins: Optional[Iterable[str]] = None,
    limits: Optional[ServerLimits] = None,
    agent_delay: float = 0.0,
    agent_client_data: Sequence[str] = (),
) -> None:
    """Run a :class:`LocalServer` until KeyboardInterrupt (Ctrl-C), then close it.

    ``on_ready(server)`` is called once the server listens (the CLI prints there).
    """
    with LocalServer(
        secret_key=secret_key,
        db=db,
        wire=wire,
        port=port,
        echo_agent=echo_agent,
        ping_interval=ping_interval,
        host=host,
        cors_origins=cors_origins,
        limits=limits,
        agent_delay=agent_delay,
        agent_client_data=agent_client_data,
    ) as server:
        if on_ready is not None:
            on_ready(server)
        forever = threading.Event()
        try:
            while not forever.wait(3600):
                pass
        except KeyboardInterrupt:
            logger.info("interrupted; stopping the local server")
