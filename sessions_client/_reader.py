"""The reader: one SSE channel, read across reconnects, exactly once and in order.

:func:`read_channel` is the explicit reconnect loop behind ``Session.iter_out`` /
``iter_in`` (DESIGN.md): back off, open the stream with ``Last-Event-ID`` = the seq of
the last record processed, read that connection's records, and on a transient failure
remember why and go round. It stops on a permanent status, at the end when not
following, at the deadline, or when the consumer stops. The pieces it calls, one job
each: :func:`_open_connection` (status, content type, shape, settled header),
:func:`_read_connection` (events -> records, stall), :class:`DedupWindow`,
:class:`Deadline`, :func:`_route_control`, :func:`_check_trim` and the cursor store
(once per record, in :func:`_deliver`). Its options are one :class:`ReaderOptions`.
"""

from __future__ import annotations

import http.client
import logging
import math
import random
import socket
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterator, List, NamedTuple, Optional, Set

import requests
import urllib3

from ._sse import DEFAULT_MAX_EVENT_BYTES, iter_sse_events
from ._wire import Decoded, Record, decode_event, wire_shape
from .errors import (
    APIError,
    NetworkError,
    ProtocolError,
    RateLimitedError,
    ReaderTimeoutError,
    SessionsError,
)
from .http import Transport, is_certificate_error

__all__ = [
    "Backoff",
    "Deadline",
    "DedupWindow",
    "PERMANENT_STATUSES",
    "ReaderOptions",
    "read_channel",
]

logger = logging.getLogger("sessions_client.reader")

#: Statuses after which a reader gives up at once (PROTOCOL.md §7, plus 501: no backend).
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 409, 410, 422, 501})
#: Read size: ``read1`` returns whatever has arrived, up to this many bytes.
READ_SIZE = 65536
#: Stall window on a v2 stream when the caller chose none: production pings every 5-15 s
#: once a reader is at the live edge, so 30 s of silence must never count as a stall.
V2_STALL_TIMEOUT = 35.0
#: Extra stall slack beyond the long-poll window on a v1 stream (no pings).
V1_STALL_SLACK = 15.0
#: Seconds an explicit stall timeout exceeds the long-poll window by, at least.
STALL_MARGIN = 0.5
#: Timeout-Seconds sent by a non-following reader: the server ends the window 1 s
#: after the last record, so ``follow=False`` returns promptly on v1 servers too.
NON_FOLLOW_WINDOW = 1
#: With a deadline, an open stream's socket timeout is lowered to the time left once it
#: exceeds it by more than this: a wait for bytes ends at most this late.
DEADLINE_SLACK = 0.05
#: The smallest socket timeout ever set (0 would make the socket non-blocking).
_MIN_SOCKET_TIMEOUT = 0.001

_STREAM_ERRORS = (
    urllib3.exceptions.HTTPError,
    requests.RequestException,
    http.client.HTTPException,
    OSError,
)


def _store_nothing(seq: int) -> None:
    """The cursor store of a reader without cursor."""


@dataclass(frozen=True)
class ReaderOptions:
    """What one reader was asked for (``Session.iter_out`` documents each option).

    ``handle_control`` sees every control record first (token refresh); ``store(seq)``
    persists the cursor; ``sleep`` and ``clock`` are injectable for tests.
    """

    path: str
    follow: bool = True
    timeout_seconds: int = 60
    include_control: bool = False
    on_control: Optional[Callable[[Record], Any]] = None
    handle_control: Optional[Callable[[Record], None]] = None
    store: Optional[Callable[[int], Any]] = None
    max_retries: Optional[int] = None
    stall_timeout: Optional[float] = None
    connect_timeout: float = 30.0
    dedup_window: int = 1000
    on_trim: Optional[Callable[[int, int], Any]] = None
    peek_settled: bool = False
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    total_timeout: Optional[float] = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    @property
    def save(self) -> Callable[[int], Any]:
        """``store``, or a function that stores nothing."""
        return self.store if self.store is not None else _store_nothing

    @property
    def window(self) -> int:
        """The long-poll window asked for (``Timeout-Seconds``).

        Kept below an explicit stall timeout, so that an idle window ends with
        ``[DONE]`` before a stall could be declared.
        """
        window = self.timeout_seconds
        if not self.follow:
            window = min(window, NON_FOLLOW_WINDOW)
        if self.stall_timeout is not None:
            window = min(window, max(1, math.ceil(self.stall_timeout) - 1))
        return window

    def stall(self, shape: Optional[str]) -> float:
        """Seconds without a byte before a ``shape`` stream counts as stalled (``None``:
        the shape is not known yet); never shorter than the window plus a margin."""
        if self.stall_timeout is not None:
            return max(self.stall_timeout, self.window + STALL_MARGIN)
        if shape == "v2":
            return V2_STALL_TIMEOUT
        return self.window + V1_STALL_SLACK


class Backoff:
    """Capped, jittered exponential delays: ``initial`` doubling up to ``maximum``.

    Each delay is reduced by a random fraction of up to ``jitter``. :meth:`reset`
    starts over (after a successful connect).
    """

    def __init__(
        self,
        initial: float = 0.1,
        maximum: float = 5.0,
        jitter: float = 0.5,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        exponent = min(self.failures, 62)
        self.failures += 1
        base = min(self.maximum, self.initial * (2.0**exponent))
        return base * (1.0 - self.jitter * self._rng())

    def reset(self) -> None:
        """Start again from ``initial``."""
        self.failures = 0


class Deadline:
    """The end of a reader's ``total_timeout`` on ``clock`` (``None``: never)."""

    def __init__(self, seconds: Optional[float], path: str, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self.path = path
        self.clock = clock
        self.at = math.inf if seconds is None else clock() + seconds

    def left(self) -> float:
        """Seconds until the deadline (zero or negative once it has passed)."""
        return self.at - self.clock()

    def expired(self) -> ReaderTimeoutError:
        return ReaderTimeoutError(
            f"reader on {self.path} ran past its total_timeout of {self.seconds:g} s"
        )

    def check(self) -> float:
        """The seconds left; raises :class:`ReaderTimeoutError` once none are."""
        left = self.at - self.clock()
        if left <= 0:
            raise self.expired()
        return left


class DedupWindow:
    """The part ids of recent records: at least the last ``size``, at most twice that.

    ``size`` 0 remembers nothing. The window is trimmed in bulk, once it holds twice
    ``size`` ids, so remembering an id costs an append and a set insertion.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: Set[str] = set()
        self._order: List[str] = []

    def add_all(self, records: List[Record]) -> bool:
        """Remember the part ids of several ``records`` at once when none is a repeat.
        False (nothing remembered) for a single record or a possible repeat: the caller
        then asks :meth:`seen` for each record."""
        if not self.size:
            return True
        if len(records) < 2:
            return False
        ids = [r["part_id"] for r in records if r["part_id"]]
        fresh = set(ids)
        if len(fresh) != len(ids) or not self._ids.isdisjoint(fresh):
            return False
        self._ids.update(fresh)
        self._order.extend(ids)
        if len(self._order) > 2 * self.size:
            self._trim()
        return True

    def seen(self, part_id: Optional[str]) -> bool:
        """Whether ``part_id`` is in the window; remembers it when it was not."""
        if not self.size or not part_id:
            return False
        if part_id in self._ids:
            return True
        self._ids.add(part_id)
        self._order.append(part_id)
        if len(self._order) > 2 * self.size:
            self._trim()
        return False

    def _trim(self) -> None:
        """Forget all but the ``size`` most recent ids."""
        drop = len(self._order) - self.size
        self._ids.difference_update(self._order[:drop])
        del self._order[:drop]


class _Transient(Exception):
    """A transient failure of one connection; the loop reconnects."""

    def __init__(self, error: SessionsError) -> None:
        super().__init__(str(error))
        self.error = error


class _Position:
    """Where a reader is: the last seq processed, the seq the next event should start at
    (set on each connect, for trim detection), and the failures since the last event."""

    def __init__(self, last_seq: Optional[int]) -> None:
        self.last_seq = last_seq
        self.expected: Optional[int] = None
        self.failures = 0

    def passes(self, seq: int) -> bool:
        """Whether ``seq`` is past the last seq processed."""
        return self.last_seq is None or seq > self.last_seq


class _Connection(NamedTuple):
    response: requests.Response
    shape: str
    settled: bool


def read_channel(
    transport: Transport, options: ReaderOptions, last_seq: Optional[int]
) -> Generator[Record, None, None]:
    """Yield the records of one channel after ``last_seq``; see ``Session.iter_out``.

    The deadline (``total_timeout``) counts from the first ``next()``.
    """
    deadline = Deadline(options.total_timeout, options.path, options.clock)
    position = _Position(last_seq)
    dedup = DedupWindow(options.dedup_window)
    backoff = Backoff()
    error: Optional[SessionsError] = None  # why the last connection failed
    while True:
        if deadline.left() <= 0:
            raise deadline.expired() from error
        try:
            connection = _open_connection(transport, options, position.last_seq, deadline)
            backoff.reset()
            error = None
            with closing(connection.response):
                done = yield from _read_connection(connection, options, position, dedup, deadline)
            if done:
                return
        except _Transient as failure:
            error = failure.error
            position.failures += 1
            if options.max_retries is not None and position.failures > options.max_retries:
                raise error from failure.__cause__
            pause = _pause(backoff, error, deadline)
            logger.info("reader on %s: %s; reconnecting in %.2f s", options.path, error, pause)
            options.sleep(pause)


def _pause(backoff: Backoff, error: SessionsError, deadline: Deadline) -> float:
    """The backoff delay, at least a 429's ``Retry-After``, at most the time left."""
    pause = backoff.next_delay()
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        pause = max(pause, error.retry_after)
    return max(0.0, min(pause, deadline.left()))


def _open_connection(
    transport: Transport, options: ReaderOptions, last_seq: Optional[int], deadline: Deadline
) -> _Connection:
    """Open the stream after ``last_seq``: a permanent status or a certificate failure
    raises, any other failure is :class:`_Transient`; a body that is not an event
    stream is a :class:`ProtocolError`."""
    left = deadline.left()
    headers = {"Accept": "text/event-stream", "Timeout-Seconds": str(options.window)}
    if last_seq is not None:
        headers["Last-Event-ID"] = str(last_seq)
        if options.peek_settled:
            headers["X-Peek-Settled"] = "1"
    try:
        response = transport.open_stream(
            options.path,
            headers=headers,
            connect_timeout=min(options.connect_timeout, left),
            read_timeout=min(options.stall(None), left),
        )
    except APIError as exc:
        if exc.status in PERMANENT_STATUSES:
            raise
        raise _Transient(exc) from exc
    except NetworkError as exc:
        if is_certificate_error(exc.__cause__):
            raise
        raise _Transient(exc) from exc
    content_type = response.headers.get("Content-Type", "text/event-stream")
    if content_type.split(";")[0].strip().lower() != "text/event-stream":
        response.close()
        raise ProtocolError(
            f"expected text/event-stream, got {content_type!r}", status=response.status_code
        )
    shape = wire_shape(response.headers)
    settled = response.headers.get("X-Session-Settled", "").lower() == "true"
    logger.debug("connected to %s (%s), after seq %s", options.path, shape, last_seq)
    return _Connection(response, shape, settled)


def _read_connection(
    connection: _Connection,
    options: ReaderOptions,
    position: _Position,
    dedup: DedupWindow,
    deadline: Deadline,
) -> Generator[Record, None, bool]:
    """Yield the new records of one open connection. Returns True when the reader is
    done (settled, caught up, or ``[DONE]`` when not following), False to reconnect
    after ``[DONE]``; an error event or a body that stops early is :class:`_Transient`."""
    position.expected = None if position.last_seq is None else position.last_seq + 1
    for decoded in _connection_events(connection, options, deadline):
        position.failures = 0
        if decoded.kind == "records":
            yield from _deliver(decoded, connection.shape, options, position, dedup, deadline)
        elif decoded.kind == "done":
            return connection.settled or not options.follow
        elif decoded.kind == "error":
            message = f"server error event on {options.path}: {decoded.error}"
            raise _Transient(NetworkError(message))
        if not options.follow and _caught_up(position.last_seq, decoded.tail):
            return True
    if connection.settled:
        logger.debug("%s is settled; ending the reader", options.path)
        return True
    raise _Transient(NetworkError(f"stream on {options.path} ended without [DONE]"))


def _caught_up(last_seq: Optional[int], tail: Optional[int]) -> bool:
    """Whether a tail (the next seq to be written) says the reader has every record."""
    if tail is None:
        return False
    if last_seq is None:
        return tail <= 0
    return last_seq >= tail - 1


def _connection_events(
    connection: _Connection, options: ReaderOptions, deadline: Deadline
) -> Iterator[Decoded]:
    """The decoded events of one connection, the deadline checked after each; a broken
    or stalled stream is :class:`_Transient` (a wait the deadline cut short is the
    deadline's :class:`ReaderTimeoutError`)."""
    guard = _ReadGuard(connection.response, options.stall(connection.shape), deadline)
    chunks = _iter_chunks(connection.response, guard)
    try:
        for event in iter_sse_events(chunks, max_event_bytes=options.max_event_bytes):
            yield decode_event(event, connection.shape)
            deadline.check()
    except ReaderTimeoutError:
        raise
    except _STREAM_ERRORS as exc:
        if deadline.left() <= 0 and _is_timeout(exc):
            raise deadline.expired() from None
        raise _Transient(_read_error(exc, options.path)) from exc


def _deliver(
    decoded: Decoded,
    shape: str,
    options: ReaderOptions,
    position: _Position,
    dedup: DedupWindow,
    deadline: Deadline,
) -> Iterator[Record]:
    """Yield the records of one event the consumer has not had (no replay, no repeated
    part id, control records only when asked for). The cursor is stored once per record:
    when the consumer is done with it, or at once for a record it never sees."""
    _check_trim(decoded, shape, options, position)
    check_each = not dedup.add_all(decoded.records)
    store = options.save
    for record in decoded.records:
        seq = record["seq"]
        if position.last_seq is not None and seq <= position.last_seq:
            continue  # a replay: processed (and stored) before
        position.last_seq = seq
        if (check_each and dedup.seen(record["part_id"])) or (
            record["control"] is not None and not _route_control(record, options)
        ):
            store(seq)
            continue
        try:
            yield record
        finally:
            store(seq)
        deadline.check()
    if decoded.last_seq is not None and position.passes(decoded.last_seq):
        position.last_seq = decoded.last_seq  # command records after the last record
        store(decoded.last_seq)


def _route_control(record: Record, options: ReaderOptions) -> bool:
    """Hand a control record to the session and to ``on_control``; whether to yield it."""
    if options.handle_control is not None:
        options.handle_control(record)
    if options.on_control is not None:
        options.on_control(record)
    return options.include_control


def _check_trim(decoded: Decoded, shape: str, options: ReaderOptions, position: _Position) -> None:
    """After a (re)connect, report a first seq past the one expected: records trimmed."""
    expected = position.expected
    if expected is None:
        return
    position.expected = None
    first = decoded.first_seq
    if first is None or first <= expected:
        return
    logger.warning(
        "%s skipped ahead: expected seq %d, got %d; the records in between were trimmed%s",
        options.path,
        expected,
        first,
        " (or were command records, which v1 streams never carry)" if shape == "v1" else "",
    )
    if options.on_trim is not None:
        options.on_trim(expected, first)


class _ReadGuard:
    """Runs before each wait for bytes: raises once the deadline has passed, and keeps
    the socket timeout at the stall timeout, cut to the time left (plus
    ``DEADLINE_SLACK``)."""

    def __init__(self, response: requests.Response, stall: float, deadline: Deadline) -> None:
        self.response = response
        self.stall = stall
        self.deadline = deadline
        self.current = math.inf  # the socket timeout last set

    def __call__(self) -> None:
        wanted = min(self.stall, self.deadline.check())
        if self.current > wanted + DEADLINE_SLACK and _set_read_timeout(self.response, wanted):
            self.current = wanted


def _iter_chunks(response: requests.Response, before_read: Callable[[], None]) -> Iterator[bytes]:
    """The body as it arrives: each chunk is whatever the socket has, up to READ_SIZE.

    ``before_read()`` runs before each wait for bytes.
    """
    raw: Any = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # urllib3 1.26: read the http.client response directly
        read1 = raw._fp.read1
    while True:
        before_read()
        data = read1(READ_SIZE)
        if not data:
            return
        yield data


def _set_read_timeout(response: requests.Response, seconds: float) -> bool:
    """Change the socket timeout of an open streaming response (best effort)."""
    raw: Any = response.raw
    connection = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        return False
    try:
        sock.settimeout(max(seconds, _MIN_SOCKET_TIMEOUT))
    except OSError:
        return False
    return True


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (urllib3.exceptions.ReadTimeoutError, socket.timeout, requests.Timeout))


def _read_error(exc: BaseException, path: str) -> NetworkError:
    if _is_timeout(exc):
        return NetworkError(f"stream on {path} stalled: no bytes within the stall timeout")
    return NetworkError(f"stream on {path} broke: {type(exc).__name__}: {exc}")
