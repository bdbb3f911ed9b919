"""The local server under hostile clients: every attack is answered or cut off within
its bound, the server's peak memory stays within 64 MiB of idle, and a legitimate
append succeeds during each attack (issue 14)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator, List

import pytest

from sessions_client.testing import DatabaseInUseError, LocalServer
from sessions_client.testing.store import LOCK_WAIT

from ._support import (
    MIB,
    ServerProcess,
    assert_memory_bounded,
    close_all,
    closed_by_server,
    connect,
    legitimate_append,
    read_answer,
    status_of,
)

READ_TIMEOUT = 1.0
IDLE_TIMEOUT = 1.0
LIMITS = {"read_timeout": READ_TIMEOUT, "idle_timeout": IDLE_TIMEOUT, "max_connections": 400}
APPEND_HEAD = (
    "POST /realtime/v1/sessions/victim/in/append HTTP/1.1\r\nHost: x\r\n"
    "Authorization: Bearer tr_dev_local\r\nContent-Type: application/json\r\n"
)


@pytest.fixture()
def server() -> Iterator[ServerProcess]:
    proc = ServerProcess(LIMITS)
    try:
        yield proc
    finally:
        proc.close()


def _flood(sock: socket.socket, total: int, deadline: float) -> int:
    """Send up to ``total`` junk bytes fast; returns how many the server took."""
    block = b"x" * MIB
    sent = 0
    sock.settimeout(0.5)
    while sent < total and time.monotonic() < deadline:
        try:
            sent += sock.send(block)
        except (socket.timeout, OSError):
            break
    return sent


@pytest.mark.parametrize(
    "size_line, status",
    [(b"-1", 400), (b"+10", 400), (b"0x10", 400), (b"ffffffffffffffffff", 400), (b"7fffffff", 413)],
)
def test_malformed_or_oversized_chunk_sizes_are_refused_before_buffering(
    server: ServerProcess, size_line: bytes, status: int
) -> None:
    # Before the fix, "-1" made the server buffer everything sent (500 MiB → +500 MB).
    sock = connect(server.port)
    try:
        head = APPEND_HEAD.replace("Authorization: Bearer tr_dev_local\r\n", "")
        sock.sendall(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\n")
        deadline = time.monotonic() + 5
        taken = _flood(sock, 256 * MIB, deadline)
        answer = read_answer(sock, time.monotonic() + 2)
    finally:
        sock.close()
    assert status_of(answer) == status  # refused unauthenticated: the body is judged first
    assert taken < 64 * MIB, f"the server kept reading ({taken} bytes)"
    legitimate_append(server.url)
    assert_memory_bounded(server)


def test_chunks_adding_up_past_the_cap_are_413(server: ServerProcess) -> None:
    sock = connect(server.port)
    try:
        chunk = b"x" * 0x40000
        sock.sendall(APPEND_HEAD.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(5):  # 1.25 MiB in 256 KiB chunks, over the 1 MiB cap
            sock.sendall(b"40000\r\n" + chunk + b"\r\n")
        answer = read_answer(sock, time.monotonic() + 3)
    except ConnectionError:
        answer = b"HTTP/1.1 413 (connection closed while sending)"
    finally:
        sock.close()
    assert status_of(answer) == 413


def test_huge_content_length_is_413_before_auth_and_before_reading(
    server: ServerProcess,
) -> None:
    sock = connect(server.port)
    try:
        head = "POST /realtime/v1/sessions/victim/in/append HTTP/1.1\r\nHost: x\r\n"
        sock.sendall(f"{head}Content-Length: {10 * 1024**3}\r\n\r\n".encode())
        answer = read_answer(sock, time.monotonic() + 3)
        assert closed_by_server(sock, time.monotonic() + 2)
    finally:
        sock.close()
    assert status_of(answer) == 413
    assert b"Connection: close" in answer


@pytest.mark.parametrize("path", ["/nowhere", "/api/v1/sessions"])
def test_negative_chunk_on_any_path_is_not_buffered(server: ServerProcess, path: str) -> None:
    sock = connect(server.port)
    try:
        sock.sendall(f"POST {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n".encode())
        taken = _flood(sock, 128 * MIB, time.monotonic() + 4)
        answer = read_answer(sock, time.monotonic() + 2)
    finally:
        sock.close()
    assert status_of(answer) in (400, 401, 404)
    assert taken < 64 * MIB
    assert_memory_bounded(server)


def test_oversized_headers_are_431(server: ServerProcess) -> None:
    long_line = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n"
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n"
    for attack in (long_line, many):
        sock = connect(server.port)
        try:
            sock.sendall(attack)
            answer = read_answer(sock, time.monotonic() + 3)
        except ConnectionError:
            answer = b""
        finally:
            sock.close()
        assert status_of(answer) == 431
    long_target = b"GET /" + b"a" * (16 * 1024) + b" HTTP/1.1\r\n\r\n"
    sock = connect(server.port)
    try:
        sock.sendall(long_target)
        assert status_of(read_answer(sock, time.monotonic() + 3)) == 414
    finally:
        sock.close()


def _hold(port: int, count: int, first: bytes) -> List[socket.socket]:
    socks = []
    for _ in range(count):
        sock = connect(port)
        if first:
            sock.sendall(first)
        socks.append(sock)
    return socks


def test_unfinished_header_lines_are_bounded_and_dropped(server: ServerProcess) -> None:
    # Before: 64 KB unfinished header lines held ~6.4 MB per connection, forever.
    started = time.monotonic()
    socks = _hold(server.port, 300, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (30 * 1024))
    try:
        legitimate_append(server.url)
        assert_memory_bounded(server)
        deadline = started + READ_TIMEOUT + 3
        assert all(closed_by_server(s, deadline) for s in socks)
    finally:
        close_all(socks)


def _trickle(socks: List[socket.socket], payload: bytes, stop: threading.Event) -> None:
    """Send ``payload`` one byte at a time to every socket, every 0.1 s."""
    for i in range(len(payload)):
        if stop.wait(0.1):
            return
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.send(payload[i : i + 1])


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_slowloris_connections_are_dropped_and_others_served(
    server: ServerProcess, phase: str
) -> None:
    # Before: 2,000 connections at 1 B/s were all still held after 31 s.
    first = b"" if phase == "headers" else (APPEND_HEAD + "Content-Length: 500\r\n\r\n").encode()
    payload = b"GET / HTTP/1.1\r\n" + b"X-Slow: " + b"s" * 400 if phase == "headers" else b"{" * 500
    socks = _hold(server.port, 150, first)
    stop = threading.Event()
    trickler = threading.Thread(target=_trickle, args=(socks, payload, stop), daemon=True)
    started = time.monotonic()
    trickler.start()
    try:
        legitimate_append(server.url)
        deadline = started + READ_TIMEOUT + 3
        assert all(closed_by_server(s, deadline) for s in socks)
        assert time.monotonic() - started < READ_TIMEOUT + 3
        assert_memory_bounded(server)
    finally:
        stop.set()
        trickler.join(5)
        close_all(socks)


def test_idle_keep_alive_connections_are_closed(server: ServerProcess) -> None:
    socks = _hold(server.port, 50, b"")
    try:
        assert all(closed_by_server(s, time.monotonic() + IDLE_TIMEOUT + 3) for s in socks)
    finally:
        close_all(socks)


def test_connections_past_the_cap_get_503_and_service_resumes() -> None:
    proc = ServerProcess({"idle_timeout": 1.5, "max_connections": 20})
    try:
        held = _hold(proc.port, 20, b"")
        deadline = time.monotonic() + 5
        while proc.stats()["open"] < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        extra = _hold(proc.port, 10, b"GET / HTTP/1.1\r\n\r\n")
        answers = [read_answer(s, time.monotonic() + 2) for s in extra]
        close_all(extra)
        assert all(status_of(a) == 503 and b"Retry-After: 1" in a for a in answers), answers
        assert proc.stats()["refused"] >= 10
        # The held slots free up at the idle timeout; a retried append then gets through.
        legitimate_append(proc.url)
        close_all(held)
    finally:
        proc.close()


def test_out_of_file_descriptors_is_no_busy_loop() -> None:
    # Before: with ulimit -n 1024, ~1,100 idle connections spun the accept loop at 100 %.
    proc = ServerProcess({"idle_timeout": 2.0, "max_connections": 1000}, nofile=48)
    socks: List[socket.socket] = []
    try:
        for _ in range(60):
            socks.append(connect(proc.port))
        time.sleep(0.3)  # let the accept loop reach the descriptor limit
        cpu_before = proc.stats()["cpu"]
        window = 1.5
        time.sleep(window)
        used = proc.stats()["cpu"] - cpu_before
        assert used < 0.1 * window, f"the server used {used:.2f} s of CPU in {window} s"
        close_all(socks)
        socks = []
        legitimate_append(proc.url)
    finally:
        close_all(socks)
        proc.close()


def test_a_second_server_on_the_same_database_refuses_to_start(tmp_path: object) -> None:
    db = str(tmp_path) + "/sessions.sqlite3"  # type: ignore[operator]
    with LocalServer(db=db) as first:
        first.create_session("s")
        started = time.monotonic()
        with pytest.raises(DatabaseInUseError, match="in use by another local server"):
            LocalServer(db=db)
        assert time.monotonic() - started < LOCK_WAIT + 1
        assert first.append("s", "in", "still mine") == 0
    with LocalServer(db=db) as again:  # the lock goes with the first server
        assert again.records("s", "in")[0]["seq"] == 0


def test_a_second_server_process_on_the_same_database_refuses(tmp_path: object) -> None:
    db = str(tmp_path) + "/sessions.sqlite3"  # type: ignore[operator]
    proc = ServerProcess({}, db=db)
    try:
        with pytest.raises(DatabaseInUseError):
            LocalServer(db=db)
        legitimate_append(proc.url)
    finally:
        proc.close()
