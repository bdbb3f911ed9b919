"""The client against hostile servers: every call returns or raises a typed error
within its deadline plus one second, and its peak memory stays under 100 MB whatever
the server sends (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Callable, Dict, Iterator, List

import pytest

from sessions_client import (
    Client,
    DeadlineExceededError,
    RateLimitedError,
    ReaderTimeoutError,
    RedirectError,
    ResponseTooLargeError,
    RetryPolicy,
    ServerError,
    Session,
)
from sessions_client._http import Transport

from ._hostile import Conn, RawServer, bomb_handler, endless_handler, head
from ._support import HERE

SECRET = "tr_dev_local"
DEADLINE = 1.5
SLACK = 1.0


@pytest.fixture()
def raw_server() -> Iterator[Callable[[Callable[[Conn], None]], RawServer]]:
    servers: List[RawServer] = []

    def make(handler: Callable[[Conn], None]) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _slow_headers(conn: Conn) -> None:
    conn.read_request()
    conn.trickle(head("200 OK", {"Content-Length": "2"}) + b"{}", every=0.2)


def _slow_body(conn: Conn) -> None:
    conn.read_request()
    conn.send(head("200 OK", {"Content-Length": "1000", "Content-Type": "application/json"}))
    conn.trickle(b"{" + b" " * 999, every=0.2)


def _session(url: str, **options: object) -> Session:
    return Session("s", token=SECRET, api_url=url, **options)  # type: ignore[arg-type]


def _append(url: str) -> object:
    with _session(url) as session:
        return session.append_in({"x": 1}, timeout=DEADLINE)


def _drain(url: str) -> object:
    with _session(url) as session:
        return session.drain_out(timeout=DEADLINE)


def _get_session(url: str) -> object:
    with Client(token=SECRET, api_url=url) as client:
        return client.get_session("s", timeout=DEADLINE)


def _close_session(url: str) -> object:
    with Client(token=SECRET, api_url=url) as client:
        return client.close_session("s", timeout=DEADLINE)


CALLS: Dict[str, Callable[[str], object]] = {
    "append": _append,
    "drain": _drain,
    "get_session": _get_session,
    "close_session": _close_session,
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("handler", [_slow_headers, _slow_body], ids=["headers", "body"])
def test_a_trickling_answer_ends_at_the_call_deadline(
    raw_server: Callable[..., RawServer], call: str, handler: Callable[[Conn], None]
) -> None:
    # Before: a 1 B/s answer held appends and drains past 45 s (the timeout was per read).
    server = raw_server(handler)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        CALLS[call](server.url)
    assert time.monotonic() - started < DEADLINE + SLACK


def test_the_default_deadline_is_the_retry_policys_total_timeout(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server(_slow_headers)
    policy = RetryPolicy(total_timeout=DEADLINE)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        _session(server.url, append_retry=policy).append_in({"x": 1})
    assert time.monotonic() - started < DEADLINE + SLACK


def _always(status: str, headers: Dict[str, str]) -> Callable[[Conn], None]:
    def handle(conn: Conn) -> None:
        while True:
            conn.read_request()
            conn.send(head(status, {**headers, "Content-Length": "2"}) + b"{}")

    return handle


def test_retries_and_their_waits_count_against_the_deadline(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server(_always("503 Service Unavailable", {"Retry-After": "0.4"}))
    policy = RetryPolicy(max_attempts=100, total_timeout=60)
    started = time.monotonic()
    with pytest.raises((ServerError, DeadlineExceededError)):
        _session(server.url, append_retry=policy).append_in({"x": 1}, timeout=DEADLINE)
    assert time.monotonic() - started < DEADLINE + SLACK


@pytest.mark.parametrize(
    "headers, expected",
    [({"Retry-After": "100000"}, 100000.0), ({"x-ratelimit-reset": "9999999999999"}, None)],
)
def test_a_wait_longer_than_the_cap_raises_at_once(
    raw_server: Callable[..., RawServer], headers: Dict[str, str], expected: object
) -> None:
    # Before: a reader obeyed any Retry-After (27.8 hours with max_retries=1).
    server = raw_server(_always("429 Too Many Requests", headers))
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        _session(server.url).append_in({"x": 1})
    assert time.monotonic() - started < SLACK
    assert info.value.retry_after is not None and info.value.retry_after > 60
    if expected is not None:
        assert info.value.retry_after == expected
    assert "max_server_delay" in str(info.value)


def test_a_wait_within_the_cap_is_obeyed_and_counts_as_a_retry(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server(_always("429 Too Many Requests", {"Retry-After": "500"}))
    waits: List[float] = []
    policy = RetryPolicy(max_attempts=3, max_server_delay=1000, total_timeout=5000)
    transport = Transport(server.url, SECRET, retry=policy, sleep=waits.append)
    with pytest.raises(RateLimitedError):
        transport.request("POST", "/x", data=b"{}")
    assert waits == [500.0, 500.0]  # 3 attempts: 2 waits, then the error


def test_an_append_never_follows_a_redirect(raw_server: Callable[..., RawServer]) -> None:
    # Before: a 301 turned the append into a GET without the record, reported as success.
    seen: List[str] = []

    def handle(conn: Conn) -> None:
        while True:
            line, _, _ = conn.read_request()
            seen.append(line)
            location = "http://127.0.0.1:9/elsewhere"
            conn.send(head("301 Moved Permanently", {"Location": location, "Content-Length": "0"}))

    server = raw_server(handle)
    with pytest.raises(RedirectError) as info:
        _session(server.url).append_in({"x": 1})
    assert info.value.location == "http://127.0.0.1:9/elsewhere"
    assert "http://127.0.0.1:9/elsewhere" in str(info.value)
    assert info.value.status == 301
    assert [line.split()[0] for line in seen] == ["POST"]


def test_an_answer_over_max_response_bytes_is_a_typed_error(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server(_always("200 OK", {}))
    with pytest.raises(ResponseTooLargeError):
        _session(server.url, max_response_bytes=1).drain_out()


def _client_in_subprocess(url: str, call: str) -> Dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(HERE.parents[1]))
    done = subprocess.run(
        [sys.executable, str(HERE / "_client_proc.py"), url, call],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units differ")
@pytest.mark.parametrize(
    "handler, call, outcome",
    [
        # Before: a 1 MiB gzip bomb took the client to 2.1 GB, 3.1 GB as a retried 500.
        (bomb_handler("200 OK", 1024**3), "drain", "ResponseTooLargeError"),
        (bomb_handler("500 Internal Server Error", 1024**3), "append", "ServerError"),
        (bomb_handler("200 OK", 1024**3), "get", "ResponseTooLargeError"),
        # Before: an endless drain body reached 8 GB in 25 s; a 600 MB error body 1.8 GB.
        (endless_handler("200 OK"), "drain", "ResponseTooLargeError"),
        (endless_handler("500 Internal Server Error"), "append", "ServerError"),
    ],
    ids=["gzip-drain", "gzip-500-append", "gzip-management", "endless-drain", "endless-500"],
)
def test_bombs_keep_the_client_under_100_mb(
    raw_server: Callable[..., RawServer],
    handler: Callable[[Conn], None],
    call: str,
    outcome: str,
) -> None:
    server = raw_server(handler)
    started = time.monotonic()
    result = _client_in_subprocess(server.url, call)
    assert result["outcome"] == outcome
    assert float(result["peak_mib"]) < 100, result  # type: ignore[arg-type]
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("call", ["drain", "get_session", "append"])
def test_json_nested_deeper_than_the_stack_is_a_protocol_error(
    raw_server: Callable[..., RawServer], call: str
) -> None:
    from sessions_client import ProtocolError

    body = b"[" * 200_000

    def handle(conn: Conn) -> None:
        while True:
            conn.read_request()
            conn.send(head("200 OK", {"Content-Length": str(len(body))}) + body)

    server = raw_server(handle)
    with pytest.raises(ProtocolError):
        CALLS[call](server.url)


def test_a_reader_told_to_wait_longer_than_the_cap_raises_at_once(
    raw_server: Callable[..., RawServer],
) -> None:
    # Before: a reader slept for any Retry-After (27.8 hours with max_retries=1).
    server = raw_server(_always("429 Too Many Requests", {"Retry-After": "100000"}))
    slept: List[float] = []
    started = time.monotonic()
    with _session(server.url, sleep=slept.append) as session, pytest.raises(
        RateLimitedError
    ) as info:
        next(session.iter_out(max_retries=1))
    assert time.monotonic() - started < SLACK
    assert info.value.retry_after == 100000.0
    assert slept == []  # not a single wait


def test_a_readers_total_timeout_covers_trickling_headers(
    raw_server: Callable[..., RawServer],
) -> None:
    # Before: total_timeout=5 took 60 s against headers sent at one byte a second.
    def trickled_headers(conn: Conn) -> None:
        conn.read_request()
        conn.trickle(head("200 OK", {"Content-Type": "text/event-stream"}), every=0.2)

    server = raw_server(trickled_headers)
    started = time.monotonic()
    with _session(server.url) as session, pytest.raises(ReaderTimeoutError):
        next(session.iter_out(total_timeout=DEADLINE))
    assert time.monotonic() - started < DEADLINE + SLACK
