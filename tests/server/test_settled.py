"""The settled peek (``X-Peek-Settled: 1``) as production answers it.

Production (``s2realtimeStreams.server.ts``, ``#peekIsSettled``) reads the last two
records of ``.out`` and walks back past S2 command records (the trim the agent writes
after every turn-complete): settled iff the first other record is a ``turn-complete``.
Settled: ``X-Session-Settled: true`` and an S2 read with ``wait=0`` (the backlog after
the cursor, no ping, ``[DONE]``). Otherwise the ordinary long poll: a ping at the live
edge, no header.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest

from sessions_client import AgentChat
from sessions_client.testing import LocalServer

from ._support import SECRET, SSE, create

PEEK = {"X-Peek-Settled": "1", "Timeout-Seconds": "30"}


def peek(
    srv: LocalServer, session: str, io: str = "out", **headers: str
) -> Tuple[Optional[str], List[int], str]:
    """Open a read; return (the X-Session-Settled header, the seqs sent, how it went
    on after the backlog: ``"done"`` (closed at once) or ``"ping"`` (long poll))."""
    seqs: List[int] = []
    with SSE(srv, session, io, headers={**PEEK, **headers}) as sse:
        for event in sse.events():
            if event["event"] == "batch":
                seqs += [r["seq_num"] for r in json.loads(event["data"])["records"]]
            elif event["event"] == "ping":
                return sse.headers.get("x-session-settled"), seqs, "ping"
            elif event["data"] == "[DONE]":
                return sse.headers.get("x-session-settled"), seqs, "done"
    raise AssertionError("the stream ended without [DONE]")


def turn(srv: LocalServer, session: str, *texts: str) -> int:
    """One finished turn as the agent writes it: data, turn-complete, trim; the
    turn-complete's seq."""
    for text in texts:
        srv.write(session, "out", {"type": "text-delta", "id": "t", "delta": text})
    end = srv.write_control(session, "turn-complete", [["session-in-event-id", "0"]])
    srv.trim(session, "out", 0)
    return end


def test_settled_after_turn_complete_and_trim(server: LocalServer) -> None:
    create(server, "c")
    end = turn(server, "c", "a", "b")
    assert peek(server, "c") == ("true", [0, 1, 2, 3], "done")
    # From the saved cursor (the turn-complete): only the trim, then the close.
    assert peek(server, "c", **{"Last-Event-ID": str(end)}) == ("true", [end + 1], "done")
    assert peek(server, "c", **{"Last-Event-ID": str(end + 1)}) == ("true", [], "done")


def test_settled_after_a_turn_complete_without_trim(server: LocalServer) -> None:
    create(server, "c")
    server.write("c", "out", {"type": "start"})
    end = server.write_control("c", "turn-complete")
    assert peek(server, "c", **{"Last-Event-ID": str(end)}) == ("true", [], "done")


def test_not_settled_mid_turn(server: LocalServer) -> None:
    create(server, "c")
    assert peek(server, "c") == (None, [], "ping")  # an empty channel
    server.write("c", "out", {"type": "start"})
    server.write("c", "out", {"type": "text-delta", "id": "t", "delta": "x"})
    assert peek(server, "c") == (None, [0, 1], "ping")


def test_not_settled_when_data_follows_the_turn_complete(server: LocalServer) -> None:
    create(server, "c")
    end = turn(server, "c", "a")
    server.write("c", "out", {"type": "start"})  # the next turn began
    assert peek(server, "c", **{"Last-Event-ID": str(end)}) == (None, [end + 1, end + 2], "ping")


def test_not_settled_when_a_control_record_other_than_turn_complete_is_last(
    server: LocalServer,
) -> None:
    create(server, "c")
    turn(server, "c", "a")
    server.write_control("c", "upgrade-required")
    assert peek(server, "c")[0::2] == (None, "ping")


def test_the_peek_looks_at_two_records_only(server: LocalServer) -> None:
    # Production reads tail_offset=2, count=2: two trailing command records hide the
    # turn-complete below them.
    create(server, "c")
    turn(server, "c", "a")
    server.trim("c", "out", 0)
    assert peek(server, "c")[0::2] == (None, "ping")


def test_no_peek_without_the_header_or_on_in(server: LocalServer) -> None:
    create(server, "c")
    turn(server, "c", "a")
    assert peek(server, "c", **{"X-Peek-Settled": "0"})[0::2] == (None, "ping")
    server.write_control("c", "turn-complete", io="in")
    assert peek(server, "c", "in")[0::2] == (None, "ping")


def test_unknown_external_id_is_not_settled(server: LocalServer) -> None:
    assert peek(server, "never-created") == (None, [], "ping")


def test_settled_on_the_v1_wire() -> None:
    with LocalServer(secret_key=SECRET, wire="v1", ping_interval=0.3) as srv:
        create(srv, "c")
        end = turn(srv, "c", "a")
        with SSE(srv, "c", "out", headers={**PEEK, "Last-Event-ID": str(end)}) as sse:
            events = sse.all()
        assert sse.headers.get("x-session-settled") == "true"
        assert [e["data"] for e in events] == ["[DONE]"]


def wait_for_trim(srv: LocalServer, session: str) -> List[Dict[str, Any]]:
    """``.out`` once its last record is a trim command (bounded wait)."""
    deadline = time.monotonic() + 5
    while True:
        out = srv.records(session, "out")
        if out[-1]["headers"] == [["", "trim"]] or time.monotonic() > deadline:
            assert out[-1]["headers"] == [["", "trim"]]
            return out
        time.sleep(0.005)


@pytest.mark.parametrize("wire", ["v2", "v1"])
def test_echo_agent_turn_leaves_the_channel_settled(wire: str) -> None:
    with LocalServer(secret_key=SECRET, echo_agent=True, wire=wire, ping_interval=0.3) as srv:
        chat = AgentChat("echo", token=SECRET, api_url=srv.url, stream_timeout=10)
        # From the second turn on, the agent trims back to the previous turn-complete
        # right after writing the turn's own (as production's chat.agent does).
        for text in ("one", "two"):
            assert chat.send_message(text).text() == f"echo: {text}"
        out = wait_for_trim(srv, chat.chat_id)
        assert ["trigger-control", "turn-complete"] in out[-2]["headers"]
        cursor = {"Last-Event-ID": str(chat.state["last_event_id"])}
        with SSE(srv, chat.chat_id, "out", headers={**PEEK, **cursor}) as sse:
            events = sse.all()
        assert sse.headers.get("x-session-settled") == "true"
        assert events[-1]["data"] == "[DONE]"
        assert not [e for e in events if e["event"] == "ping"]
