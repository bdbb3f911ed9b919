"""Every fault of ``srv.faults`` (CONVENTIONS.md, issue 2 point 10)."""

from __future__ import annotations

import json
import time

import pytest
import requests

from sessions_client.testing import FaultInjector, LocalServer

from ._support import SECRET, SSE, append, bearer, create, drain


def test_fail_next_answers_status_k_times_then_recovers(server: LocalServer) -> None:
    create(server, "c")
    server.faults.fail_next(2, status=503)
    first, second, third = (append(server, "c", "in", "x", part_id="p") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.json() == {"ok": False, "error": "injected fault"}
    assert third.json() == {"ok": True, "seq": 0}
    assert len(server.records("c", "in")) == 1


def test_fail_next_429_carries_retry_after(server: LocalServer) -> None:
    create(server, "c")
    server.faults.fail_next(1, status=429, retry_after=2)
    response = append(server, "c", "in", "x")
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    server.faults.fail_next(1, status=429, retry_after=0.5)
    assert append(server, "c", "in", "x").headers["Retry-After"] == "0.5"


def test_fail_next_is_per_route(server: LocalServer) -> None:
    create(server, "c")
    server.faults.fail_next(1, status=500, route="records")
    assert append(server, "c", "in", "x").status_code == 200
    assert drain(server, "c", "in").status_code == 500
    assert drain(server, "c", "in").status_code == 200
    server.faults.fail_next(1, status=502, route="sessions")
    response = requests.get(f"{server.url}/api/v1/sessions", headers=bearer(SECRET), timeout=5)
    assert response.status_code == 502 and response.json() == {"error": "injected fault"}
    server.faults.fail_next(1, status=500, route="read")
    with SSE(server, "c", "in") as sse:
        assert sse.status == 500
    server.faults.fail_next(1, status=503, route="*")
    assert drain(server, "c", "in").status_code == 503


def test_drop_next_closes_without_answer_and_appends_nothing(server: LocalServer) -> None:
    create(server, "c")
    server.faults.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        append(server, "c", "in", "x", part_id="p")
    assert server.records("c", "in") == []
    assert append(server, "c", "in", "x", part_id="p").json() == {"ok": True, "seq": 0}


def test_drop_next_with_process_loses_only_the_answer(server: LocalServer) -> None:
    create(server, "c")
    server.faults.drop_next(1, process=True)
    with pytest.raises(requests.ConnectionError):
        append(server, "c", "in", "x", part_id="p")
    assert len(server.records("c", "in")) == 1
    assert append(server, "c", "in", "x", part_id="p").json() == {"ok": True}
    assert len(server.records("c", "in")) == 1


def test_cut_stream_after_records(server: LocalServer) -> None:
    create(server, "c")
    for i in range(10):
        server.append("c", "out", str(i))
    server.faults.cut_stream(after_records=3)
    with SSE(server, "c", "out") as sse:
        records = []
        with pytest.raises(ConnectionError):
            for event in sse.events():
                if event["event"] == "batch":
                    records.extend(json.loads(event["data"])["records"])
        assert [r["seq_num"] for r in records] == [0, 1, 2]
    with SSE(server, "c", "out", headers={"Last-Event-ID": "2"}) as sse:
        assert [r["seq_num"] for r in sse.take(7)] == list(range(3, 10))


def test_cut_stream_after_bytes_cuts_mid_event(server: LocalServer) -> None:
    create(server, "c")
    server.append("c", "out", "x" * 500)
    server.faults.cut_stream(after_bytes=100, count=2)
    for _ in range(2):
        with SSE(server, "c", "out") as sse:
            received = b""
            with pytest.raises(ConnectionError):
                while True:
                    chunk = sse._chunk()
                    if not chunk:
                        break
                    received += chunk
            assert len(received) == 100
    with SSE(server, "c", "out") as sse:
        assert len(sse.take(1)) == 1


def test_cut_stream_without_limit_cuts_right_after_headers(server: LocalServer) -> None:
    create(server, "c")
    server.faults.cut_stream()
    with SSE(server, "c", "out") as sse:
        assert sse.status == 200
        with pytest.raises(ConnectionError):
            sse.all()


def test_stall_stream_goes_silent_then_resumes(server: LocalServer) -> None:
    create(server, "c")
    server.append("c", "out", "a")
    server.faults.stall_stream(1.0)
    with SSE(server, "c", "out", headers={"Timeout-Seconds": "5"}) as sse:
        started = time.monotonic()
        first = next(e for e in sse.events() if e["event"] == "batch")
        assert first["at"] - started >= 0.6
    server.faults.stall_stream(1.0, after_bytes=10)
    with SSE(server, "c", "out", headers={"Timeout-Seconds": "5"}) as sse:
        data = sse._chunk()
        first_at = time.monotonic()
        rest = sse._chunk()
        assert len(data) == 10 and rest
        assert time.monotonic() - first_at >= 0.6


def test_set_latency_delays_answers_on_a_route(server: LocalServer) -> None:
    create(server, "c")
    server.faults.set_latency(0.5, route="append")
    started = time.monotonic()
    append(server, "c", "in", "x")
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    drain(server, "c", "in")
    assert time.monotonic() - started < 0.45
    server.faults.set_latency(0.5)
    started = time.monotonic()
    drain(server, "c", "in")
    assert time.monotonic() - started >= 0.5
    server.faults.set_latency(0, route="*")
    server.faults.set_latency(0, route="append")
    started = time.monotonic()
    append(server, "c", "in", "x")
    assert time.monotonic() - started < 0.45


def test_clear_forgets_every_fault(server: LocalServer) -> None:
    create(server, "c")
    faults = server.faults
    faults.fail_next(5)
    faults.drop_next(5, route="records")
    faults.cut_stream(count=3)
    faults.stall_stream(10)
    faults.set_latency(5)
    faults.clear()
    assert append(server, "c", "in", "x").status_code == 200
    assert drain(server, "c", "in").status_code == 200
    with SSE(server, "c", "in") as sse:
        assert len(sse.take(1)) == 1


def test_unknown_route_is_rejected() -> None:
    faults = FaultInjector()
    with pytest.raises(ValueError):
        faults.fail_next(1, route="nope")
    with pytest.raises(ValueError):
        faults.set_latency(1, route="nope")


def test_request_counts_and_connections(server: LocalServer) -> None:
    create(server, "c")
    append(server, "c", "in", "x")
    drain(server, "c", "in")
    with SSE(server, "c", "in") as sse:
        sse.take(1)
        assert server.open_connections >= 1
    counts = server.request_counts
    assert counts == {"sessions": 1, "append": 1, "records": 1, "read": 1}
    assert server.total_connections >= 4


def test_error_stream_sends_a_json_error_event_and_no_done(server: LocalServer) -> None:
    """Production passes a storage error on as ``event: error`` with JSON data
    ``{"code", "message"}`` and ends the stream without ``[DONE]``."""
    create(server, "c")
    for i in range(3):
        append(server, "c", "out", str(i))
    server.faults.error_stream("unavailable", "storage is down", after_records=2)
    with SSE(server, "c", "out", headers={"Timeout-Seconds": "5"}) as sse:
        records, events = sse.records()
    assert [r["seq_num"] for r in records] == [0, 1]
    assert events[-1]["event"] == "error"
    assert json.loads(events[-1]["data"]) == {"code": "unavailable", "message": "storage is down"}
    assert all(e["data"] != "[DONE]" for e in events) and sse.ended
    with SSE(server, "c", "out", headers={"Timeout-Seconds": "1"}) as again:
        assert [r["seq_num"] for r in again.records()[0]] == [0, 1, 2]  # once only
