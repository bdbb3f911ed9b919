"""Fixtures for the AgentChat tests: a LocalServer and agents scripted in the test."""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from _waiting import eventually

from sessions_client.testing import LocalServer

SECRET = "tr_dev_chat_secret_never_shown"

Respond = Callable[["ScriptedAgent", Dict[str, Any]], None]


@pytest.fixture
def sessions_server_options() -> Dict[str, Any]:
    return {"secret_key": SECRET}


@pytest.fixture
def server(sessions_server: LocalServer) -> LocalServer:
    return sessions_server


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRIGGER_"):
            monkeypatch.delenv(name)


class ScriptedAgent:
    """Answers each ``.in`` record of one chat by calling ``respond(agent, chunk)``
    (``chunk`` is the ChatInputChunk, with its ``.in`` seq under ``"_seq"``); the
    response writes ``.out`` records through the LocalServer's direct API."""

    def __init__(self, srv: LocalServer, chat_id: str, respond: Respond) -> None:
        self.srv = srv
        self.chat_id = chat_id
        self.respond = respond
        self.received: List[Dict[str, Any]] = []
        self.errors: List[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        done = 0
        while not self._stop.wait(0.005):
            try:
                records = self.srv.records(self.chat_id, "in")
            except KeyError:
                continue
            for record in records[done:]:
                if record["headers"]:
                    continue
                chunk = json.loads(json.loads(record["body"])["data"])
                chunk["_seq"] = record["seq"]
                self.received.append(chunk)
                try:
                    self.respond(self, chunk)
                except BaseException as exc:  # reported by close()
                    self.errors.append(exc)
            done = len(records)

    def write(self, chunk: Dict[str, Any]) -> int:
        return self.srv.write(self.chat_id, "out", chunk)

    def reply(self, text: str, in_seq: Optional[int], token: Optional[str] = None) -> None:
        """A whole text reply (start ... finish), then its turn-complete."""
        message_id = f"m{in_seq}"
        self.write({"type": "start", "messageId": message_id})
        self.write({"type": "start-step"})
        self.write({"type": "text-start", "id": "t1"})
        for i, word in enumerate(text.split(" ")):
            self.write({"type": "text-delta", "id": "t1", "delta": word if i == 0 else " " + word})
        self.write({"type": "text-end", "id": "t1"})
        self.write({"type": "finish-step"})
        self.write({"type": "finish"})
        self.turn_complete(in_seq, token)

    def turn_complete(self, in_seq: Optional[int], token: Optional[str] = None) -> int:
        headers = []
        if token is not None:
            headers.append(["public-access-token", token])
        if in_seq is not None:
            headers.append(["session-in-event-id", str(in_seq)])
        return self.srv.write_control(self.chat_id, "turn-complete", headers)

    def wait_received(self, count: int, timeout: float = 5.0) -> None:
        eventually(
            lambda: len(self.received) >= count,
            timeout,
            f"the agent got {len(self.received)} records",
        )

    def wait_out(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``.out`` holds ``count`` records."""
        eventually(
            lambda: len(self.srv.records(self.chat_id, "out")) >= count,
            timeout,
            "the agent did not write in time",
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def scripted_agent(server: LocalServer) -> Iterator[Callable[[str, Respond], ScriptedAgent]]:
    agents: List[ScriptedAgent] = []

    def make(chat_id: str, respond: Respond) -> ScriptedAgent:
        agent = ScriptedAgent(server, chat_id, respond)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.close()


def echo(agent: ScriptedAgent, chunk: Dict[str, Any]) -> None:
    """Reply "echo: T" to a message whose text is T; answer nothing else."""
    payload = chunk.get("payload") or {}
    if chunk.get("kind") == "message" and payload.get("trigger") == "submit-message":
        text = payload["message"]["parts"][0]["text"]
        agent.reply(f"echo: {text}", chunk["_seq"])
