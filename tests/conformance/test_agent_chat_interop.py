"""The Python ``AgentChat`` continues a conversation the official ``AgentChat`` started:
the official client's ``session.lastEventId`` is all the Python one needs (no new run,
no earlier turn read again)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import pytest

from sessions_client import AgentChat

pytestmark = [pytest.mark.conformance, pytest.mark.timeout(120)]

ChatDrive = Callable[[Any, List[Dict[str, Any]]], List[Dict[str, Any]]]


def ok(result: Dict[str, Any]) -> Any:
    assert result["ok"], result.get("error")
    return result["value"]


def test_python_resumes_a_chat_of_the_official_agent_chat(
    servers: Callable[..., Any], chat_drive: ChatDrive
) -> None:
    srv = servers("v2", echo_agent=True, name="interop")
    results = chat_drive(
        srv,
        [
            {"op": "new", "chat": "ts"},
            {"op": "send", "chat": "ts", "text": "one"},
            {"op": "send", "chat": "ts", "text": "two"},
            {"op": "session", "chat": "ts"},
        ],
    )
    assert ok(results[2]) == "echo: two"
    started = ok(results[3])
    run_before = srv.get_session(started["id"])["currentRunId"]
    state = {"chat_id": started["id"], "last_event_id": int(started["session"]["lastEventId"])}
    with AgentChat("echo", state=state, token=srv.secret_key, api_url=srv.url) as chat:
        reply = chat.send_message("three")
        chunks = list(reply)
        assert [c["type"] for c in chunks].count("start") == 1  # no earlier turn
        assert reply.text() == "echo: three"
        assert chat.send_message("four").text() == "echo: four"
    assert srv.get_session(started["id"])["currentRunId"] == run_before
