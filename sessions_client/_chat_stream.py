"""One turn of a chat agent's reply: :class:`ChatStream`, and the conversation's
position on ``.out`` that every turn of an ``AgentChat`` shares (docs/protocol.md,
"Reading the reply").

A stream reads ``.out`` with one following reader (``Session.iter_out``, which
resumes broken connections by itself) from where the conversation stood when the
message was sent, up to the ``turn-complete`` that belongs to the message: the
first whose ``session-in-event-id`` is at least the message's ``.in`` seq (or
that has no such header, as older agents write it). A lower one ends an earlier
turn: it is skipped with the chunks before it, and reading goes on.

Chunks are handed out as they arrive when the conversation was at a turn
boundary at send time (the common case). Otherwise (an earlier reply was left
unread, a steer may have started a turn of its own, or a chat was joined without
its saved state) they are held until a ``turn-complete`` says whose they are.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

from ._turns import TURN_COMPLETE, turn_in_seq
from ._ui_message import assemble_message
from ._wire import Record
from .errors import (
    AgentError,
    EmptyReplyError,
    ProtocolError,
    ReaderTimeoutError,
    SessionClosedError,
    SessionsError,
    TurnTimeoutError,
)

if TYPE_CHECKING:
    from .session import Session

__all__ = ["ChatStream", "ChatPosition", "summarize"]

logger = logging.getLogger("sessions_client.chat")

Chunk = Dict[str, Any]

SESSION_CLOSED = "session-closed"
TOKEN_HEADER = "public-access-token"


def _header(record: Record, name: str) -> Optional[str]:
    """The first value of header ``name`` on a record (or in a legacy control's data)."""
    pairs: List[Any] = list(record.get("headers") or [])
    data = record.get("data")
    if isinstance(data, dict):
        pairs.extend(data.get("headers") or [])
        if name == TOKEN_HEADER and isinstance(data.get("publicAccessToken"), str):
            pairs.append([name, data["publicAccessToken"]])
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and pair[0] == name:
            return str(pair[1])
    return None


class ChatPosition:
    """Where a conversation stands on ``.out`` (thread-safe; a cursor store too).

    ``last_event_id``: the last ``.out`` seq processed; ``in_seq``: the highest
    ``session-in-event-id`` of a ``turn-complete`` processed; ``sent_in_seq``: the
    ``.in`` seq of the last record sent that starts or joins a turn; ``in_tail``: the
    ``.in`` seq of the last record this conversation knows of (its own, any kind);
    ``turn_complete``: the last record processed ended a turn (nothing of a reply
    is pending after ``last_event_id``); ``token``: the newest session token seen.
    """

    def __init__(
        self,
        last_event_id: Optional[int] = None,
        in_seq: Optional[int] = None,
        sent_in_seq: Optional[int] = None,
        in_tail: Optional[int] = None,
        turn_complete: bool = False,
        token: Optional[str] = None,
    ) -> None:
        self._lock = threading.Lock()
        self.last_event_id = last_event_id
        self.in_seq = in_seq
        self.sent_in_seq = sent_in_seq
        self.in_tail = in_tail
        self.turn_complete = turn_complete
        self.token = token

    def get(self) -> Optional[int]:
        """The cursor: the last ``.out`` seq processed."""
        return self.last_event_id

    def set(self, seq: int) -> None:
        """Move the cursor forward to ``seq`` (command records, records read elsewhere)."""
        with self._lock:
            self._advance(seq)

    def _advance(self, seq: int) -> bool:
        if self.last_event_id is not None and seq <= self.last_event_id:
            return False
        self.last_event_id = seq
        return True

    def note_data(self, seq: int) -> None:
        """A data record was read: the conversation is inside a reply."""
        with self._lock:
            if self._advance(seq):
                self.turn_complete = False

    def note_control(self, record: Record) -> None:
        """A control record was read: a ``turn-complete`` ends a reply and may carry
        a refreshed token and the ``.in`` seq it answered."""
        with self._lock:
            newest = self._advance(int(record["seq"]))
            if record.get("control") != TURN_COMPLETE:
                return
            answered = turn_in_seq(record)
            if answered is not None and (self.in_seq is None or answered > self.in_seq):
                self.in_seq = answered
            token = _header(record, TOKEN_HEADER)
            if newest:
                self.turn_complete = True
                if token:
                    self.token = token

    def note_sent(self, in_seq: Optional[int]) -> None:
        """A record that starts or joins a turn went to ``.in`` at ``in_seq``."""
        with self._lock:
            if in_seq is not None and (self.sent_in_seq is None or in_seq > self.sent_in_seq):
                self.sent_in_seq = in_seq
        self.note_written(in_seq)

    def note_written(self, in_seq: Optional[int]) -> None:
        """A record went to ``.in`` at ``in_seq`` (``None``: unknown)."""
        with self._lock:
            if in_seq is not None and (self.in_tail is None or in_seq > self.in_tail):
                self.in_tail = in_seq

    def only_writer(self, in_seq: Optional[int], tail: Optional[int]) -> bool:
        """Whether ``in_seq``, just appended, directly follows ``tail``, the last ``.in``
        record known before it: then no one else started a turn in between."""
        if in_seq is None:
            return False
        return in_seq == (0 if tail is None else tail + 1)

    def settled(self) -> bool:
        """At a turn boundary with every record sent answered: a new turn's chunks
        are the next data records on ``.out``."""
        with self._lock:
            if not self.turn_complete:
                return False
            if self.sent_in_seq is None:
                return True
            return self.in_seq is not None and self.in_seq >= self.sent_in_seq


def summarize(chunks: List[Chunk]) -> Dict[str, Any]:
    """``{"text", "tool_calls", "tool_results"}`` for a turn's chunks, as the official
    ``ChatStream.result()`` computes them."""
    text: List[str] = []
    calls: List[Dict[str, Any]] = []
    results: List[Dict[str, Any]] = []
    for chunk in chunks:
        kind = chunk.get("type")
        if kind == "text-delta":
            text.append(str(chunk.get("delta", "")))
        elif kind == "tool-input-available":
            calls.append(
                {
                    "toolName": chunk.get("toolName"),
                    "toolCallId": chunk.get("toolCallId"),
                    "input": chunk.get("input"),
                }
            )
        elif kind == "tool-output-available":
            results.append({"toolCallId": chunk.get("toolCallId"), "output": chunk.get("output")})
    return {"text": "".join(text), "tool_calls": calls, "tool_results": results}


class ChatStream:
    """One turn's reply (returned by ``AgentChat.send_message`` and friends).

    Iterating yields the turn's ``UIMessageChunk`` dicts as they arrive, each once;
    :meth:`iter_text` yields only the text deltas. :meth:`text`, :meth:`result` and
    :meth:`message` read what is left of the turn and return the whole reply;
    calling them again returns the same answer.

    They raise :class:`~sessions_client.errors.AgentError` when the reply carries an
    ``error`` chunk, :class:`~sessions_client.errors.EmptyReplyError` when a message
    got a turn without a single chunk, :class:`~sessions_client.errors.TurnTimeoutError`
    when the turn did not end within the chat's ``stream_timeout`` (counted from the
    first read), and the session's typed errors (e.g.
    :class:`~sessions_client.errors.SessionClosedError`). Use a stream from one thread.
    """

    def __init__(
        self,
        session: Session,
        position: ChatPosition,
        *,
        start: Optional[int],
        after_in_seq: Optional[int],
        live: bool,
        timeout: float,
        trigger: str,
        peek_settled: bool = False,
        on_complete: Optional[Callable[[], Any]] = None,
    ) -> None:
        self._session = session
        self._position = position
        self._seq = start
        self._after = after_in_seq
        self._live = live
        self._timeout = timeout
        self._trigger = trigger
        self._peek = peek_settled
        self._on_complete = on_complete
        self._chunks: List[Chunk] = []
        self._first = 0  # chunks before this index were another turn's (see _stale)
        self._handed = 0
        self._held: List[Chunk] = []
        self._reader: Optional[Iterator[Record]] = None
        self._deadline: Optional[float] = None
        self._failure: Optional[SessionsError] = None
        self._result: Optional[Dict[str, Any]] = None
        self._assembly_error: Optional[ProtocolError] = None
        self._stopped = False
        self.done = False
        #: The ``turn-complete`` record that ended the turn, once read.
        self.turn_complete: Optional[Record] = None

    def __repr__(self) -> str:
        state = "done" if self.done else "open"
        return f"<ChatStream {self._trigger} {state}, {len(self._chunks) - self._first} chunks>"

    # -- consumption -------------------------------------------------------------

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> Chunk:
        while self._handed >= len(self._chunks):
            if self.done:
                if self._failure is not None:
                    raise self._failure
                raise StopIteration
            self._pump()
        chunk = self._chunks[self._handed]
        self._handed += 1
        return chunk

    def iter_text(self) -> Iterator[str]:
        """Yield the text deltas of the chunks not handed out yet, as they arrive."""
        for chunk in self:
            if chunk.get("type") == "text-delta":
                yield str(chunk.get("delta", ""))

    def text(self) -> str:
        """The reply's text: every ``text-delta`` concatenated."""
        reply = self._reply()
        self._check(reply)
        return str(reply["text"])

    def message(self) -> Dict[str, Any]:
        """The assistant ``UIMessage`` the turn's chunks build (``assemble_message``)."""
        message: Dict[str, Any] = self.result()["message"]
        return message

    def result(self) -> Dict[str, Any]:
        """``{"text", "tool_calls": [{"toolName", "toolCallId", "input"}],
        "tool_results": [{"toolCallId", "output"}], "message"}`` for the whole turn.

        A chunk sequence the AI SDK would refuse to assemble raises
        :class:`~sessions_client.errors.ProtocolError` here (``text()`` still works).
        """
        reply = self._reply()
        self._check(reply)
        if self._assembly_error is not None:
            raise self._assembly_error
        return reply

    def _reply(self) -> Dict[str, Any]:
        """Read the rest of the turn; its summary and message, computed once."""
        while not self.done:
            self._pump()
        if self._failure is not None:
            raise self._failure
        if self._result is None:
            chunks = self._chunks[self._first :]
            self._result = summarize(chunks)
            try:
                self._result["message"] = assemble_message(chunks)
            except ProtocolError as exc:
                logger.warning("the reply's chunks do not assemble into a message: %s", exc)
                self._assembly_error = exc
                self._result["message"] = None
        return self._result

    def close(self) -> None:
        """Stop reading (closes the connection); the chat's position stays where it is."""
        self._drop_reader()

    def _check(self, reply: Dict[str, Any]) -> None:
        chunks = self._chunks[self._first :]
        for chunk in chunks:
            if chunk.get("type") == "error":
                text = chunk.get("errorText")
                raise AgentError(str(text) if text else "the agent reported an error", reply=reply)
        ended = self.turn_complete is not None
        if ended and not chunks and self._trigger == "submit-message" and not self._stopped:
            raise EmptyReplyError(
                "the agent produced nothing in reply to the message: most often it "
                "rejected the message's client data (metadata), or failed at once",
                reply=reply,
            )

    # -- reading -----------------------------------------------------------------

    def _stop(self) -> None:
        """``AgentChat.stop()``: keep no chunk from now on, end at the turn's end."""
        self._stopped = True

    def _prime(self) -> bool:
        """Read until one record was processed or the stream ended (``reconnect``);
        True when it ended without a chunk (nothing in flight)."""
        if not self.done:
            self._pump()
        return self.done and len(self._chunks) == self._first

    def _pump(self) -> None:
        """Read and process one record; on a failure, store it (and raise it)."""
        try:
            record = next(self._open())
        except StopIteration:
            self._finish(None)
            return
        except ReaderTimeoutError as exc:
            error = TurnTimeoutError(f"the agent's turn did not end within {self._timeout:g} s")
            self._fail(error)
            raise error from exc
        except SessionsError as exc:
            self._fail(exc)
            raise
        except BaseException:
            # KeyboardInterrupt and the like end the generator: reopen at self._seq later.
            self._reader = None
            raise
        self._process(record)

    def _open(self) -> Iterator[Record]:
        if self._reader is None:
            now = time.monotonic()
            if self._deadline is None:
                self._deadline = now + self._timeout
            self._reader = self._session.iter_out(
                last_event_id=self._seq,
                follow=True,
                include_control=True,
                cursor=self._position,
                total_timeout=max(self._deadline - now, 0.001),
                peek_settled=self._peek,
            )
        return self._reader

    def _process(self, record: Record) -> None:
        self._seq = int(record["seq"])
        control = record.get("control")
        if control is None:
            self._position.note_data(self._seq)
            chunk = record.get("data")
            if isinstance(chunk, dict) and not self._stopped:
                (self._chunks if self._live else self._held).append(chunk)
            return
        self._position.note_control(record)
        if control == TURN_COMPLETE:
            answered = turn_in_seq(record)
            if self._after is not None and answered is not None and answered < self._after:
                self._stale(answered)
                return
            self._chunks.extend(self._held)
            self._held = []
            self._finish(record)
        elif control == SESSION_CLOSED:
            self._finish(None)
            if not self._peek:
                self._failure = SessionClosedError("the session was closed during the turn")
        # upgrade-required, pending-version: the turn goes on (in a new run)

    def _stale(self, answered: int) -> None:
        """A ``turn-complete`` of an earlier turn: what came before it was that turn's."""
        logger.debug("skipping a turn-complete for .in seq %d (< %d)", answered, self._after)
        if self._live and len(self._chunks) > self._first:
            logger.warning(
                "an earlier turn ended (.in seq %d) after %d chunks were handed out as "
                "this turn's; they are left out of its result",
                answered,
                len(self._chunks) - self._first,
            )
        self._first = len(self._chunks)
        self._handed = self._first  # what was not handed out yet is not handed out
        self._held = []
        self._live = True

    def _finish(self, record: Optional[Record]) -> None:
        self.done = True
        self.turn_complete = record
        self._drop_reader()
        if record is not None and self._on_complete is not None:
            self._on_complete()

    def _fail(self, error: SessionsError) -> None:
        self._failure = error
        self.done = True
        self._drop_reader()

    def _drop_reader(self) -> None:
        reader, self._reader = self._reader, None
        close = getattr(reader, "close", None)
        if close is not None:
            close()
