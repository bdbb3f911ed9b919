"""Relay a session channel to a browser as ``text/event-stream``, from any WSGI app.

::

    from sessions_client.wsgi import sse_headers, sse_relay

    # Flask
    @app.get("/sessions/<sid>/events")
    def events(sid):
        body = sse_relay(client.session(sid), last_event_id=request.headers.get("Last-Event-ID"))
        return Response(body, headers=sse_headers())

    # Django
    def events(request, sid):
        body = sse_relay(client.session(sid), last_event_id=request.headers.get("Last-Event-ID"))
        response = StreamingHttpResponse(body, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response

In the page: ``new EventSource("/sessions/chat-1/events")``; each message's
``data`` is the record's data as JSON and its ``lastEventId`` the record's seq.

One chat turn, as the AI SDK's ``useChat`` reads it (its UI message stream)::

    @app.post("/chat/stream")
    def chat_stream():
        chat = AgentChat("my-agent", state=saved_state, client=client)
        reply = chat.send_message(request.json["text"])
        save(chat.state)  # before the body starts: the next message still finds its turn
        return Response(chat_relay(reply), headers=sse_headers(chat=True))

How it works: a daemon thread reads the channel with the public
``iter_out`` / ``iter_in`` (``follow=True``) into a bounded queue; the response
body waits on that queue at most ``heartbeat`` seconds at a time, so it writes a
comment line at least every ``heartbeat`` seconds even while the channel is idle.
When the browser has gone (tab closed), such a write fails (the first one after
the close may still succeed, so within about two heartbeats) and the WSGI server
calls the body's ``close()``, which returns at once (the worker is free) and
tells the thread to stop. The thread reads in windows of ``upstream_window``
seconds (``total_timeout``), resuming exactly after the last record each time,
so it closes its upstream connection within ``upstream_window`` seconds of
``close()``, even on an idle channel.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Generator,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)

from ._chat_stream import ChatStream
from ._redact import redact_tokens
from ._wire import Record
from .cursor import MemoryCursor
from .errors import ConfigurationError, ReaderTimeoutError, SessionsError

if TYPE_CHECKING:
    from .session import Session

__all__ = ["ChatRelay", "SSERelay", "chat_relay", "encode_event", "sse_headers", "sse_relay"]

logger = logging.getLogger("sessions_client.wsgi")

#: Records buffered between the upstream reader and a slow browser.
QUEUE_SIZE = 256
#: Records written to the browser in one chunk at most.
CHUNK_RECORDS = 100


def sse_headers(*, chat: bool = False) -> List[Tuple[str, str]]:
    """The response headers of an event stream: the content type, no caching, and no
    proxy buffering (``X-Accel-Buffering: no`` for nginx). No hop-by-hop headers, so
    the list suits every WSGI framework (``start_response``, Flask, Django).
    ``chat=True`` adds ``x-vercel-ai-ui-message-stream: v1``, which the AI SDK's
    ``useChat`` expects of a :func:`chat_relay` response."""
    headers = [
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
    ]
    if chat:
        headers.append(("x-vercel-ai-ui-message-stream", "v1"))
    return headers


def _parse_last_event_id(value: Union[int, str, None]) -> Optional[int]:
    """``None``/``""`` -> ``None``; a non-negative int or decimal string -> its int."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        return int(value.strip())
    raise ConfigurationError(
        f"last_event_id must be a record seq (a non-negative integer), got {value!r:.40}"
    )


def _positive(value: Any, name: str, allow_none: bool = False) -> Optional[float]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def encode_event(record: Mapping[str, Any]) -> bytes:
    """One SSE event for a record: ``id:`` its seq, ``data:`` its data as JSON; a
    control record becomes ``event: control`` with ``{"control", "headers"}``
    (tokens hidden)."""
    if record.get("control") is None:
        payload = json.dumps(record.get("data"), separators=(",", ":"), ensure_ascii=False)
        return f"id: {record['seq']}\ndata: {payload}\n\n".encode()
    shown = redact_tokens(record)
    payload = json.dumps(
        {"control": shown["control"], "headers": shown["headers"]},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return f"id: {record['seq']}\nevent: control\ndata: {payload}\n\n".encode()


def _error_event(exc: BaseException) -> bytes:
    if isinstance(exc, SessionsError):
        body = {"error": type(exc).__name__, "message": str(exc), "status": exc.status}
    else:
        body = {"error": "InternalError", "message": "the relay failed", "status": None}
    return f"event: error\ndata: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


class _Failed:
    """The upstream reader stopped on an error (put on the queue)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _End:
    """The upstream reader reached the end of what it relays (put on the queue)."""


_Item = Union[Record, Dict[str, Any], _Failed, _End]


class _Relay:
    """A WSGI response body (an iterable of ``bytes`` with ``close()``) fed by a reader
    on a daemon thread through a bounded queue, with heartbeats while it is idle.

    Iterate it from one thread (the WSGI server's); ``close()`` may be called at any
    time, from any thread, returns at once, and is idempotent (called while another
    thread is inside ``next()``, the body ends within ``heartbeat`` seconds).
    ``closed`` tells whether the upstream reader thread has finished.
    """

    def __init__(self, *, heartbeat: float, max_duration: Optional[float]) -> None:
        self._heartbeat = heartbeat
        self._max_duration = max_duration
        self._queue: queue.Queue[_Item] = queue.Queue(QUEUE_SIZE)  # novermin
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._frames = self._generate()

    def __iter__(self) -> _Relay:
        return self

    def __next__(self) -> bytes:
        return next(self._frames)

    def close(self) -> None:
        """Stop relaying: end the body and tell the reader thread to close its upstream
        connection (it does within ``upstream_window`` seconds). Returns at once."""
        self._stop.set()
        # ValueError: next() is running on another thread; it ends at its next wake-up.
        with contextlib.suppress(ValueError):
            self._frames.close()

    @property
    def closed(self) -> bool:
        """True once the upstream reader has stopped (or never started) after close()."""
        thread = self._thread
        return self._stop.is_set() and (thread is None or not thread.is_alive())

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the reader thread to finish (after ``close()``); True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.closed

    # -- the response body, on the WSGI server's thread -----------------------------

    def _generate(self) -> Generator[bytes, None, None]:
        self._thread = threading.Thread(target=self._pump, name="sessions-relay", daemon=True)
        self._thread.start()
        try:
            yield self._prelude()
            ends = None if self._max_duration is None else time.monotonic() + self._max_duration
            while not self._stop.is_set():
                wait = (
                    self._heartbeat
                    if ends is None
                    else min(self._heartbeat, ends - time.monotonic())
                )
                if wait <= 0:
                    return  # max_duration: the browser reconnects with Last-Event-ID
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    if ends is None or time.monotonic() < ends:
                        yield b": heartbeat\n\n"
                    continue
                chunk, failed = self._chunk(item)
                yield chunk
                if failed:
                    return
        finally:
            self._stop.set()

    def _chunk(self, first: _Item) -> Tuple[bytes, bool]:
        """``first`` and what else is queued (up to CHUNK_RECORDS) as one write, and
        whether it ends the body (the reader's failure or end: then it is the last)."""
        parts: List[bytes] = []
        item = first
        while True:
            if isinstance(item, (_Failed, _End)):
                parts.append(self._last_frame(item))
                return b"".join(parts), True
            parts.append(self._encode(item))
            if len(parts) >= CHUNK_RECORDS:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return b"".join(parts), False

    def _prelude(self) -> bytes:
        return b": connected\n\n"

    def _encode(self, item: Mapping[str, Any]) -> bytes:
        raise NotImplementedError

    def _last_frame(self, item: Union[_Failed, _End]) -> bytes:
        return _error_event(item.exc) if isinstance(item, _Failed) else b""

    # -- the upstream reader, on its own thread ------------------------------------

    def _pump(self) -> None:
        try:
            self._relay()
        except BaseException as exc:  # noqa: BLE001 - reported to the browser, then stop
            if not isinstance(exc, SessionsError):
                logger.exception("the relay's upstream reader failed")
            self._put(_Failed(exc))

    def _relay(self) -> None:
        """Read upstream and ``_put`` each item until stopped or done."""
        raise NotImplementedError

    def _put(self, item: _Item) -> bool:
        """Queue ``item``, waiting for room while the relay runs; False once stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False


class SSERelay(_Relay):
    """The response body of :func:`sse_relay`: one session channel as server-sent
    events (see :class:`_Relay` for the threading contract: iterate from one thread,
    ``close()`` from any, ``closed``, ``join()``)."""

    def __init__(
        self,
        read: Callable[..., Iterator[Record]],
        *,
        start: Optional[int],
        heartbeat: float,
        max_duration: Optional[float],
        include_control: bool,
        retry_ms: int,
        upstream_window: float,
    ) -> None:
        self._read = read
        self._cursor = MemoryCursor(start)
        self._include_control = include_control
        self._retry_ms = retry_ms
        self._window = upstream_window
        super().__init__(heartbeat=heartbeat, max_duration=max_duration)

    def _prelude(self) -> bytes:
        return f"retry: {self._retry_ms}\n: connected\n\n".encode()

    def _encode(self, item: Mapping[str, Any]) -> bytes:
        return encode_event(item)

    def _relay(self) -> None:
        while not self._stop.is_set():
            self._read_window()

    def _read_window(self) -> None:
        """Read for at most ``upstream_window`` seconds, resuming after the cursor."""
        records = self._read(
            follow=True,
            include_control=self._include_control,
            cursor=self._cursor,
            total_timeout=self._window,
        )
        try:
            for record in records:
                if not self._put(record):
                    return
        except ReaderTimeoutError:
            return
        finally:
            close: Optional[Callable[[], None]] = getattr(records, "close", None)
            if close is not None:
                close()


class ChatRelay(_Relay):
    """The response body of :func:`chat_relay`: one chat turn as the AI SDK's UI
    message stream (same threading contract as :class:`SSERelay`)."""

    def __init__(self, stream: ChatStream, *, heartbeat: float) -> None:
        self._stream = stream
        super().__init__(heartbeat=heartbeat, max_duration=None)

    def _encode(self, item: Mapping[str, Any]) -> bytes:
        payload = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
        return f"data: {payload}\n\n".encode()

    def _last_frame(self, item: Union[_Failed, _End]) -> bytes:
        if isinstance(item, _Failed):
            exc = item.exc
            text = str(exc) if isinstance(exc, SessionsError) else "the relay failed"
            return self._encode({"type": "error", "errorText": text}) + b"data: [DONE]\n\n"
        return b"data: [DONE]\n\n"

    def _relay(self) -> None:
        try:
            for chunk in self._stream:
                if not self._put(chunk):
                    return
            self._put(_End())
        finally:
            self._stream.close()


def sse_relay(
    session: Session,
    io: str = "out",
    *,
    last_event_id: Union[int, str, None] = None,
    heartbeat: float = 5.0,
    max_duration: Optional[float] = None,
    include_control: bool = False,
    retry_ms: int = 2000,
    upstream_window: float = 15.0,
) -> SSERelay:
    """A ``text/event-stream`` response body relaying ``session``'s ``.out`` (or ``.in``).

    - Each record is one event: ``id:`` its seq (so the browser's ``Last-Event-ID``
      resumes exactly after it) and ``data:`` its data as JSON. Pass the request's
      ``Last-Event-ID`` header (a string, or ``None``) as ``last_event_id``: the relay
      starts after that seq; ``None`` starts at the oldest record retained. A value
      that is not a seq raises :class:`~sessions_client.errors.ConfigurationError` (answer 400).
    - ``include_control``: control records (``turn-complete``...) are sent as
      ``event: control`` with ``{"control": subtype, "headers": [...]}``, tokens
      hidden; otherwise they are skipped.
    - The stream starts with ``retry: retry_ms`` (the browser's reconnect delay).
    - A ``: heartbeat`` comment is written whenever ``heartbeat`` seconds pass
      without a record, so a closed tab is noticed (within about two heartbeats)
      and ``close()`` is called.
    - ``max_duration``: end the response after that many seconds (the browser
      reconnects and resumes); ``None``: run until the client goes away.
    - A failure the reader does not retry (404, 401, a closed stream...) is sent as
      ``event: error`` with ``{"error", "message", "status"}`` and ends the response.
    - ``upstream_window``: the upstream read is renewed (resuming exactly) every
      that many seconds; it bounds how long the upstream connection outlives
      ``close()``, at the cost of one request per window.

    Arguments are checked at once (``ConfigurationError``); nothing is read before the
    WSGI server first iterates the body. Serve it with :func:`sse_headers`.
    """
    if io not in ("out", "in"):
        raise ConfigurationError(f"io must be 'out' or 'in', got {io!r}")
    start = _parse_last_event_id(last_event_id)
    beat = _positive(heartbeat, "heartbeat")
    window = _positive(upstream_window, "upstream_window")
    if isinstance(retry_ms, bool) or not isinstance(retry_ms, int) or retry_ms < 0:
        raise ConfigurationError(f"retry_ms must be a non-negative int, got {retry_ms!r}")
    assert beat is not None and window is not None
    return SSERelay(
        session.iter_out if io == "out" else session.iter_in,
        start=start,
        heartbeat=beat,
        max_duration=_positive(max_duration, "max_duration", allow_none=True),
        include_control=bool(include_control),
        retry_ms=retry_ms,
        upstream_window=window,
    )


def chat_relay(stream: ChatStream, *, heartbeat: float = 5.0) -> ChatRelay:
    """A ``text/event-stream`` response body relaying one chat turn: ``stream`` is what
    ``AgentChat.send_message`` (``send_raw``, ``regenerate``...) returned.

    - Each ``UIMessageChunk`` of the turn is one ``data:`` event (the chunk as JSON),
      and ``data: [DONE]`` ends the body at the turn's end: the AI SDK's UI message
      stream protocol, which ``useChat`` (``DefaultChatTransport``) reads, and any
      page can parse. Serve it with ``sse_headers(chat=True)``.
    - A failure (the turn timed out, the session closed...) is sent as an
      ``{"type": "error", "errorText": ...}`` chunk, then ``[DONE]``; an agent's own
      ``error`` chunk is relayed as it came.
    - ``heartbeat``: a comment line whenever that many seconds pass without a chunk,
      so a closed tab is noticed and the server calls ``close()``, which returns at
      once. The turn is read on a daemon thread, which closes its connection at the
      next chunk after ``close()``, or at the turn's end (the chat's
      ``stream_timeout`` bounds it).

    The chat's state moves as the turn is read, on that thread: save
    ``AgentChat.state`` before returning the body (the next message then skips this
    reply on ``.out``), or in ``on_turn_complete``. Nothing is read before the WSGI
    server first iterates the body.
    """
    if not isinstance(stream, ChatStream):
        raise ConfigurationError(
            "chat_relay needs the ChatStream that AgentChat.send_message returns, "
            f"got {type(stream).__name__}"
        )
    beat = _positive(heartbeat, "heartbeat")
    assert beat is not None
    return ChatRelay(stream, heartbeat=beat)
