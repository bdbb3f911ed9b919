"""sessions_client.wsgi.chat_relay: one chat turn served to the page as the AI SDK's UI
message stream (``data: <chunk>`` ... ``data: [DONE]``), by the same relay machinery."""

from __future__ import annotations

import json
import time
from typing import Any, Iterator, List

import pytest
from _waiting import eventually

from sessions_client import AgentChat, ConfigurationError
from sessions_client.testing import LocalServer
from sessions_client.wsgi import ChatRelay, chat_relay, sse_headers


@pytest.fixture
def srv() -> Iterator[LocalServer]:
    with LocalServer(echo_agent=True) as server:
        yield server


def new_chat(srv: LocalServer, **options: Any) -> AgentChat:
    options.setdefault("stream_timeout", 10)
    return AgentChat("echo", token=srv.secret_key, api_url=srv.url, **options)


def body_lines(relay: ChatRelay, timeout: float = 10.0) -> List[str]:
    """The fake WSGI server loop: the whole body's lines, then ``close()``."""
    deadline = time.monotonic() + timeout
    lines: List[str] = []
    try:
        for chunk in relay:
            lines.extend(line for line in chunk.decode().split("\n") if line)
            assert time.monotonic() < deadline, "the body did not end at the turn's end"
    finally:
        relay.close()
    return lines


def chunks(lines: List[str]) -> List[Any]:
    data = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    return [json.loads(item) for item in data[:-1]]


def test_a_turn_is_relayed_chunk_by_chunk_and_ends_with_done(srv: LocalServer) -> None:
    chat = new_chat(srv)
    relay = chat_relay(chat.send_message("hello there"))
    got = chunks(body_lines(relay))
    assert got[0]["type"] == "start" and got[-1]["type"] == "finish"
    text = "".join(c["delta"] for c in got if c["type"] == "text-delta")
    assert text == "echo: hello there"
    assert relay.join(5), "the reader thread is still running"
    assert chat.state["turn_complete"] is True
    assert chat.send_message("again").text() == "echo: again"  # the chat goes on


def test_a_reply_saved_before_relaying_is_skipped_by_the_next_message(srv: LocalServer) -> None:
    chat = new_chat(srv)
    relay = chat_relay(chat.send_message("first"))
    saved = chat.state  # what a view stores before its body starts
    body_lines(relay)
    again = new_chat(srv, state=saved)
    assert again.send_message("second").text() == "echo: second"


def test_the_headers_are_those_of_a_ui_message_stream() -> None:
    headers = dict(sse_headers(chat=True))
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert "x-vercel-ai-ui-message-stream" not in dict(sse_headers())


def test_a_failed_turn_ends_with_an_error_chunk_and_done() -> None:
    with LocalServer(echo_agent=True, agent_delay=5) as srv:
        chat = new_chat(srv, stream_timeout=0.5)
        got = chunks(body_lines(chat_relay(chat.send_message("slow"))))
    assert got[-1]["type"] == "error" and "0.5" in got[-1]["errorText"]


def test_close_while_the_turn_streams_stops_the_reader() -> None:
    with LocalServer(echo_agent=True, agent_delay=0.05) as slow:
        chat = new_chat(slow)
        relay = chat_relay(chat.send_message(" ".join(f"w{i}" for i in range(100))))
        first = next(relay)
        assert first.startswith(b": connected")
        relay.close()
        assert relay.join(5), "the reader thread outlived close()"
        eventually(lambda: relay.closed, 5, "the relay did not close")


def test_bad_arguments_fail_at_once(srv: LocalServer) -> None:
    with pytest.raises(ConfigurationError, match="ChatStream"):
        chat_relay("not a stream")  # type: ignore[arg-type]
    stream = new_chat(srv).send_message("hi")
    with pytest.raises(ConfigurationError, match="heartbeat"):
        chat_relay(stream, heartbeat=0)
    stream.close()
