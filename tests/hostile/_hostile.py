"""Small raw-socket servers that misbehave on purpose, for the client's hostile tests.

Each connection is served by ``handler(conn)`` in its own daemon thread; every loop
of a handler stops when the server closes (:attr:`RawServer.stopping`) or the client
goes away. Loopback only.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import zlib
from typing import Callable, Dict, Iterator, List, Optional, Tuple

Handler = Callable[["Conn"], None]


class Conn:
    """One accepted connection: read a request, write raw bytes."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self.sock = sock
        self.stopping = stopping
        self._buffer = b""

    def read_request(self) -> Tuple[str, Dict[str, str], bytes]:
        """The request line, the headers (lower-case names) and the body."""
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed")
            self._buffer += chunk
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return lines[0], headers, body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def trickle(self, data: bytes, every: float) -> None:
        """Send ``data`` one byte every ``every`` seconds."""
        for i in range(len(data)):
            if self.stopping.wait(every):
                return
            self.sock.sendall(data[i : i + 1])


class RawServer:
    """A loopback server running ``handler`` on each connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.stopping = threading.Event()
        self.requests: List[str] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._socks: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            self._socks.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.handler(Conn(sock, self.stopping))
        with contextlib.suppress(OSError):
            sock.close()

    def close(self) -> None:
        self.stopping.set()
        self._acceptor.join(5)
        self._listener.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def head(status: str, headers: Optional[Dict[str, str]] = None) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def gzip_zeros(total: int) -> Iterator[bytes]:
    """A gzip stream of ``total`` zero bytes, made lazily (about 1,000:1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    for _ in range(total // len(block)):
        data = compressor.compress(block)
        if data:
            yield data
    yield compressor.flush()


def bomb_handler(status: str, total: int) -> Handler:
    """Answers every request with a gzip bomb of ``total`` bytes, chunked."""

    def handle(conn: Conn) -> None:
        while not conn.stopping.is_set():
            conn.read_request()
            conn.send(head(status, {"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"}))
            for piece in gzip_zeros(total):
                conn.send(b"%x\r\n%b\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")

    return handle


def endless_handler(status: str) -> Handler:
    """Answers with a body that never ends (chunked), as fast as the client reads."""

    def handle(conn: Conn) -> None:
        conn.read_request()
        conn.send(head(status, {"Transfer-Encoding": "chunked", "Content-Type": "text/plain"}))
        chunk = b"%x\r\n%b\r\n" % (65536, b"[" * 65536)
        while not conn.stopping.is_set():
            conn.send(chunk)

    return handle
