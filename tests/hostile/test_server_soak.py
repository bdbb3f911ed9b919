"""A short chaos soak of the local server: hostile clients (slow, idle, oversized,
malformed, vanishing) mixed with normal ones, which must keep succeeding."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from typing import Callable, Dict, List

from _waiting import eventually

from sessions_client import RetryPolicy, Session
from sessions_client.testing import LocalServer, ServerLimits

SOAK_SECONDS = 4.0
LIMITS = ServerLimits(read_timeout=0.5, idle_timeout=0.5, max_connections=96)


def _slow_headers(sock: socket.socket, stop: threading.Event) -> None:
    for byte in b"GET /api/v1/sessions HTTP/1.1\r\nX-Slow: yes":
        if stop.wait(0.05):
            return
        sock.send(bytes([byte]))


def _slow_body(sock: socket.socket, stop: threading.Event) -> None:
    sock.send(b"POST /realtime/v1/sessions/soak/in/append HTTP/1.1\r\nContent-Length: 900\r\n\r\n")
    for _ in range(900):
        if stop.wait(0.05):
            return
        sock.send(b"{")


def _idle(sock: socket.socket, stop: threading.Event) -> None:
    stop.wait(1.0)


def _junk(sock: socket.socket, stop: threading.Event) -> None:
    sock.send(random.randbytes(4096) if hasattr(random, "randbytes") else b"\x00\xff" * 2048)


def _huge_header(sock: socket.socket, stop: threading.Event) -> None:
    sock.send(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 200_000)


def _negative_chunk(sock: socket.socket, stop: threading.Event) -> None:
    sock.send(b"POST /nowhere HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n" + b"x" * 65536)


def _vanish(sock: socket.socket, stop: threading.Event) -> None:
    sock.send(b"POST /realtime/v1/sessions/soak/in/append HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")


ATTACKS: List[Callable[[socket.socket, threading.Event], None]] = [
    _slow_headers,
    _slow_body,
    _idle,
    _junk,
    _huge_header,
    _negative_chunk,
    _vanish,
]


def _attacker(port: int, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            stop.wait(0.05)
            continue
        with contextlib.suppress(OSError), sock:
            rng.choice(ATTACKS)(sock, stop)


def _appender(url: str, stop: threading.Event, stats: Dict[str, List[float]]) -> None:
    policy = RetryPolicy(max_attempts=10, initial_delay=0.05, max_delay=0.2, total_timeout=5)
    with Session("soak", token="tr_dev_local", api_url=url, append_retry=policy) as session:
        while not stop.is_set():
            started = time.monotonic()
            try:
                session.append_in({"t": started})
            except Exception as exc:  # noqa: BLE001 - every failure is recorded
                stats["errors"].append(repr(exc))  # type: ignore[arg-type]
            stats["latencies"].append(time.monotonic() - started)


def test_normal_clients_keep_succeeding_among_hostile_ones() -> None:
    with LocalServer(limits=LIMITS) as server:
        server.create_session("soak")
        stop = threading.Event()
        stats: Dict[str, List[float]] = {"latencies": [], "errors": []}
        threads = [
            threading.Thread(target=_attacker, args=(server.port, stop, seed), daemon=True)
            for seed in range(24)
        ]
        threads += [
            threading.Thread(target=_appender, args=(server.url, stop, stats), daemon=True)
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        stop.wait(SOAK_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(10)
        assert not stats["errors"], stats["errors"][:3]
        assert len(stats["latencies"]) >= 20
        assert max(stats["latencies"]) < 3.0
        assert len(server.records("soak", "in")) == len(stats["latencies"])
        eventually(lambda: server.open_connections == 0, LIMITS.idle_timeout + 3)
