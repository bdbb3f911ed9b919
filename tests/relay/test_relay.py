"""sessions_client.wsgi.sse_relay driven by a fake WSGI server loop (iterate, then close)."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from _waiting import eventually

from sessions_client import ConfigurationError, Session
from sessions_client._redact import HIDDEN, redact_tokens
from sessions_client.testing import LocalServer
from sessions_client.wsgi import SSERelay, encode_event, sse_headers, sse_relay

from ._support import client_connections_to


@pytest.fixture
def srv(sessions_server: LocalServer) -> LocalServer:
    return sessions_server


@pytest.fixture
def session(srv: LocalServer) -> Iterator[Session]:
    srv.create_session("relay-1")
    with Session("relay-1", srv.secret_key, srv.url) as s:
        yield s


Event = Dict[str, Any]


def parse(chunk: bytes) -> List[Event]:
    """SSE blocks of one chunk as dicts: id/event/data/retry, or {"comment": text}."""
    events: List[Event] = []
    for block in chunk.decode().split("\n\n"):
        if not block:
            continue
        event: Event = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name == "":
                event.setdefault("comment", value)
            else:
                event[name] = value
        events.append(event)
    return events


def pump(relay: SSERelay, until: int, timeout: float = 10.0) -> List[Tuple[float, Event]]:
    """The fake server loop: take chunks until ``until`` id'd events arrived, then close."""
    got: List[Tuple[float, Event]] = []
    deadline = time.monotonic() + timeout
    try:
        for chunk in relay:
            now = time.monotonic()
            got.extend((now, event) for event in parse(chunk))
            if sum(1 for _, e in got if "id" in e) >= until or now > deadline:
                break
    finally:
        relay.close()
    return got


def ids(got: List[Tuple[float, Event]]) -> List[int]:
    return [int(e["id"]) for _, e in got if "id" in e]


def test_headers_are_an_event_stream_that_no_proxy_buffers() -> None:
    headers = dict(sse_headers())
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    assert not {"Connection", "Transfer-Encoding"} & set(headers)


def test_records_become_events_with_the_seq_as_id_and_the_data_as_json(
    srv: LocalServer, session: Session
) -> None:
    for body in ['{"type": "text", "text": "hé"}', "plain", "42"]:
        srv.append("relay-1", "out", body)
    got = pump(sse_relay(session), until=3)
    assert got[0][1] == {"retry": "2000", "comment": "connected"}
    events = [e for _, e in got if "id" in e]
    assert events == [
        {"id": "0", "data": '{"type":"text","text":"hé"}'},
        {"id": "1", "data": '"plain"'},
        {"id": "2", "data": "42"},
    ]


@pytest.mark.parametrize("header, first", [("1", 2), (" 0 ", 1), ("", 0), (None, 0), (2, 3)])
def test_last_event_id_resumes_right_after_it(
    srv: LocalServer, session: Session, header: Any, first: int
) -> None:
    for i in range(5):
        srv.append("relay-1", "out", str(i))
    assert ids(pump(sse_relay(session, last_event_id=header), until=5 - first)) == list(
        range(first, 5)
    )


@pytest.mark.parametrize("header", ["abc", "-1", "1.5", -1, True, "٣"])
def test_a_last_event_id_that_is_not_a_seq_is_a_configuration_error(
    session: Session, header: Any
) -> None:
    with pytest.raises(ConfigurationError, match="last_event_id"):
        sse_relay(session, last_event_id=header)


@pytest.mark.parametrize(
    "options",
    [
        {"io": "err"},
        {"heartbeat": 0},
        {"heartbeat": "5"},
        {"max_duration": -1},
        {"retry_ms": -5},
        {"upstream_window": 0},
    ],
)
def test_bad_arguments_fail_at_once(session: Session, options: Dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        sse_relay(session, **options)


def test_an_idle_channel_gets_a_heartbeat_comment_every_heartbeat_seconds(
    session: Session,
) -> None:
    relay = sse_relay(session, heartbeat=0.2)
    started = time.monotonic()
    beats: List[float] = []
    try:
        for chunk in relay:
            if parse(chunk)[0].get("comment") == "heartbeat":
                beats.append(time.monotonic())
            if len(beats) == 4:
                break
    finally:
        relay.close()
    gaps = [b - a for a, b in zip([started, *beats], beats)]
    assert all(0.15 <= gap < 0.6 for gap in gaps), gaps


def test_records_keep_the_stream_alive_without_heartbeats(
    srv: LocalServer, session: Session
) -> None:
    relay = sse_relay(session, heartbeat=0.5)
    frames: List[Event] = []
    try:
        for chunk in relay:
            frames.extend(parse(chunk))
            if len(frames) >= 5:
                break
            srv.append("relay-1", "out", "x")  # the next record is at most a moment away
    finally:
        relay.close()
    assert not any(f.get("comment") == "heartbeat" for f in frames)


def test_control_records_are_named_events_with_tokens_hidden(
    srv: LocalServer, session: Session
) -> None:
    srv.append("relay-1", "out", '{"type": "text"}')
    srv.write_control(
        "relay-1",
        "turn-complete",
        [["public-access-token", "pat_secret_value"], ["session-in-event-id", "0"]],
    )
    srv.append("relay-1", "out", "after")
    with_controls = [e for _, e in pump(sse_relay(session, include_control=True), 3) if "id" in e]
    assert [e.get("event") for e in with_controls] == [None, "control", None]
    control = json.loads(with_controls[1]["data"])
    assert control["control"] == "turn-complete"
    assert ["public-access-token", HIDDEN] in control["headers"]
    assert "pat_secret_value" not in json.dumps(with_controls)
    without = [e for _, e in pump(sse_relay(session), 2) if "id" in e]
    assert [int(e["id"]) for e in without] == [0, 2]


def test_redact_tokens_covers_headers_and_legacy_data() -> None:
    record = {
        "seq": 1,
        "data": {"publicAccessToken": "t1", "headers": [["public-access-token", "t2"]]},
        "headers": [["public-access-token", "t3"], ["trigger-control", "turn-complete"]],
        "control": "turn-complete",
    }
    shown = redact_tokens(record)
    assert not any(t in json.dumps(shown) for t in ("t1", "t2", "t3"))
    assert shown["headers"][1] == ["trigger-control", "turn-complete"]
    assert record["headers"][0][1] == "t3", "the input is left alone"
    assert b"t3" not in encode_event(record)


def test_close_stops_the_reader_thread_and_the_upstream_connection(
    srv: LocalServer, session: Session
) -> None:
    srv.append("relay-1", "out", "x")
    relay = sse_relay(session, heartbeat=0.2, upstream_window=0.5)
    assert ids(pump(relay, until=1)) == [0]  # pump() closes it, as a WSGI server does
    assert relay.join(3), "the reader thread outlived close() by more than its window"
    eventually(lambda: client_connections_to(srv.port) == 0, 3)


def test_close_before_the_first_chunk_reads_nothing(srv: LocalServer, session: Session) -> None:
    relay = sse_relay(session)
    relay.close()
    relay.close()
    assert relay.closed
    assert list(relay) == []
    assert srv.request_counts.get("read", 0) == 0


def test_max_duration_ends_the_response(session: Session) -> None:
    relay = sse_relay(session, heartbeat=0.1, max_duration=0.5, upstream_window=1.0)
    started = time.monotonic()
    frames = [event for chunk in relay for event in parse(chunk)]
    assert 0.45 <= time.monotonic() - started < 2
    assert frames[0]["retry"] == "2000"
    assert relay.join(3)


def test_every_record_once_across_upstream_windows_and_cuts(
    srv: LocalServer, session: Session
) -> None:
    for i in range(300):
        srv.append("relay-1", "out", json.dumps({"i": i}))
    srv.faults.cut_stream(after_records=40, count=3)
    relay = sse_relay(session, upstream_window=0.2)
    got: List[int] = []
    try:
        for chunk in relay:
            got.extend(int(e["id"]) for e in parse(chunk) if "id" in e)
            if len(got) < 300:
                time.sleep(0.1)  # a slow browser: upstream windows end while records wait
            if len(got) == 300:
                srv.append("relay-1", "out", "late")
            if len(got) >= 301:
                break
    finally:
        relay.close()
    assert got == list(range(301))


def test_the_in_channel_can_be_relayed(srv: LocalServer, session: Session) -> None:
    srv.append("relay-1", "in", "hello")
    assert ids(pump(sse_relay(session, "in"), until=1)) == [0]


def test_a_failure_the_reader_does_not_retry_ends_with_an_error_event(srv: LocalServer) -> None:
    with Session("session_does_not_exist", srv.secret_key, srv.url) as missing:
        frames = [event for chunk in sse_relay(missing) for event in parse(chunk)]
    assert frames[-1]["event"] == "error"
    error = json.loads(frames[-1]["data"])
    assert error["error"] == "NotFoundError" and error["status"] == 404
    assert srv.secret_key not in json.dumps(frames)


def test_close_from_another_thread_while_next_waits_ends_the_body(session: Session) -> None:
    import threading

    relay = sse_relay(session, heartbeat=0.3, upstream_window=0.5)
    assert next(relay).startswith(b"retry:")
    waiting = threading.Event()

    def close_soon() -> None:
        assert waiting.wait(5)
        relay.close()  # the body is inside next() on the main thread

    closer = threading.Thread(target=close_soon)
    closer.start()
    waiting.set()
    started = time.monotonic()
    rest = list(relay)  # a heartbeat at most, then the end
    assert time.monotonic() - started < 1.5
    assert all(chunk == b": heartbeat\n\n" for chunk in rest)
    closer.join(5)
    assert relay.join(3)
