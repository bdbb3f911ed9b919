"""Session against the embedded LocalServer, in both wire shapes."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
from _waiting import eventually

from sessions_client import Session
from sessions_client.cursor import FileCursor, MemoryCursor
from sessions_client.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ReaderTimeoutError,
    ServerError,
    SessionClosedError,
)
from sessions_client.testing import LocalServer

SECRET = "tr_dev_localTestKey"


@pytest.fixture(params=["v1", "v2"])
def sessions_server_options(request) -> Dict[str, Any]:
    return {"secret_key": SECRET, "wire": request.param, "ping_interval": 0.5}


@pytest.fixture
def srv(sessions_server: LocalServer) -> LocalServer:
    return sessions_server


@pytest.fixture
def sid(srv: LocalServer) -> str:
    return srv.create_session("chat-" + srv.wire)["id"]


@pytest.fixture
def session(srv: LocalServer, sid: str) -> Iterator[Session]:
    with Session(sid, token=SECRET, api_url=srv.url) as s:
        yield s


def strip(records: List[Dict[str, Any]]) -> List[tuple]:
    return [(r["seq"], r["data"], r["control"]) for r in records]


def test_appended_records_read_back_in_every_reader(session, srv):
    values = ["plain text", {"type": "text", "text": "hi"}, [1, 2], "é".encode(), '{"a": 1}']
    results = [session.append_in(v) for v in values]
    seqs = [r["seq"] for r in results]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    streamed = list(session.iter_in(follow=False))
    drained = session.drain_in()
    expected_data = ["plain text", {"type": "text", "text": "hi"}, [1, 2], "é", {"a": 1}]
    assert [r["data"] for r in streamed] == expected_data
    assert [r["seq"] for r in streamed] == seqs
    assert [r["part_id"] for r in drained] == [r["part_id"] for r in results]
    if srv.wire == "v2":  # v1 events carry the seq as the envelope id (PROTOCOL.md 3.1)
        assert [r["part_id"] for r in streamed] == [r["part_id"] for r in results]
    assert strip(streamed) == strip(drained)
    for record in streamed:
        assert set(record) == {"seq", "data", "part_id", "timestamp", "headers", "control"}
        assert record["headers"] == [] and record["control"] is None
    if srv.wire == "v2":
        assert all(isinstance(r["timestamp"], int) for r in streamed)


def test_follow_false_returns_promptly(session, srv):
    for i in range(10):
        session.append_out({"i": i})
    started = time.monotonic()
    records = list(session.iter_out(follow=False))
    assert [r["data"]["i"] for r in records] == list(range(10))
    assert time.monotonic() - started < 2.5
    started = time.monotonic()
    assert list(session.iter_out(follow=False, last_event_id=records[-1]["seq"])) == []
    assert time.monotonic() - started < 2.5


def test_a_following_reader_gets_new_records_quickly(session, srv, sid):
    got: List[float] = []
    sent: List[float] = []
    ready = threading.Event()

    def reader() -> None:
        for record in session.iter_out(timeout_seconds=5):
            if record["data"] == "warm-up":
                ready.set()
                continue
            got.append(time.monotonic() - sent[len(got)])
            if len(got) == 3:
                return

    session.append_out("warm-up")
    thread = threading.Thread(target=reader)
    thread.start()
    assert ready.wait(5)
    for i in range(3):
        time.sleep(0.1)
        sent.append(time.monotonic())
        session.append_out({"n": i})
    thread.join(10)
    assert len(got) == 3
    assert max(got) < 1.0


def test_total_timeout_ends_a_following_reader_on_one_connection(session, srv, sid):
    for i in range(3):
        srv.append(sid, "out", f"r{i}")
    reads = srv.request_counts.get("read", 0)
    got: List[str] = []
    started = time.monotonic()
    with pytest.raises(ReaderTimeoutError):
        for record in session.iter_out(total_timeout=1.2):  # the server pings every 0.5 s
            got.append(record["data"])
    assert 1.2 <= time.monotonic() - started < 2.2
    assert got == ["r0", "r1", "r2"]
    assert srv.request_counts["read"] == reads + 1
    eventually(lambda: srv.open_connections == 0)


def test_connections_are_released_by_break_close_and_gc(session, srv, sid):
    srv.append(sid, "out", "a")
    srv.append(sid, "out", "b")
    assert srv.open_connections == 0

    for _ in session.iter_out():
        eventually(lambda: srv.open_connections == 1)
        break
    eventually(lambda: srv.open_connections == 0)

    iterator = session.iter_out()
    next(iterator)
    assert srv.open_connections == 1
    iterator.close()
    eventually(lambda: srv.open_connections == 0)

    iterator = session.iter_out()
    next(iterator)
    assert srv.open_connections == 1
    del iterator
    eventually(lambda: srv.open_connections == 0)


def test_control_records_and_token_refresh(srv, sid):
    public = srv.mint_token(sid)
    fresh = srv.mint_token(sid, ttl=7200)
    assert public != fresh
    session = Session(sid, token=public, api_url=srv.url)
    session.append_in("question")
    srv.write_control(sid, "turn-complete", headers=[["public-access-token", fresh]])
    controls: List[Dict[str, Any]] = []
    records = list(session.iter_out(follow=False, on_control=controls.append))
    assert records == []
    assert [c["control"] for c in controls] == ["turn-complete"]
    assert session.token == fresh
    assert session.append_in("next")["seq"] is not None
    with_control = list(session.iter_out(follow=False, include_control=True))
    assert [r["control"] for r in with_control] == ["turn-complete"]
    assert [r["control"] for r in session.drain_out(include_control=True)] == ["turn-complete"]
    assert session.drain_out() == []


def test_a_secret_key_session_keeps_its_key(session, srv, sid):
    srv.write_control(sid, "turn-complete", headers=[["public-access-token", srv.mint_token(sid)]])
    list(session.iter_out(follow=False))
    assert session.token == SECRET


def test_trim_is_reported_and_command_records_move_the_cursor(session, srv, sid):
    for i in range(6):
        srv.append(sid, "out", f"r{i}")
    trim_seq = srv.trim(sid, "out", before_seq=4)
    trims: List[tuple] = []
    cursor = MemoryCursor()
    records = list(
        session.iter_out(
            follow=False, last_event_id=0, on_trim=lambda e, g: trims.append((e, g)), cursor=cursor
        )
    )
    assert [r["data"] for r in records] == ["r4", "r5"]
    assert trims == [(1, 4)]
    if srv.wire == "v2":  # the trailing command record moved the cursor
        assert cursor.get() == trim_seq
    else:  # v1 streams never carry command records
        assert cursor.get() == records[-1]["seq"]


def test_sixteen_threads_append_concurrently(srv, sid):
    session = Session(sid, token=SECRET, api_url=srv.url, pool_maxsize=4)
    before = srv.total_connections
    errors: List[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                session.append_in({"t": n, "i": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert srv.total_connections - before <= 4
    data = [(r["data"]["t"], r["data"]["i"]) for r in session.drain_in()]
    assert sorted(data) == [(n, i) for n in range(16) for i in range(20)]
    session.close()


def test_appends_survive_injected_failures_exactly_once(session, srv):
    session.append_retry.initial_delay = 0.01  # type: ignore[misc]
    srv.faults.fail_next(1, status=503, route="append")
    srv.faults.fail_next(1, status=429, route="append", retry_after=0)
    srv.faults.drop_next(1, route="append", process=True)
    result = session.append_in("only once")
    drained = session.drain_in()
    assert [r["data"] for r in drained] == ["only once"]
    assert drained[0]["part_id"] == result["part_id"]
    assert srv.request_counts["append"] >= 4


def test_cut_streams_lose_and_repeat_nothing(session, srv, sid):
    for i in range(30):
        srv.append(sid, "out", str(i))
    srv.faults.cut_stream(after_records=4, count=3)
    records = list(session.iter_out(follow=False))
    assert [r["data"] for r in records] == list(range(30))
    assert srv.request_counts["read"] >= 4


def test_a_stalled_stream_is_detected(session, srv, sid):
    srv.append(sid, "out", "first")
    srv.append(sid, "out", "second")
    srv.faults.stall_stream(5.0, after_bytes=1)
    started = time.monotonic()
    # 1.5 s: longer than the 1-s window of a non-following reader, far below the 5 s stall
    records = list(session.iter_out(follow=False, stall_timeout=1.5))
    assert [r["data"] for r in records] == ["first", "second"]
    assert time.monotonic() - started < 4


def test_max_retries_gives_up(session, srv):
    session._sleep = lambda s: None  # type: ignore[method-assign]
    srv.faults.fail_next(5, status=503, route="read")
    with pytest.raises(ServerError):
        list(session.iter_out(follow=False, max_retries=2))
    assert srv.request_counts["read"] == 3


def test_reader_recovers_when_the_server_restarts(tmp_path):
    db = str(tmp_path / "sessions.db")
    first = LocalServer(secret_key=SECRET, db=db, wire="v2", ping_interval=0.5)
    port = first.port
    sid = first.create_session("restart")["id"]
    first.append(sid, "out", "before")
    session = Session(sid, token=SECRET, api_url=first.url)
    received: List[Any] = []
    done = threading.Event()

    def reader() -> None:
        for record in session.iter_out(timeout_seconds=5):
            received.append(record["data"])
            if record["data"] == "after":
                done.set()
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    eventually(lambda: received == ["before"])
    first.close()
    time.sleep(0.3)
    second = LocalServer(secret_key=SECRET, db=db, wire="v2", port=port, ping_interval=0.5)
    try:
        second.append(sid, "out", "after")
        assert done.wait(10)
        thread.join(5)
        assert received == ["before", "after"]
    finally:
        second.close()


def test_peek_settled_ends_after_a_turn_complete(session, srv, sid):
    first = srv.append(sid, "out", "reply")
    srv.write_control(sid, "turn-complete")
    started = time.monotonic()
    records = list(session.iter_out(last_event_id=first - 1 if first else 0, peek_settled=True))
    assert time.monotonic() - started < 3
    assert all(r["control"] is None for r in records)


def test_file_cursor_resumes_where_the_last_run_stopped(session, srv, sid, tmp_path):
    for i in range(5):
        srv.append(sid, "out", str(i))
    cursor = FileCursor(str(tmp_path / "cursor"))
    iterator = session.iter_out(follow=False, cursor=cursor)
    assert [next(iterator)["data"] for _ in range(3)] == [0, 1, 2]
    iterator.close()  # done with record 2
    srv.append(sid, "out", "5")
    rest = [r["data"] for r in session.iter_out(follow=False, cursor=cursor)]
    assert rest == [3, 4, 5]
    assert session.drain_out(cursor=FileCursor(str(tmp_path / "other"))) != []


def test_errors_are_typed(srv, sid):
    public = srv.mint_token(sid)
    with pytest.raises(PermissionDeniedError):
        Session(sid, token=public, api_url=srv.url).append_out("x")
    with pytest.raises(AuthenticationError):
        Session(sid, token="tr_dev_wrongKey", api_url=srv.url).append_in("x")
    with pytest.raises(NotFoundError):
        list(Session("session_doesnotexist", token=SECRET, api_url=srv.url).iter_out())
    srv.close_session(sid)
    with pytest.raises(SessionClosedError):
        Session(sid, token=SECRET, api_url=srv.url).append_in("x")


def test_the_token_never_reaches_the_logs(session, srv, sid, caplog):
    caplog.set_level(logging.DEBUG)
    session.append_in("x")
    list(session.iter_in(follow=False))
    session.drain_in()
    srv.faults.fail_next(1, status=503, route="append")
    session.append_in("y")
    with pytest.raises(AuthenticationError) as info:
        Session(sid, token="tr_dev_wrongKey", api_url=srv.url).append_in("x")
    assert SECRET not in caplog.text and "tr_dev_wrongKey" not in caplog.text
    assert "tr_dev_wrongKey" not in str(info.value)


def test_drain_pages_yield_one_server_answer_at_a_time(srv: LocalServer, session: Session) -> None:
    sid = session.session_id
    for n in range(2100):
        srv.append(sid, "out", f'{{"n": {n}}}')
    srv.write_control(sid, "turn-complete")
    pages = list(session.drain_out_pages())
    assert [len(p) for p in pages] == [2100]  # as production: everything up to the tail
    assert [r["data"]["n"] for p in pages for r in p] == list(range(2100))
    tail = list(session.drain_out_pages(after=2050, include_control=True))
    assert [r["control"] for r in tail[-1]][-1] == "turn-complete"
    assert list(session.drain_out_pages(after=2099)) == []
    assert list(session.drain_in_pages()) == []
    cursor = MemoryCursor()
    assert len(session.drain_out(cursor=cursor)) == 2100
    assert cursor.get() == 2100  # moved past the trailing control record
