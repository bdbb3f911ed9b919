"""Chat turns: ask() with the echo agent, read_turn() boundaries, stale turn-completes,
deadlines, cursors and token refresh."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
from _waiting import eventually

from sessions_client import Client, MemoryCursor, Session
from sessions_client._turns import turn_in_seq
from sessions_client.errors import (
    AuthenticationError,
    ConfigurationError,
    NetworkError,
    NotFoundError,
    ReaderTimeoutError,
    ServerError,
    TurnTimeoutError,
)
from sessions_client.testing import LocalServer, chat_message, reply_text

from .conftest import unique


@pytest.fixture(scope="module", params=["v2", "v1"])
def echo(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A server with the echo agent, once per wire shape."""
    with LocalServer(echo_agent=True, wire=request.param) as srv:
        yield srv


@pytest.fixture(scope="module")
def echo_v2() -> Iterator[LocalServer]:
    with LocalServer(echo_agent=True) as srv:
        yield srv


def _texts(records: List[Dict[str, Any]]) -> List[Any]:
    return [r["data"] for r in records]


def _wait_for_turn_complete(srv: LocalServer, ext: str) -> None:
    eventually(
        lambda: (
            ["trigger-control", "turn-complete"]
            in [h for r in srv.records(ext, "out") for h in r["headers"]]
        ),
        message="the echo agent did not answer",
    )


# -- ask ------------------------------------------------------------------------------------


def test_ask_returns_the_echo(echo: LocalServer) -> None:
    ext = unique()
    echo.create_session(ext)
    with Session(ext, echo.secret_key, echo.url) as session:
        first = session.ask(chat_message("hello"), timeout=10)
        assert first["in_seq"] == 0
        assert reply_text(first["records"]) == "echo: hello"
        assert first["control"]["control"] == "turn-complete"
        assert turn_in_seq(first["control"]) == 0
        second = session.ask(chat_message("again"), timeout=10)
        assert second["in_seq"] == 1
        assert reply_text(second["records"]) == "echo: again"
        assert turn_in_seq(second["control"]) == 1
        assert second["control"]["seq"] > first["control"]["seq"]


def test_ask_through_a_client_session_with_the_public_token(echo_v2: LocalServer) -> None:
    with Client(echo_v2.secret_key, echo_v2.url) as client:
        created = client.create_session(
            "chat.agent", "echo", {"basePayload": {}}, external_id=unique()
        )
        session = client.session(created["externalId"], token=created["publicAccessToken"])
        reply = session.ask(chat_message("hi"), timeout=10)
        assert reply_text(reply["records"]) == "echo: hi"


def test_a_stale_turn_complete_is_skipped(echo: LocalServer) -> None:
    ext = unique()
    echo.create_session(ext)
    echo.write(ext, "in", chat_message("earlier"))  # .in seq 0, answered by the agent
    _wait_for_turn_complete(echo, ext)
    echo.write(ext, "out", {"type": "text-delta", "id": "t0", "delta": "late part of turn 0"})
    echo.write_control(ext, "turn-complete", headers=[["session-in-event-id", "0"]])
    with Session(ext, echo.secret_key, echo.url) as session:  # a fresh object: reads history
        reply = session.ask(chat_message("now"), timeout=10)
    assert reply["in_seq"] == 1
    assert reply_text(reply["records"]) == "echo: now"
    assert turn_in_seq(reply["control"]) == 1


def test_ask_resumes_where_the_previous_turn_ended(echo_v2: LocalServer) -> None:
    ext = unique()
    echo_v2.create_session(ext)
    with Session(ext, echo_v2.secret_key, echo_v2.url) as session:
        starts: List[Optional[int]] = []
        original = session.iter_out

        def spy(**kwargs: Any) -> Iterator[Dict[str, Any]]:
            starts.append(kwargs.get("last_event_id"))
            return original(**kwargs)

        session.iter_out = spy  # type: ignore[method-assign]
        first = session.ask(chat_message("one"), timeout=10)
        assert starts[0] is None, "a fresh Session reads .out from the start"
        starts.clear()
        second = session.ask(chat_message("two"), timeout=10)
        assert starts[0] == first["control"]["seq"], "no history is read twice"
        assert reply_text(second["records"]) == "echo: two"


def test_ask_times_out_without_an_agent(server: LocalServer) -> None:
    ext = unique()
    server.create_session(ext)
    with Session(ext, server.secret_key, server.url) as session:
        started = time.monotonic()
        with pytest.raises(TurnTimeoutError) as info:
            session.ask(chat_message("anyone?"), timeout=0.5)
        assert isinstance(info.value, TimeoutError)
        assert time.monotonic() - started < 5
        assert server.records(ext, "in")[0]["seq"] == 0, "the message itself was appended"


# -- read_turn ------------------------------------------------------------------------------


@pytest.fixture
def scripted(server: LocalServer) -> Dict[str, Any]:
    """.out = A, turn-complete(in 0), upgrade-required, B, turn-complete(in 1), C."""
    ext = unique()
    server.create_session(ext)
    seqs = {
        "A": server.write(ext, "out", "A"),
        "tc0": server.write_control(ext, "turn-complete", [["session-in-event-id", "0"]]),
        "up": server.write_control(ext, "upgrade-required"),
        "B": server.write(ext, "out", "B"),
        "tc1": server.write_control(ext, "turn-complete", [["session-in-event-id", "1"]]),
        "C": server.write(ext, "out", "C"),
    }
    return {"ext": ext, "seqs": seqs, "server": server}


def _session(scripted: Dict[str, Any]) -> Session:
    srv = scripted["server"]
    return Session(scripted["ext"], srv.secret_key, srv.url)


def test_read_turn_stops_at_the_first_turn_complete_without_after_in_seq(
    scripted: Dict[str, Any],
) -> None:
    with _session(scripted) as session:
        assert _texts(list(session.read_turn(timeout=5))) == ["A"]


def test_read_turn_skips_earlier_turn_completes_and_control_records(
    scripted: Dict[str, Any],
) -> None:
    with _session(scripted) as session:
        records = list(session.read_turn(after_in_seq=1, timeout=5))
    assert _texts(records) == ["A", "B"]
    assert all(r["control"] is None for r in records)


def test_read_turn_continues_after_the_previous_turn_of_the_same_session(
    scripted: Dict[str, Any],
) -> None:
    with _session(scripted) as session:
        assert _texts(list(session.read_turn(timeout=5))) == ["A"]
        assert _texts(list(session.read_turn(timeout=5))) == ["B"]


def test_read_turn_starts_after_last_event_id(scripted: Dict[str, Any]) -> None:
    with _session(scripted) as session:
        turn = session.read_turn(after_in_seq=1, last_event_id=scripted["seqs"]["tc0"], timeout=5)
        assert _texts(list(turn)) == ["B"]


def test_read_turn_stores_the_cursor_and_resumes_from_it(scripted: Dict[str, Any]) -> None:
    cursor = MemoryCursor()
    with _session(scripted) as session:
        assert _texts(list(session.read_turn(cursor=cursor, timeout=5))) == ["A"]
    assert cursor.get() == scripted["seqs"]["tc0"]
    with _session(scripted) as fresh:
        assert _texts(list(fresh.read_turn(cursor=cursor, timeout=5))) == ["B"]
    assert cursor.get() == scripted["seqs"]["tc1"]


def test_read_turn_times_out_with_a_typed_error(scripted: Dict[str, Any]) -> None:
    with _session(scripted) as session:
        got: List[Any] = []
        started = time.monotonic()
        with pytest.raises(TurnTimeoutError) as info:
            for record in session.read_turn(after_in_seq=7, timeout=0.5):
                got.append(record["data"])
        assert "7" in str(info.value)
        assert got == ["A", "B", "C"]
        assert time.monotonic() - started < 5


def test_read_turn_survives_a_transient_read_failure(scripted: Dict[str, Any]) -> None:
    srv = scripted["server"]
    srv.faults.fail_next(1, status=503, route="read")
    try:
        with _session(scripted) as session:
            assert _texts(list(session.read_turn(after_in_seq=1, timeout=5))) == ["A", "B"]
    finally:
        srv.faults.clear()


def test_read_turn_validates_its_arguments(scripted: Dict[str, Any]) -> None:
    with _session(scripted) as session:
        with pytest.raises(ConfigurationError):
            session.read_turn(timeout=0)
        with pytest.raises(ConfigurationError):
            session.read_turn(after_in_seq=-1)
        with pytest.raises(TypeError):
            session.read_turn(last_event_id="3")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            session.read_turn(cursor=object())  # type: ignore[arg-type]


def test_turn_in_seq_reads_headers_and_legacy_data() -> None:
    assert turn_in_seq({"headers": [["session-in-event-id", "4"]], "data": None}) == 4
    assert turn_in_seq({"headers": [], "data": {"sessionInEventId": "5"}}) == 5
    assert turn_in_seq({"headers": [], "data": {"headers": [["session-in-event-id", "6"]]}}) == 6
    assert turn_in_seq({"headers": [["session-in-event-id", "x"]], "data": None}) is None


# -- token refresh ----------------------------------------------------------------------------


@pytest.mark.parametrize("wire", ["v2", "v1"])
def test_a_refreshed_token_is_used_by_the_next_request(wire: str) -> None:
    now = [time.time()]  # the server's clock: the short token expires without a wait
    with LocalServer(echo_agent=True, wire=wire, clock=lambda: now[0]) as echo:
        ext = unique()
        echo.create_session(ext)
        short = echo.mint_token(ext, ttl=2)
        with Session(ext, short, echo.url) as session:
            sent: List[str] = []
            session.transport.http_session.hooks["response"].append(
                lambda r, *a, **k: sent.append(r.request.headers["Authorization"])
            )
            reply = session.ask(chat_message("one"), timeout=10)
            fresh = session.token
            assert fresh != short
            assert ["public-access-token", fresh] in reply["control"]["headers"] or (
                reply["control"]["data"] or {}
            ).get("publicAccessToken") == fresh
            now[0] += 3
            # A Client never adopts refreshed tokens: the original one has expired.
            with Client(short, echo.url) as probe, pytest.raises(AuthenticationError):
                probe.get_session(ext)
            sent.clear()
            second = session.ask(chat_message("two"), timeout=10)
            assert reply_text(second["records"]) == "echo: two"
            assert sent and sent[0] == f"Bearer {fresh}", "the append after the refresh used it"


def test_a_secret_key_is_never_replaced_by_a_refreshed_token(echo_v2: LocalServer) -> None:
    ext = unique()
    echo_v2.create_session(ext)
    with Session(ext, echo_v2.secret_key, echo_v2.url) as session:
        session.ask(chat_message("x"), timeout=10)
        assert session.token == echo_v2.secret_key


@pytest.mark.parametrize("wire", ["v2", "v1"])
def test_read_turn_deadline_holds_when_the_server_pings_often(wire: str) -> None:
    with LocalServer(ping_interval=0.2, wire=wire) as srv:
        srv.create_session("pinged")
        with Session("pinged", srv.secret_key, srv.url) as session:
            started = time.monotonic()
            with pytest.raises(TurnTimeoutError) as info:
                list(session.read_turn(after_in_seq=3, timeout=0.8))
            elapsed = time.monotonic() - started
        assert 0.8 <= elapsed < 1.8, "prompt: neither early nor held open by the pings"
        assert isinstance(info.value.__cause__, ReaderTimeoutError)
        assert srv.request_counts["read"] == 1, "one following read, no polling"


def test_read_turn_deadline_holds_on_a_stalled_stream(server: LocalServer) -> None:
    ext = unique()
    server.create_session(ext)
    server.faults.stall_stream(5, after_bytes=0)  # headers, then silence (no pings)
    try:
        with Session(ext, server.secret_key, server.url) as session:
            started = time.monotonic()
            with pytest.raises(TurnTimeoutError):
                list(session.read_turn(after_in_seq=0, timeout=0.8))
            assert 0.8 <= time.monotonic() - started < 1.8
    finally:
        server.faults.clear()


def test_read_turn_deadline_holds_while_every_read_fails(server: LocalServer) -> None:
    ext = unique()
    server.create_session(ext)
    server.faults.fail_next(1000, status=503, route="read")
    try:
        with Session(ext, server.secret_key, server.url) as session:
            started = time.monotonic()
            with pytest.raises(TurnTimeoutError) as info:
                list(session.read_turn(after_in_seq=0, timeout=0.8))
            assert 0.8 <= time.monotonic() - started < 1.8
    finally:
        server.faults.clear()
    reader_error = info.value.__cause__
    assert isinstance(reader_error, ReaderTimeoutError)
    assert isinstance(reader_error.__cause__, ServerError), "the last failure is kept"


def test_read_turn_deadline_holds_while_the_server_is_down() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: every connect is refused
    with Session("down", "tr_dev_nobody", f"http://127.0.0.1:{port}") as session:
        started = time.monotonic()
        with pytest.raises(TurnTimeoutError) as info:
            list(session.read_turn(timeout=0.8))
        assert 0.8 <= time.monotonic() - started < 1.8, "the backoff is cut to the deadline"
    reader_error = info.value.__cause__
    assert isinstance(reader_error, ReaderTimeoutError)
    assert isinstance(reader_error.__cause__, NetworkError)


@pytest.fixture(scope="module", params=["v2", "v1"])
def plain(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A server without agent, once per wire shape."""
    with LocalServer(wire=request.param) as srv:
        yield srv


def test_ask_reads_a_slowly_streamed_reply_over_one_connection(plain: LocalServer) -> None:
    ext = unique()
    plain.create_session(ext)

    def agent() -> None:  # answers .in seq 0 with 50 deltas, 5 ms apart
        deadline = time.monotonic() + 10
        while not plain.records(ext, "in") and time.monotonic() < deadline:
            time.sleep(0.005)
        for i in range(50):
            plain.write(ext, "out", {"delta": i})
            time.sleep(0.005)
        plain.write_control(ext, "turn-complete", [["session-in-event-id", "0"]])

    reads = plain.request_counts.get("read", 0)
    writer = threading.Thread(target=agent)
    writer.start()
    try:
        with Session(ext, plain.secret_key, plain.url) as session:
            reply = session.ask(chat_message("go"), timeout=20)
    finally:
        writer.join(15)
    assert reply["in_seq"] == 0
    assert _texts(reply["records"]) == [{"delta": i} for i in range(50)]
    assert plain.request_counts["read"] - reads == 1, "one connection, no polling"


def test_read_turn_collects_a_reply_streamed_in_many_records(server: LocalServer) -> None:
    ext = unique()
    server.create_session(ext)

    def agent() -> None:
        time.sleep(0.2)
        for i in range(30):
            server.write(ext, "out", {"delta": i})
            time.sleep(0.002)
        server.write_control(ext, "turn-complete", [["session-in-event-id", "0"]])

    writer = threading.Thread(target=agent)
    writer.start()
    try:
        with Session(ext, server.secret_key, server.url) as session:
            records = list(session.read_turn(after_in_seq=0, timeout=10))
    finally:
        writer.join(10)
    assert _texts(records) == [{"delta": i} for i in range(30)]


def test_read_turn_raises_permanent_errors_at_once(server: LocalServer) -> None:
    with Session("session_doesnotexist", server.secret_key, server.url) as session:
        started = time.monotonic()
        with pytest.raises(NotFoundError):
            list(session.read_turn(timeout=10))
        assert time.monotonic() - started < 5, "no retry until the deadline"
