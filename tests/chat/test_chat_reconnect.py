"""AgentChat.reconnect() against the echo chat agent and the settled peek.

The agent ends every turn with a ``turn-complete`` and, from the second turn on, an
S2 ``["", "trim"]`` command record; the server's peek walks past the trim, so a
reconnect from a finished conversation gets ``X-Session-Settled: true`` and returns
``None`` at once instead of long-polling.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterator, List

import pytest

from sessions_client import AgentChat
from sessions_client.testing import LocalServer

from .conftest import SECRET

WORDS = " ".join(f"w{i}" for i in range(30))
TC = ["trigger-control", "turn-complete"]


def new_chat(srv: LocalServer, **options: Any) -> AgentChat:
    options.setdefault("stream_timeout", 20)
    return AgentChat("echo", token=SECRET, api_url=srv.url, **options)


def saved(chat: AgentChat) -> Dict[str, Any]:
    """The chat's state through JSON, as another process would get it."""
    state: Dict[str, Any] = json.loads(json.dumps(chat.state))
    return state


def out_records(srv: LocalServer, chat_id: str, until: str) -> List[Dict[str, Any]]:
    """``.out`` once its last record is a trim (``until="trim"``) or holds a
    turn-complete after the first one (``"second turn-complete"``); bounded wait."""
    deadline = time.monotonic() + 10
    while True:
        out = srv.records(chat_id, "out")
        ends = [r for r in out if TC in r["headers"]]
        if until == "trim":
            done = bool(out) and out[-1]["headers"] == [["", "trim"]]
        else:
            done = len(ends) >= 2
        if done:
            return out
        assert time.monotonic() < deadline, f"no {until} on .out within 10 s"
        time.sleep(0.005)


@pytest.fixture(params=["v2", "v1"])
def agent_server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    with LocalServer(secret_key=SECRET, echo_agent=True, wire=request.param) as srv:
        yield srv


@pytest.mark.parametrize("turns", [1, 2])
def test_reconnect_is_none_when_settled(agent_server: LocalServer, turns: int) -> None:
    chat = new_chat(agent_server)
    for i in range(turns):
        assert chat.send_message(f"m{i}").text() == f"echo: m{i}"
    if turns == 2:  # the tail is now the agent's trim, above the turn-complete
        out_records(agent_server, chat.chat_id, "trim")
    resumed = new_chat(agent_server, state=saved(chat))
    started = time.monotonic()
    assert resumed.reconnect() is None
    # Settled: the server closes at once; unsettled it would hold the 60 s window.
    assert time.monotonic() - started < 5
    assert chat.reconnect() is None  # the same in the chat that ran the turns
    assert resumed.send_message("again").text() == "echo: again"


@pytest.mark.parametrize("wire", ["v2", "v1"])
def test_reconnect_resumes_the_turn_in_flight(wire: str) -> None:
    with LocalServer(secret_key=SECRET, echo_agent=True, agent_delay=0.05, wire=wire) as srv:
        chat = new_chat(srv)
        assert chat.send_message("first").text() == "echo: first"
        reply = chat.send_message(WORDS)
        texts = reply.iter_text()
        head = [next(texts), next(texts)]  # "echo:", " w0": the page reloads here
        state = saved(chat)
        reply.close()
        ends = [r for r in srv.records(chat.chat_id, "out") if r["headers"][:1] == [TC]]
        assert len(ends) == 1  # the second turn is still being written (~1.5 s)
        resumed = new_chat(srv, state=state)
        again = resumed.reconnect()
        assert again is not None
        rest = again.text()
        assert "".join(head) + rest == f"echo: {WORDS}"  # nothing lost, nothing twice
        assert again.turn_complete is not None
        assert resumed.state["last_event_id"] == again.turn_complete["seq"]
        out_records(srv, chat.chat_id, "trim")
        assert resumed.reconnect() is None  # now at the turn boundary: settled


def test_reconnect_after_the_turn_ended_gets_its_rest() -> None:
    # A cursor saved mid-turn, the turn finished meanwhile: the server is settled, but
    # the records after the cursor still come (production drains with wait=0).
    with LocalServer(secret_key=SECRET, echo_agent=True, agent_delay=0.01) as srv:
        chat = new_chat(srv)
        assert chat.send_message("first").text() == "echo: first"
        reply = chat.send_message(WORDS)
        head = next(reply.iter_text())
        state = saved(chat)
        reply.close()
        out_records(srv, chat.chat_id, "second turn-complete")
        again = new_chat(srv, state=state).reconnect()
        assert again is not None
        assert head + again.text() == f"echo: {WORDS}"
