"""The official ``AgentChat`` (``@trigger.dev/sdk/chat``, pinned) talks to the echo agent.

The echo agent of ``LocalServer(echo_agent=True)`` must be a chat agent the official
client cannot tell from a real ``chat.agent`` task: every turn's text, tool calls and
results, stop, close, actions, a second ``AgentChat`` resuming from the first's
``lastEventId``, and ``reconnect()`` (the settled peek, and a turn in flight, where the
Python ``AgentChat`` must see the same answer). ``AgentChat`` needs the production wire
shape (v2), so only v2 runs.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List

import pytest

from sessions_client import AgentChat

pytestmark = [pytest.mark.conformance, pytest.mark.timeout(120)]

ChatDrive = Callable[[Any, List[Dict[str, Any]]], List[Dict[str, Any]]]
Servers = Callable[..., Any]


def ok(result: Dict[str, Any]) -> Any:
    assert result["ok"], result.get("error")
    return result["value"]


@pytest.fixture(scope="module")
def agent(servers: Servers) -> Any:
    return servers("v2", echo_agent=True)


def test_several_turns_text_and_a_tool_call(agent: Any, chat_drive: ChatDrive) -> None:
    results = chat_drive(
        agent,
        [
            {"op": "new", "chat": "a", "clientData": {"userId": "u1"}},
            {"op": "send", "chat": "a", "text": "hello there"},
            {"op": "send", "chat": "a", "text": "second turn"},
            {"op": "send", "chat": "a", "text": "/tool ping pong", "read": "result"},
            {"op": "send", "chat": "a", "text": "after the tool", "read": "chunks"},
            {"op": "regenerate", "chat": "a"},
        ],
    )
    assert ok(results[1]) == "echo: hello there"
    assert ok(results[2]) == "echo: second turn"
    result = ok(results[3])
    assert result["text"] == "echo: ping pong"
    (call,) = result["toolCalls"]
    assert call["toolName"] == "echo" and call["input"] == {"text": "ping pong"}
    assert result["toolResults"] == [
        {"toolCallId": call["toolCallId"], "output": {"text": "ping pong"}}
    ]
    chunks = ok(results[4])
    assert chunks[0]["type"] == "start" and chunks[-1]["type"] == "finish"
    assert "".join(c.get("delta", "") for c in chunks) == "echo: after the tool"
    assert ok(results[5]) == "echo: after the tool", "regenerate streams the last reply again"


def test_an_action_is_answered_with_a_data_part(agent: Any, chat_drive: ChatDrive) -> None:
    results = chat_drive(
        agent,
        [
            {"op": "new", "chat": "a"},
            {"op": "action", "chat": "a", "action": {"type": "undo", "steps": 2}},
            {"op": "send", "chat": "a", "text": "still here"},
        ],
    )
    chunks = ok(results[1])
    assert [c["type"] for c in chunks] == ["start", "data-action", "finish"]
    assert chunks[1]["data"] == {"type": "undo", "steps": 2}
    assert ok(results[2]) == "echo: still here"


def test_a_second_agent_chat_resumes_from_the_first_ones_last_event_id(
    agent: Any, chat_drive: ChatDrive
) -> None:
    results = chat_drive(
        agent,
        [
            {"op": "new", "chat": "a"},
            {"op": "send", "chat": "a", "text": "one"},
            {"op": "send", "chat": "a", "text": "two"},
            {"op": "session", "chat": "a"},
            {"op": "new", "chat": "b", "resumeFrom": "a"},
            {"op": "send", "chat": "b", "text": "three", "read": "chunks"},
            {"op": "session", "chat": "b"},
        ],
    )
    first = ok(results[3])
    assert first["session"]["lastEventId"] is not None
    assert ok(results[4])["id"] == first["id"]
    chunks = ok(results[5])
    assert "".join(c.get("delta", "") for c in chunks) == "echo: three", "no earlier turn"
    assert [c["type"] for c in chunks].count("start") == 1
    assert int(ok(results[6])["session"]["lastEventId"]) > int(first["session"]["lastEventId"])


def test_stop_ends_the_reply_early_and_the_chat_goes_on(
    servers: Servers, chat_drive: ChatDrive
) -> None:
    slow = servers("v2", echo_agent=True, name="slow", agent_delay=0.05)
    long = " ".join(f"w{i}" for i in range(100))
    results = chat_drive(
        slow,
        [
            {"op": "new", "chat": "a"},
            {"op": "stopAfter", "chat": "a", "text": long, "chunks": 5},
            {"op": "send", "chat": "a", "text": "after the stop"},
        ],
    )
    stopped = ok(results[1])
    assert [c["type"] for c in stopped["before"]][:3] == ["start", "start-step", "text-start"]
    assert stopped["after"] == [], "the stopped stream drops the rest of the turn"
    assert ok(results[2]) == "echo: after the stop"
    # .out now starts at the stopped turn's turn-complete (the next turn trimmed back to
    # it): it consumed the stop (.in seq 1), so the stop ended that turn, not a later one.
    boundary = slow.records(ok(results[0])["id"], "out")[0]
    assert ["trigger-control", "turn-complete"] in boundary["headers"]
    assert ["session-in-event-id", "1"] in boundary["headers"]


def test_close_ends_the_agents_loop_and_a_new_message_starts_it_again(
    agent: Any, chat_drive: ChatDrive
) -> None:
    results = chat_drive(
        agent,
        [
            {"op": "new", "chat": "a"},
            {"op": "close", "chat": "a"},
            {"op": "send", "chat": "a", "text": "hi"},
            {"op": "close", "chat": "a"},
            {"op": "send", "chat": "a", "text": "back again"},
        ],
    )
    assert ok(results[1]) is False, "nothing to close before the session started"
    assert ok(results[2]) == "echo: hi"
    assert ok(results[3]) is True
    assert ok(results[4]) == "echo: back again"
    session = agent.get_session(ok(results[0])["id"])
    assert session is not None and session["closedAt"] is None, "close() leaves the session open"


def test_preload_starts_the_session_without_a_reply(agent: Any, chat_drive: ChatDrive) -> None:
    results = chat_drive(
        agent,
        [
            {"op": "new", "chat": "a"},
            {"op": "preload", "chat": "a"},
            {"op": "send", "chat": "a", "text": "first"},
        ],
    )
    ok(results[1])
    assert ok(results[2]) == "echo: first"
    session = agent.get_session(ok(results[0])["id"])
    assert session is not None and session["type"] == "chat.agent"
    assert session["triggerConfig"]["basePayload"]["trigger"] == "preload"


def test_messages_without_the_agents_client_data_get_no_text(
    servers: Servers, chat_drive: ChatDrive
) -> None:
    strict = servers("v2", echo_agent=True, name="strict", agent_client_data=["userId"])
    results = chat_drive(
        strict,
        [
            {"op": "new", "chat": "bare"},
            {"op": "send", "chat": "bare", "text": "who am I", "read": "chunks"},
            {"op": "new", "chat": "known", "clientData": {"userId": "u1"}},
            {"op": "send", "chat": "known", "text": "me"},
        ],
    )
    assert ok(results[1]) == [{"type": "error", "errorText": "Invalid client data: missing userId"}]
    assert ok(results[3]) == "echo: me"


def python_chat(srv: Any, **options: Any) -> AgentChat:
    return AgentChat("echo", token=srv.secret_key, api_url=srv.url, stream_timeout=30, **options)


def wait_for_trim_tail(srv: Any, chat_id: str) -> None:
    """Wait (bounded) until ``.out`` ends with the agent's trim, written just after the
    turn-complete that ended the reply."""
    deadline = time.monotonic() + 10
    while srv.records(chat_id, "out")[-1]["headers"] != [["", "trim"]]:
        assert time.monotonic() < deadline, "the agent wrote no trim after the turn"
        time.sleep(0.005)


def test_reconnect_sees_the_settled_answer(agent: Any, chat_drive: ChatDrive) -> None:
    # Production's peek walks past the agent's trim to the turn-complete under it: the
    # official reconnect() gets X-Session-Settled and an empty stream at once (it returns
    # a stream, never null, once started); Python's reconnect() returns None.
    results = chat_drive(
        agent,
        [
            {"op": "new", "chat": "a"},
            {"op": "reconnect", "chat": "a"},
            {"op": "send", "chat": "a", "text": "one"},
            {"op": "send", "chat": "a", "text": "two"},
            {"op": "session", "chat": "a"},
        ],
    )
    assert ok(results[1]) is None, "not started: no stream"
    first = ok(results[4])
    wait_for_trim_tail(agent, first["id"])
    results = chat_drive(
        agent,
        [
            {"op": "new", "chat": "b", "id": first["id"], "session": first["session"]},
            {"op": "reconnect", "chat": "b"},
            {"op": "send", "chat": "b", "text": "three"},
        ],
    )
    settled = ok(results[1])
    assert settled["chunks"] == [] and settled["ms"] < 5000
    assert (settled["peek"], settled["settled"]) == ("1", "true")
    assert ok(results[2]) == "echo: three", "the chat goes on"
    state = {"chat_id": first["id"], "last_event_id": int(first["session"]["lastEventId"])}
    resumed = python_chat(agent, state=state)
    again = resumed.reconnect()  # the cursor is before turn "three": its reply comes
    assert again is not None and again.text() == "echo: three"
    wait_for_trim_tail(agent, first["id"])
    assert resumed.reconnect() is None


def test_reconnect_mid_turn_gets_the_same_rest_as_python(
    servers: Servers, chat_drive: ChatDrive
) -> None:
    slow = servers("v2", echo_agent=True, name="slow", agent_delay=0.05)
    words = " ".join(f"w{i}" for i in range(40))
    chat = python_chat(slow)
    assert chat.send_message("first").text() == "echo: first"
    reply = chat.send_message(words)
    texts = reply.iter_text()
    head = next(texts) + next(texts)
    state = json.loads(json.dumps(chat.state))
    reply.close()
    session = {"lastEventId": str(state["last_event_id"])}
    results = chat_drive(
        slow,
        [
            {"op": "new", "chat": "a", "id": chat.chat_id, "session": session},
            {"op": "reconnect", "chat": "a"},
        ],
    )
    official = ok(results[1])
    assert (official["peek"], official["settled"]) == ("1", None), "a turn in flight"
    rest = "".join(c.get("delta", "") for c in official["chunks"])
    assert head + rest == f"echo: {words}"
    assert official["chunks"][-1]["type"] == "finish"
    again = python_chat(slow, state=state).reconnect()
    assert again is not None and again.text() == rest
