"""The echo chat agent of the local server (``LocalServer(echo_agent=True)``).

It speaks the chat protocol of ``@trigger.dev/sdk`` 4.8.3's ``chat.agent``
(docs/protocol.md, "Chat agents"),
so the official ``AgentChat`` cannot tell it from a real agent. It acts on sessions
of type ``"chat.agent"`` only (the type ``AgentChat`` creates; a ``chat.agent`` task
never runs for another type).

**Input.** One ``ChatInputChunk`` per ``.in`` record (the envelope's ``data``, a JSON
string as an HTTP append stores it, or a JSON object):
``{"kind": "message", "payload": {"trigger", "message"?, "metadata"?, "action"?}}`` or
``{"kind": "stop"}``. Anything else (text that is not JSON, unknown kinds, control and
command records) is dropped, as the SDK's input router drops it.

**Replies.** Every chunk is a data record whose envelope is ``{"data": <chunk object>,
"id": <unique id>}`` (the task's direct writer). A turn is the reply's chunks, then a
``turn-complete`` control record with ``public-access-token`` (a fresh read+write
session token), ``session-in-event-id`` and ``session-in-consumed-id`` (the highest
``.in`` seq consumed), then an S2 ``["", "trim"]`` command record trimming ``.out``
back to the previous ``turn-complete`` (none after the first turn), so ``.out`` holds
about one turn.

- ``submit-message`` whose text parts join to ``T``: ``start {messageId}``,
  ``start-step``, ``text-start``, one ``text-delta`` per word of ``"echo: T"``,
  ``text-end``, ``finish-step``, ``finish {finishReason: "stop"}``.
- ``T = "/tool X"``: a first step calls the tool ``echo`` (``tool-input-start``,
  ``tool-input-delta``s of the JSON input ``{"text": "X"}``, ``tool-input-available``,
  ``tool-output-available`` with output ``{"text": "X"}``), a second step replies
  ``"echo: X"``.
- ``regenerate-message``: the reply to the last ``submit-message`` again (new ids).
- ``action``: ``start``, ``data-action {id, data: <the action>}``, ``finish``.
- ``close``: nothing is written (the agent's run ends; a later message starts it
  again, as the append endpoint re-triggers a run in production).
- ``stop`` during a reply: the reply ends with ``{"type": "abort"}`` and the turn
  completes; a stop with no reply in flight is dropped.
- ``preload`` (the session's ``basePayload`` at create): nothing. A ``basePayload``
  with ``trigger: "submit-message"`` and a ``message`` is answered at create.
- ``client_data`` keys (``LocalServer(agent_client_data=["userId"])``): a message,
  action or regenerate whose ``metadata`` lacks one fails its turn as the SDK's
  ``chat.agent`` fails a client-data schema error: one ``error`` chunk
  ``{"errorText": "Invalid client data: missing userId"}``, then a ``turn-complete``
  without ``public-access-token``.

Messages that arrive during a reply (steering) are answered after it, in order.
``delay`` seconds pass before each text or tool-input delta (0 for tests; a stop
wakes the wait at once). Up to ``MAX_WORKERS`` sessions are answered at the same
time, each by one worker thread that exists only while there is work, so a slow
reply on one session does not hold up another.

**Restart.** After a restart the agent resumes after the ``session-in-event-id`` of
the newest ``turn-complete`` on ``.out`` (so nothing is answered twice) and trims back
to that ``turn-complete`` after its next turn.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from .auth import TokenAuthority
from .store import Store, StoredRecord

logger = logging.getLogger("sessions_client.testing")

CHAT_SESSION_TYPE = "chat.agent"
MAX_WORKERS = 8  # sessions answered at the same time; the others wait their turn
TOOL_PREFIX = "/tool"
Chunk = Dict[str, Any]


class _Stopped(Exception):
    """A ``stop`` on ``.in`` ended the reply being written."""


@dataclass
class _Progress:
    """Where the agent stands on one session."""

    cursor: int = 0  # the next .in seq to read
    consumed: Optional[int] = None  # the highest .in seq consumed (session-in-event-id)
    last_turn_complete: Optional[int] = None  # its .out seq, the next trim target
    last_prompt: Optional[str] = None  # the text of the last submit-message


@dataclass
class _Turn:
    """One reply being written, and how far ``.in`` was looked at for a stop."""

    session_id: str
    progress: _Progress
    scanned: int = 0  # the next .in seq to look at for a stop


def parse_input(record: StoredRecord) -> Optional[Dict[str, Any]]:
    """The ``ChatInputChunk`` dict of an ``.in`` record, or None when it is not one."""
    if record.is_command or record.control is not None:
        return None
    try:
        envelope = json.loads(record.body)
    except ValueError:
        return None
    data = envelope.get("data") if isinstance(envelope, dict) else None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    if not isinstance(data, dict) or data.get("kind") not in ("message", "stop"):
        return None
    if data["kind"] == "message" and not isinstance(data.get("payload"), dict):
        return None
    return data


def message_text(message: Any) -> str:
    """The text parts of a UIMessage, joined (``""`` when it has none)."""
    if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
        return ""
    return "".join(
        str(part.get("text", ""))
        for part in message["parts"]
        if isinstance(part, dict) and part.get("type") == "text"
    )


def words(text: str) -> List[str]:
    """``text`` cut into word-sized deltas that join back to it."""
    return re.findall(r"\s*\S+\s*|\s+", text) or [text]


def chat_message(
    text: str, *, chat_id: str = "", metadata: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """The ``ChatInputChunk`` that ``AgentChat.sendMessage(text)`` appends to ``.in``
    (for tests and scripts that talk to the agent through the channel API)."""
    payload: Dict[str, Any] = {
        "message": {
            "id": _new_id("msg-"),
            "role": "user",
            "parts": [{"type": "text", "text": text}],
        },
        "chatId": chat_id,
        "trigger": "submit-message",
    }
    if metadata is not None:
        payload["metadata"] = metadata
    return {"kind": "message", "payload": payload}


def reply_text(records: Iterable[Dict[str, Any]]) -> str:
    """The text of a reply: the ``text-delta`` chunks of ``.out`` records (as the
    readers yield them, chunk in ``data``) joined."""
    return "".join(
        str(record["data"].get("delta", ""))
        for record in records
        if isinstance(record.get("data"), dict) and record["data"].get("type") == "text-delta"
    )


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


class EchoAgent:
    """The echo chat agent; see the module docstring."""

    def __init__(
        self,
        store: Store,
        tokens: TokenAuthority,
        *,
        delay: float = 0.0,
        client_data: Iterable[str] = (),
    ) -> None:
        if delay < 0:
            raise ValueError("agent_delay must be zero or positive")
        self._store = store
        self._tokens = tokens
        self._delay = delay
        self._client_data = [str(key) for key in client_data]
        self._lock = threading.Lock()
        self._progress: Dict[str, _Progress] = {}
        self._pending: List[str] = []  # sessions with work, oldest first, each once
        self._active: Set[str] = set()  # sessions a worker is serving now
        self._workers: Set[threading.Thread] = set()
        self._closing = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start listening and catch up with what arrived while the agent was down."""
        self._store.add_listener(self._on_append)
        self._store.add_create_listener(self._wake)
        waiting = {sid for sid, io in self._store.channels() if io == "in"}
        for session in self._store.list_sessions():
            if session.id in waiting or _base_message(session.trigger_config) is not None:
                self._wake(session.id)

    def stop(self) -> None:
        """Stop every worker (a reply being written is cut short) and wait for them."""
        with self._lock:
            self._closing = True
            workers = list(self._workers)
        self._store.wake_all()
        for worker in workers:
            worker.join(timeout=5)

    def _on_append(self, session_id: str, io: str, seq: int) -> None:
        if io == "in":
            self._wake(session_id)

    def _wake(self, session_id: str) -> None:
        """Queue ``session_id`` for a worker; start one unless ``MAX_WORKERS`` run."""
        with self._lock:
            if self._closing:
                return
            if session_id not in self._pending:
                self._pending.append(session_id)
            if len(self._workers) >= MAX_WORKERS:
                return
            worker = threading.Thread(target=self._work, name="sessions-echo-agent", daemon=True)
            self._workers.add(worker)
        worker.start()

    def _next_session(self) -> Optional[str]:
        """The oldest queued session no other worker is serving (taken off the queue), or
        None, when this worker ends (called with the lock held)."""
        for session_id in self._pending:
            if session_id not in self._active and not self._closing:
                self._pending.remove(session_id)
                self._active.add(session_id)
                return session_id
        self._workers.discard(threading.current_thread())
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                session_id = self._next_session()
            if session_id is None:
                return
            try:
                self._catch_up(session_id)
            except _Stopped:
                pass  # the agent is closing
            except Exception:  # keep the agent alive whatever one session does
                logger.exception("echo agent failed on %s", session_id)
            finally:
                with self._lock:
                    self._active.discard(session_id)

    # ------------------------------------------------------------ input

    def _catch_up(self, session_id: str) -> None:
        session = self._store.get_session(session_id)
        if session is None or session.type != CHAT_SESSION_TYPE:
            return
        progress = self._progress.get(session.id)
        if progress is None:
            progress, fresh = self._restore(session.id)
            self._progress[session.id] = progress
            base = _base_message(session.trigger_config)
            if fresh and base is not None:
                self._answer(session.id, progress, base)
        while not self._closing:
            records = self._store.read(session.id, "in", progress.cursor)
            if not records:
                return
            for record in records:
                progress.cursor = record.seq + 1
                chunk = parse_input(record)
                if chunk is None or chunk["kind"] == "stop":
                    progress.consumed = record.seq  # dropped: no reply in flight
                    continue
                progress.consumed = record.seq
                self._answer(session.id, progress, chunk["payload"])

    def _restore(self, session_id: str) -> Tuple[_Progress, bool]:
        """The progress recorded on ``.out`` and whether ``.out`` has no turn yet."""
        progress = _Progress()
        last = self._store.last_control(session_id, "out", "turn-complete")
        if last is None:
            return progress, True
        progress.last_turn_complete = last.seq
        for name, value in last.headers:
            if name == "session-in-event-id" and value.isdigit():
                progress.consumed = int(value)
                progress.cursor = int(value) + 1
        return progress, False

    def _stop_requested(self, turn: _Turn) -> bool:
        """True when a stop arrived on ``.in`` during the reply. Records before the
        first message that arrived meanwhile are consumed; that message and what
        follows it are left for later turns."""
        if self._closing:
            raise _Stopped()
        if self._store.tail(turn.session_id, "in")[0] <= turn.scanned:
            return False
        progress = turn.progress
        stop = waiting = False
        for record in self._store.read(turn.session_id, "in", turn.scanned):
            turn.scanned = record.seq + 1
            chunk = parse_input(record)
            waiting = waiting or (chunk is not None and chunk["kind"] == "message")
            if not waiting:
                progress.cursor = record.seq + 1
                progress.consumed = record.seq
            stop = stop or (chunk is not None and chunk["kind"] == "stop")
        return stop

    # ------------------------------------------------------------ replies

    def _answer(self, session_id: str, progress: _Progress, payload: Dict[str, Any]) -> None:
        trigger = payload.get("trigger")
        if trigger not in ("submit-message", "regenerate-message", "action"):
            return  # close, preload, handover, unknown: no turn
        missing = [key for key in self._client_data if not _has_key(payload.get("metadata"), key)]
        turn = _Turn(session_id, progress, scanned=progress.cursor)
        if missing:
            self._write(turn, {"type": "error", "errorText": _client_data_error(missing)})
            self._complete(turn, token=False)
            return
        try:
            if trigger == "action":
                self._reply_action(turn, payload.get("action"))
            else:
                if trigger == "submit-message":
                    progress.last_prompt = message_text(payload.get("message"))
                elif progress.last_prompt is None:
                    progress.last_prompt = self._last_prompt(session_id, progress.cursor)
                if progress.last_prompt is not None:
                    self._reply_text(turn, progress.last_prompt)
        except _Stopped:
            if self._closing:
                raise
            self._write(turn, {"type": "abort"})
        self._complete(turn, token=True)

    def _last_prompt(self, session_id: str, before: int) -> Optional[str]:
        """The text of the last ``submit-message`` on ``.in`` before ``before`` (a
        regenerate after a restart)."""
        prompt: Optional[str] = None
        start = 0
        while start < before:
            records = [r for r in self._store.read(session_id, "in", start) if r.seq < before]
            if not records:
                break
            for record in records:
                chunk = parse_input(record)
                payload = chunk.get("payload") if chunk is not None else None
                if isinstance(payload, dict) and payload.get("trigger") == "submit-message":
                    prompt = message_text(payload.get("message"))
            start = records[-1].seq + 1
        return prompt

    def _reply_text(self, turn: _Turn, prompt: str) -> None:
        self._write(turn, {"type": "start", "messageId": _new_id("msg_")})
        reply = prompt
        if prompt == TOOL_PREFIX or prompt.startswith(TOOL_PREFIX + " "):
            reply = prompt[len(TOOL_PREFIX) + 1 :]
            self._write(turn, {"type": "start-step"})
            self._tool_call(turn, reply)
            self._write(turn, {"type": "finish-step"})
        self._write(turn, {"type": "start-step"})
        part = _new_id("txt_")
        self._write(turn, {"type": "text-start", "id": part})
        for delta in words("echo: " + reply):
            self._pause(turn)
            self._write(turn, {"type": "text-delta", "id": part, "delta": delta})
        self._write(turn, {"type": "text-end", "id": part})
        self._write(turn, {"type": "finish-step"})
        self._write(turn, {"type": "finish", "finishReason": "stop"})

    def _tool_call(self, turn: _Turn, text: str) -> None:
        call = _new_id("call_")
        arguments = {"text": text}
        encoded = json.dumps(arguments, ensure_ascii=False)
        self._write(turn, {"type": "tool-input-start", "toolCallId": call, "toolName": "echo"})
        cut = encoded.index(":") + 1
        for piece in (encoded[:cut], encoded[cut:]):
            self._pause(turn)
            self._write(
                turn, {"type": "tool-input-delta", "toolCallId": call, "inputTextDelta": piece}
            )
        self._write(
            turn,
            {
                "type": "tool-input-available",
                "toolCallId": call,
                "toolName": "echo",
                "input": arguments,
            },
        )
        self._write(
            turn, {"type": "tool-output-available", "toolCallId": call, "output": arguments}
        )

    def _reply_action(self, turn: _Turn, action: Any) -> None:
        self._write(turn, {"type": "start", "messageId": _new_id("msg_")})
        self._write(turn, {"type": "data-action", "id": _new_id("act_"), "data": action})
        self._write(turn, {"type": "finish", "finishReason": "stop"})

    def _pause(self, turn: _Turn) -> None:
        """Wait ``delay`` seconds (woken early by a new ``.in`` record); raise
        :class:`_Stopped` when a stop arrived."""
        if self._delay > 0:
            seen = turn.scanned  # a record not looked at yet ends the wait
            self._store.wait(
                lambda: self._closing or self._store.tail_unlocked(turn.session_id, "in") > seen,
                self._delay,
            )
        if self._stop_requested(turn):
            raise _Stopped()

    # ------------------------------------------------------------ writing

    def _write(self, turn: _Turn, chunk: Chunk) -> None:
        envelope = {"data": chunk, "id": _new_id("")}
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
        self._store.append(turn.session_id, "out", body)

    def _complete(self, turn: _Turn, *, token: bool) -> None:
        """Write the turn-complete, then trim ``.out`` back to the previous one."""
        progress = turn.progress
        headers = [["trigger-control", "turn-complete"]]
        session = self._store.get_session(turn.session_id)
        if token and session is not None:
            headers.append(
                ["public-access-token", self._tokens.mint(session.external_id or session.id)]
            )
        if progress.consumed is not None:
            headers.append(["session-in-event-id", str(progress.consumed)])
            headers.append(["session-in-consumed-id", str(progress.consumed)])
        seq, _ = self._store.append(turn.session_id, "out", "", headers=headers)
        if progress.last_turn_complete is not None:
            self._store.trim(turn.session_id, "out", progress.last_turn_complete)
        progress.last_turn_complete = seq


def _base_message(trigger_config: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The ``basePayload`` when it is a ``submit-message`` with a message, else None."""
    base = (trigger_config or {}).get("basePayload")
    if isinstance(base, dict) and base.get("trigger") == "submit-message" and base.get("message"):
        return base
    return None


def _has_key(metadata: Any, key: str) -> bool:
    return isinstance(metadata, dict) and metadata.get(key) is not None


def _client_data_error(missing: List[str]) -> str:
    return "Invalid client data: missing " + ", ".join(missing)
