"""Talk to a Trigger.dev ``chat.agent`` from Python: :class:`AgentChat`.

The protocol is described in docs/protocol.md, "Chat agents".

It behaves like the official ``AgentChat`` of ``@trigger.dev/sdk/chat``: the session
is started on first use with ``trigger: "preload"`` (idempotent create, ``externalId``
= the chat id), every message goes through ``.in`` as a ``ChatInputChunk`` (one
``X-Part-Id`` per record, reused on retries), and each send returns a
:class:`~sessions_client.ChatStream` reading that turn's reply from ``.out``.
Unlike it, a turn ends at *its own* ``turn-complete`` (by ``session-in-event-id``),
so a stale one from an earlier turn never ends a reply early.

``assemble_message(chunks)`` builds the assistant ``UIMessage`` from chunks as the AI
SDK's ``readUIMessageStream`` does.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from ._chat_stream import ChatPosition, ChatStream
from ._chat_wire import message_id, now_ms, slim, trigger_config
from ._config import is_secret_key, resolve_token
from ._ui_message import assemble_message
from .client import Client
from .errors import AgentError, ConfigurationError, EmptyReplyError, SessionsError

__all__ = ["AgentChat", "ChatStream", "AgentError", "EmptyReplyError", "assemble_message"]

logger = logging.getLogger("sessions_client.chat")

Message = Dict[str, Any]

_STATE_SEQS = ("last_event_id", "in_seq", "sent_in_seq", "in_tail")


def _check_state(state: Any) -> Optional[Dict[str, Any]]:
    if state is None:
        return None
    if not isinstance(state, Mapping) or not isinstance(state.get("chat_id"), str):
        raise ConfigurationError("state must be a dict saved from AgentChat.state")
    for key in _STATE_SEQS:
        value = state.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigurationError(f"state[{key!r}] must be an int or None")
    return dict(state)


def _check_options(
    agent: Any,
    chat_id: Any,
    saved: Optional[Dict[str, Any]],
    client_data: Any,
    trigger_config: Any,
) -> Optional[str]:
    """Check the arguments; the chat id to use (``None``: a new one)."""
    if not isinstance(agent, str) or not agent.strip():
        raise ConfigurationError("agent must be the agent's task identifier")
    if saved is not None:
        if chat_id is not None and chat_id != saved["chat_id"]:
            raise ConfigurationError("chat_id differs from the chat id in state")
        chat_id = saved["chat_id"]
    if chat_id is not None and (not isinstance(chat_id, str) or not chat_id.strip()):
        raise ConfigurationError("chat_id must be a non-empty string")
    if client_data is not None and not isinstance(client_data, Mapping):
        raise ConfigurationError("client_data must be a dict")
    if trigger_config is not None and not isinstance(trigger_config, Mapping):
        raise ConfigurationError("trigger_config must be a dict")
    return chat_id


class AgentChat:
    """A conversation with a chat agent (a ``chat.agent`` task), synchronous.

    ``AgentChat(agent, chat_id=None, client_data=None, state=None, trigger_config=None,
    token=None, api_url=None, branch=None, client=None, stream_timeout=120.0,
    on_turn_complete=None)``

    - ``agent``: the agent's task identifier; ``chat_id`` (default: a new uuid4) is
      the session's ``externalId`` and names the channels.
    - ``client_data``: the agent's client data, sent as ``metadata`` with the start
      and every message; ``trigger_config``: the create call's ``triggerConfig``
      options (``basePayload``, ``tags``, ``machine``, ``queue``, ``maxDuration``,
      ``idleTimeoutInSeconds``...), folded in as the official client does.
    - ``state``: a dict saved from :attr:`state` continues that conversation (in
      another request or process): no new run, no re-read of earlier turns.
      Without a token anywhere else, its ``public_access_token`` is used.
    - ``token`` / ``api_url`` / ``branch`` build a :class:`~sessions_client.Client`
      (environment defaults), or pass ``client``.
    - ``stream_timeout``: seconds a turn may take, from the first read of its reply
      (:class:`~sessions_client.errors.TurnTimeoutError`).
    - ``on_turn_complete(event)`` is called after each turn with :attr:`state`.

    Closed sessions raise :class:`~sessions_client.errors.SessionClosedError`. Use
    an ``AgentChat`` from one thread at a time (``stop()`` may come from another);
    :meth:`disconnect` (or ``with``) closes its connections.
    """

    def __init__(
        self,
        agent: str,
        chat_id: Optional[str] = None,
        client_data: Optional[Mapping[str, Any]] = None,
        state: Optional[Mapping[str, Any]] = None,
        trigger_config: Optional[Mapping[str, Any]] = None,
        token: Optional[str] = None,
        api_url: Optional[str] = None,
        branch: Optional[str] = None,
        client: Optional[Client] = None,
        stream_timeout: float = 120.0,
        on_turn_complete: Optional[Callable[[Dict[str, Any]], Any]] = None,
    ) -> None:
        saved = _check_state(state)
        chat_id = _check_options(agent, chat_id, saved, client_data, trigger_config)
        if isinstance(stream_timeout, bool) or not isinstance(stream_timeout, (int, float)):
            raise TypeError("stream_timeout must be a number of seconds")
        if not stream_timeout > 0:
            raise ConfigurationError("stream_timeout must be positive")
        if on_turn_complete is not None and not callable(on_turn_complete):
            raise TypeError("on_turn_complete must be callable")
        self.agent = agent
        self.chat_id: str = chat_id or str(uuid.uuid4())
        self.client_data = dict(client_data) if client_data is not None else None
        self.trigger_config = dict(trigger_config or {})
        self.stream_timeout = float(stream_timeout)
        self.on_turn_complete = on_turn_complete
        saved = saved or {}
        self._position = ChatPosition(
            last_event_id=saved.get("last_event_id"),
            in_seq=saved.get("in_seq"),
            sent_in_seq=saved.get("sent_in_seq"),
            in_tail=saved.get("in_tail"),
            turn_complete=bool(saved.get("turn_complete", False)),
            token=saved.get("public_access_token"),
        )
        self.session_id: Optional[str] = saved.get("session_id")
        self.run_id: Optional[str] = saved.get("run_id")
        self._owns_client = client is None
        if client is None:
            client = Client(self._token(token, saved), api_url, branch=branch)
        self._client = client
        self._session = client.session(self.chat_id)
        # As the official client: a restored chat is started, but refreshes its
        # start (a cached create: same run, fresh token) once, if its token may.
        self._started = bool(saved)
        self._refreshed = not saved or not is_secret_key(self._session.token)
        self._current: Optional[ChatStream] = None

    @staticmethod
    def _token(token: Optional[str], saved: Mapping[str, Any]) -> str:
        try:
            return resolve_token(token)
        except ConfigurationError:
            if isinstance(saved.get("public_access_token"), str):
                return str(saved["public_access_token"])
            raise

    def __repr__(self) -> str:
        return f"AgentChat({self.agent!r}, chat_id={self.chat_id!r})"

    @property
    def state(self) -> Dict[str, Any]:
        """The conversation as a JSON-serialisable dict, to pass back as ``state=``:
        ``chat_id``, ``session_id``, ``run_id``, ``last_event_id`` (the ``.out``
        cursor), ``in_seq`` / ``sent_in_seq`` / ``in_tail`` (the last ``.in`` seq
        answered / sent for a turn / written),
        ``turn_complete`` and ``public_access_token`` (the newest session token)."""
        p = self._position
        return {
            "chat_id": self.chat_id,
            "session_id": self.session_id,
            "run_id": self.run_id,
            "last_event_id": p.last_event_id,
            "in_seq": p.in_seq,
            "sent_in_seq": p.sent_in_seq,
            "in_tail": p.in_tail,
            "turn_complete": p.turn_complete,
            "public_access_token": p.token,
        }

    # -- starting --------------------------------------------------------------------

    def preload(self) -> Dict[str, Any]:
        """Start the session now (the agent's ``onPreload`` runs); idempotent.
        Returns :attr:`state`."""
        self._ensure_started()
        return self.state

    def _ensure_started(self) -> None:
        if self._started and self._refreshed:
            return
        config = trigger_config(self.chat_id, self.client_data, self.trigger_config)
        answer = self._client.create_session(
            "chat.agent", self.agent, config, external_id=self.chat_id
        )
        joined = not self._started and answer.get("isCached")
        self._started = self._refreshed = True
        self.session_id = answer.get("id") or self.session_id
        self.run_id = answer.get("runId") or self.run_id
        if isinstance(answer.get("publicAccessToken"), str):
            self._position.token = answer["publicAccessToken"]
        if self._position.last_event_id is None:
            if joined:
                self._join()
            else:
                self._position.turn_complete = True  # a new session: .out holds nothing yet

    def _join(self) -> None:
        """An existing chat without saved state: find where ``.out`` stands (the agent
        trims it to about one turn), so the next reply streams from its first chunk."""
        for record in self._session.drain_out(include_control=True):
            if record["control"] is None:
                self._position.note_data(int(record["seq"]))
            else:
                self._position.note_control(record)
        answered = self._position.in_seq
        for record in self._session.drain_in(after=answered):
            self._position.note_written(int(record["seq"]))
        self._position.note_written(answered)

    # -- sending ---------------------------------------------------------------------

    def send_message(self, text: str) -> ChatStream:
        """Send a user message with one text part; returns the reply's stream."""
        if not isinstance(text, str):
            raise TypeError("text must be a str")
        message = {"id": message_id(), "role": "user", "parts": [{"type": "text", "text": text}]}
        return self.send_raw(message)

    def send_raw(self, message: Union[Message, List[Message]]) -> ChatStream:
        """Send a whole ``UIMessage`` dict (file parts, or an assistant message answering
        a tool approval / tool output: cut to its resolved tool parts); of a list, the
        last one (the agent keeps the history). Returns the reply's stream."""
        if isinstance(message, list):
            if not message:
                raise ConfigurationError("send_raw needs at least one message")
            message = message[-1]
        if not isinstance(message, dict):
            raise TypeError("message must be a UIMessage dict")
        return self._send({"message": slim(message)}, "submit-message")

    def send_action(self, action: Any) -> ChatStream:
        """Send a custom action (validated by the agent); returns its stream, which may
        end without chunks."""
        return self._send({"action": action}, "action")

    def regenerate(self) -> ChatStream:
        """Ask the agent to produce its last reply again; returns the new reply's stream."""
        return self._send({}, "regenerate-message")

    def _payload(self, trigger: str, extra: Dict[str, Any]) -> Dict[str, Any]:
        payload = dict(extra)
        payload["chatId"] = self.chat_id
        payload["trigger"] = trigger
        if self.client_data is not None:
            payload["metadata"] = self.client_data
        return payload

    def _send(self, extra: Dict[str, Any], trigger: str) -> ChatStream:
        self._ensure_started()
        start = self._position.last_event_id
        settled = self._position.settled()
        tail = self._position.in_tail
        chunk = {"kind": "message", "payload": self._payload(trigger, extra)}
        in_seq = self._append_turn(chunk)
        # Chunks stream as they come when the next turn on .out is surely this one: the
        # chat was at a turn boundary and no one else wrote to .in since.
        live = settled and self._position.only_writer(in_seq, tail)
        stream = ChatStream(
            self._session,
            self._position,
            start=start,
            after_in_seq=in_seq,
            live=live,
            timeout=self.stream_timeout,
            trigger=trigger,
            on_complete=self._turn_completed,
        )
        self._current = stream
        return stream

    def _append_turn(self, chunk: Dict[str, Any]) -> Optional[int]:
        """Append a record that starts or joins a turn; its ``.in`` seq, else a lower
        bound (the seq after the last one answered), else ``None`` (any turn-complete)."""
        appended = self._session.append_in(chunk)
        in_seq: Optional[int] = appended.get("seq")
        if in_seq is None:
            in_seq = self._find_in_seq(str(appended["part_id"]))
        self._position.note_sent(in_seq)
        return in_seq

    def _find_in_seq(self, part_id: str) -> Optional[int]:
        """The ``.in`` seq of the record with ``part_id`` (an append answered without
        one, as production answers a replayed part id)."""
        floor = self._position.sent_in_seq
        for record in self._session.drain_in(after=floor):
            if record.get("part_id") == part_id:
                return int(record["seq"])
        answered = self._position.in_seq
        logger.warning("no .in record with the part id just appended; correlating loosely")
        return None if answered is None else answered + 1

    def _turn_completed(self) -> None:
        if self.on_turn_complete is not None:
            self.on_turn_complete(self.state)

    def steer(self, text: str) -> bool:
        """Send a message while a reply streams (id ``steer-<ms>``), for the agent to
        take into the current turn. False when not started or the send failed."""
        if not self._started:
            return False
        message = {
            "id": f"steer-{now_ms()}",
            "role": "user",
            "parts": [{"type": "text", "text": text}],
        }
        chunk = {
            "kind": "message",
            "payload": self._payload("submit-message", {"message": message}),
        }
        try:
            self._append_turn(chunk)
        except SessionsError as exc:
            logger.info("steer failed: %s", exc)
            return False
        return True

    def stop(self) -> None:
        """Stop the reply being generated: the current stream keeps what arrived and
        ends at the turn's end; the agent stays for the next message."""
        if not self._started:
            return
        if self._current is not None and not self._current.done:
            self._current._stop()
        try:
            self._position.note_written(self._session.append_in({"kind": "stop"})["seq"])
        except SessionsError as exc:
            logger.info("stop failed: %s", exc)

    def close(self) -> bool:
        """End the agent's loop (the ``close`` trigger; the session stays open and a
        later message starts it again). False when not started or the send failed."""
        if not self._started:
            return False
        try:
            payload = {"chatId": self.chat_id, "trigger": "close"}
            appended = self._session.append_in({"kind": "message", "payload": payload})
            self._position.note_written(appended["seq"])
        except SessionsError as exc:
            logger.info("close failed: %s", exc)
            return False
        self._started = False
        return True

    def reconnect(self) -> Optional[ChatStream]:
        """Resume the reply in flight from the saved cursor, e.g. after a page reload
        or in a new process; ``None`` when the conversation is settled (or not
        started). Whether it is settled is asked of the server (``X-Peek-Settled``)
        unless the state shows a message sent and not yet answered: that turn is
        read without the probe, which could otherwise answer from the previous
        turn's end before the agent has started (bounded by ``stream_timeout``)."""
        if not self._started:
            return None
        p = self._position
        pending = p.sent_in_seq is not None and (p.in_seq is None or p.in_seq < p.sent_in_seq)
        if pending:
            after: Optional[int] = p.sent_in_seq
        else:
            after = None if p.in_seq is None else p.in_seq + 1
        stream = ChatStream(
            self._session,
            p,
            start=p.last_event_id,
            after_in_seq=after,
            live=True,
            timeout=self.stream_timeout,
            trigger="reconnect",
            peek_settled=not pending,
            on_complete=self._turn_completed,
        )
        if not pending and stream._prime():
            return None
        self._current = stream
        return stream

    # -- lifecycle -------------------------------------------------------------------

    def disconnect(self) -> None:
        """Close this object's HTTP connections (the conversation is left as it is)."""
        self._session.close()
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> AgentChat:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()
