"""SSE reads: both wire shapes, pings, [DONE], resume, settled peek, wake-up latency."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from sessions_client.testing import LocalServer

from ._support import SECRET, SSE, append, create, envelope


def test_v2_headers_batch_shape_and_done(server: LocalServer) -> None:
    create(server, "c")
    append(server, "c", "out", '{"x":1}', part_id="p0")
    server.write_control("c", "turn-complete", [["session-in-event-id", "4"]])
    with SSE(server, "c", "out", headers={"Timeout-Seconds": "1"}) as sse:
        assert sse.status == 200
        assert sse.headers["content-type"] == "text/event-stream"
        assert sse.headers["x-stream-version"] == "v2"
        assert sse.headers["cache-control"] == "no-cache"
        assert sse.headers["transfer-encoding"] == "chunked"
        records, events = sse.records()
    batch = events[0]
    assert batch["event"] == "batch"
    first, count, size = (int(x) for x in batch["id"].split(","))
    assert (first, count) == (0, 2) and size > 0
    payload = json.loads(batch["data"])
    assert "tail" not in payload  # a catch-up batch, read from storage
    assert events[1]["event"] == "ping"  # at once on reaching the live edge
    assert json.loads(events[1]["data"])["tail"]["seq_num"] == 2
    data, control = records
    assert set(data) == {"seq_num", "timestamp", "body"}
    assert envelope(data) == {"data": '{"x":1}', "id": "p0"}
    assert set(control) == {"seq_num", "timestamp", "headers"}
    assert control["headers"] == [
        ["trigger-control", "turn-complete"],
        ["session-in-event-id", "4"],
    ]
    assert events[-1]["data"] == "[DONE]" and sse.ended


def test_pings_while_idle_then_done_after_timeout(server: LocalServer) -> None:
    create(server, "c")
    append(server, "c", "out", "a")
    with SSE(server, "c", "out", headers={"Timeout-Seconds": "1"}) as sse:
        started = time.monotonic()
        events = sse.all()
    pings = [e for e in events if e["event"] == "ping"]
    assert 2 <= len(pings) <= 4
    ping = json.loads(pings[0]["data"])
    assert ping["tail"]["seq_num"] == 1 and ping["timestamp"] > 0
    assert events[-1]["data"] == "[DONE]"
    assert 0.9 <= events[-1]["at"] - started < 2.0


def test_catch_up_batches_have_no_tail_then_a_ping_then_live_batches_with_tail() -> None:
    with LocalServer(secret_key=SECRET, ping_interval=(30, 30)) as srv:
        create(srv, "c")
        append(srv, "c", "out", "old")
        with SSE(srv, "c", "out", headers={"Timeout-Seconds": "5"}) as sse:
            events = sse.events()
            first, ping = next(events), next(events)
            append(srv, "c", "out", "new")
            live = next(events)
    assert first["event"] == "batch" and "tail" not in json.loads(first["data"])
    assert ping["event"] == "ping" and json.loads(ping["data"])["tail"]["seq_num"] == 1
    payload = json.loads(live["data"])
    assert live["event"] == "batch" and payload["records"][0]["seq_num"] == 1
    assert payload["tail"]["seq_num"] == 2


def test_a_reader_at_the_live_edge_gets_a_ping_at_once() -> None:
    with LocalServer(secret_key=SECRET, ping_interval=(30, 30)) as srv:
        create(srv, "c")
        with SSE(srv, "c", "out", headers={"Timeout-Seconds": "5"}) as sse:
            started = time.monotonic()
            event = next(sse.events())
    assert event["event"] == "ping" and event["at"] - started < 1.0


def test_ping_gaps_are_drawn_from_the_interval_range(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessions_client.testing import channels

    drawn: List[Tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        drawn.append((low, high))
        return 0.1

    monkeypatch.setattr(channels.random, "uniform", uniform)
    with LocalServer(secret_key=SECRET, ping_interval=(0.05, 0.2)) as srv:
        create(srv, "c")
        with SSE(srv, "c", "out", headers={"Timeout-Seconds": "1"}) as sse:
            pings = [e for e in sse.all() if e["event"] == "ping"]
    assert 6 <= len(pings) <= 12  # one at once, then one every 0.1 s for 1 s
    assert drawn and set(drawn) == {(0.05, 0.2)}


def test_ping_interval_defaults_to_production_range_and_accepts_one_number() -> None:
    with LocalServer() as srv:
        assert srv._ctx.ping_interval == (5.0, 15.0)
    with LocalServer(ping_interval=0.5) as srv:
        assert srv._ctx.ping_interval == (0.5, 0.5)
    for bad in (0, -1, (2, 1), (0, 1)):
        with pytest.raises(ValueError):
            LocalServer(ping_interval=bad)  # type: ignore[arg-type]


def test_idle_timeout_restarts_when_records_arrive(server: LocalServer) -> None:
    create(server, "c")
    with SSE(server, "c", "out", headers={"Timeout-Seconds": "1"}) as sse:
        started = time.monotonic()
        timer = threading.Timer(0.7, lambda: append(server, "c", "out", "late"))
        timer.start()
        records, events = sse.records()
        timer.join()
    assert len(records) == 1
    assert events[-1]["at"] - started >= 1.5


def test_default_timeout_is_60_seconds_so_stream_stays_open(server: LocalServer) -> None:
    create(server, "c")
    with SSE(server, "c", "out", timeout=1.5) as sse:
        events = sse.events()
        first = next(events)
        assert first["event"] == "ping"


@pytest.mark.parametrize(
    "value,message",
    [
        ("abc", "Invalid timeout seconds"),
        ("1.5", "Invalid timeout seconds"),
        ("10abc", "Invalid timeout seconds"),
        ("0", "Timeout seconds must be greater than 0"),
        ("-3", "Timeout seconds must be greater than 0"),
        ("601", "Timeout seconds must be less than 600"),
    ],
)
def test_timeout_seconds_validation_is_plain_text_400(
    server: LocalServer, value: str, message: str
) -> None:
    create(server, "c")
    with SSE(server, "c", "out", headers={"Timeout-Seconds": value}) as sse:
        assert sse.status == 400
        assert sse.headers["content-type"].startswith("text/plain")
        assert sse.body.decode() == message


def test_timeout_seconds_bounds_are_accepted(server: LocalServer) -> None:
    create(server, "c")
    for value in ("1", "600"):
        with SSE(server, "c", "out", headers={"Timeout-Seconds": value}) as sse:
            assert sse.status == 200


def test_last_event_id_resumes_after_it_and_garbage_restarts(server: LocalServer) -> None:
    create(server, "c")
    for i in range(5):
        append(server, "c", "out", str(i))
    cases = {
        "2": [3, 4],
        "0": [1, 2, 3, 4],
        "abc": [0, 1, 2, 3, 4],
        "-1": [0, 1, 2, 3, 4],
        "99": [],
    }
    for last, expected in cases.items():
        with SSE(
            server, "c", "out", headers={"Last-Event-ID": last, "Timeout-Seconds": "1"}
        ) as sse:
            records = sse.take(len(expected)) if expected else sse.records()[0]
        assert [r["seq_num"] for r in records] == expected, last


def test_resume_past_the_tail_clamps_to_the_tail(server: LocalServer) -> None:
    create(server, "c")
    append(server, "c", "out", "0")
    with SSE(server, "c", "out", headers={"Last-Event-ID": "50"}) as sse:
        threading.Timer(0.2, lambda: append(server, "c", "out", "1")).start()
        records = sse.take(1)
    assert [r["seq_num"] for r in records] == [1]


def test_stream_start_latest_skips_history(server: LocalServer) -> None:
    create(server, "c")
    append(server, "c", "out", "old")
    with SSE(server, "c", "out", headers={"X-Trigger-Stream-Start": "latest"}) as sse:
        threading.Timer(0.2, lambda: append(server, "c", "out", "new")).start()
        records = sse.take(1)
    assert [envelope(r)["data"] for r in records] == ["new"]


def test_record_appended_while_reading_arrives_quickly(server: LocalServer) -> None:
    create(server, "c")
    delays: List[float] = []
    with SSE(server, "c", "out", headers={"Timeout-Seconds": "5"}) as sse:
        events = sse.events()
        for i in range(5):
            time.sleep(0.05)
            sent = time.monotonic()
            append(server, "c", "out", str(i))
            while True:
                event = next(events)
                if event["event"] == "batch":
                    break
            delays.append(event["at"] - sent)
    assert max(delays) < 1.0


def test_direct_write_reaches_reader_within_10ms_typically(server: LocalServer) -> None:
    create(server, "c")
    delays: List[float] = []
    with SSE(server, "c", "out", headers={"Timeout-Seconds": "5"}) as sse:
        events = sse.events()
        for i in range(10):
            time.sleep(0.02)
            sent = time.monotonic()
            server.append("c", "out", str(i))
            event = next(e for e in events if e["event"] == "batch")
            delays.append(event["at"] - sent)
    delays.sort()
    assert delays[len(delays) // 2] < 0.25


def test_batches_hold_at_most_1000_records(server: LocalServer) -> None:
    create(server, "c")
    for i in range(2500):
        server.append("c", "out", str(i))
    with SSE(server, "c", "out") as sse:
        events = list(_batches(sse, 2500))
    sizes = [len(json.loads(e["data"])["records"]) for e in events]
    records = [r for e in events for r in json.loads(e["data"])["records"]]
    assert max(sizes) <= 1000 and sum(sizes) == 2500
    assert [r["seq_num"] for r in records] == list(range(2500))


def test_batches_hold_at_most_about_1_mib(server: LocalServer) -> None:
    create(server, "c")
    for _ in range(5):
        server.append("c", "out", "z" * 400_000)
    with SSE(server, "c", "out") as sse:
        batches = list(_batches(sse, 5))
    records = [r for e in batches for r in json.loads(e["data"])["records"]]
    assert len(records) == 5 and len(batches) >= 2
    assert all(len(e["data"]) < 1024 * 1024 + 1000 for e in batches)


def test_unknown_friendly_id_read_is_404_but_unknown_external_id_is_empty(
    server: LocalServer,
) -> None:
    with SSE(server, "session_nope", "out") as sse:
        assert sse.status == 404
    with SSE(server, "not-yet", "out", headers={"Timeout-Seconds": "1"}) as sse:
        assert sse.status == 200
        records, events = sse.records()
    assert records == [] and events[-1]["data"] == "[DONE]"


def test_stream_on_external_id_picks_up_a_session_created_later(server: LocalServer) -> None:
    def later() -> None:
        create(server, "soon")
        append(server, "soon", "out", "hello")

    with SSE(server, "soon", "out", headers={"Timeout-Seconds": "2"}) as sse:
        threading.Timer(0.2, later).start()
        records = sse.take(1)
    assert [envelope(r)["data"] for r in records] == ["hello"]


def test_settled_peek_drains_and_closes_at_once(server: LocalServer) -> None:
    create(server, "c")
    append(server, "c", "out", "a")
    server.write_control("c", "turn-complete")
    server.trim("c", "out", 0)
    with SSE(server, "c", "out", headers={"X-Peek-Settled": "1", "Timeout-Seconds": "30"}) as sse:
        started = time.monotonic()
        records, events = sse.records()
    assert sse.headers.get("x-session-settled") == "true"
    assert [r["seq_num"] for r in records] == [0, 1, 2]
    assert events[-1]["data"] == "[DONE]" and events[-1]["at"] - started < 1.5


def test_settled_peek_on_unsettled_channel_long_polls(server: LocalServer) -> None:
    create(server, "c")
    server.write_control("c", "turn-complete")
    append(server, "c", "out", "new turn")
    with SSE(server, "c", "out", headers={"X-Peek-Settled": "1", "Timeout-Seconds": "1"}) as sse:
        started = time.monotonic()
        _, events = sse.records()
    assert "x-session-settled" not in sse.headers
    assert events[-1]["at"] - started >= 0.9


def test_trim_appends_command_record_and_removes_older(server: LocalServer) -> None:
    create(server, "c")
    for i in range(5):
        append(server, "c", "out", str(i))
    seq = server.trim("c", "out", 3)
    assert seq == 5
    with SSE(server, "c", "out") as sse:
        records = sse.take(3)
    assert [r["seq_num"] for r in records] == [3, 4, 5]
    assert records[-1]["headers"][0] == ["", "trim"]
    assert append(server, "c", "out", "next").json()["seq"] == 6


def _batches(sse: SSE, count: int) -> Iterator[Dict[str, Any]]:
    seen = 0
    for event in sse.events():
        if event["event"] == "batch":
            yield event
            seen += len(json.loads(event["data"])["records"])
            if seen >= count:
                return


def read_v1(srv: LocalServer, session: str, io: str, **headers: str) -> List[Dict[str, Any]]:
    with SSE(srv, session, io, headers={"Timeout-Seconds": "1", **headers}) as sse:
        assert "x-stream-version" not in sse.headers
        return sse.all()


def test_v1_shape_per_record_with_control_in_legacy_form() -> None:
    with LocalServer(wire="v1", ping_interval=0.3) as srv:
        create(srv, "c")
        append(srv, "c", "out", '{"type":"text"}', part_id="p")
        srv.write("c", "out", {"type": "text", "text": "echo: hi"})
        srv.write_control(
            "c", "turn-complete", [["public-access-token", "tok"], ["session-in-event-id", "0"]]
        )
        srv.trim("c", "out", 0)
        append(srv, "c", "out", "after")
        events = read_v1(srv, "c", "out")
        data_events = [e for e in events if e["id"] is not None]
        assert [e["id"] for e in data_events] == ["0", "1", "2", "4"]
        payloads = [json.loads(e["data"]) for e in data_events]
        assert payloads[0] == {"data": '{"type":"text"}', "id": 0}
        assert payloads[1] == {"data": {"type": "text", "text": "echo: hi"}, "id": 1}
        assert payloads[2]["data"]["type"] == "trigger:turn-complete"
        assert payloads[2]["data"]["publicAccessToken"] == "tok"
        assert payloads[2]["data"]["sessionInEventId"] == "0"
        assert payloads[2]["data"]["headers"][0] == ["trigger-control", "turn-complete"]
        assert events[-1]["data"] == "[DONE]"
        with SSE(srv, "c", "out", headers={"Last-Event-ID": "2"}) as sse:
            first = next(e for e in sse.events() if e["id"] is not None)
        assert first["id"] == "4"


def test_v1_idle_stream_gets_comment_pings() -> None:
    with LocalServer(wire="v1", ping_interval=0.2) as srv:
        create(srv, "c")
        events = read_v1(srv, "c", "out")
        assert any(e["comment"] == "ping" for e in events)
        assert events[-1]["data"] == "[DONE]"


def test_fifty_readers_get_every_record_while_appends_continue(server: LocalServer) -> None:
    create(server, "c")
    total = 200
    results: List[List[int]] = []
    lock = threading.Lock()
    ready = threading.Barrier(51)

    def reader() -> None:
        seqs: List[int] = []
        with SSE(server, "c", "out", headers={"Timeout-Seconds": "5"}, timeout=20) as sse:
            ready.wait()
            for event in sse.events():
                if event["event"] == "batch":
                    seqs.extend(r["seq_num"] for r in json.loads(event["data"])["records"])
                    if seqs and seqs[-1] == total - 1:
                        break
        with lock:
            results.append(seqs)

    threads = [threading.Thread(target=reader) for _ in range(50)]
    for t in threads:
        t.start()
    ready.wait()
    with_http = 0
    for i in range(total):
        if i % 4 == 0:
            append(server, "c", "out", str(i))
            with_http += 1
        else:
            server.append("c", "out", str(i))
    for t in threads:
        t.join(30)
    assert len(results) == 50
    assert all(seqs == list(range(total)) for seqs in results)
    assert server.request_counts["read"] >= 50 and with_http == total // 4
