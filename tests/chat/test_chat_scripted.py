"""AgentChat against agents scripted in the test (LocalServer's direct API)."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable, Dict, List

import pytest

from sessions_client import (
    AgentChat,
    AgentError,
    ChatStream,
    EmptyReplyError,
    ProtocolError,
    SessionClosedError,
    SessionsError,
    TurnTimeoutError,
)
from sessions_client.testing import LocalServer

from .conftest import SECRET, ScriptedAgent, echo

Make = Callable[..., ScriptedAgent]


def new_chat(srv: LocalServer, **options: Any) -> AgentChat:
    options.setdefault("stream_timeout", 10)
    return AgentChat("my-agent", token=SECRET, api_url=srv.url, **options)


def texts(chunks: List[Dict[str, Any]]) -> str:
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


def test_send_message_returns_the_reply(server: LocalServer, scripted_agent: Make) -> None:
    chat = new_chat(server, chat_id="c1")
    scripted_agent("c1", echo)
    reply = chat.send_message("hello there")
    assert isinstance(reply, ChatStream)
    assert reply.text() == "echo: hello there"
    assert reply.text() == "echo: hello there"  # idempotent
    result = reply.result()
    assert result["tool_calls"] == [] and result["tool_results"] == []
    assert result["message"]["role"] == "assistant"
    assert reply.message() is result["message"]
    assert chat.send_message("again").text() == "echo: again"


def test_iteration_yields_each_chunk_once_then_text_uses_them_all(
    server: LocalServer, scripted_agent: Make
) -> None:
    chat = new_chat(server, chat_id="c-iter")
    scripted_agent("c-iter", echo)
    reply = chat.send_message("a b c")
    first = next(reply)
    assert first == {"type": "start", "messageId": "m0"}
    rest = list(reply)
    assert [c["type"] for c in rest][-1] == "finish"
    assert list(reply) == []  # nothing twice
    assert texts([first] + rest) == "echo: a b c" == reply.text()


def test_iter_text_yields_the_deltas(server: LocalServer, scripted_agent: Make) -> None:
    chat = new_chat(server, chat_id="c-text")
    scripted_agent("c-text", echo)
    assert list(chat.send_message("x y").iter_text()) == ["echo:", " x", " y"]


def test_the_start_and_messages_are_what_the_official_client_sends(
    server: LocalServer, scripted_agent: Make
) -> None:
    chat = new_chat(
        server,
        chat_id="c-wire",
        client_data={"userId": "u1"},
        trigger_config={"tags": ["team:a"], "machine": "small-1x", "basePayload": {"x": 1}},
    )
    agent = scripted_agent("c-wire", echo)
    chat.send_message("hi").text()
    session = server.get_session("c-wire")
    assert session is not None
    assert session["type"] == "chat.agent" and session["taskIdentifier"] == "my-agent"
    config = session["triggerConfig"]
    assert config["basePayload"] == {
        "trigger": "preload",
        "x": 1,
        "chatId": "c-wire",
        "metadata": {"userId": "u1"},
    }
    assert config["tags"] == ["chat:c-wire", "team:a"] and config["machine"] == "small-1x"
    chunk = dict(agent.received[0])
    seq = chunk.pop("_seq")
    message = chunk["payload"].pop("message")
    assert chunk == {
        "kind": "message",
        "payload": {"chatId": "c-wire", "trigger": "submit-message", "metadata": {"userId": "u1"}},
    }
    assert message["role"] == "user" and message["parts"] == [{"type": "text", "text": "hi"}]
    assert message["id"].startswith("msg-")
    stored = server.records("c-wire", "in")[seq]
    assert json.loads(stored["body"])["id"]  # the X-Part-Id
    assert chat.state["session_id"] == session["id"]


def test_a_stale_turn_complete_first_is_skipped(server: LocalServer, scripted_agent: Make) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        seq = chunk["_seq"]
        if seq > 0:
            agent.turn_complete(seq - 1)  # an earlier turn's, arriving late
        agent.reply(f"reply to {seq}", seq)

    chat = new_chat(server, chat_id="c-stale")
    scripted_agent("c-stale", respond)
    assert chat.send_message("one").text() == "reply to 0"
    second = chat.send_message("two")
    assert texts(list(second)) == "reply to 1" == second.text()
    assert chat.state["in_seq"] == 1


def test_a_reply_left_unread_does_not_leak_into_the_next(
    server: LocalServer, scripted_agent: Make
) -> None:
    chat = new_chat(server, chat_id="c-left")
    scripted_agent("c-left", echo)
    first = chat.send_message("first message")
    assert next(first)["type"] == "start"  # read a little, then move on
    second = chat.send_message("second")
    chunks = list(second)
    assert chunks[0] == {"type": "start", "messageId": "m1"}
    assert texts(chunks) == "echo: second" == second.text()


def test_the_newest_token_is_kept(server: LocalServer, scripted_agent: Make) -> None:
    tokens = iter(["tok-1", "tok-2", "tok-3"])

    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        agent.reply("ok", chunk["_seq"], token=next(tokens))

    chat = new_chat(server, chat_id="c-token")
    scripted_agent("c-token", respond)
    created = chat.preload()["public_access_token"]
    assert created and created.count(".") == 2  # the create call's JWT
    chat.send_message("a").text()
    assert chat.state["public_access_token"] == "tok-1"
    chat.send_message("b").text()
    assert chat.state["public_access_token"] == "tok-2"
    for shown in (repr(chat), repr(chat.send_message("c"))):
        assert "tok-" not in shown and SECRET not in shown and created not in shown


def test_a_session_token_is_refreshed_from_turn_complete(
    server: LocalServer, scripted_agent: Make
) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        token = server.mint_token("c-pat", ttl=3600 + chunk["_seq"])  # one per turn
        agent.reply("ok", chunk["_seq"], token=token)

    chat = new_chat(server, chat_id="c-pat")
    scripted_agent("c-pat", respond)
    chat.send_message("a").text()
    saved = chat.state
    # No secret key anywhere: the saved session token carries the conversation.
    resumed = AgentChat("my-agent", state=saved, api_url=server.url, stream_timeout=10)
    reply = resumed.send_message("b")
    assert reply.text() == "ok"
    assert resumed.state["public_access_token"] != saved["public_access_token"]
    assert resumed._session.token == resumed.state["public_access_token"]


def test_an_error_chunk_raises_agent_error_with_the_partial_reply(
    server: LocalServer, scripted_agent: Make
) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        agent.write({"type": "start", "messageId": "m"})
        agent.write({"type": "text-start", "id": "t"})
        agent.write({"type": "text-delta", "id": "t", "delta": "partial"})
        agent.write({"type": "error", "errorText": "model overloaded"})
        agent.turn_complete(chunk["_seq"])

    chat = new_chat(server, chat_id="c-err")
    scripted_agent("c-err", respond)
    reply = chat.send_message("hi")
    assert [c["type"] for c in reply] == ["start", "text-start", "text-delta", "error"]
    for call in (reply.text, reply.result, reply.message, reply.text):
        with pytest.raises(AgentError) as info:
            call()
        assert str(info.value) == "model overloaded"
        assert info.value.reply["text"] == "partial"
        assert not isinstance(info.value, EmptyReplyError)


def test_an_empty_turn_raises_empty_reply_error(server: LocalServer, scripted_agent: Make) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        agent.turn_complete(chunk["_seq"])  # as when the agent rejects the client data

    chat = new_chat(server, chat_id="c-empty", client_data={"bad": True})
    scripted_agent("c-empty", respond)
    reply = chat.send_message("hi")
    assert list(reply) == []
    with pytest.raises(EmptyReplyError, match="client data") as info:
        reply.text()
    assert isinstance(info.value, AgentError) and isinstance(info.value, SessionsError)
    # An action may end without chunks: not an error.
    assert chat.send_action({"type": "noop"}).result()["text"] == ""


def test_an_append_answered_without_seq_still_finds_its_turn(
    server: LocalServer, scripted_agent: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        seq = chunk["_seq"]
        if seq > 0:
            agent.turn_complete(seq - 1)
        agent.reply(f"reply to {seq}", seq)

    chat = new_chat(server, chat_id="c-noseq")
    scripted_agent("c-noseq", respond)
    assert chat.send_message("one").text() == "reply to 0"
    append = chat._session.append_in

    def without_seq(record: Any, **kw: Any) -> Dict[str, Any]:
        answer = dict(append(record, **kw))
        answer["seq"] = None  # as production answers a replayed part id
        return answer

    monkeypatch.setattr(chat._session, "append_in", without_seq)
    assert chat.send_message("two").text() == "reply to 1"
    assert chat.state["sent_in_seq"] == 1


def test_a_cut_connection_mid_reply_loses_and_repeats_nothing(
    server: LocalServer, scripted_agent: Make
) -> None:
    chat = new_chat(server, chat_id="c-cut")
    scripted_agent("c-cut", echo)
    chat.send_message("warm up").text()
    server.faults.cut_stream(after_records=3)
    reply = chat.send_message("one two three four five six")
    chunks = list(reply)
    assert [c["type"] for c in chunks].count("start") == 1
    assert texts(chunks) == "echo: one two three four five six" == reply.text()
    assert server.request_counts["read"] >= 3


def test_a_closed_session_raises_session_closed(server: LocalServer, scripted_agent: Make) -> None:
    chat = new_chat(server, chat_id="c-closed")
    scripted_agent("c-closed", echo)
    assert chat.send_message("hi").text() == "echo: hi"
    server.close_session("c-closed")
    with pytest.raises(SessionClosedError):
        chat.send_message("anyone?")
    with pytest.raises(SessionClosedError):
        new_chat(server, chat_id="c-closed").preload()


def test_a_session_closed_record_during_a_turn(server: LocalServer, scripted_agent: Make) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        agent.write({"type": "text-delta", "id": "t", "delta": "bye"})
        server.write_control("c-sc", "session-closed")

    chat = new_chat(server, chat_id="c-sc")
    scripted_agent("c-sc", respond)
    reply = chat.send_message("hi")
    with pytest.raises(SessionClosedError):
        reply.text()
    with pytest.raises(SessionClosedError):
        reply.result()


def test_a_turn_is_bounded_by_stream_timeout(server: LocalServer, scripted_agent: Make) -> None:
    chat = new_chat(server, chat_id="c-slow", stream_timeout=0.5)
    scripted_agent("c-slow", lambda agent, chunk: None)  # never answers
    reply = chat.send_message("hi")
    with pytest.raises(TurnTimeoutError):
        reply.text()
    with pytest.raises(TurnTimeoutError):
        reply.result()


def test_state_round_trip_continues_without_new_run_or_reread(
    server: LocalServer, scripted_agent: Make
) -> None:
    events: List[Dict[str, Any]] = []
    chat = new_chat(server, chat_id="c-state", on_turn_complete=events.append)
    scripted_agent("c-state", echo)
    assert chat.send_message("one").text() == "echo: one"
    saved = json.loads(json.dumps(chat.state))
    assert events == [saved]
    assert saved["chat_id"] == "c-state" and saved["last_event_id"] is not None
    assert saved["run_id"]
    reads_before = server.records("c-state", "out")
    resumed = new_chat(server, state=saved)
    reply = resumed.send_message("two")
    chunks = list(reply)
    assert chunks[0] == {"type": "start", "messageId": "m1"}  # nothing of turn one
    assert texts(chunks) == "echo: two"
    session = server.get_session("c-state")
    assert session is not None and session["currentRunId"] == saved["run_id"]
    assert resumed.state["run_id"] == saved["run_id"]
    assert resumed.state["last_event_id"] > reads_before[-1]["seq"]


def test_stop_keeps_what_arrived_and_ends_at_the_turn_end(
    server: LocalServer, scripted_agent: Make
) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        if chunk["kind"] == "stop":
            agent.write({"type": "text-delta", "id": "t", "delta": " (after stop)"})
            agent.write({"type": "abort"})
            agent.turn_complete(chunk["_seq"])
        elif chunk["payload"]["trigger"] == "submit-message":
            agent.write({"type": "start", "messageId": "m"})
            agent.write({"type": "text-start", "id": "t"})
            agent.write({"type": "text-delta", "id": "t", "delta": "so far"})

    chat = new_chat(server, chat_id="c-stop")
    agent = scripted_agent("c-stop", respond)
    reply = chat.send_message("tell me everything")
    assert [next(reply)["type"] for _ in range(3)] == ["start", "text-start", "text-delta"]
    chat.stop()
    assert reply.text() == "so far"
    agent.wait_received(2)
    assert agent.received[1] == {"kind": "stop", "_seq": 1}


def test_steer_close_and_reconnect(server: LocalServer, scripted_agent: Make) -> None:
    chat = new_chat(server, chat_id="c-misc")
    assert chat.steer("early") is False and chat.close() is False and chat.reconnect() is None
    agent = scripted_agent("c-misc", echo)
    assert chat.send_message("hi").text() == "echo: hi"
    assert chat.reconnect() is None  # settled
    assert chat.steer("also this") is True
    agent.wait_received(2)
    assert agent.received[1]["payload"]["message"]["id"].startswith("steer-")
    assert chat.close() is True
    agent.wait_received(3)
    assert agent.received[2]["payload"] == {"chatId": "c-misc", "trigger": "close"}


def test_reconnect_resumes_a_reply_in_flight(server: LocalServer, scripted_agent: Make) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        agent.write({"type": "start", "messageId": "m"})
        agent.write({"type": "text-start", "id": "t"})
        agent.write({"type": "text-delta", "id": "t", "delta": "one"})

    chat = new_chat(server, chat_id="c-rec")
    agent = scripted_agent("c-rec", respond)
    reply = chat.send_message("hi")
    next(reply)
    saved = chat.state  # e.g. the page reloads here
    agent.wait_out(3)
    agent.write({"type": "text-delta", "id": "t", "delta": " two"})
    agent.turn_complete(0)
    again = new_chat(server, state=saved).reconnect()
    assert again is not None
    assert again.text() == "one two"  # the rest of the turn, nothing twice
    assert again.message()["parts"] == [{"type": "text", "text": "one two", "state": "streaming"}]


def test_regenerate_and_send_raw_payloads(server: LocalServer, scripted_agent: Make) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        agent.reply("done", chunk["_seq"])

    chat = new_chat(server, chat_id="c-raw")
    agent = scripted_agent("c-raw", respond)
    assert chat.regenerate().text() == "done"
    answer = {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "text", "text": "long reasoning"},
            {
                "type": "tool-approve",
                "toolCallId": "c1",
                "state": "approval-responded",
                "input": {"big": "x"},
                "approval": {"id": "ap1", "approved": True},
            },
        ],
    }
    assert chat.send_raw(answer).text() == "done"
    assert chat.send_action({"type": "undo"}).text() == "done"
    payloads = [r["payload"] for r in agent.received]
    assert payloads[0] == {"chatId": "c-raw", "trigger": "regenerate-message"}
    assert payloads[1]["message"] == {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {
                "type": "tool-approve",
                "toolCallId": "c1",
                "state": "approval-responded",
                "approval": {"id": "ap1", "approved": True},
            }
        ],
    }
    assert payloads[2] == {"chatId": "c-raw", "trigger": "action", "action": {"type": "undo"}}


def test_tool_calls_and_results(server: LocalServer, scripted_agent: Make) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        agent.write({"type": "start", "messageId": "m"})
        agent.write({"type": "tool-input-start", "toolCallId": "c1", "toolName": "echo"})
        agent.write(
            {
                "type": "tool-input-available",
                "toolCallId": "c1",
                "toolName": "echo",
                "input": {"text": "X"},
            }
        )
        agent.write({"type": "tool-output-available", "toolCallId": "c1", "output": {"text": "X"}})
        agent.reply("echo: X", chunk["_seq"])

    chat = new_chat(server, chat_id="c-tool")
    scripted_agent("c-tool", respond)
    result = chat.send_message("/tool X").result()
    assert result["tool_calls"] == [
        {"toolName": "echo", "toolCallId": "c1", "input": {"text": "X"}}
    ]
    assert result["tool_results"] == [{"toolCallId": "c1", "output": {"text": "X"}}]
    assert result["text"] == "echo: X"


def test_bad_arguments_raise_typed_errors(server: LocalServer) -> None:
    from sessions_client import ConfigurationError

    with pytest.raises(ConfigurationError):
        AgentChat("", token=SECRET, api_url=server.url)
    with pytest.raises(ConfigurationError):
        AgentChat("a", token=SECRET, api_url=server.url, state={"nope": 1})
    with pytest.raises(ConfigurationError):
        AgentChat("a", token=SECRET, api_url=server.url, chat_id="x", state={"chat_id": "y"})
    with pytest.raises(ConfigurationError):
        AgentChat("a", token=SECRET, api_url=server.url, stream_timeout=0)
    with pytest.raises(ConfigurationError, match="no token"):
        AgentChat("a", api_url=server.url)


def test_tokens_never_logged(
    server: LocalServer, scripted_agent: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    chat = new_chat(server, chat_id="c-log")
    scripted_agent("c-log", lambda a, c: a.reply("x", c["_seq"], token="tok-secret-123"))
    chat.send_message("hi").text()
    assert "tok-secret-123" not in caplog.text and SECRET not in caplog.text


def test_chunks_that_do_not_assemble_still_give_the_text(
    server: LocalServer, scripted_agent: Make
) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        agent.write({"type": "text-delta", "id": "t", "delta": "no text-start"})
        agent.turn_complete(chunk["_seq"])

    chat = new_chat(server, chat_id="c-bad")
    scripted_agent("c-bad", respond)
    reply = chat.send_message("hi")
    assert reply.text() == "no text-start"
    for _ in range(2):
        with pytest.raises(ProtocolError, match="text-start"):
            reply.result()


def test_upgrade_required_is_passed_over(server: LocalServer, scripted_agent: Make) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        agent.write({"type": "text-start", "id": "t"})
        agent.write({"type": "text-delta", "id": "t", "delta": "old run, "})
        server.write_control("c-up", "upgrade-required")
        agent.write({"type": "text-delta", "id": "t", "delta": "new run"})
        agent.write({"type": "text-end", "id": "t"})
        agent.turn_complete(chunk["_seq"])

    chat = new_chat(server, chat_id="c-up")
    scripted_agent("c-up", respond)
    reply = chat.send_message("hi")
    assert [c["type"] for c in reply] == ["text-start", "text-delta", "text-delta", "text-end"]
    assert reply.text() == "old run, new run"


def test_chunks_of_an_earlier_turn_are_never_in_this_turns_reply(
    server: LocalServer, scripted_agent: Make
) -> None:
    def respond(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        seq = chunk["_seq"]
        if seq > 0:  # the tail of a turn nobody here waited for, then ours
            agent.write({"type": "text-start", "id": "x"})
            agent.write({"type": "text-delta", "id": "x", "delta": "not yours"})
            agent.turn_complete(seq - 1)
        agent.reply(f"reply to {seq}", seq)

    chat = new_chat(server, chat_id="c-foreign")
    scripted_agent("c-foreign", respond)
    assert chat.send_message("one").text() == "reply to 0"
    reply = chat.send_message("two")
    assert reply.text() == "reply to 1"
    assert texts(list(reply)) == "reply to 1"  # not handed out afterwards either


def test_reconnect_after_an_unanswered_send_waits_for_that_turn(
    server: LocalServer, scripted_agent: Make
) -> None:
    # The agent has not started the second reply when the new process reconnects:
    # .out still ends with the first turn's turn-complete, which a settled probe
    # would take as "settled" and the turn just sent would be lost.
    release = threading.Event()

    def slow_second(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
        if chunk["_seq"] > 0:
            assert release.wait(5)
        echo(agent, chunk)

    chat = new_chat(server, chat_id="c-pending")
    scripted_agent("c-pending", slow_second)
    assert chat.send_message("first").text() == "echo: first"
    chat.send_message("second")  # sent; the reply is not written yet
    resumed = new_chat(server, state=json.loads(json.dumps(chat.state)))
    stream = resumed.reconnect()
    release.set()
    assert stream is not None
    assert stream.text() == "echo: second"
    assert resumed.reconnect() is None  # answered now: settled
