"""The echo agent of the local server (``LocalServer(echo_agent=True)``).

For every data record appended to a session's ``.in`` channel, the agent writes to
``.out``:

1. a data record whose envelope data is the JSON value
   ``{"type": "text", "text": "echo: <text>"}`` (as a task's direct writer would);
   ``<text>`` is the record's ``text`` field when its payload is a JSON object with
   a string ``text``, the payload itself when it is a string (JSON-decoded when the
   appended text is a JSON string, kept raw when it is not JSON), else the payload's
   compact JSON;
2. a ``turn-complete`` control record with the siblings ``public-access-token`` (a
   fresh read+write token for the session) and ``session-in-event-id`` (that ``.in``
   record's seq).

Control and command records on ``.in`` are ignored. The agent resumes after a
restart from the ``session-in-event-id`` of the last ``turn-complete`` on ``.out``,
so no record is echoed twice. It runs on one daemon thread, woken by appends.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
from typing import Any, Dict, Optional

from .auth import TokenAuthority
from .store import Store, StoredRecord

logger = logging.getLogger("sessions_client.testing")


def echo_text(payload: Any) -> str:
    """The ``<text>`` an ``.in`` payload is echoed as (see the module docstring)."""
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        return str(payload["text"])
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _payload(record: StoredRecord) -> Any:
    try:
        envelope = json.loads(record.body)
    except ValueError:
        return record.body
    data = envelope.get("data") if isinstance(envelope, dict) else envelope
    if isinstance(data, str):
        try:
            return json.loads(data)
        except ValueError:
            return data
    return data


class EchoAgent:
    """Echoes ``.in`` records to ``.out``; see the module docstring."""

    def __init__(self, store: Store, tokens: TokenAuthority) -> None:
        self._store = store
        self._tokens = tokens
        self._queue: queue.Queue[Optional[str]] = queue.Queue()  # novermin
        self._cursors: Dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="sessions-echo-agent", daemon=True)

    def start(self) -> None:
        """Start the agent thread and catch up with records appended while it was down."""
        self._store.add_listener(self._on_append)
        for session_id, io in self._store.channels():
            if io == "in":
                self._queue.put(session_id)
        self._thread.start()

    def stop(self) -> None:
        """Stop the agent thread (waits for the record being echoed, if any)."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _on_append(self, session_id: str, io: str, seq: int) -> None:
        if io == "in":
            self._queue.put(session_id)

    def _run(self) -> None:
        while True:
            session_id = self._queue.get()
            if session_id is None:
                return
            try:
                self._catch_up(session_id)
            except Exception:  # keep the agent alive whatever one session does
                logger.exception("echo agent failed on %s", session_id)

    def _cursor(self, session_id: str) -> int:
        cursor = self._cursors.get(session_id)
        if cursor is None:
            cursor = 0
            last = self._store.last_control(session_id, "out", "turn-complete")
            if last is not None:
                for name, value in last.headers:
                    if name == "session-in-event-id" and value.isdigit():
                        cursor = int(value) + 1
        return cursor

    def _catch_up(self, session_id: str) -> None:
        cursor = self._cursor(session_id)
        while True:
            records = self._store.read(session_id, "in", cursor)
            if not records:
                break
            for record in records:
                if not record.is_command and record.control is None:
                    self._echo(session_id, record)
                cursor = record.seq + 1
        self._cursors[session_id] = cursor

    def _echo(self, session_id: str, record: StoredRecord) -> None:
        session = self._store.get_session(session_id)
        if session is None:
            return
        text = "echo: " + echo_text(_payload(record))
        envelope = {"data": {"type": "text", "text": text}, "id": secrets.token_urlsafe(9)}
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
        self._store.append(session_id, "out", body)
        token = self._tokens.mint(session.external_id or session.id)
        headers = [
            ["trigger-control", "turn-complete"],
            ["public-access-token", token],
            ["session-in-event-id", str(record.seq)],
        ]
        self._store.append(session_id, "out", "", headers=headers)
