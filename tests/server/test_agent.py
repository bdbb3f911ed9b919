"""The echo chat agent (``LocalServer(echo_agent=True)``): its replies on the wire.

The official ``AgentChat`` judges the same agent in ``tests/conformance``; these tests
pin the records it writes, with raw HTTP only.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from _waiting import eventually

from sessions_client.testing import LocalServer

from ._support import append, create, drain

Chunk = Dict[str, Any]
Turn = Tuple[List[Chunk], Dict[str, str]]

TEXT_TURN = ["start", "start-step", "text-start"]
TEXT_END = ["text-end", "finish-step", "finish"]


def message(text: str, **payload: Any) -> Dict[str, Any]:
    """A ``submit-message`` ChatInputChunk as ``AgentChat.sendMessage`` sends it."""
    body = {
        "chatId": "c",
        "trigger": "submit-message",
        "message": {"id": f"m-{text}", "role": "user", "parts": [{"type": "text", "text": text}]},
    }
    body.update(payload)
    return {"kind": "message", "payload": body}


def send(srv: LocalServer, chat: str, chunk: Dict[str, Any]) -> int:
    response = append(srv, chat, "in", chunk)
    assert response.status_code == 200, response.text
    seq: int = response.json()["seq"]
    return seq


def turns(srv: LocalServer, chat: str) -> List[Turn]:
    """The completed turns retained on ``.out``: (data chunks, turn-complete headers)."""
    out: List[Turn] = []
    current: List[Chunk] = []
    for record in srv.records(chat, "out"):
        headers = dict(map(tuple, record["headers"]))
        if headers.get("trigger-control") == "turn-complete":
            out.append((current, headers))
            current = []
        elif "" not in headers:
            current.append(json.loads(record["body"])["data"])
    return out


def turn_for(srv: LocalServer, chat: str, in_seq: int) -> Turn:
    """The turn whose turn-complete consumed ``.in`` seq ``in_seq`` (waits for it)."""

    def find() -> Optional[Turn]:
        for chunks, headers in turns(srv, chat):
            if int(headers.get("session-in-event-id", -1)) >= in_seq:
                return chunks, headers
        return None

    found: Turn = eventually(find)
    return found


def text(chunks: List[Chunk]) -> str:
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


def agent_idle() -> bool:
    return not any(t.name == "sessions-echo-agent" for t in threading.enumerate())


@pytest.fixture(scope="module")
def agent() -> Any:
    with LocalServer(echo_agent=True) as srv:
        yield srv


def test_a_message_is_streamed_word_by_word_then_completed(agent: LocalServer) -> None:
    create(agent, "words")
    seq = send(agent, "words", message("hello big world"))
    chunks, headers = turn_for(agent, "words", seq)
    types = [c["type"] for c in chunks]
    assert types == TEXT_TURN + ["text-delta"] * 4 + TEXT_END
    assert [c["delta"] for c in chunks[3:7]] == ["echo: ", "hello ", "big ", "world"]
    assert chunks[0]["messageId"] and chunks[-1] == {"type": "finish", "finishReason": "stop"}
    assert {c["id"] for c in chunks[2:8]} == {chunks[2]["id"]}, "one text part"
    assert headers["session-in-event-id"] == headers["session-in-consumed-id"] == str(seq)
    token = headers["public-access-token"]
    assert drain(agent, "words", "out", token=token).status_code == 200
    envelopes = [json.loads(r["body"]) for r in agent.records("words", "out") if r["body"]]
    ids = [e["id"] for e in envelopes if isinstance(e["data"], dict)]
    assert len(ids) == len(set(ids)) == len(chunks), "a unique envelope id per chunk"


def test_out_is_trimmed_back_to_the_previous_turn_complete(agent: LocalServer) -> None:
    create(agent, "trim")
    for word in ("one", "two", "three"):
        seq = send(agent, "trim", message(word))
        turn_for(agent, "trim", seq)
    eventually(lambda: agent.records("trim", "out")[-1]["headers"] == [["", "trim"]])
    records = agent.records("trim", "out")
    kept = turns(agent, "trim")
    assert len(kept) == 2 and kept[0][0] == [], "only turn two's turn-complete and turn three"
    assert text(kept[1][0]) == "echo: three"
    assert records[0]["headers"][0] == ["trigger-control", "turn-complete"]
    assert records[-1]["body"] == str(records[0]["seq"]), "trimmed to the previous boundary"


def test_a_tool_message_calls_echo_then_replies_in_a_second_step(agent: LocalServer) -> None:
    create(agent, "tool")
    seq = send(agent, "tool", message("/tool X y"))
    chunks, _ = turn_for(agent, "tool", seq)
    types = [c["type"] for c in chunks]
    assert types[:9] == [
        "start",
        "start-step",
        "tool-input-start",
        "tool-input-delta",
        "tool-input-delta",
        "tool-input-available",
        "tool-output-available",
        "finish-step",
        "start-step",
    ]
    call = chunks[2]["toolCallId"]
    assert chunks[2]["toolName"] == chunks[5]["toolName"] == "echo"
    assert json.loads(chunks[3]["inputTextDelta"] + chunks[4]["inputTextDelta"]) == {"text": "X y"}
    assert chunks[5]["input"] == {"text": "X y"} and chunks[5]["toolCallId"] == call
    assert chunks[6] == {
        "type": "tool-output-available",
        "toolCallId": call,
        "output": {"text": "X y"},
    }
    assert text(chunks) == "echo: X y"
    assert types[-3:] == TEXT_END


def test_regenerate_and_action(agent: LocalServer) -> None:
    create(agent, "regen")
    first = turn_for(agent, "regen", send(agent, "regen", message("again please")))[0]
    regen = {"kind": "message", "payload": {"chatId": "regen", "trigger": "regenerate-message"}}
    second = turn_for(agent, "regen", send(agent, "regen", regen))[0]
    assert text(second) == text(first) == "echo: again please"
    assert second[0]["messageId"] != first[0]["messageId"]
    action = {"kind": "message", "payload": {"trigger": "action", "action": {"type": "undo"}}}
    chunks, headers = turn_for(agent, "regen", send(agent, "regen", action))
    assert [c["type"] for c in chunks] == ["start", "data-action", "finish"]
    assert chunks[1]["data"] == {"type": "undo"} and chunks[1]["id"]
    assert headers["public-access-token"]


def test_preload_close_idle_stop_and_foreign_records_write_nothing(agent: LocalServer) -> None:
    create(agent, "quiet", triggerConfig={"basePayload": {"trigger": "preload", "chatId": "q"}})
    send(agent, "quiet", {"kind": "stop"})
    send(agent, "quiet", {"kind": "message", "payload": {"chatId": "q", "trigger": "close"}})
    append(agent, "quiet", "in", "not json at all")
    send(agent, "quiet", {"kind": "mystery"})
    seq = send(agent, "quiet", message("hi"))
    turn_for(agent, "quiet", seq)
    kept = turns(agent, "quiet")
    assert len(kept) == 1 and text(kept[0][0]) == "echo: hi"
    assert kept[0][1]["session-in-event-id"] == str(seq)


def test_sessions_of_another_type_are_left_alone(agent: LocalServer) -> None:
    create(agent, "other", type="something.else")
    send(agent, "other", message("hi"))
    eventually(agent_idle)
    assert agent.records("other", "out") == []


def test_a_submit_message_in_the_base_payload_is_answered_at_create(agent: LocalServer) -> None:
    base = message("from create")["payload"]
    create(agent, "base", triggerConfig={"basePayload": base})
    chunks, headers = eventually(lambda: turns(agent, "base") and turns(agent, "base")[0])
    assert text(chunks) == "echo: from create"
    assert "session-in-event-id" not in headers, "no .in record was consumed"
    create(agent, "base", triggerConfig={"basePayload": base}, expect=200)  # cached: no new run
    seq = send(agent, "base", message("next"))
    turn_for(agent, "base", seq)
    eventually(lambda: agent.records("base", "out")[-1]["headers"] == [["", "trim"]])
    kept = turns(agent, "base")  # the first turn's chunks are trimmed, its boundary stays
    assert [text(c) for c, _ in kept] == ["", "echo: next"]


def test_messages_without_the_client_data_fail_their_turn() -> None:
    with LocalServer(echo_agent=True, agent_client_data=["userId"]) as srv:
        create(srv, "cd")
        seq = send(srv, "cd", message("who?", metadata={"other": 1}))
        chunks, headers = turn_for(srv, "cd", seq)
        assert chunks == [{"type": "error", "errorText": "Invalid client data: missing userId"}]
        assert "public-access-token" not in headers
        seq = send(srv, "cd", message("me", metadata={"userId": "u1"}))
        assert text(turn_for(srv, "cd", seq)[0]) == "echo: me"


def test_stop_ends_the_reply_early_and_still_completes_the_turn() -> None:
    with LocalServer(echo_agent=True, agent_delay=0.05) as srv:
        create(srv, "stop")
        long = " ".join(f"w{i}" for i in range(200))
        sent = send(srv, "stop", message(long))
        eventually(lambda: any('"text-delta"' in r["body"] for r in srv.records("stop", "out")))
        stop = send(srv, "stop", {"kind": "stop"})
        chunks, headers = turn_for(srv, "stop", sent)
        assert chunks[-1] == {"type": "abort"}
        assert 0 < len(text(chunks)) < len("echo: " + long)
        assert headers["session-in-event-id"] == str(stop) and headers["public-access-token"]
        seq = send(srv, "stop", message("next"))
        assert text(turn_for(srv, "stop", seq)[0]) == "echo: next"


def test_a_message_during_a_reply_is_answered_after_it() -> None:
    with LocalServer(echo_agent=True, agent_delay=0.05) as srv:
        create(srv, "steer")
        started = time.monotonic()
        first = send(srv, "steer", message("a b c d e f"))
        eventually(lambda: any('"text-delta"' in r["body"] for r in srv.records("steer", "out")))
        second = send(srv, "steer", message("steered"))
        chunks, headers = turn_for(srv, "steer", first)
        assert time.monotonic() - started >= 5 * 0.05, "the waiting message kept the pace"
        assert text(chunks) == "echo: a b c d e f" and headers["session-in-event-id"] == str(first)
        assert text(turn_for(srv, "steer", second)[0]) == "echo: steered"


def test_the_agent_resumes_after_a_restart_without_repeating_itself(tmp_path: Path) -> None:
    db = str(tmp_path / "agent.db")
    with LocalServer(db=db, echo_agent=True) as first:
        create(first, "chat")
        seq = send(first, "chat", message("one"))
        turn_for(first, "chat", seq)
        boundary = first.records("chat", "out")[-1]["seq"]
    with LocalServer(db=db, echo_agent=True) as second:
        regen = {"kind": "message", "payload": {"chatId": "chat", "trigger": "regenerate-message"}}
        seq = send(second, "chat", regen)
        chunks, _ = turn_for(second, "chat", seq)
        assert text(chunks) == "echo: one", "the prompt is found on .in after a restart"
        eventually(lambda: second.records("chat", "out")[-1]["headers"] == [["", "trim"]])
        records = second.records("chat", "out")
        assert records[0]["seq"] == boundary, "trimmed back to the first server's turn"
        assert len(turns(second, "chat")) == 2


def test_an_unanswered_message_is_answered_after_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "agent.db")
    with LocalServer(db=db) as first:  # no agent yet
        create(first, "late")
        seq = send(first, "late", message("waiting"))
    with LocalServer(db=db, echo_agent=True) as second:
        assert text(turn_for(second, "late", seq)[0]) == "echo: waiting"


def test_agent_options_are_checked() -> None:
    with pytest.raises(ValueError):
        LocalServer(echo_agent=True, agent_delay=-1)
    with pytest.raises(ValueError):
        LocalServer(echo_agent=True, agent_client_data="userId")


def test_many_sessions_are_answered_by_a_bounded_set_of_workers() -> None:
    from sessions_client.testing.agent import MAX_WORKERS

    with LocalServer(echo_agent=True, agent_delay=0.01) as srv:
        chats = [f"many-{i}" for i in range(MAX_WORKERS + 4)]
        for chat in chats:
            create(srv, chat)
        sent = {chat: send(srv, chat, message(f"hi {chat}")) for chat in chats}
        most = 0

        def all_answered() -> bool:
            nonlocal most
            workers = [t for t in threading.enumerate() if t.name == "sessions-echo-agent"]
            most = max(most, len(workers))
            return all(
                any(h.get("session-in-event-id") == str(sent[c]) for _, h in turns(srv, c))
                for c in chats
            )

        eventually(all_answered, timeout=20)
        for chat in chats:
            assert text(turn_for(srv, chat, sent[chat])[0]) == f"echo: hi {chat}"
        assert 1 <= most <= MAX_WORKERS
