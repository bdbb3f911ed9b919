"""A threaded WSGI server with a fixed number of workers, and a small app that relays a
session with ``sessions_client.wsgi``: what the relay tests (and the browser test) run.

The server behaves like gunicorn's gthread worker as far as the relay cares: at most
``workers`` requests are served at once (the next connection waits until a worker is
free), each on its own thread, and a failed write ends the response and calls the
body's ``close()`` (``wsgiref``'s ``finish_response``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sessions_client import Client, ConfigurationError
from sessions_client.wsgi import SSERelay, sse_headers, sse_relay

StartResponse = Callable[..., Any]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class BoundedWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """``workers`` request threads at most; ``busy`` counts the ones serving now."""

    daemon_threads = True
    workers = 8

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(self.workers)
        self._busy_lock = threading.Lock()
        self.busy = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        # The accept loop waits for a free worker, as gthread does (bounded: no test hangs).
        if not self._slots.acquire(timeout=30):
            self.shutdown_request(request)
            return
        with self._busy_lock:
            self.busy += 1
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._busy_lock:
                self.busy -= 1
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a browser that went away is not an error worth printing


class RelayApp:
    """``GET /events/<session>`` relays ``.out``; ``GET /ping`` answers ``pong``;
    ``GET /`` serves ``page`` (if any); ``POST /report`` stores a JSON body in
    ``reports``. Every relay it built is in ``relays``."""

    def __init__(self, client: Client, page: str = "", **relay_options: Any) -> None:
        self.client = client
        self.page = page
        self.relay_options = relay_options
        self.relays: List[SSERelay] = []
        self.reports: List[Any] = []
        self.last_event_ids: List[Optional[str]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/events/"):
            return self._events(path[len("/events/") :], environ, start_response)
        if path == "/report" and environ["REQUEST_METHOD"] == "POST":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(size) or b"null")
            with self._lock:
                self.reports.append(body)
            return _plain(start_response, "204 No Content", b"")
        if path == "/" and self.page:
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [self.page.encode()]
        if path == "/ping":
            return _plain(start_response, "200 OK", b"pong")
        return _plain(start_response, "404 Not Found", b"not found")

    def _events(
        self, session_id: str, environ: Dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        last_event_id = environ.get("HTTP_LAST_EVENT_ID")
        try:
            relay = sse_relay(
                self.client.session(session_id), last_event_id=last_event_id, **self.relay_options
            )
        except ConfigurationError as exc:
            return _plain(start_response, "400 Bad Request", str(exc).encode())
        with self._lock:
            self.relays.append(relay)
            self.last_event_ids.append(last_event_id)
        start_response("200 OK", sse_headers())
        return relay


def _plain(start_response: StartResponse, status: str, body: bytes) -> List[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@contextlib.contextmanager
def serve(app: Any, workers: int = 8) -> Iterator[Tuple[BoundedWSGIServer, str]]:
    """Run ``app`` on 127.0.0.1 (any free port) with ``workers`` threads; yield (server, url)."""

    class Server(BoundedWSGIServer):
        pass

    Server.workers = workers
    httpd = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=QuietHandler)
    assert isinstance(httpd, BoundedWSGIServer)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def client_connections_to(port: int) -> int:
    """ESTABLISHED TCP connections whose remote end is ``port`` on this machine (the
    client side of connections to a local server), from /proc/net/tcp{,6}."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01":
                count += 1
    return count


class Stream:
    """The client side of one event-stream response (close it to play a closed tab)."""

    def __init__(self, sock: socket.socket, received: bytes) -> None:
        self.sock = sock
        self.received = received  # everything after the response headers so far

    def read_until(self, marker: bytes) -> bytes:
        """Read until ``marker`` was received; return everything received so far."""
        while marker not in self.received:
            chunk = self.sock.recv(4096)
            assert chunk, f"the stream ended before {marker!r}: {self.received!r}"
            self.received += chunk
        return self.received

    def close(self) -> None:
        self.sock.close()


def open_stream(url: str, path: str, last_event_id: Optional[str] = None) -> Stream:
    """A raw HTTP client for an event stream: send the request, read the headers."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n{extra}\r\n".encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return Stream(sock, received.partition(b"\r\n\r\n")[2])
