"""Tiny scripted HTTP servers on loopback, for byte-exact control of what the client sees.

A :class:`ScriptedServer` accepts TCP connections on 127.0.0.1 (or another
loopback host) and runs ``handler(conn)`` for each one in a thread. The handler
reads requests with :meth:`Conn.read_request` and writes raw bytes: chunked or
close-delimited bodies, garbage, stalls, abrupt closes. The server records every
request and counts accepted and currently open connections.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple


class Request:
    def __init__(self, method: str, path: str, headers: Dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers  # lower-case names
        self.body = body

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path})"


class Conn:
    def __init__(self, sock: socket.socket, server: ScriptedServer) -> None:
        self.sock = sock
        self.server = server
        self._buf = b""
        self.one_shot = False  # answer with Connection: close (one request per connection)
        sock.settimeout(10.0)

    def read_request(self) -> Optional[Request]:
        """The next request on this connection, or None when the client closed it."""
        while b"\r\n\r\n" not in self._buf:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self._buf += data
        head, _, rest = self._buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: Dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = self.sock.recv(65536)
            if not data:
                return None
            rest += data
        body, self._buf = rest[:length], rest[length:]
        request = Request(method, path, headers, body)
        with self.server.lock:
            self.server.requests.append(request)
        return request

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def respond(
        self,
        status: int,
        body: bytes = b"",
        headers: Optional[Dict[str, str]] = None,
        reason: str = "X",
    ) -> None:
        """A complete response with Content-Length (keep-alive)."""
        all_headers = {"Content-Length": str(len(body))}
        if self.one_shot:
            all_headers["Connection"] = "close"
        all_headers.update(headers or {})
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in all_headers.items()
        )
        self.send(head.encode("latin-1") + b"\r\n" + body)

    def respond_json(self, status: int, payload: Any, headers: Optional[Dict[str, str]] = None):
        all_headers = {"Content-Type": "application/json"}
        all_headers.update(headers or {})
        self.respond(status, json.dumps(payload).encode(), all_headers)

    def start_stream(self, chunked: bool, headers: Optional[Dict[str, str]] = None) -> None:
        """Send the head of a 200 text/event-stream response."""
        all_headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        if chunked:
            all_headers["Transfer-Encoding"] = "chunked"
        else:
            all_headers["Connection"] = "close"
        all_headers.update(headers or {})
        head = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items())
        self.send(head.encode("latin-1") + b"\r\n")
        self.chunked = chunked

    def body(self, data: bytes) -> None:
        """Send body bytes in the framing chosen by start_stream."""
        if self.chunked:
            self.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        else:
            self.send(data)

    def end_stream(self) -> None:
        if self.chunked:
            self.send(b"0\r\n\r\n")
        self.close()

    def wait_closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True once the client closed its end (recv returns EOF or an error)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.05)
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return True
            if not data:
                return True
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


Handler = Callable[[Conn], None]


class ScriptedServer:
    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.tls = tls
        self.handler = handler
        self.lock = threading.Lock()
        self.requests: List[Request] = []
        self.accepted = 0
        self.open_connections = 0
        self.errors: List[BaseException] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(128)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.host = host
        self._stop = threading.Event()
        self._conns: List[Conn] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn = Conn(sock, self)
            with self.lock:
                self.accepted += 1
                self.open_connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: Conn) -> None:
        try:
            if self.tls is not None:
                conn.sock = self.tls.wrap_socket(conn.sock, server_side=True)
            self.handler(conn)
        except Exception as exc:  # noqa: BLE001 - recorded for the test to inspect
            if not self._stop.is_set():
                self.errors.append(exc)
        finally:
            conn.close()
            with self.lock:
                self.open_connections -= 1

    def paths(self) -> List[str]:
        with self.lock:
            return [r.path for r in self.requests]

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self.lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()
        self._thread.join(2)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def keep_alive(answer: Callable[[Conn, Request], None]) -> Handler:
    """A handler answering every request on a keep-alive connection with ``answer``."""

    def handler(conn: Conn) -> None:
        while True:
            request = conn.read_request()
            if request is None:
                return
            answer(conn, request)

    return handler


def v1_event(seq: int, data: Any, part_id: Any = None) -> bytes:
    envelope = {"data": data, "id": part_id if part_id is not None else f"p{seq}"}
    return f"id: {seq}\ndata: {json.dumps(envelope)}\n\n".encode()


def v2_batch(
    records: List[Tuple[int, Any]],
    tail: Optional[int] = None,
    headers: Optional[Dict[int, List[List[str]]]] = None,
) -> bytes:
    """A v2 batch event; ``records`` are (seq, data) with data JSON-encoded into a body."""
    items = []
    for seq, data in records:
        item: Dict[str, Any] = {"seq_num": seq, "timestamp": 1700000000000 + seq}
        if headers and seq in headers:
            item["headers"] = headers[seq]
        if data is not None:
            item["body"] = json.dumps({"data": json.dumps(data), "id": f"p{seq}"})
        items.append(item)
    doc: Dict[str, Any] = {"records": items}
    if tail is not None:
        doc["tail"] = {"seq_num": tail, "timestamp": 0}
    first = records[0][0] if records else 0
    return f"event: batch\nid: {first},1,1\ndata: {json.dumps(doc)}\n\n".encode()


def v2_ping(tail: int) -> bytes:
    return (
        f"event: ping\ndata: {json.dumps({'timestamp': 0, 'tail': {'seq_num': tail}})}\n\n".encode()
    )


DONE = b"data: [DONE]\n\n"

Script = Callable[[Conn, Request], None]


def idle_stream(conn: Conn, request: Request) -> None:
    """An open v1 stream that sends nothing until the client goes away."""
    conn.start_stream(chunked=True)
    conn.wait_closed_by_peer(30)


def streams(*scripts: Script) -> Handler:
    """A handler running the n-th script for the n-th SSE request (one per connection)."""
    lock = threading.Lock()
    count = [0]

    def handler(conn: Conn) -> None:
        request = conn.read_request()
        if request is None:
            return
        with lock:
            index = count[0]
            count[0] += 1
        script = scripts[index] if index < len(scripts) else idle_stream
        conn.one_shot = True
        script(conn, request)

    return handler
