"""A small in-memory SSE server for the read benchmarks (loopback only).

It serves pre-encoded bytes so that the server is never the bottleneck: every
dataset is encoded once at start-up into one HTTP/1.1 chunked body, and a
request is answered with a single ``sendall``. Connections are kept alive.

Routes (``GET /realtime/v1/sessions/{name}/out``, any token accepted):

- ``v2-<n>``: ``n`` realistic ``text-delta`` records in the production batch
  shape (PROTOCOL.md 3.2, ``X-Stream-Version: v2``), batches of 1,000 records,
  one HTTP chunk per batch event, then ``data: [DONE]``.
- ``v1-<n>``: the same records in the per-record shape (PROTOCOL.md 3.1), one
  event each, grouped into HTTP chunks of about 16 KiB (as a buffered writer
  would flush a backlog), then ``data: [DONE]``.
- ``cut-<anything>``: reconnect probe. Without ``Last-Event-ID`` it sends a
  batch holding record 0 (tail 2) and closes the socket abruptly (no final
  chunk); with ``Last-Event-ID: 0`` it sends record 1 and ``[DONE]``.

``Last-Event-ID: k`` on a ``v1``/``v2`` dataset resumes after seq ``k`` (encoded
on the fly). Run as a script it prints ``READY <port>`` once every dataset is
encoded, and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import socketserver
import sys
import threading
from typing import Dict, List, Optional, Tuple

BATCH_SIZE = 1000
V1_CHUNK_BYTES = 16 * 1024
BASE_TIMESTAMP = 1_764_380_000_000
PATH_PREFIX = "/realtime/v1/sessions/"

_TOKENS = [
    " the", " model", " stream", "ing", " of", " records", ",", ".", " and", " a",
    " session", " token", "s", " is", " to", " in", " that", " café", " naïve", " —",
    "\n\n", " **bold**", " `code`", " \"quoted\"", " 42", " reconnect", " é", " 🙂",
    " latency", " Python", " batch", " read", " write", " it", " we", " you",
]  # fmt: skip


def _compact(value: object) -> str:
    """JSON as JavaScript's JSON.stringify writes it (no spaces, raw UTF-8)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def make_deltas(count: int, seed: int = 7) -> List[str]:
    """``count`` deterministic text-delta strings of one to three tokens."""
    rng = random.Random(seed)
    return ["".join(rng.choices(_TOKENS, k=rng.randint(1, 3))) for _ in range(count)]


def part_id(seq: int) -> str:
    """A unique 12-character part id for record ``seq``."""
    return "p%011x" % (seq * 2654435761 % (1 << 44))


def v2_record(seq: int, delta: str) -> Dict[str, object]:
    """One S2 data record as production sends it for a text-delta chunk."""
    inner = _compact({"type": "text-delta", "delta": delta})
    body = _compact({"data": inner, "id": part_id(seq)})
    return {"seq_num": seq, "timestamp": BASE_TIMESTAMP + seq, "body": body}


def _chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


DONE_EVENT = b"data: [DONE]\n\n"
LAST_CHUNK = b"0\r\n\r\n"


def encode_v2(deltas: List[str], first: int, tail: int) -> Tuple[bytes, int]:
    """Chunked body of batch events for records ``first..len(deltas)-1``.

    Returns the body and the number of bytes of record JSON in it.
    """
    parts: List[bytes] = []
    record_bytes = 0
    for start in range(first, len(deltas), BATCH_SIZE):
        stop = min(start + BATCH_SIZE, len(deltas))
        records = [_compact(v2_record(seq, deltas[seq])) for seq in range(start, stop)]
        record_bytes += sum(len(r.encode()) for r in records)
        tail_json = _compact({"seq_num": tail, "timestamp": BASE_TIMESTAMP + tail - 1})
        data = '{"records":[' + ",".join(records) + '],"tail":' + tail_json + "}"
        size = len(data.encode())
        event = f"event: batch\nid: {start},{stop - start},{size}\ndata: {data}\n\n"
        parts.append(_chunk(event.encode()))
    parts.append(_chunk(DONE_EVENT))
    parts.append(LAST_CHUNK)
    return b"".join(parts), record_bytes


def encode_v1(deltas: List[str], first: int) -> Tuple[bytes, int]:
    """Chunked body of per-record events for records ``first..``; see encode_v2."""
    parts: List[bytes] = []
    pending: List[bytes] = []
    pending_size = 0
    record_bytes = 0
    for seq in range(first, len(deltas)):
        data = _compact({"data": {"type": "text-delta", "delta": deltas[seq]}, "id": seq})
        event = f"id: {seq}\ndata: {data}\n\n".encode()
        record_bytes += len(event)
        pending.append(event)
        pending_size += len(event)
        if pending_size >= V1_CHUNK_BYTES:
            parts.append(_chunk(b"".join(pending)))
            pending, pending_size = [], 0
    pending.append(DONE_EVENT)
    parts.append(_chunk(b"".join(pending)))
    parts.append(LAST_CHUNK)
    return b"".join(parts), record_bytes


def _head(version: Optional[str]) -> bytes:
    lines = [
        "HTTP/1.1 200 OK",
        "Content-Type: text/event-stream",
        "Cache-Control: no-cache",
        "Transfer-Encoding: chunked",
        "Connection: keep-alive",
    ]
    if version == "v2":
        lines.append("X-Stream-Version: v2")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Datasets:
    """Pre-encoded responses, keyed by dataset name (``v2-200000``...)."""

    def __init__(self) -> None:
        self._deltas: Dict[str, List[str]] = {}
        self._bodies: Dict[Tuple[str, int], bytes] = {}
        self.record_bytes: Dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        """Encode dataset ``name`` (``v1-<n>`` or ``v2-<n>``) now."""
        shape, _, count = name.partition("-")
        deltas = make_deltas(int(count))
        self._deltas[name] = deltas
        body, record_bytes = self._encode(shape, deltas, 0)
        self._bodies[(name, -1)] = body
        self.record_bytes[name] = record_bytes

    @staticmethod
    def _encode(shape: str, deltas: List[str], first: int) -> Tuple[bytes, int]:
        if shape == "v2":
            return encode_v2(deltas, first, len(deltas))
        return encode_v1(deltas, first)

    def body(self, name: str, after: int) -> Optional[bytes]:
        """The chunked body resuming after seq ``after`` (-1 = from the start)."""
        if name not in self._deltas:
            return None
        with self._lock:
            key = (name, after)
            if key not in self._bodies:
                shape = name.partition("-")[0]
                self._bodies[key] = self._encode(shape, self._deltas[name], after + 1)[0]
            return self._bodies[key]


class _Handler(socketserver.StreamRequestHandler):
    server: StreamServer

    def handle(self) -> None:
        try:
            self._serve_connection()
        except OSError:  # the client went away (a reader that stopped early)
            return

    def _serve_connection(self) -> None:
        while True:
            request_line = self.rfile.readline(65537)
            if not request_line:
                return
            headers = self._read_headers()
            parts = request_line.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else ""
            if not self._respond(path, headers):
                return

    def _read_headers(self) -> Dict[str, str]:
        headers: Dict[str, str] = {}
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()

    def _respond(self, path: str, headers: Dict[str, str]) -> bool:
        """Answer one request; False when the connection must be closed."""
        name = path[len(PATH_PREFIX) :].split("/")[0] if path.startswith(PATH_PREFIX) else ""
        last = headers.get("last-event-id", "")
        after = int(last) if last.isdigit() else -1
        if name.startswith("cut-"):
            return self._cut_probe(after)
        body = self.server.datasets.body(name, after)
        if body is None:
            self.request.sendall(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n"
                b"Content-Type: text/plain\r\n\r\nnot found"
            )
            return True
        self.request.sendall(_head(name.partition("-")[0]) + body)
        return True

    def _cut_probe(self, after: int) -> bool:
        if after < 0:
            body = encode_v2(make_deltas(1), 0, 2)[0]
            first_event = body[: body.index(_chunk(DONE_EVENT))]
            self.request.sendall(_head("v2") + first_event)
            self.request.shutdown(socket.SHUT_RDWR)
            return False
        body = encode_v2(make_deltas(2), after + 1, 2)[0]
        self.request.sendall(_head("v2") + body)
        return True


class StreamServer(socketserver.ThreadingTCPServer):
    """Threaded keep-alive SSE server over ``Datasets`` on 127.0.0.1."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, datasets: Datasets, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.datasets = datasets

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("datasets", nargs="*", default=["v2-200000", "v1-200000"])
    args = parser.parse_args(argv)
    datasets = Datasets()
    for name in args.datasets:
        datasets.add(name)
    server = StreamServer(datasets, args.port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sizes = {name: datasets.record_bytes[name] for name in args.datasets}
    print(f"READY {server.server_address[1]} {json.dumps(sizes)}", flush=True)
    sys.stdin.read()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
