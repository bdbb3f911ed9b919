"""Readers against scripted servers: latency, reconnects, cursors, bad input, cleanup."""

from __future__ import annotations

import gc
import json
import logging
import signal
import threading
import time
import tracemalloc
from typing import Any, Dict, List

import pytest

from sessions_client import Session
from sessions_client import _reader as reader_module
from sessions_client._reader import BACKOFF
from sessions_client.cursor import MemoryCursor
from sessions_client.errors import (
    APIError,
    ConfigurationError,
    NetworkError,
    ProtocolError,
    RateLimitedError,
    ReaderTimeoutError,
    ServerError,
)

from .scripted import (
    DONE,
    Conn,
    Request,
    idle_stream,
    keep_alive,
    streams,
    v1_event,
    v2_batch,
    v2_ping,
)

SECRET = "tr_dev_readersSecret"
V2 = {"X-Stream-Version": "v2"}


def session_for(srv, sleeps=None, **kwargs: Any) -> Session:
    if sleeps is not None:
        kwargs["sleep"] = sleeps
    return Session("s", token=kwargs.pop("token", SECRET), api_url=srv.url, **kwargs)


def take(iterator, n: int) -> List[Dict[str, Any]]:
    out = []
    for record in iterator:
        out.append(record)
        if len(out) == n:
            break
    return out


def send_v1(conn: Conn, seqs, chunked: bool = True, done: bool = True, **headers: str):
    conn.start_stream(chunked, headers=headers or None)
    for seq in seqs:
        conn.body(v1_event(seq, {"n": seq}))
    if done:
        conn.body(DONE)
    conn.end_stream()


# ---------------------------------------------------------------- latency


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
@pytest.mark.parametrize("shape", ["v1", "v2"])
def test_records_on_an_idle_stream_arrive_at_once(scripted, chunked, shape):
    # In lockstep, not against a clock: the server sends one record, then nothing until
    # the reader has yielded it. A reader that held a record back until more bytes came
    # (a buffer to fill, a poll) would never yield it: the server gives up after 5 s and
    # the reader's total_timeout ends the test.
    delivered = [threading.Event() for _ in range(6)]
    held_back: List[int] = []

    def script(conn: Conn, request: Request) -> None:
        conn.start_stream(chunked, headers=V2 if shape == "v2" else None)
        for seq in range(6):
            conn.body(v2_batch([(seq, {"n": seq})]) if shape == "v2" else v1_event(seq, seq))
            if not delivered[seq].wait(5):
                held_back.append(seq)
                break
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(script))
    got = []
    for record in session_for(srv).iter_out(total_timeout=10):
        got.append(record["seq"])
        delivered[record["seq"]].set()
        if record["seq"] == 5:
            break
    assert held_back == []
    assert got == list(range(6))


# ---------------------------------------------------------------- reconnects


def test_reconnect_sends_the_last_seq_never_the_s2_triple(scripted):
    def first(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(3, "a"), (4, "b")], tail=5))  # event id is "3,1,1"
        conn.body(DONE)
        conn.end_stream()

    def second(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(5, "c")]))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(first, second))
    records = take(session_for(srv).iter_out(), 3)
    assert [r["seq"] for r in records] == [3, 4, 5]
    assert [r["data"] for r in records] == ["a", "b", "c"]
    first_request, second_request = srv.requests
    assert "last-event-id" not in first_request.headers
    assert second_request.headers["last-event-id"] == "4"
    assert first_request.headers["accept"] == "text/event-stream"
    assert first_request.headers["timeout-seconds"] == "60"
    assert first_request.path == "/realtime/v1/sessions/s/out"


def test_normal_end_reconnects_immediately(scripted, sleeps):
    srv = scripted(streams(lambda c, r: send_v1(c, [0]), lambda c, r: send_v1(c, [1])))
    records = take(session_for(srv, sleeps).iter_in(), 2)
    assert [r["seq"] for r in records] == [0, 1]
    assert sleeps.delays == []
    assert srv.requests[1].path == "/realtime/v1/sessions/s/in"


def test_replayed_records_are_not_repeated(scripted):
    srv = scripted(
        streams(lambda c, r: send_v1(c, [0, 1]), lambda c, r: send_v1(c, [0, 1, 2, 3], done=False))
    )
    records = take(session_for(srv).iter_out(), 4)
    assert [r["seq"] for r in records] == [0, 1, 2, 3]


@pytest.mark.parametrize("window, expected", [(1000, [0, 1, 3]), (0, [0, 1, 2, 3])])
def test_dedup_window_skips_part_ids_already_delivered(scripted, window, expected):
    def first(conn: Conn, request: Request) -> None:
        conn.start_stream(False)
        conn.body(v1_event(0, "a", "pa") + v1_event(1, "b", "pb"))
        conn.end_stream()

    def second(conn: Conn, request: Request) -> None:
        conn.start_stream(False)
        conn.body(v1_event(2, "b again", "pb") + v1_event(3, "c", "pc"))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(first, second))
    cursor = MemoryCursor()
    iterator = session_for(srv).iter_out(dedup_window=window, cursor=cursor)
    records = take(iterator, len(expected))
    iterator.close()
    assert [r["seq"] for r in records] == expected
    assert cursor.get() == 3


def _batch_with_ids(items) -> bytes:
    records = [
        {"seq_num": seq, "body": json.dumps({"data": json.dumps(seq), "id": pid})}
        for seq, pid in items
    ]
    return f"event: batch\ndata: {json.dumps({'records': records})}\n\n".encode()


def test_a_part_id_repeated_inside_one_batch_is_delivered_once(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(_batch_with_ids([(0, "a"), (1, "b"), (2, "a"), (3, "c")]))
        conn.body(_batch_with_ids([(4, "b"), (5, "d")]))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    assert [r["seq"] for r in take(session_for(srv).iter_out(), 4)] == [0, 1, 3, 5]


def test_the_dedup_window_is_bounded(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(_batch_with_ids([(i, f"id{i}") for i in range(6)]))
        conn.body(_batch_with_ids([(6, "id5"), (7, "id0")]))  # id0 left the window
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    records = take(session_for(srv).iter_out(dedup_window=2), 7)
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4, 5, 7]


def test_backoff_delays_double_to_the_cap_and_reset(scripted, sleeps):
    delays = [BACKOFF.backoff(n, lambda: 0.0) for n in range(1, 9)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert BACKOFF.backoff(1, lambda: 1.0) == pytest.approx(0.05)

    def unavailable(conn: Conn, request: Request) -> None:
        conn.respond_json(503, {"error": "down"})

    def broken(conn: Conn, request: Request) -> None:
        send_v1(conn, [0], done=False)  # opens, then ends without [DONE]

    srv = scripted(
        streams(unavailable, unavailable, broken, unavailable, lambda c, r: send_v1(c, [1]))
    )
    assert [r["seq"] for r in take(session_for(srv, sleeps).iter_out(), 2)] == [0, 1]
    # The count restarts once a stream opens: the break after it waits as the first failure.
    assert len(sleeps.delays) == 4
    assert 0.05 <= sleeps.delays[0] <= 0.1 < sleeps.delays[1] <= 0.2
    assert 0.05 <= sleeps.delays[2] <= 0.1 < sleeps.delays[3] <= 0.2


def test_failures_back_off_then_recover(scripted, sleeps):
    def unavailable(conn: Conn, request: Request) -> None:
        conn.respond_json(503, {"error": "down"})

    srv = scripted(streams(unavailable, unavailable, unavailable, lambda c, r: send_v1(c, [0])))
    records = take(session_for(srv, sleeps).iter_out(), 1)
    assert records[0]["seq"] == 0
    assert len(sleeps.delays) == 3
    assert 0.05 <= sleeps.delays[0] <= 0.1
    assert 0.1 <= sleeps.delays[1] <= 0.2
    assert 0.2 <= sleeps.delays[2] <= 0.4


def test_retry_after_on_a_stream_429_is_honoured(scripted, sleeps):
    def limited(conn: Conn, request: Request) -> None:
        conn.respond_json(429, {"error": "slow"}, {"Retry-After": "2"})

    srv = scripted(streams(limited, lambda c, r: send_v1(c, [0])))
    take(session_for(srv, sleeps).iter_out(), 1)
    assert sleeps.delays == [2.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_permanent_statuses_raise_at_once(scripted, sleeps, status):
    def refuse(conn: Conn, request: Request) -> None:
        conn.respond_json(status, {"error": f"refused {status}"})

    srv = scripted(streams(refuse, refuse))
    with pytest.raises(APIError) as info:
        take(session_for(srv, sleeps).iter_out(), 1)
    assert info.value.status == status
    assert info.value.message == f"refused {status}"
    assert len(srv.requests) == 1
    assert sleeps.delays == []


def test_error_event_is_transient(scripted, sleeps):
    def failing(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(b"event: error\ndata: storage unavailable\n\n")
        conn.end_stream()

    srv = scripted(streams(failing, lambda c, r: send_v1(c, [0])))
    assert take(session_for(srv, sleeps).iter_out(), 1)[0]["seq"] == 0
    assert len(sleeps.delays) == 1


def test_max_retries_raises_the_last_error(scripted, sleeps):
    def unavailable(conn: Conn, request: Request) -> None:
        conn.respond_json(502, {"error": "bad gateway"})

    srv = scripted(streams(*[unavailable] * 10))
    with pytest.raises(ServerError) as info:
        take(session_for(srv, sleeps).iter_out(max_retries=2), 1)
    assert info.value.status == 502
    assert len(srv.requests) == 3
    assert len(sleeps.delays) == 2


def test_max_retries_on_an_unreachable_server(closed_port, sleeps):
    session = Session("s", token=SECRET, api_url=f"http://127.0.0.1:{closed_port}", sleep=sleeps)
    with pytest.raises(NetworkError):
        take(session.iter_out(max_retries=0), 1)
    assert sleeps.delays == []


def test_a_stalled_stream_is_reconnected(scripted):
    def stalls(conn: Conn, request: Request) -> None:
        conn.start_stream(True)
        conn.body(v1_event(0, "a"))
        conn.wait_closed_by_peer(10)  # no bytes, no close

    srv = scripted(streams(stalls, lambda c, r: send_v1(c, [1], done=False)))
    started = time.monotonic()
    records = take(session_for(srv).iter_out(stall_timeout=0.3), 2)
    assert [r["seq"] for r in records] == [0, 1]
    assert time.monotonic() - started < 3
    assert srv.requests[1].headers["last-event-id"] == "0"


def test_v2_streams_use_the_short_stall_window_by_default(scripted, monkeypatch):
    monkeypatch.setattr(reader_module, "V2_STALL_TIMEOUT", 0.3)

    def stalls(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a")]))
        conn.wait_closed_by_peer(10)

    def rest(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(1, "b")]))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stalls, rest))
    started = time.monotonic()
    assert [r["seq"] for r in take(session_for(srv).iter_out(), 2)] == [0, 1]
    assert time.monotonic() - started < 3


def test_default_v2_stall_window_tolerates_30_s_of_silence():
    # Production pings every 5-15 s once a reader is at the live edge (PROTOCOL.md).
    assert reader_module.ReaderOptions("/x").stall("v2") >= 30
    assert reader_module.ReaderOptions("/x", follow=False).stall("v2") >= 30


def test_pings_20_s_apart_hold_a_v2_stream_open_without_a_reconnect(scripted, monkeypatch):
    # Time scaled by 1/50 (the stall is a socket timeout, real time): the default stall
    # window becomes 0.7 s and pings come 0.4 s apart, as 20 s apart against 35 s.
    scale = 0.02
    monkeypatch.setattr(reader_module, "V2_STALL_TIMEOUT", reader_module.V2_STALL_TIMEOUT * scale)
    pinged = threading.Event()

    def pings(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a")]))
        for _ in range(4):
            time.sleep(20 * scale)
            conn.body(v2_ping(1))
        pinged.set()
        conn.body(v2_batch([(1, "b")]))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(pings))
    records = take(session_for(srv).iter_out(), 2)
    assert [r["seq"] for r in records] == [0, 1]
    assert pinged.is_set()
    assert len(srv.requests) == 1, "no reconnect"


def test_error_event_message_is_reported(scripted, caplog):
    error = json.dumps({"code": "STREAM_UNAVAILABLE", "message": "storage unavailable"})

    def fails(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(f"event: error\ndata: {error}\n\n".encode())
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(fails))
    with pytest.raises(NetworkError, match="storage unavailable") as info:
        take(session_for(srv).iter_out(max_retries=0), 1)
    assert "STREAM_UNAVAILABLE" not in str(info.value)


def test_trimmed_stream_warns_and_calls_on_trim(scripted, caplog):
    def first(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a"), (1, "b")]) + DONE)
        conn.end_stream()

    def second(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(10, "k")]))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(first, second))
    trims = []
    with caplog.at_level(logging.WARNING, logger="sessions_client"):
        records = take(session_for(srv).iter_out(on_trim=lambda e, g: trims.append((e, g))), 3)
    assert [r["seq"] for r in records] == [0, 1, 10]
    assert trims == [(2, 10)]
    assert "trimmed" in caplog.text


def test_a_command_record_at_the_expected_seq_is_not_a_trim(scripted, caplog):
    def script(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(5, None), (6, "x")], headers={5: [["", "fence"]]}))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(script))
    trims = []
    with caplog.at_level(logging.WARNING, logger="sessions_client"):
        records = take(
            session_for(srv).iter_out(last_event_id=4, on_trim=lambda e, g: trims.append(g)), 1
        )
    assert records[0]["seq"] == 6
    assert trims == [] and "trimmed" not in caplog.text


# ---------------------------------------------------------------- cursors and control


def test_command_records_move_the_cursor(scripted):
    def first(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a"), (1, None)], headers={1: [["", "trim"]]}) + DONE)
        conn.end_stream()

    def second(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(2, "c")]))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(first, second))
    cursor = MemoryCursor()
    iterator = session_for(srv).iter_out(cursor=cursor)
    assert [r["seq"] for r in take(iterator, 2)] == [0, 2]
    assert srv.requests[1].headers["last-event-id"] == "1"
    assert cursor.get() == 1
    iterator.close()
    assert cursor.get() == 2


def test_cursor_is_stored_only_when_the_consumer_is_done(scripted):
    srv = scripted(streams(lambda c, r: send_v1(c, [6, 7, 8], done=False)))
    cursor = MemoryCursor(5)
    iterator = session_for(srv).iter_out(cursor=cursor)
    assert next(iterator)["seq"] == 6
    assert cursor.get() == 5  # still processing 6
    assert next(iterator)["seq"] == 7
    assert cursor.get() == 6
    iterator.close()
    assert cursor.get() == 7
    assert srv.requests[0].headers["last-event-id"] == "5"


def test_last_event_id_wins_over_the_cursor(scripted):
    srv = scripted(streams(lambda c, r: send_v1(c, [3], done=False)))
    take(session_for(srv).iter_out(cursor=MemoryCursor(1), last_event_id=2), 1)
    assert srv.requests[0].headers["last-event-id"] == "2"


def _turn_complete(seq: int, token: str) -> bytes:
    headers = [["trigger-control", "turn-complete"], ["public-access-token", token]]
    return v2_batch([(seq, None)], headers={seq: headers})


def test_control_records_are_routed_and_refresh_a_public_token(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(
            v2_batch([(0, "a")]) + _turn_complete(1, "eyJ.fresh.token") + v2_batch([(2, "b")])
        )
        conn.wait_closed_by_peer(10)

    def appended(conn: Conn, request: Request) -> None:
        conn.respond_json(200, {"ok": True, "seq": 9})

    srv = scripted(streams(stream, appended))
    session = session_for(srv, token="eyJ.old.token")
    controls = []
    records = take(session.iter_out(on_control=controls.append), 2)
    assert [r["seq"] for r in records] == [0, 2]
    assert [c["control"] for c in controls] == ["turn-complete"]
    assert controls[0]["data"] is None and controls[0]["seq"] == 1
    assert session.token == "eyJ.fresh.token"
    session.append_in("next")
    assert srv.requests[1].headers["authorization"] == "Bearer eyJ.fresh.token"


def test_include_control_yields_control_records(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a")]) + _turn_complete(1, "eyJ.t"))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    records = take(session_for(srv).iter_out(include_control=True), 2)
    assert [r["control"] for r in records] == [None, "turn-complete"]


def test_a_secret_key_is_never_replaced_by_a_public_token(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(_turn_complete(0, "eyJ.public") + v2_batch([(1, "b")]))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    session = session_for(srv)
    take(session.iter_out(), 1)
    assert session.token == SECRET


def test_peek_settled_ends_a_settled_session(scripted):
    def settled(conn: Conn, request: Request) -> None:
        send_v1(conn, [4], **{"X-Session-Settled": "true"})

    srv = scripted(streams(settled))
    records = list(session_for(srv).iter_out(last_event_id=3, peek_settled=True))
    assert [r["seq"] for r in records] == [4]
    assert srv.requests[0].headers["x-peek-settled"] == "1"
    assert len(srv.requests) == 1


def test_peek_settled_is_sent_only_when_resuming(scripted):
    srv = scripted(streams(lambda c, r: send_v1(c, [0], done=False)))
    take(session_for(srv).iter_out(peek_settled=True), 1)
    assert "x-peek-settled" not in srv.requests[0].headers


# ---------------------------------------------------------------- follow=False


def test_not_following_v1_uses_a_short_window_and_returns_at_its_end(scripted):
    srv = scripted(streams(lambda c, r: send_v1(c, [0, 1])))
    records = list(session_for(srv).iter_out(follow=False))
    assert [r["seq"] for r in records] == [0, 1]
    assert srv.requests[0].headers["timeout-seconds"] == "1"
    assert len(srv.requests) == 1


def test_not_following_v2_returns_once_caught_up_with_the_tail(scripted):
    closed = threading.Event()

    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a"), (1, "b")], tail=2))
        if conn.wait_closed_by_peer(10):
            closed.set()

    srv = scripted(streams(stream))
    started = time.monotonic()
    records = list(session_for(srv).iter_out(follow=False))
    assert [r["seq"] for r in records] == [0, 1]
    assert time.monotonic() - started < 0.9
    assert closed.wait(2)


def test_not_following_v2_on_a_ping_when_caught_up(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_ping(8))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    started = time.monotonic()
    assert list(session_for(srv).iter_out(follow=False, last_event_id=7)) == []
    assert time.monotonic() - started < 0.9


def test_not_following_with_a_short_stall_timeout_returns_at_the_window_end(scripted):
    def window(conn: Conn, request: Request) -> None:
        conn.start_stream(True)
        conn.body(v1_event(0, "a"))
        time.sleep(1.0)  # the server's idle 1-s window, longer than the stall timeout
        conn.body(DONE)
        conn.end_stream()

    srv = scripted(streams(window))
    started = time.monotonic()
    records = list(session_for(srv).iter_out(follow=False, stall_timeout=0.3))
    assert [r["seq"] for r in records] == [0]
    assert time.monotonic() - started < 3
    assert len(srv.requests) == 1  # the idle window was not taken for a stall


def test_not_following_reader_resumes_after_a_stall_before_any_record(scripted):
    srv = scripted(streams(idle_stream, lambda c, r: send_v1(c, [0, 1])))
    started = time.monotonic()
    records = list(session_for(srv).iter_out(follow=False, stall_timeout=0.3))
    assert [r["seq"] for r in records] == [0, 1]  # a stall is never "caught up"
    assert len(srv.requests) == 2
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "stall_timeout, follow, window", [(10, True, "9"), (1.5, True, "1"), (90, True, "60")]
)
def test_long_poll_window_ends_before_the_stall_timeout(scripted, stall_timeout, follow, window):
    srv = scripted(streams(lambda c, r: send_v1(c, [0], done=False)))
    take(session_for(srv).iter_out(follow=follow, stall_timeout=stall_timeout), 1)
    assert srv.requests[0].headers["timeout-seconds"] == window


def _closed_without_done(conn: Conn, request: Request) -> None:
    conn.start_stream(False)
    conn.end_stream()  # a clean end of the body, no [DONE]


def test_an_end_without_done_is_a_break_not_the_end(scripted, sleeps):
    srv = scripted(streams(_closed_without_done, lambda c, r: send_v1(c, [0, 1, 2])))
    records = list(session_for(srv, sleeps).iter_out(follow=False))
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert len(srv.requests) == 2
    assert len(sleeps.delays) == 1  # backed off like any failure


def test_a_server_that_never_sends_done_exhausts_max_retries(scripted, sleeps):
    srv = scripted(streams(*[_closed_without_done] * 5))
    with pytest.raises(NetworkError) as info:
        list(session_for(srv, sleeps).iter_out(follow=False, max_retries=2))
    assert "[DONE]" in str(info.value)
    assert len(srv.requests) == 3


def test_not_following_v2_reads_past_an_early_ping_without_a_cursor(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_ping(3) + b"event: ping\ndata: {}\n\n" + v2_batch([(0, "a"), (1, "b")]))
        conn.body(v2_batch([(2, "c")], tail=3))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    records = list(session_for(srv).iter_out(follow=False))
    assert [r["seq"] for r in records] == [0, 1, 2]


def test_not_following_v2_empty_channel_ends_on_a_zero_tail_ping(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_ping(0))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    started = time.monotonic()
    assert list(session_for(srv).iter_out(follow=False)) == []
    assert time.monotonic() - started < 0.9


def test_not_following_fails_after_a_drains_retries_when_the_server_is_down(closed_port, sleeps):
    session = Session("s", token=SECRET, api_url=f"http://127.0.0.1:{closed_port}", sleep=sleeps)
    with pytest.raises(NetworkError):
        list(session.iter_out(follow=False))
    assert len(sleeps.delays) == session.read_retry.max_attempts - 1


def test_following_keeps_retrying_an_unreachable_server(closed_port, sleeps):
    session = Session("s", token=SECRET, api_url=f"http://127.0.0.1:{closed_port}", sleep=sleeps)
    with pytest.raises(ReaderTimeoutError):
        list(session.iter_out(total_timeout=1.0))
    assert len(sleeps.delays) > session.read_retry.max_attempts


def test_not_following_ends_when_only_pings_and_junk_come(scripted):
    stop = threading.Event()

    def pings(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a")]))
        while not stop.wait(0.1):  # no tail, no [DONE]: no progress
            conn.body(b"event: ping\ndata: {}\n\nevent: junk\ndata: x\n\n")

    srv = scripted(streams(pings))
    started = time.monotonic()
    try:
        records = list(session_for(srv).iter_out(follow=False))
    finally:
        stop.set()
    assert [r["seq"] for r in records] == [0]
    assert time.monotonic() - started < 3
    assert len(srv.requests) == 1


def test_a_gap_within_one_v2_connection_is_reported_as_a_trim(scripted, caplog):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a"), (1, "b")]))
        conn.body(v2_batch([(5, "f")]))
        conn.wait_closed_by_peer(10)

    trims: List[Any] = []
    srv = scripted(streams(stream))
    with caplog.at_level(logging.WARNING, logger="sessions_client.reader"):
        records = take(session_for(srv).iter_out(on_trim=lambda a, b: trims.append((a, b))), 3)
    assert [r["seq"] for r in records] == [0, 1, 5]
    assert trims == [(2, 5)]
    assert "skipped ahead" in caplog.text


def test_a_seq_going_back_with_new_content_is_a_protocol_error(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a"), (1, "b")]))
        batch = v2_batch([(1, "other")]).replace(b'\\"id\\": \\"p1\\"', b'\\"id\\": \\"q1\\"')
        conn.body(batch)
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    got: List[Dict[str, Any]] = []
    with pytest.raises(ProtocolError, match="went back"):
        for record in session_for(srv).iter_out():
            got.append(record)
    assert [r["seq"] for r in got] == [0, 1]


def test_a_replayed_event_within_one_connection_is_skipped_quietly(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a"), (1, "b")]) + v2_batch([(1, "b"), (2, "c")]))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    assert [r["seq"] for r in take(session_for(srv).iter_out(), 3)] == [0, 1, 2]


# ---------------------------------------------------------------- bad server input


def test_garbage_lines_and_comments_are_skipped(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True)
        conn.body(b"garbage without colon\n: a comment\nunknown: field\n\n" + v1_event(0, "ok"))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    assert take(session_for(srv).iter_out(), 1)[0]["data"] == "ok"


@pytest.mark.parametrize(
    "payload",
    [
        b"event: batch\ndata: {not json\n\n",
        b'event: batch\ndata: {"records": [{"body": "{}"}]}\n\n',
        b'event: batch\ndata: {"records": [{"seq_num": "5", "body": "{}"}]}\n\n',
        b'event: batch\ndata: {"records": [{"seq_num": 5, "body": "{broken"}]}\n\n',
    ],
    ids=["invalid-batch-json", "missing-seq", "string-seq", "invalid-body-json"],
)
def test_bad_batches_are_protocol_errors_and_keep_the_cursor(scripted, payload):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "fine")]) + payload)
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(stream))
    cursor = MemoryCursor()
    iterator = session_for(srv).iter_out(cursor=cursor)
    assert next(iterator)["seq"] == 0
    with pytest.raises(ProtocolError):
        next(iterator)
    assert cursor.get() == 0
    assert len(srv.requests) == 1


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("text/html", b"<html><body>Login</body></html>"),
        ("application/json", b'{"records": []}'),
    ],
)
def test_a_200_with_the_wrong_content_type_is_a_protocol_error(scripted, content_type, body):
    def answer(conn: Conn, request: Request) -> None:
        conn.respond(200, body, {"Content-Type": content_type})

    srv = scripted(keep_alive(answer))
    with pytest.raises(ProtocolError) as info:
        take(session_for(srv).iter_out(), 1)
    assert content_type in str(info.value)
    assert len(srv.requests) == 1


def test_an_oversize_event_is_a_protocol_error_with_bounded_memory(scripted):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True)
        line = b"data: " + b"x" * (1024 * 1024)
        for _ in range(16):  # 16 MiB without a blank line
            conn.body(line)

    srv = scripted(streams(stream))
    session = session_for(srv, max_event_bytes=256 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            take(session.iter_out(), 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


# ---------------------------------------------------------------- total_timeout


def _keeps_pinging(shape: str, closed: threading.Event, first: bytes = b""):
    """A stream that sends ``first``, then a ping every 50 ms until the client leaves."""

    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2 if shape == "v2" else None)
        if first:
            conn.body(first)
        for _ in range(400):  # at most ~20 s
            time.sleep(0.05)
            try:
                conn.body(v2_ping(3) if shape == "v2" else b": ping\n\n")
            except OSError:
                closed.set()
                return

    return stream


def _timed_out(iterator, got: List[Dict[str, Any]]) -> ReaderTimeoutError:
    with pytest.raises(ReaderTimeoutError) as info:
        for record in iterator:
            got.append(record)
    return info.value


@pytest.mark.parametrize("shape", ["v1", "v2"])
def test_total_timeout_ends_a_following_reader_whose_server_keeps_pinging(scripted, shape):
    closed = threading.Event()
    first = (
        v2_batch([(0, "a"), (1, "b"), (2, "c")], tail=3)
        if shape == "v2"
        else v1_event(0, "a") + v1_event(1, "b") + v1_event(2, "c")
    )
    srv = scripted(streams(_keeps_pinging(shape, closed, first)))
    cursor = MemoryCursor()
    got: List[Dict[str, Any]] = []
    started = time.monotonic()
    error = _timed_out(session_for(srv).iter_out(total_timeout=0.5, cursor=cursor), got)
    elapsed = time.monotonic() - started
    assert isinstance(error, TimeoutError)
    assert "total_timeout" in str(error) and "0.5" in str(error)
    assert 0.5 <= elapsed < 1.5, elapsed
    assert [r["data"] for r in got] == ["a", "b", "c"]
    assert cursor.get() == 2, "the cursor holds the last record consumed"
    assert len(srv.requests) == 1, "one connection, no reconnect"
    assert closed.wait(2), "the connection is closed when the reader gives up"


@pytest.mark.parametrize("shape", ["v1", "v2"])
def test_total_timeout_ends_a_stalled_stream_long_before_the_stall_timeout(scripted, shape):
    closed = threading.Event()

    def stalls(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2 if shape == "v2" else None)
        conn.body(v2_batch([(0, "a")]) if shape == "v2" else v1_event(0, "a"))
        if conn.wait_closed_by_peer(20):  # no bytes, no close
            closed.set()

    srv = scripted(streams(stalls))
    got: List[Dict[str, Any]] = []
    started = time.monotonic()
    error = _timed_out(session_for(srv).iter_out(total_timeout=0.5, stall_timeout=30), got)
    assert 0.5 <= time.monotonic() - started < 1.5
    assert error.__cause__ is None, "a wait cut short by the deadline is no stall"
    assert [r["seq"] for r in got] == [0]
    assert len(srv.requests) == 1
    assert closed.wait(2)


def test_total_timeout_bounds_a_server_that_never_answers(scripted):
    def silent(conn: Conn, request: Request) -> None:
        conn.wait_closed_by_peer(20)  # the request was read; no status line ever comes

    srv = scripted(streams(silent, silent, silent))
    started = time.monotonic()
    error = _timed_out(session_for(srv).iter_out(total_timeout=0.5), [])
    assert 0.5 <= time.monotonic() - started < 1.5
    assert isinstance(error.__cause__, NetworkError)


def test_total_timeout_cuts_a_long_retry_after(scripted):
    def limited(conn: Conn, request: Request) -> None:
        conn.respond_json(429, {"error": "slow down"}, {"Retry-After": "30"})

    srv = scripted(streams(limited, limited))
    started = time.monotonic()
    error = _timed_out(session_for(srv).iter_out(total_timeout=0.5), [])
    assert 0.5 <= time.monotonic() - started < 1.5
    assert isinstance(error.__cause__, RateLimitedError)
    assert len(srv.requests) == 1


def test_total_timeout_bounds_the_backoff_on_an_unreachable_server(closed_port):
    session = Session("s", token=SECRET, api_url=f"http://127.0.0.1:{closed_port}")
    started = time.monotonic()
    error = _timed_out(session.iter_out(total_timeout=0.6), [])
    assert 0.6 <= time.monotonic() - started < 1.6
    assert isinstance(error.__cause__, NetworkError)


def test_backoff_pauses_never_exceed_the_time_left(closed_port, sleeps):
    session = Session("s", token=SECRET, api_url=f"http://127.0.0.1:{closed_port}", sleep=sleeps)
    with pytest.raises(ReaderTimeoutError):
        take(session.iter_out(total_timeout=0.3), 1)
    assert sleeps.delays, "the reader backed off"
    assert max(sleeps.delays) <= 0.3


def test_total_timeout_is_checked_after_each_consumed_record(scripted):
    srv = scripted(streams(_open_then_watch(threading.Event())))
    cursor = MemoryCursor()
    iterator = session_for(srv).iter_out(total_timeout=0.3, cursor=cursor)
    assert next(iterator)["seq"] == 0
    time.sleep(0.4)  # a slow consumer; record 1 is already buffered
    with pytest.raises(ReaderTimeoutError):
        next(iterator)
    assert cursor.get() == 0, "record 0 was consumed, record 1 never delivered"


def test_total_timeout_counts_from_the_first_next(scripted):
    srv = scripted(streams(lambda c, r: send_v1(c, [0], done=False)))
    iterator = session_for(srv).iter_out(total_timeout=0.3)
    time.sleep(0.4)
    assert next(iterator)["seq"] == 0


def test_a_not_following_reader_ends_normally_within_its_total_timeout(scripted):
    def caught_up(conn: Conn, request: Request) -> None:
        conn.start_stream(True, headers=V2)
        conn.body(v2_batch([(0, "a"), (1, "b")], tail=2))
        conn.wait_closed_by_peer(10)

    srv = scripted(streams(caught_up))
    records = list(session_for(srv).iter_out(follow=False, total_timeout=5))
    assert [r["seq"] for r in records] == [0, 1]


# ---------------------------------------------------------------- cleanup


def _open_then_watch(closed: threading.Event):
    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True)
        conn.body(v1_event(0, "a") + v1_event(1, "b"))
        if conn.wait_closed_by_peer(10):
            closed.set()

    return stream


def test_break_closes_the_connection(scripted):
    closed = threading.Event()
    srv = scripted(streams(_open_then_watch(closed)))
    for record in session_for(srv).iter_out():
        assert record["seq"] == 0
        break
    assert closed.wait(2)


def test_generator_close_closes_the_connection(scripted):
    closed = threading.Event()
    srv = scripted(streams(_open_then_watch(closed)))
    iterator = session_for(srv).iter_out()
    next(iterator)
    assert not closed.wait(0.2)
    iterator.close()
    assert closed.wait(2)


def test_garbage_collection_closes_the_connection(scripted):
    closed = threading.Event()
    srv = scripted(streams(_open_then_watch(closed)))
    iterator = session_for(srv).iter_out()
    next(iterator)
    del iterator
    gc.collect()
    assert closed.wait(2)


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs the main thread"
)
def test_keyboard_interrupt_closes_the_connection(scripted):
    closed = threading.Event()

    def stream(conn: Conn, request: Request) -> None:
        conn.start_stream(True)
        conn.body(v1_event(0, "a"))
        if conn.wait_closed_by_peer(10):
            closed.set()

    srv = scripted(streams(stream))
    iterator = session_for(srv).iter_out()
    next(iterator)
    main = threading.get_ident()
    timer = threading.Timer(0.3, signal.pthread_kill, args=(main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            next(iterator)  # blocked reading the idle stream
    finally:
        timer.cancel()
    assert closed.wait(2)


# ---------------------------------------------------------------- caller validation


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"timeout_seconds": 0}, ConfigurationError),
        ({"timeout_seconds": 601}, ConfigurationError),
        ({"timeout_seconds": "60"}, TypeError),
        ({"last_event_id": -1}, ConfigurationError),
        ({"last_event_id": 1.5}, TypeError),
        ({"cursor": object()}, TypeError),
        ({"max_retries": -1}, ConfigurationError),
        ({"stall_timeout": 0}, ConfigurationError),
        ({"connect_timeout": -1}, ConfigurationError),
        ({"dedup_window": -5}, ConfigurationError),
        ({"on_control": "nope"}, TypeError),
        ({"total_timeout": 0}, ConfigurationError),
        ({"total_timeout": -1.5}, ConfigurationError),
        ({"total_timeout": float("nan")}, ConfigurationError),
        ({"total_timeout": "5"}, TypeError),
    ],
)
def test_bad_reader_arguments_fail_before_any_request(scripted, kwargs, error):
    srv = scripted(streams())
    session = session_for(srv)
    with pytest.raises(error):
        session.iter_out(**kwargs)
    with pytest.raises(error):
        session.iter_in(**kwargs)
    assert srv.requests == []


def test_a_negative_stored_cursor_is_rejected(scripted):
    class BadCursor:
        def get(self) -> int:
            return -3

        def set(self, seq: int) -> None:
            raise AssertionError("never called")

    srv = scripted(streams())
    with pytest.raises(ConfigurationError):
        session_for(srv).iter_out(cursor=BadCursor())
    assert srv.requests == []


# ---------------------------------------------------------------- drains


def test_drain_pages_until_empty_and_stores_the_cursor(scripted):
    pages = {
        None: [
            {"data": '{"n": 0}', "id": "p0", "seqNum": 0},
            {
                "data": None,
                "id": "",
                "seqNum": 1,
                "headers": [["trigger-control", "turn-complete"]],
            },
        ],
        "1": [{"data": "plain text", "id": "p2", "seqNum": 2}],
        "2": [],
    }

    def answer(conn: Conn, request: Request) -> None:
        after = request.path.partition("afterEventId=")[2] or None
        conn.respond_json(200, {"records": pages[after]})

    srv = scripted(keep_alive(answer))
    cursor = MemoryCursor()
    records = session_for(srv).drain_out(cursor=cursor)
    assert [(r["seq"], r["data"]) for r in records] == [(0, {"n": 0}), (2, "plain text")]
    assert cursor.get() == 2
    assert [r.path for r in srv.requests] == [
        "/realtime/v1/sessions/s/out/records",
        "/realtime/v1/sessions/s/out/records?afterEventId=1",
        "/realtime/v1/sessions/s/out/records?afterEventId=2",
    ]
    with_control = session_for(srv).drain_out(include_control=True)
    assert [r["control"] for r in with_control] == [None, "turn-complete", None]
    assert session_for(srv).drain_out(after=2) == []


def test_drain_with_bad_json_is_a_protocol_error(scripted):
    def answer(conn: Conn, request: Request) -> None:
        conn.respond(200, b"<html>oops</html>", {"Content-Type": "text/html"})

    srv = scripted(keep_alive(answer))
    with pytest.raises(ProtocolError):
        session_for(srv).drain_in()
