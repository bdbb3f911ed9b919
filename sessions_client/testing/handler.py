"""HTTP plumbing of the local server: HTTP/1.1 keep-alive, routing, bodies, answers.

Routes (names used by fault injection and ``request_counts``):

==========  ==========================================================
``append``  ``POST /realtime/v1/sessions/{session}/{io}/append``
``read``    ``GET|HEAD /realtime/v1/sessions/{session}/{io}`` (SSE)
``records`` ``GET /realtime/v1/sessions/{session}/{io}/records``
``sessions``  ``/api/v1/sessions``, ``/api/v1/sessions/{session}``,
            ``/api/v1/sessions/{session}/close``
``claims``  ``POST /api/v1/auth/jwt/claims``
==========  ==========================================================

The route functions live in ``channels`` and ``management``; the server wires them
into :attr:`ServerContext.routes`. Request bodies are read up to :data:`MAX_BODY_BYTES`
at most: a larger declared (or chunked) body is answered ``413`` and the connection is
closed without reading the rest. Every answer is written with a single ``sendall``
(TCP_NODELAY is set on the socket by the server), so keep-alive round trips stay fast.

CORS (see ``cors``): an ``OPTIONS`` preflight on any route is answered ``200 {}`` with
the preflight headers, before authentication, fault injection and ``request_counts``;
every answer's head (complete answers, streams, errors, 404s) is built by
:meth:`RequestHandler.answer_head`, which adds the CORS headers.

What one connection may make the server hold is bounded by :class:`ServerLimits`: the
request line, the header bytes and count, the body (a declared length over the cap is
refused before the route runs, so before authentication; a chunked body is refused at
the first chunk size that is malformed, negative or past the cap, before buffering
it), the time a keep-alive connection may sit idle and the time a request may take
to arrive (a slow sender is cut off, whatever its pace).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote

from .auth import AuthError, Principal, TokenAuthority
from .cors import CorsPolicy
from .faults import FaultInjector
from .store import Store

logger = logging.getLogger("sessions_client.testing")

MAX_BODY_BYTES = 1024 * 1024
MAX_MANAGEMENT_BODY_BYTES = 32 * 1024
DISCARD_BODY_BYTES = 64 * 1024
"""The largest unread body still read (and dropped) to keep a connection open."""


class BodyTooLarge(Exception):
    """The request body exceeds the limit; the connection must be closed."""


class BadBody(Exception):
    """The request body framing is invalid."""


class BodyTimedOut(Exception):
    """The request body did not arrive within the read timeout; the connection must be
    closed."""


@dataclass(frozen=True)
class ServerLimits:
    """What one client can make the local server hold (bytes, seconds, connections).

    - ``max_body_bytes``: the largest request body of any route (a route may set a
      lower one); a larger one is ``413``.
    - ``max_request_line``: the longest request line (``414`` past it);
      ``max_header_bytes`` and ``max_headers``: the header block (``431`` past them).
    - ``idle_timeout``: how long a keep-alive connection may wait for its next request.
    - ``read_timeout``: how long a request's line and headers may take to arrive from
      its first byte, and its body from the first read of it (``408`` for a body).
    - ``write_timeout``: how long one write may wait for a client that does not read.
    - ``max_connections``: open connections at once; one more is answered ``503``
      (``Retry-After: 1``) and closed (also capped below the process's file limit).
    """

    max_body_bytes: int = 1024 * 1024
    max_request_line: int = 8 * 1024
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    idle_timeout: float = 60.0
    read_timeout: float = 10.0
    write_timeout: float = 30.0
    max_connections: int = 256

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_request_line", "max_header_bytes", "max_headers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        for name in ("idle_timeout", "read_timeout", "write_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


class DeadlineReader(io.RawIOBase):
    """The raw reading side of a client socket: every read ends by :attr:`deadline`
    (monotonic seconds; None: no limit), however slowly the bytes trickle in.

    Past the deadline a read raises ``socket.timeout``. Between reads the socket keeps
    ``write_timeout`` as its timeout, so writes stay bounded too.
    """

    def __init__(self, sock: socket.socket, write_timeout: float) -> None:
        super().__init__()
        self._sock = sock
        self._write_timeout = write_timeout
        self.deadline: Optional[float] = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is None:
            return self._sock.recv_into(buffer)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the request took too long to arrive")
        self._sock.settimeout(left)
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._write_timeout)


RouteFunction = Callable[["Request", "ServerContext"], Optional["Response"]]
"""Answers one request of a route; returns None when it answered by itself (SSE)."""


@dataclass
class ServerContext:
    """State shared by every request of one server."""

    store: Store
    tokens: TokenAuthority
    faults: FaultInjector
    wire: str
    ping_interval: Tuple[float, float]
    stopping: threading.Event
    routes: Dict[str, RouteFunction] = field(default_factory=dict)
    cors: CorsPolicy = field(default_factory=CorsPolicy)
    limits: ServerLimits = field(default_factory=ServerLimits)
    counts_lock: threading.Lock = field(default_factory=threading.Lock)
    request_counts: Dict[str, int] = field(default_factory=dict)
    part_id_ttl: float = 300.0
    clock: Callable[[], float] = time.time

    def count(self, route: str) -> None:
        """Count one request on ``route``."""
        with self.counts_lock:
            self.request_counts[route] = self.request_counts.get(route, 0) + 1


@dataclass
class Response:
    """A complete (non-streaming) answer."""

    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: List[Tuple[str, str]] = field(default_factory=list)


def json_response(
    status: int, payload: Any, headers: Optional[List[Tuple[str, str]]] = None
) -> Response:
    """A JSON answer (compact encoding)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(status, body, headers=list(headers or []))


def text_response(status: int, text: str) -> Response:
    """A plain-text answer."""
    return Response(status, text.encode("utf-8"), content_type="text/plain; charset=utf-8")


class Request:
    """One parsed request as the route functions see it."""

    def __init__(
        self, handler: RequestHandler, method: str, segments: List[str], query: Dict[str, List[str]]
    ) -> None:
        self.handler = handler
        self.method = method
        self.segments = segments
        self.query = query
        self.headers = handler.headers

    def header(self, name: str) -> Optional[str]:
        """A request header value, or None."""
        value = self.headers.get(name)
        return None if value is None else str(value)

    def param(self, name: str) -> Optional[str]:
        """The last value of a query parameter, or None."""
        values = self.query.get(name)
        return values[-1] if values else None

    def body(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The request body; raises :class:`BodyTooLarge` or :class:`BadBody`."""
        return self.handler.read_body(limit)

    def authenticate(self) -> Principal:
        """The caller; raises :class:`AuthError` (401)."""
        return self.handler.ctx.tokens.authenticate(self.header("Authorization"))


class StreamWriter:
    """Writes a chunked (``Transfer-Encoding: chunked``) streaming answer."""

    def __init__(self, handler: RequestHandler) -> None:
        self._handler = handler
        self._sock: socket.socket = handler.connection
        self.bytes_sent = 0

    def start(self, headers: List[Tuple[str, str]]) -> None:
        """Send the status line and headers of a 200 streaming answer."""
        head = [("Transfer-Encoding", "chunked")] + list(headers)
        self._handler.answer_started = True
        self._sock.sendall(self._handler.answer_head(200, head, stream=True))

    def write(self, data: bytes) -> None:
        """Send ``data`` as one chunk (raises OSError when the peer is gone)."""
        if data:
            self._sock.sendall(b"%x\r\n%b\r\n" % (len(data), data))
            self.bytes_sent += len(data)

    def finish(self) -> None:
        """End the answer cleanly (the connection stays usable)."""
        self._sock.sendall(b"0\r\n\r\n")

    def abort(self) -> None:
        """Close the connection abruptly, without the final chunk."""
        self._handler.abort_connection()


def _segments(path: str) -> List[str]:
    raw = path.split("?", 1)[0].split("/")
    parts = [unquote(s) for s in raw[1:]]
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def route_of(segments: List[str]) -> Optional[str]:
    """The route name of a path, or None when no route matches."""
    if segments[:3] == ["realtime", "v1", "sessions"]:
        if len(segments) == 5:
            return "read"
        if len(segments) == 6 and segments[5] == "append":
            return "append"
        if len(segments) == 6 and segments[5] == "records":
            return "records"
        return None
    if segments == ["api", "v1", "auth", "jwt", "claims"]:
        return "claims"
    is_sessions = segments[:3] == ["api", "v1", "sessions"]
    if is_sessions and (len(segments) in (3, 4) or segments[4:] == ["close"]):
        return "sessions"
    return None


_ALLOWED = {
    "append": ("POST",),
    "read": ("GET", "HEAD"),
    "records": ("GET",),
    "claims": ("POST",),
}


def _error_body(route: str, message: str) -> Dict[str, Any]:
    if route in ("sessions", "claims"):
        return {"error": message}
    return {"ok": False, "error": message}


class Headers:
    """Request headers: case-insensitive ``get`` (first value), like ``email.message.Message``."""

    def __init__(self) -> None:
        self._values: Dict[str, List[str]] = {}

    def add(self, name: str, value: str) -> None:
        self._values.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: Any = None) -> Any:
        values = self._values.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> List[str]:
        return list(self._values.get(name.lower(), []))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __getitem__(self, name: str) -> Any:
        return self.get(name)


_CHUNK_SIZE_RE = re.compile(rb"[0-9A-Fa-f]{1,15}")


class RequestHandler(BaseHTTPRequestHandler):
    """Serves one connection (keep-alive: many requests)."""

    protocol_version = "HTTP/1.1"
    server_version = "sessions-client-local"
    sys_version = ""
    ctx: ServerContext

    def setup(self) -> None:
        super().setup()
        self.ctx = self.server.ctx  # type: ignore[attr-defined]
        self._body: Optional[bytes] = None
        self._first_chunk: Optional[int] = None
        self._aborted = False
        self.answer_started = False
        limits = self.ctx.limits
        self.connection.settimeout(limits.write_timeout)
        self.rfile.close()  # the standard one has no overall deadline
        self._reader = DeadlineReader(self.connection, limits.write_timeout)
        self._buffered = io.BufferedReader(self._reader)
        self.rfile = self._buffered

    def handle_one_request(self) -> None:
        """Read and answer one request: the standard loop, plus the idle and read
        deadlines and the request line cap of :class:`ServerLimits`."""
        limits = self.ctx.limits
        try:
            self._reader.deadline = time.monotonic() + limits.idle_timeout
            if not self._buffered.peek(1):
                self.close_connection = True
                return
            self._reader.deadline = time.monotonic() + limits.read_timeout
            self.raw_requestline = self.rfile.readline(limits.max_request_line + 1)
            if len(self.raw_requestline) > limits.max_request_line:
                self.requestline = self.request_version = self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.parse_request():
                return
            self._reader.deadline = None
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(
                    HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})"
                )
                return
            method()
            self.wfile.flush()
        except socket.timeout:
            self.log_message("closing a connection: no complete request in time")
            self.close_connection = True

    def parse_request(self) -> bool:
        """Parse ``METHOD PATH HTTP/1.x`` and the headers (a lean version of the standard
        library's, which parses headers with the much slower ``email`` package); other
        request lines go to the standard implementation."""
        raw: bytes = self.raw_requestline
        requestline = str(raw, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return super().parse_request()
        self.requestline = requestline
        self.command, path, self.request_version = words
        self.close_connection = True
        headers = Headers()
        limits = self.ctx.limits
        budget = limits.max_header_bytes
        for _ in range(limits.max_headers + 1):
            line = self.rfile.readline(budget + 1)
            budget -= len(line)
            if budget < 0:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Headers too large")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, sep, value = line.decode("iso-8859-1").partition(":")
            if not sep or not name.strip():
                self.send_error(HTTPStatus.BAD_REQUEST, "Bad header line")
                return False
            headers.add(name.strip(), value.strip())
        else:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
            return False
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        self.headers = headers  # type: ignore[assignment]
        connection = str(headers.get("Connection", "")).lower()
        if connection == "close":
            self.close_connection = True
        elif self.request_version == "HTTP/1.1" or connection == "keep-alive":
            self.close_connection = False
        expect = str(headers.get("Expect", "")).lower()
        return not (expect == "100-continue" and not self.handle_expect_100())

    def log_message(self, format: str, *args: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s - %s", self.address_string(), format % args)

    # ----------------------------------------------------------------- body

    def read_body(self, limit: int) -> bytes:
        """Read the request body (at most ``limit`` bytes, within the read timeout); see
        :meth:`Request.body`. Raises :class:`BodyTooLarge`, :class:`BadBody` or
        :class:`BodyTimedOut`; each of them closes the connection after the answer."""
        if self._body is not None:
            return self._body
        limit = min(limit, self.ctx.limits.max_body_bytes)
        self._reader.deadline = time.monotonic() + self.ctx.limits.read_timeout
        try:
            if self._is_chunked():
                self._body = self._read_chunked(limit)
            else:
                self._body = self._read_sized(self.declared_length(limit))
        except socket.timeout:
            self.close_connection = True
            raise BodyTimedOut("Request body not received in time") from None
        except (BodyTooLarge, BadBody):
            self.close_connection = True
            raise
        finally:
            self._reader.deadline = None
        return self._body

    def _is_chunked(self) -> bool:
        return "chunked" in str(self.headers.get("Transfer-Encoding", "")).lower()

    def declared_length(self, limit: int) -> int:
        """The ``Content-Length`` (0 when absent); raises :class:`BadBody` when it is
        not a decimal number and :class:`BodyTooLarge` when it exceeds ``limit``."""
        raw = str(self.headers.get("Content-Length", "0")).strip()
        if not raw.isdigit() or not raw.isascii():
            raise BadBody("Invalid Content-Length")
        length = int(raw)
        if length > limit:
            raise BodyTooLarge(f"Request body exceeds {limit} bytes")
        return length

    def _read_sized(self, length: int) -> bytes:
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise BadBody("Truncated body")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        parts: List[bytes] = []
        total = 0
        while True:
            size = self._chunk_size()
            if size == 0:
                self._skip_trailers()
                return b"".join(parts)
            if size > limit - total:
                raise BodyTooLarge(f"Request body exceeds {limit} bytes")
            parts.append(self._read_sized(size))
            total += size
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BadBody("Invalid chunked body")

    def _chunk_size(self) -> int:
        """The next chunk size: hex digits only (no sign, no ``0x``), on a short line
        (the first one may have been read already, before the route)."""
        if self._first_chunk is not None:
            size, self._first_chunk = self._first_chunk, None
            return size
        line = self.rfile.readline(1024)
        digits = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not _CHUNK_SIZE_RE.fullmatch(digits):
            raise BadBody("Invalid chunked body")
        return int(digits, 16)

    def _skip_trailers(self) -> None:
        for _ in range(self.ctx.limits.max_headers + 1):
            line = self.rfile.readline(1024)
            if line in (b"\r\n", b"\n"):
                return
            if not line.endswith(b"\n"):
                break
        raise BadBody("Invalid chunked body")

    def _refuse_declared_body(self, route: str) -> Optional[Response]:
        """A 400/413/408 answer when the declared length, or the first chunk size of a
        chunked body, is malformed or over the server's cap; given before the route runs
        (so before authentication); None otherwise."""
        cap = self.ctx.limits.max_body_bytes
        try:
            if not self._is_chunked():
                self.declared_length(cap)
                return None
            self._reader.deadline = time.monotonic() + self.ctx.limits.read_timeout
            self._first_chunk = self._chunk_size()
            if self._first_chunk > cap:
                raise BodyTooLarge(f"Request body exceeds {cap} bytes")
            return None
        except BodyTooLarge as exc:
            response = json_response(413, _error_body(route, str(exc)))
        except BadBody as exc:
            response = json_response(400, _error_body(route, str(exc)))
        except socket.timeout:
            response = json_response(408, _error_body(route, "Request body not received in time"))
        finally:
            self._reader.deadline = None
        self.close_connection = True
        return response

    def _discard_unread_body(self) -> None:
        """Read a small body the route left unread, so the connection can serve the next
        request; a larger (or chunked) one is not read: the connection closes instead."""
        if self._body is not None or self._aborted:
            return
        if self._is_chunked():
            self.close_connection = True
            return
        try:
            self.read_body(DISCARD_BODY_BYTES)
        except (BodyTooLarge, BadBody, BodyTimedOut):
            self.close_connection = True

    # -------------------------------------------------------------- answers

    def send(self, response: Response, *, head: bool = False) -> None:
        """Write a complete answer in one ``sendall``."""
        self._discard_unread_body()
        status = response.status
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
        ]
        headers.extend(response.headers)
        if self.close_connection:
            headers.append(("Connection", "close"))
        data = self.answer_head(status, headers)
        if not head:
            data += response.body
        self.log_request(status, len(response.body))
        self.wfile.write(data)

    def answer_head(
        self, status: int, headers: List[Tuple[str, str]], *, stream: bool = False
    ) -> bytes:
        """The status line and headers of an answer, the CORS headers included (every
        answer's head is built here)."""
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
        origin = self.headers.get("Origin")
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines.extend(f"{k}: {v}" for k, v in headers)
        lines.extend(f"{k}: {v}" for k, v in self.ctx.cors.headers(origin, stream=stream))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def abort_connection(self) -> None:
        """Close the connection at once, answering nothing more."""
        self._aborted = True
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -------------------------------------------------------------- routing

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        self._body = None
        self._first_chunk = None
        self.answer_started = False
        segments = _segments(self.path)
        route = route_of(segments)
        if route is None:
            self.send(json_response(404, {"error": "Not found"}), head=method == "HEAD")
            return
        if self._answered_before_route(method, route):
            return
        query = (
            parse_qs(self.path.split("?", 1)[1], keep_blank_values=True) if "?" in self.path else {}
        )
        request = Request(self, method, segments, query)
        process_then_drop = self.ctx.faults.take_drop(route)
        if process_then_drop is not None and not process_then_drop:
            self._drop()
            return
        response = self._route_answer(request, route)
        if self._aborted:
            return
        if process_then_drop:
            self._drop()
            return
        if response is not None:
            self.send(response, head=method == "HEAD")

    def _answered_before_route(self, method: str, route: str) -> bool:
        """Answer what never reaches a route (a CORS preflight, a method not allowed, a
        body refused unread, an injected fault); whether an answer went out. Counts the
        request (preflights aside) and tells the fault injector it arrived."""
        if method == "OPTIONS":
            preflight = CorsPolicy.preflight(self.headers.get("Access-Control-Request-Headers"))
            self.send(json_response(200, {}, preflight))
            return True
        self.ctx.count(route)
        self.ctx.faults.request_arrived(route)
        allowed = _ALLOWED.get(route)
        if allowed is not None and method not in allowed:
            allow = ", ".join(allowed)
            self.send(
                json_response(405, _error_body(route, "Method not allowed"), [("Allow", allow)])
            )
            return True
        refusal = self._refuse_declared_body(route)
        if refusal is not None:
            self._body = b""  # refused unread: the connection closes after the answer
            self.send(refusal, head=method == "HEAD")
            return True
        return self._inject_faults(route)

    def _route_answer(self, request: Request, route: str) -> Optional[Response]:
        """The route's answer; a request error becomes its 4xx answer, a bug a 500."""
        try:
            return self.ctx.routes[route](request, self.ctx)
        except AuthError as exc:
            return json_response(401, {"error": str(exc)})
        except BodyTooLarge as exc:
            return json_response(413, _error_body(route, str(exc)))
        except BadBody as exc:
            return json_response(400, _error_body(route, str(exc)))
        except BodyTimedOut as exc:
            return json_response(408, _error_body(route, str(exc)))
        except Exception:
            # A bug in a route must still produce an answer (a 500), never a silent close,
            # unless a streaming answer already started: then the connection is cut.
            logger.exception("internal error on %s %s", request.method, route)
            if self.answer_started:
                self.abort_connection()
                return None
            return json_response(500, _error_body(route, "Internal server error"))

    def _inject_faults(self, route: str) -> bool:
        faults = self.ctx.faults
        delay = faults.latency(route)
        if delay and faults.sleep(delay):
            self.abort_connection()
            return True
        failure = faults.take_failure(route)
        if failure is None:
            return False
        headers = []
        if failure.retry_after is not None:
            retry = failure.retry_after
            headers.append(("Retry-After", str(int(retry)) if retry == int(retry) else str(retry)))
        self.send(json_response(failure.status, _error_body(route, "injected fault"), headers))
        return True

    def _drop(self) -> None:
        self._discard_unread_body()
        self.abort_connection()
