"""The blocking :class:`Session`: append to, read and drain a session's channels."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Generator,
    Iterator,
    List,
    Optional,
    Tuple,
    Union,
)

import requests

from . import _turns as turns
from ._config import MAX_RECORD_BYTES, is_secret_key
from ._http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    TimeoutType,
    Transport,
    quote_segment,
)
from ._reader import ReaderOptions, read_channel
from ._sse import DEFAULT_MAX_EVENT_BYTES
from ._turns import TurnPosition
from ._wire import Record, decode_drain_item
from .errors import (
    ConfigurationError,
    DeadlineExceededError,
    ProtocolError,
    RecordTooLargeError,
    SessionsError,
)

if TYPE_CHECKING:
    from .cursor import Cursor

logger = logging.getLogger("sessions_client.session")

#: Bytes the server adds around the JSON envelope of a record (docs/protocol.md, "Append a record").
ENVELOPE_OVERHEAD = 20
DEFAULT_DEDUP_WINDOW = 1000
DEFAULT_CONNECT_TIMEOUT = 30.0
_MAX_PART_ID_CHARS = 256
_MAX_DRAIN_PAGES = 1_000_000


def encode_record(record: Any) -> Tuple[bytes, str]:
    """The body and ``Content-Type`` of an append.

    A ``str`` is sent as is (``text/plain``); ``bytes`` must be UTF-8 and are
    sent as is (``text/plain``); anything else is compact JSON
    (``application/json``). Raises ``TypeError`` naming the type when the value
    is not JSON-serialisable, :class:`ConfigurationError` for non-UTF-8 bytes or
    non-finite floats.
    """
    if isinstance(record, str):
        try:
            return record.encode("utf-8"), "text/plain; charset=utf-8"
        except UnicodeEncodeError as exc:
            raise ConfigurationError(f"a str record must be valid Unicode: {exc.reason}") from None
    if isinstance(record, (bytes, bytearray, memoryview)):
        body = bytes(record)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"a bytes record must be UTF-8: {exc.reason}") from None
        return body, "text/plain; charset=utf-8"
    try:
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except TypeError as exc:
        raise TypeError(
            f"a record of type {type(record).__name__} is not JSON-serialisable: {exc}"
        ) from None
    except ValueError as exc:
        raise ConfigurationError(f"the record is not valid JSON: {exc}") from None
    return text.encode("utf-8"), "application/json"


def _check_size(body: bytes, part_id: str) -> None:
    if len(body) > MAX_RECORD_BYTES:
        raise RecordTooLargeError(
            f"record is {len(body)} bytes; the limit is {MAX_RECORD_BYTES} bytes"
        )
    envelope = json.dumps(
        {"data": body.decode("utf-8", errors="replace"), "id": part_id},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    stored = len(envelope.encode("utf-8")) + ENVELOPE_OVERHEAD
    if stored > MAX_RECORD_BYTES:
        raise RecordTooLargeError(
            f"record is {stored} bytes once stored (JSON envelope, escaping); "
            f"the limit is {MAX_RECORD_BYTES} bytes"
        )


def _check_part_id(part_id: Any) -> str:
    if not isinstance(part_id, str):
        raise TypeError(f"part_id must be a str, not {type(part_id).__name__}")
    if not part_id or len(part_id) > _MAX_PART_ID_CHARS or not part_id.isprintable():
        raise ConfigurationError(f"part_id must be 1-{_MAX_PART_ID_CHARS} printable characters")
    return part_id


def _check_seq(value: Any, name: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit() and value.isascii():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative (got {value})")
    return value


def _check_cursor(cursor: Any) -> Optional[int]:
    if cursor is None:
        return None
    if not callable(getattr(cursor, "get", None)) or not callable(getattr(cursor, "set", None)):
        raise TypeError("cursor must have get() and set(seq) methods")
    return _check_seq(cursor.get(), "the cursor's stored seq")


def _check_reader_options(
    timeout_seconds: int,
    max_retries: Optional[int],
    dedup_window: int,
    stall_timeout: Optional[float],
    connect_timeout: float,
    total_timeout: Optional[float],
) -> None:
    """Raise TypeError or ConfigurationError for a reader option out of its range."""
    if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int):
        raise TypeError("timeout_seconds must be an int")
    if not 1 <= timeout_seconds <= 600:
        raise ConfigurationError(
            f"timeout_seconds must be between 1 and 600 (got {timeout_seconds})"
        )
    if max_retries is not None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise TypeError("max_retries must be an int or None")
        if max_retries < 0:
            raise ConfigurationError("max_retries must not be negative")
    _check_positive(stall_timeout, "stall_timeout", allow_none=True)
    _check_positive(connect_timeout, "connect_timeout")
    _check_positive(total_timeout, "total_timeout", allow_none=True)
    if isinstance(dedup_window, bool) or not isinstance(dedup_window, int):
        raise TypeError("dedup_window must be an int")
    if dedup_window < 0:
        raise ConfigurationError("dedup_window must not be negative")


def _check_callable(value: Any, name: str) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable")


def _check_positive(value: Any, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number")
    if not value > 0:
        raise ConfigurationError(f"{name} must be positive")


class Session:
    """One session: append to and read its ``.in`` and ``.out`` channels.

    ``Session(session_id, token=None, api_url=None, ...)``: ``session_id`` is the
    friendly id (``session_…``) or your external id (percent-encoded into every
    path). ``token`` defaults to ``TRIGGER_SECRET_KEY`` then ``TRIGGER_ACCESS_TOKEN``
    (none → :class:`ConfigurationError`); ``api_url`` to ``TRIGGER_API_URL`` then
    ``https://api.trigger.dev``; ``branch`` to ``TRIGGER_PREVIEW_BRANCH``.

    Keyword options: ``http_session`` shares a ``requests.Session`` (its pool is
    used as is); ``transport`` uses a ready :class:`~sessions_client._http.Transport`
    (then ``token``, ``api_url``, ``branch``, ``verify``, ``timeout`` and
    ``pool_maxsize`` are ignored, and :meth:`close` leaves it open); ``verify``
    is ``True``, ``False`` or a CA bundle path; ``timeout`` is ``(connect, read)``
    seconds for non-streaming calls; ``append_retry`` is the
    :class:`~sessions_client._http.RetryPolicy` of appends (default: 5 attempts,
    0.2 s doubling to 5 s, 60 s in total) and ``read_retry`` that of drains;
    ``pool_maxsize`` bounds the connections ordinary calls of a session-owned pool
    use at once (each open reader has one more of its own); a server-sent event
    over ``max_event_bytes`` (16 MiB) raises :class:`ProtocolError`, an append or
    drain answer over ``max_response_bytes`` (32 MiB, before or after
    decompression) :class:`~sessions_client.errors.ResponseTooLargeError`;
    ``sleep`` is injectable for tests.

    A ``Session`` is thread-safe: many threads may append at once. Readers are
    generators; use each from one thread.
    """

    def __init__(
        self,
        session_id: str,
        token: Optional[str] = None,
        api_url: Optional[str] = None,
        *,
        branch: Optional[str] = None,
        http_session: Optional[requests.Session] = None,
        transport: Optional[Transport] = None,
        verify: Union[bool, str] = True,
        timeout: TimeoutType = DEFAULT_TIMEOUT,
        append_retry: Optional[RetryPolicy] = None,
        read_retry: Optional[RetryPolicy] = None,
        pool_maxsize: int = 10,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._segment = quote_segment(session_id)
        if isinstance(max_event_bytes, bool) or not isinstance(max_event_bytes, int):
            raise TypeError("max_event_bytes must be an int")
        if max_event_bytes < 1:
            raise ConfigurationError("max_event_bytes must be positive")
        self.max_event_bytes = max_event_bytes
        self.session_id = session_id
        if transport is None:
            transport = Transport.configured(
                token,
                api_url,
                branch=branch,
                timeout=timeout,
                verify=verify,
                http_session=http_session,
                pool_maxsize=pool_maxsize,
                sleep=sleep,
                max_response_bytes=max_response_bytes,
            )
            self._owns_transport = True
        else:
            if not isinstance(transport, Transport):
                raise TypeError("transport must be a sessions_client._http.Transport")
            self._owns_transport = False
        self.transport = transport
        self._known_seq: Dict[str, int] = {}  # the highest seq appended per channel
        self._known_lock = threading.Lock()
        self.append_retry = append_retry if append_retry is not None else RetryPolicy()
        self.read_retry = read_retry if read_retry is not None else RetryPolicy()
        self._sleep = sleep
        #: The ``.out`` seq where this object's last chat turn ended (``read_turn``/``ask``).
        self.turn_position = TurnPosition()

    @property
    def api_url(self) -> str:
        """The base URL of the API."""
        return self.transport.api_url

    @property
    def token(self) -> str:
        """The current token (a refreshed public token once one arrived). Never logged."""
        return self.transport.token

    def __repr__(self) -> str:
        return f"Session({self.session_id!r}, api_url={self.api_url!r})"

    def _path(self, io: str, suffix: str = "") -> str:
        return f"/realtime/v1/sessions/{self._segment}/{io}{suffix}"

    # -- appends -----------------------------------------------------------------

    def append_in(
        self, record: Any, *, part_id: Optional[str] = None, timeout: Optional[float] = None
    ) -> Dict[str, Any]:
        """Append ``record`` to ``.in``; see :meth:`append_out`."""
        return self._append("in", record, part_id, timeout)

    def append_out(
        self, record: Any, *, part_id: Optional[str] = None, timeout: Optional[float] = None
    ) -> Dict[str, Any]:
        """Append ``record`` to ``.out`` (needs a secret key).

        Returns ``{"ok": True, "seq": int or None, "part_id": str}``. ``part_id``
        (default: a random UUID) is sent as ``X-Part-Id`` on every retry, so a
        retried append is stored once. The record is encoded by
        :func:`encode_record`; over 1 MiB → :class:`RecordTooLargeError` before any
        request. Retries follow ``append_retry``; failures raise typed errors.

        When the server answers without ``seq`` (it does for a part id it already
        has: a retry whose first attempt committed), the seq is looked up: the
        channel is drained after the highest seq this ``Session`` knew for it when the
        append started, and the record with that part id is taken. ``seq`` is ``None``
        only when that finds nothing (or the token may not read the channel).

        ``timeout`` is the seconds the whole append may take, retries included
        (default: ``append_retry.total_timeout``, 60 s); past it
        :class:`~sessions_client.errors.DeadlineExceededError`. A redirect is never
        followed: :class:`~sessions_client.errors.RedirectError`.
        """
        return self._append("out", record, part_id, timeout)

    def _append(
        self, io: str, record: Any, part_id: Optional[str], timeout: Optional[float] = None
    ) -> Dict[str, Any]:
        body, content_type = encode_record(record)
        pid = str(uuid.uuid4()) if part_id is None else _check_part_id(part_id)
        _check_size(body, pid)
        with self._known_lock:  # this append's record comes after every seq known now
            known_before = self._known_seq.get(io)
        response = self.transport.request(
            "POST",
            self._path(io, "/append"),
            data=body,
            headers={"Content-Type": content_type, "X-Part-Id": pid},
            retry=self.append_retry,
            deadline=timeout,
        )
        answer = _json_body(response, "append")
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            raise ProtocolError(
                f"unexpected append answer: {_preview(response.content)}",
                status=response.status_code,
            )
        seq = answer.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            seq = self._seq_of_part(io, pid, known_before)
        if seq is not None:
            with self._known_lock:
                self._known_seq[io] = max(seq, self._known_seq.get(io, seq))
        return {"ok": True, "seq": seq, "part_id": pid}

    def _seq_of_part(self, io: str, part_id: str, after: Optional[int]) -> Optional[int]:
        """The seq of the record with ``part_id`` on ``io``, found by draining after
        ``after`` (the highest seq this session knew when the append started); None
        when not found or not readable."""
        try:
            for page, _ in self._drain_pages(io, after, True):
                for record in page:
                    if record["part_id"] == part_id:
                        return int(record["seq"])
        except SessionsError as error:
            logger.debug("could not look up the seq of a replayed append: %s", error)
        return None

    # -- streaming readers ---------------------------------------------------------

    def iter_out(
        self,
        *,
        last_event_id: Optional[int] = None,
        follow: bool = True,
        timeout_seconds: int = 60,
        include_control: bool = False,
        on_control: Optional[Callable[[Record], Any]] = None,
        cursor: Optional[Cursor] = None,
        max_retries: Optional[int] = None,
        stall_timeout: Optional[float] = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        dedup_window: int = DEFAULT_DEDUP_WINDOW,
        on_trim: Optional[Callable[[int, int], Any]] = None,
        peek_settled: bool = False,
        total_timeout: Optional[float] = None,
    ) -> Generator[Record, None, None]:
        """Yield the records of ``.out`` in order, exactly once, across reconnects.

        Starts after ``last_event_id`` (else after ``cursor.get()``, else at the
        start of what is retained); every reconnect sends ``Last-Event-ID`` = the
        seq of the last record processed (command records included).

        ``follow=True`` tails for ever, reconnecting at once after every normal end
        of a long-poll window of ``timeout_seconds`` (1-600). ``follow=False``
        returns once caught up: on v2 when the last seq reaches a ping's or a
        batch's tail - 1; otherwise at the server's ``[DONE]`` (the reader asks for
        a 1-second window). A broken or stalled connection is resumed first: a
        stall, or a body that ends without ``[DONE]``, is never taken for the end.

        Failures (connection errors, 408/429/5xx, ``event: error``, broken or
        stalled streams, an end without ``[DONE]``) reconnect after a capped
        jittered backoff (0.1 s doubling to 5 s, up to 50 % jitter, reset after a
        successful connect; a 429's ``Retry-After`` is honoured).
        ``max_retries`` consecutive failures without an event (``None``: no
        limit) raise the last error. With ``follow=False``, a stream that cannot
        be opened (unreachable server, 408/429/5xx) raises the last error after
        as many retries as a drain makes (``read_retry.max_attempts - 1``), so a
        cron-style read fails instead of waiting for ever; following readers
        retry for ever. 400, 401, 403, 404, 409, 410, 422 and 501 raise at once;
        bad server data raises :class:`ProtocolError`.
        ``connect_timeout`` bounds each connect.

        ``total_timeout``: seconds the reader may run in all, counted from the first
        ``next()`` (``None``: no limit). Once they have passed, the reader closes its
        connection and raises :class:`~sessions_client.errors.ReaderTimeoutError`
        (a ``TimeoutError``) whatever the server does: connects, waits for bytes and
        backoff pauses are cut to the time left, and the time is checked after every
        event (pings included), so a stream that pings, stalls or cannot be reached
        cannot keep it alive. The cursor holds the last record consumed, so a new
        reader resumes there. This bounds ``follow=True`` readers too (tail for at
        most N seconds).

        ``stall_timeout``: seconds without a byte on an open stream before it is
        dropped and resumed (``None``: 15 s on v2 streams, which ping every ~5 s;
        ``timeout_seconds`` + 15 s on v1). When given, the long-poll window asked
        for is kept below it (``ceil(stall_timeout) - 1``, at least 1 s) and the
        stall timeout is at least that window + 0.5 s (so at least 1.5 s): an idle
        window always ends with ``[DONE]`` before a stall could be declared.

        Control records go to ``on_control(record)`` and are yielded only with
        ``include_control``; a ``public-access-token`` on a ``turn-complete``
        replaces a public token (never a secret key). Records whose part id is
        among the recent ones (at least the last ``dedup_window``, at most twice
        that; 0: off), and records at or below the cursor, are skipped. A gap
        after a (re)connect (trimmed stream) logs a warning and calls
        ``on_trim(expected_seq, got_seq)``; on v1 streams, which never carry
        command records, a command record right after the cursor looks the same.
        On v2 a gap between two events of one connection is reported the same
        way; a seq that goes back within a connection, with a part id not seen
        before, raises :class:`ProtocolError`. A ``follow=False`` reader also ends
        once the server has sent no record and no ``[DONE]`` for longer than its
        window plus 0.5 s (pings and unknown events are not progress).

        ``cursor.set(seq)`` is called once the consumer is done with a record (it
        asked for the next one or closed the generator) and for records it never
        sees (command, duplicate, unyielded control records): at-least-once.
        ``peek_settled`` sends ``X-Peek-Settled: 1`` when resuming and ends the
        reader when the server answers ``X-Session-Settled: true``.

        Arguments are checked before any request (``TypeError`` /
        :class:`ConfigurationError`). ``break``, ``.close()``, garbage collection
        and ``KeyboardInterrupt`` close the connection at once. Each open reader
        holds one connection of the pool.
        """
        return self._iter(
            "out",
            last_event_id=last_event_id,
            follow=follow,
            timeout_seconds=timeout_seconds,
            include_control=include_control,
            on_control=on_control,
            cursor=cursor,
            max_retries=max_retries,
            stall_timeout=stall_timeout,
            connect_timeout=connect_timeout,
            dedup_window=dedup_window,
            on_trim=on_trim,
            peek_settled=peek_settled,
            total_timeout=total_timeout,
        )

    def iter_in(
        self,
        *,
        last_event_id: Optional[int] = None,
        follow: bool = True,
        timeout_seconds: int = 60,
        include_control: bool = False,
        on_control: Optional[Callable[[Record], Any]] = None,
        cursor: Optional[Cursor] = None,
        max_retries: Optional[int] = None,
        stall_timeout: Optional[float] = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        dedup_window: int = DEFAULT_DEDUP_WINDOW,
        on_trim: Optional[Callable[[int, int], Any]] = None,
        peek_settled: bool = False,
        total_timeout: Optional[float] = None,
    ) -> Generator[Record, None, None]:
        """Yield the records of ``.in``; the same contract as :meth:`iter_out`."""
        return self._iter(
            "in",
            last_event_id=last_event_id,
            follow=follow,
            timeout_seconds=timeout_seconds,
            include_control=include_control,
            on_control=on_control,
            cursor=cursor,
            max_retries=max_retries,
            stall_timeout=stall_timeout,
            connect_timeout=connect_timeout,
            dedup_window=dedup_window,
            on_trim=on_trim,
            peek_settled=peek_settled,
            total_timeout=total_timeout,
        )

    def _iter(
        self,
        io: str,
        *,
        last_event_id: Optional[int],
        follow: bool,
        timeout_seconds: int,
        include_control: bool,
        on_control: Optional[Callable[[Record], Any]],
        cursor: Optional[Cursor],
        max_retries: Optional[int],
        stall_timeout: Optional[float],
        connect_timeout: float,
        dedup_window: int,
        on_trim: Optional[Callable[[int, int], Any]],
        peek_settled: bool,
        total_timeout: Optional[float],
    ) -> Generator[Record, None, None]:
        _check_reader_options(
            timeout_seconds,
            max_retries,
            dedup_window,
            stall_timeout,
            connect_timeout,
            total_timeout,
        )
        _check_callable(on_control, "on_control")
        _check_callable(on_trim, "on_trim")
        start = _check_seq(last_event_id, "last_event_id")
        stored = _check_cursor(cursor)
        if start is None:
            start = stored
        self.transport._check_open()
        options = ReaderOptions(
            path=self._path(io),
            follow=bool(follow),
            timeout_seconds=timeout_seconds,
            include_control=bool(include_control),
            on_control=on_control,
            handle_control=self._handle_control,
            store=cursor.set if cursor is not None else None,
            max_retries=max_retries,
            max_open_retries=None if follow else self.read_retry.max_attempts - 1,
            stall_timeout=stall_timeout,
            connect_timeout=float(connect_timeout),
            dedup_window=dedup_window,
            on_trim=on_trim,
            peek_settled=bool(peek_settled),
            max_event_bytes=self.max_event_bytes,
            total_timeout=None if total_timeout is None else float(total_timeout),
            max_server_delay=self.read_retry.max_server_delay,
            sleep=self._sleep,
        )
        return read_channel(self.transport, options, start)

    def _handle_control(self, record: Record) -> None:
        """Adopt a refreshed public token from a ``turn-complete`` control record."""
        if record.get("control") != "turn-complete":
            return
        new_token = _refreshed_token(record)
        if new_token is None:
            return
        if is_secret_key(self.transport.token):
            logger.debug("ignoring a refreshed public token: this session uses a secret key")
            return
        try:
            self.transport.token = new_token
        except ConfigurationError:
            logger.warning("ignoring a malformed refreshed token")
            return
        logger.info("session token refreshed from a turn-complete record")

    # -- drains --------------------------------------------------------------------

    def drain_out(
        self,
        *,
        after: Optional[int] = None,
        include_control: bool = False,
        cursor: Optional[Cursor] = None,
        timeout: Optional[float] = None,
    ) -> List[Record]:
        """Every record of ``.out`` after ``after`` (else after ``cursor.get()``), all pages.

        Returns at once (no streaming). Control records are included only with
        ``include_control`` (a refreshed public token is adopted either way). When
        ``cursor`` is given, the highest seq returned is stored before returning.
        ``timeout`` is the seconds the whole drain may take, every page and retry
        included (default: ``read_retry.total_timeout``, 60 s); past it
        :class:`~sessions_client.errors.DeadlineExceededError`. One answer larger
        than the transport's ``max_response_bytes`` (32 MiB) raises
        :class:`~sessions_client.errors.ResponseTooLargeError`.
        """
        return self._drain("out", after, include_control, cursor, timeout)

    def drain_in(
        self,
        *,
        after: Optional[int] = None,
        include_control: bool = False,
        cursor: Optional[Cursor] = None,
        timeout: Optional[float] = None,
    ) -> List[Record]:
        """Every record of ``.in``; the same contract as :meth:`drain_out`."""
        return self._drain("in", after, include_control, cursor, timeout)

    def drain_out_pages(
        self,
        *,
        after: Optional[int] = None,
        include_control: bool = False,
        timeout: Optional[float] = None,
    ) -> Generator[List[Record], None, None]:
        """The records of ``.out`` after ``after``, one server answer at a time.

        Production answers everything up to the tail in one response, so expect one
        page; a server that pages is followed (the highest seq is the next
        ``afterEventId``) until an answer comes back empty. The caller can store
        ``page[-1]["seq"]`` once a page is handled. Empty pages are never yielded (a
        page of control records only is empty without ``include_control``, and the
        reader moves past it).
        ``timeout`` bounds the fetch of each page, retries included (default:
        ``read_retry.total_timeout``).
        """
        start = _check_seq(after, "after")
        return _nonempty(self._drain_pages("out", start, include_control, timeout))

    def drain_in_pages(
        self,
        *,
        after: Optional[int] = None,
        include_control: bool = False,
        timeout: Optional[float] = None,
    ) -> Generator[List[Record], None, None]:
        """The records of ``.in``, page by page; the same contract as :meth:`drain_out_pages`."""
        start = _check_seq(after, "after")
        return _nonempty(self._drain_pages("in", start, include_control, timeout))

    def _drain_pages(
        self,
        io: str,
        after: Optional[int],
        include_control: bool,
        page_timeout: Optional[float] = None,
        ends: Optional[float] = None,
    ) -> Generator[Tuple[List[Record], int], None, None]:
        """Pages of records (control ones only with ``include_control``), each with the
        highest seq the server page covered, so a cursor can move past what is skipped.
        Each page is fetched within ``page_timeout`` seconds, and all of them by
        ``ends`` (a ``time.monotonic()`` instant) when given."""
        current = after
        for _ in range(_MAX_DRAIN_PAGES):
            params = None if current is None else {"afterEventId": str(current)}
            deadline = page_timeout if ends is None else _time_left(ends)
            response = self.transport.request(
                "GET",
                self._path(io, "/records"),
                params=params,
                retry=self.read_retry,
                deadline=deadline,
            )
            fresh = [r for r in _records_page(response) if current is None or r["seq"] > current]
            if not fresh:
                return
            current = max(r["seq"] for r in fresh)
            page: List[Record] = []
            for record in fresh:
                if record["control"] is not None:
                    self._handle_control(record)
                    if not include_control:
                        continue
                page.append(record)
            yield page, current

    def _drain(
        self,
        io: str,
        after: Optional[int],
        include_control: bool,
        cursor: Optional[Cursor],
        timeout: Optional[float] = None,
    ) -> List[Record]:
        start = _check_seq(after, "after")
        stored = _check_cursor(cursor)
        if start is None:
            start = stored
        budget = self.read_retry.total_timeout if timeout is None else _check_timeout(timeout)
        ends = time.monotonic() + budget
        records: List[Record] = []
        last = start
        for page, covered in self._drain_pages(io, start, include_control, ends=ends):
            records.extend(page)
            last = covered
        if cursor is not None and last is not None and last != start:
            cursor.set(last)
        return records

    # -- chat turns (sessions_client._turns) ----------------------------------------

    def read_turn(
        self,
        *,
        after_in_seq: Optional[int] = None,
        last_event_id: Optional[int] = None,
        timeout: float = 60,
        cursor: Optional[Cursor] = None,
    ) -> Iterator[Record]:
        """Yield ``.out`` data records until the turn-complete of this turn; see ``turns``."""
        return turns.read_turn(
            self,
            after_in_seq=after_in_seq,
            last_event_id=last_event_id,
            timeout=timeout,
            cursor=cursor,
        )

    def ask(
        self, record: Any, *, timeout: float = 60, last_event_id: Optional[int] = None
    ) -> Dict[str, Any]:
        """Append ``record`` to ``.in`` and return the agent's reply; see ``turns.ask``."""
        return turns.ask(self, record, timeout=timeout, last_event_id=last_event_id)

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool (if this session made it); idempotent."""
        if self._owns_transport:
            self.transport.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _refreshed_token(record: Record) -> Optional[str]:
    """The ``public-access-token`` of a control record, in its headers or, for legacy
    data-record controls, in its data (``publicAccessToken`` or a ``headers`` list)."""
    pairs: List[Any] = list(record.get("headers") or [])
    data = record.get("data")
    if isinstance(data, dict):
        if isinstance(data.get("headers"), list):
            pairs.extend(data["headers"])
        pairs.append(["public-access-token", data.get("publicAccessToken")])
    for pair in pairs:
        if (
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and pair[0] == "public-access-token"
            and isinstance(pair[1], str)
            and pair[1].strip()
        ):
            return pair[1].strip()
    return None


def _nonempty(
    pages: Iterator[Tuple[List[Record], int]],
) -> Generator[List[Record], None, None]:
    for page, _ in pages:
        if page:
            yield page


def _check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds")
    if not timeout > 0:
        raise ConfigurationError("timeout must be positive")
    return float(timeout)


def _time_left(ends: float) -> float:
    """Seconds until ``ends``; a call past its deadline raises at once."""
    left = ends - time.monotonic()
    if left <= 0:
        raise DeadlineExceededError("the drain did not complete before its deadline")
    return left


def _preview(body: bytes) -> str:
    text = body[:200].decode("utf-8", errors="replace")
    return repr(text)


def _json_body(response: requests.Response, what: str) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        content_type = response.headers.get("Content-Type", "")
        raise ProtocolError(
            f"the {what} answer is not JSON (Content-Type {content_type!r}): "
            f"{_preview(response.content)}",
            status=response.status_code,
        ) from None


def _records_page(response: requests.Response) -> List[Record]:
    answer = _json_body(response, "records")
    items = answer.get("records") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise ProtocolError("the records answer has no list 'records'", status=response.status_code)
    records: List[Record] = []
    for item in items:
        if not isinstance(item, dict):
            raise ProtocolError("a drained record is not an object", status=response.status_code)
        records.append(decode_drain_item(item))
    return records


__all__ = ["Session", "encode_record"]
