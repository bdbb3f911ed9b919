"""AgentChat end to end against LocalServer's echo chat agent."""

from __future__ import annotations

import json
from typing import Any, Iterator, List

import pytest

from sessions_client import AgentChat, AgentError
from sessions_client.testing import LocalServer

from .conftest import SECRET


@pytest.fixture(params=["v2", "v1"])
def agent_server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    with LocalServer(secret_key=SECRET, echo_agent=True, wire=request.param) as srv:
        yield srv


def new_chat(srv: LocalServer, **options: Any) -> AgentChat:
    options.setdefault("stream_timeout", 10)
    return AgentChat("echo", token=SECRET, api_url=srv.url, **options)


def test_several_turns(agent_server: LocalServer) -> None:
    chat = new_chat(agent_server)
    for text in ("hello", "how are you", "bye now"):
        assert chat.send_message(text).text() == f"echo: {text}"
    # The cursor is the last turn-complete (the agent's trim record follows it).
    out = agent_server.records(chat.chat_id, "out")
    ends = [r["seq"] for r in out if ["trigger-control", "turn-complete"] in r["headers"]]
    assert chat.state["last_event_id"] == ends[-1]
    assert chat.state["turn_complete"] is True


def test_tool_call_result_and_message(agent_server: LocalServer) -> None:
    chat = new_chat(agent_server)
    reply = chat.send_message("/tool X")
    result = reply.result()
    assert result["text"] == "echo: X"
    assert [c["toolName"] for c in result["tool_calls"]] == ["echo"]
    assert result["tool_calls"][0]["input"] == {"text": "X"}
    assert result["tool_results"][0]["output"] == {"text": "X"}
    types = [part["type"] for part in reply.message()["parts"]]
    assert "tool-echo" in types and types.count("step-start") == 2


def test_regenerate_and_action(agent_server: LocalServer) -> None:
    chat = new_chat(agent_server)
    chat.send_message("once").text()
    assert chat.regenerate().text() == "echo: once"
    message = chat.send_action({"type": "undo"}).message()
    assert [p for p in message["parts"] if p["type"] == "data-action"][0]["data"] == {
        "type": "undo"
    }


def test_stop_ends_the_reply_early_and_the_chat_goes_on() -> None:
    with LocalServer(secret_key=SECRET, echo_agent=True, agent_delay=0.05) as srv:
        chat = new_chat(srv)
        words = " ".join(f"w{i}" for i in range(100))
        reply = chat.send_message(words)
        assert next(reply.iter_text()).startswith("echo:")
        chat.stop()
        partial = reply.text()
        assert partial.startswith("echo:") and len(partial) < len(f"echo: {words}")
        assert chat.send_message("next").text() == "echo: next"


def test_client_data_is_required_by_the_agent() -> None:
    with LocalServer(secret_key=SECRET, echo_agent=True, agent_client_data=["userId"]) as srv:
        with pytest.raises(AgentError, match="userId"):
            new_chat(srv).send_message("hi").text()
        chat = new_chat(srv, client_data={"userId": "u1"})
        assert chat.send_message("hi").text() == "echo: hi"


def test_state_resumes_in_a_new_object(agent_server: LocalServer) -> None:
    events: List[Any] = []
    chat = new_chat(agent_server, on_turn_complete=events.append)
    chat.send_message("one").text()
    saved = json.loads(json.dumps(chat.state))
    assert events[-1] == saved
    runs = {saved["run_id"]}
    resumed = new_chat(agent_server, state=saved)
    assert resumed.reconnect() is None  # settled: nothing in flight
    reply = resumed.send_message("two")
    assert [c["type"] for c in reply][0] == "start"
    assert reply.text() == "echo: two"
    runs.add(resumed.state["run_id"])
    assert len(runs) == 1
    assert chat.close() is True


def test_a_cut_stream_mid_reply(agent_server: LocalServer) -> None:
    chat = new_chat(agent_server)
    chat.send_message("warm up").text()
    agent_server.faults.cut_stream(after_records=4)
    reply = chat.send_message("a b c d e f g h")
    chunks = list(reply)
    assert [c["type"] for c in chunks].count("start") == 1
    assert reply.text() == "echo: a b c d e f g h"


def test_joining_a_chat_without_state_streams_the_next_reply(agent_server: LocalServer) -> None:
    first = new_chat(agent_server, chat_id="joined")
    first.send_message("one").text()
    other = new_chat(agent_server, chat_id="joined")
    state = other.preload()
    assert state["last_event_id"] == first.state["last_event_id"]
    assert state["turn_complete"] is True and state["in_seq"] == first.state["in_seq"]
    reply = other.send_message("two")
    assert reply._live  # chunks are handed out as they arrive
    assert reply.text() == "echo: two"


def test_two_objects_on_one_chat_never_mix_replies(agent_server: LocalServer) -> None:
    first = new_chat(agent_server)
    first.send_message("one").text()
    second = new_chat(agent_server, state=first.state)  # e.g. another worker
    assert second.send_message("two").text() == "echo: two"
    reply = first.send_message("three")  # `first` has not seen turn two
    chunks = list(reply)
    assert [c["type"] for c in chunks].count("start") == 1
    assert "".join(c.get("delta", "") for c in chunks) == "echo: three" == reply.text()
