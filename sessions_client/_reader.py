"""The reader: one SSE channel, read across reconnects, exactly once and in order.

:func:`read_channel` is the reconnect loop behind ``Session.iter_out`` / ``iter_in``
(docs/reading.md); everything else here is a piece it calls.
"""

from __future__ import annotations

import http.client
import logging
import math
import operator
import socket
import time
from contextlib import closing, suppress
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Callable, Generator, Iterator, List, Optional, Set, Union

import requests
import urllib3

from ._http import MAX_SERVER_DELAY, RetryPolicy, Transport, is_certificate_error
from ._sse import DEFAULT_MAX_EVENT_BYTES, iter_sse_events
from ._wire import Decoded, Record, decode_event, wire_shape
from .errors import APIError, NetworkError, ProtocolError, RateLimitedError, ReaderTimeoutError

__all__ = ["BACKOFF", "Deadline", "DedupWindow", "ReaderOptions", "read_channel"]

logger = logging.getLogger("sessions_client.reader")

#: Statuses after which a reader gives up at once (docs/protocol.md; 501: no backend).
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 409, 410, 422, 501})
#: Reconnect delays: 0.1 s doubling to 5 s, each less up to half at random.
BACKOFF = RetryPolicy(initial_delay=0.1, max_delay=5.0, jitter=0.5)
READ_SIZE = 65536  #: ``read1`` returns whatever has arrived, up to this many bytes.
#: A v2 stream stalls after this: production pings every 5-15 s at the live edge.
V2_STALL_TIMEOUT = 35.0
V1_STALL_SLACK = 15.0  #: v1 streams (no pings) stall after the long-poll window plus this.
STALL_MARGIN = 0.5  #: An explicit stall timeout exceeds the long-poll window by this, at least.
#: Timeout-Seconds when not following: the server ends the window 1 s after the last record.
NON_FOLLOW_WINDOW = 1
DEADLINE_SLACK = 0.05  #: A wait for bytes ends at most this late after the deadline.
_STREAM_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
_STALLS = (urllib3.exceptions.ReadTimeoutError, socket.timeout)
_Failure = Union[APIError, NetworkError]  #: what a transient failure raises once retries are spent
_control_of = operator.itemgetter("control")
_part_id_of = operator.itemgetter("part_id")


@dataclass(frozen=True)
class ReaderOptions:
    """What one reader was asked for (``Session.iter_out`` documents each option), plus
    ``handle_control`` (sees control records first), ``store(seq)``, ``sleep``, ``clock``."""

    path: str
    follow: bool = True
    timeout_seconds: int = 60
    include_control: bool = False
    on_control: Optional[Callable[[Record], Any]] = None
    handle_control: Optional[Callable[[Record], None]] = None
    store: Optional[Callable[[int], Any]] = None
    max_retries: Optional[int] = None
    max_open_retries: Optional[int] = None
    stall_timeout: Optional[float] = None
    connect_timeout: float = 30.0
    dedup_window: int = 1000
    on_trim: Optional[Callable[[int, int], Any]] = None
    peek_settled: bool = False
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    total_timeout: Optional[float] = None
    max_server_delay: float = MAX_SERVER_DELAY
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    @property
    def window(self) -> int:
        """``Timeout-Seconds``; below a stall timeout, so an idle window ends before a stall."""
        window = self.timeout_seconds if self.follow else NON_FOLLOW_WINDOW
        window = min(window, self.timeout_seconds)
        if self.stall_timeout is not None:
            window = min(window, max(1, math.ceil(self.stall_timeout) - 1))
        return window

    def stall(self, shape: Optional[str]) -> float:
        """Seconds without a byte before a ``shape`` stream (``None``: unknown) is stalled."""
        if self.stall_timeout is not None:
            return max(self.stall_timeout, self.window + STALL_MARGIN)
        return V2_STALL_TIMEOUT if shape == "v2" else self.window + V1_STALL_SLACK


class Deadline:
    """The end of a reader's ``total_timeout`` on ``clock`` (``None``: never)."""

    def __init__(self, seconds: Optional[float], path: str, clock: Callable[[], float]) -> None:
        self.seconds, self.path, self.clock = seconds, path, clock
        self.at = math.inf if seconds is None else clock() + seconds

    def left(self) -> float:
        """Seconds until the deadline (zero or negative once it has passed)."""
        return self.at - self.clock()

    def check(self, cause: Optional[BaseException] = None) -> float:
        """The seconds left; once none are, :class:`ReaderTimeoutError` (from ``cause``)."""
        left = self.at - self.clock()
        if left <= 0:
            message = f"reader on {self.path} ran past its total_timeout of {self.seconds:g} s"
            raise ReaderTimeoutError(message) from cause
        return left


class DedupWindow:
    """The part ids of recent records: the last ``size`` (0: none) to twice that."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: Set[str] = set()
        self._order: List[str] = []

    def add_all(self, records: List[Record]) -> bool:
        """Remember the part ids of ``records`` when none is a repeat; False (nothing
        remembered) when one may be: then ask :meth:`seen` about each record."""
        if not self.size:
            return True
        if len(records) == 1:
            return not self.seen(records[0]["part_id"])
        ids = list(filter(None, map(_part_id_of, records)))
        fresh = set(ids)
        if len(fresh) != len(ids) or not self._ids.isdisjoint(fresh):
            return False
        self._ids.update(fresh)
        self._remember(ids)
        return True

    def seen(self, part_id: Optional[str]) -> bool:
        """Whether ``part_id`` is in the window; remembers it when it was not."""
        if not self.size or not part_id:
            return False
        if part_id in self._ids:
            return True
        self._ids.add(part_id)
        self._remember([part_id])
        return False

    def holds(self, part_id: Optional[str]) -> bool:
        return part_id in self._ids

    def _remember(self, ids: List[str]) -> None:
        self._order.extend(ids)
        if len(self._order) > 2 * self.size:
            drop = len(self._order) - self.size
            self._ids.difference_update(self._order[:drop])
            del self._order[:drop]


class _Transient(Exception):
    """A transient failure of one connection (``opening``: of opening the stream)."""

    def __init__(self, error: _Failure, opening: bool = False) -> None:
        super().__init__(str(error))
        self.error, self.opening = error, opening


class _State:
    """One reader's progress and its consecutive failures (without an event, to open the
    stream, since a stream opened)."""

    def __init__(self, options: ReaderOptions, last_seq: Optional[int]) -> None:
        self.options, self.last_seq = options, last_seq
        self.deadline = Deadline(options.total_timeout, options.path, options.clock)
        self.dedup = DedupWindow(options.dedup_window)
        self.store = options.store or (lambda seq: None)
        self.reconnected = True  # no records event since the last connect
        self.done = False  # the last connection ended the reader
        self.failures = self.open_failures = self.retries = 0

    def failed(self, failure: _Transient) -> float:
        """Count ``failure`` and return the pause before the next attempt (the backoff, at
        least a 429's ``Retry-After``, at most the time left); raise its error once the
        retries are spent or a 429 asks for more than ``max_server_delay``."""
        error, options = failure.error, self.options
        self.failures, self.retries = self.failures + 1, self.retries + 1
        if failure.opening:
            self.open_failures += 1
        retries, open_retries = options.max_retries, options.max_open_retries
        if (retries is not None and self.failures > retries) or (
            open_retries is not None and self.open_failures > open_retries
        ):
            raise error from failure.__cause__
        pause = BACKOFF.backoff(self.retries)
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            if error.retry_after > options.max_server_delay:
                raise error
            pause = max(pause, error.retry_after)
        return max(0.0, min(pause, self.deadline.left()))


def read_channel(
    transport: Transport, options: ReaderOptions, last_seq: Optional[int]
) -> Generator[Record, None, None]:
    """Yield the records of one channel after ``last_seq`` (``Session.iter_out``): back off,
    open the stream with ``Last-Event-ID``, deliver its records (each seq stored once the
    consumer is done with it); stop on a permanent status, at the end when not following,
    at the deadline (from the first ``next()``), or when the consumer stops."""
    state = _State(options, last_seq)
    store, deadline = state.store, state.deadline
    timed = deadline.seconds is not None
    error: Optional[_Failure] = None  # why the last connection failed
    while True:
        deadline.check(error)
        pause: Optional[float] = None
        try:
            response = _open_connection(transport, state)
            error, state.open_failures, state.retries = None, 0, 0
            with closing(response):
                for run in _read_connection(response, state):
                    for record in run:
                        try:
                            yield record
                        finally:
                            store(record["seq"])
                        if timed:
                            deadline.check()
                    del run  # delivered: not held while the next event is read
            if state.done:
                return
        except _Transient as failure:
            error = failure.error
            pause = state.failed(failure)
            logger.info("reader on %s: %s; reconnecting in %.2f s", options.path, error, pause)
        except KeyboardInterrupt as interrupt:
            # Ctrl-C mostly lands deep in a socket read, which says nothing to the user: it
            # goes on from here, the connection closed, no frames below, no chained context.
            raise interrupt.with_traceback(None) from None
        if pause is not None:
            # Out of the except block: an interrupt while waiting chains to no failure.
            options.sleep(pause)


def _open_connection(transport: Transport, state: _State) -> requests.Response:
    """The stream after the last seq. A permanent status, a certificate failure or a body
    that is not an event stream raises; any other failure is :class:`_Transient`."""
    options, left = state.options, state.deadline.left()
    headers = {"Accept": "text/event-stream", "Timeout-Seconds": str(options.window)}
    if state.last_seq is not None:
        headers["Last-Event-ID"] = str(state.last_seq)
        if options.peek_settled:
            headers["X-Peek-Settled"] = "1"
    try:
        response = transport.open_stream(
            options.path,
            headers=headers,
            connect_timeout=min(options.connect_timeout, left),
            read_timeout=min(options.stall(None), left),
            deadline=None if math.isinf(left) else time.monotonic() + left,
        )
    except (APIError, NetworkError) as exc:
        if exc.status in PERMANENT_STATUSES or is_certificate_error(exc.__cause__):
            raise
        raise _Transient(exc, opening=True) from exc
    content_type = response.headers.get("Content-Type", "text/event-stream")
    if content_type.split(";")[0].strip().lower() != "text/event-stream":
        response.close()
        message = f"expected text/event-stream, got {content_type!r}"
        raise ProtocolError(message, status=response.status_code)
    return response


def _read_connection(response: requests.Response, state: _State) -> Iterator[List[Record]]:
    """The new records of one open stream, in runs; ``state.done`` once the reader is done.
    An error event or a body that stops early is :class:`_Transient`."""
    options, deadline = state.options, state.deadline
    follow, path = options.follow, options.path
    shape, progress = wire_shape(response.headers), _Progress(state)
    settled = response.headers.get("X-Session-Settled", "").lower() == "true"
    logger.debug("connected to %s (%s), after seq %s", path, shape, state.last_seq)
    state.reconnected, state.done = True, False
    chunks = _iter_chunks(response, options.stall(shape), deadline, path)
    # No name holds an event while the next is read: a batch's text can be 600 KB.
    events = iter_sse_events(chunks, max_event_bytes=options.max_event_bytes)
    for decoded in map(decode_event, events, repeat(shape)):
        if deadline.seconds is not None:
            deadline.check()
        state.failures = 0
        if decoded.kind == "records":
            yield from _runs(decoded, shape, state)
        elif decoded.kind == "done":
            state.done = settled or not follow
            return
        elif decoded.kind == "error":
            raise _Transient(NetworkError(f"server error event on {path}: {decoded.error}"))
        if not follow and progress.done(decoded.tail):
            state.done = True
            return
        del decoded  # the batch's records, while the next event is read
    if not settled:
        raise _Transient(NetworkError(f"stream on {path} ended without [DONE]"))
    logger.debug("%s is settled; ending the reader", path)
    state.done = True


class _Progress:
    """Whether a non-following reader is done: it has every record (``tail`` is the next
    seq to be written), or no new record came for longer than the window plus the margin
    (pings and unknown events are no progress)."""

    def __init__(self, state: _State) -> None:
        self.state, self.seq = state, state.last_seq
        self.since: Optional[float] = None  # when the last seq was first seen unchanged

    def done(self, tail: Optional[int]) -> bool:
        last = self.state.last_seq
        if tail is not None and (-1 if last is None else last) >= tail - 1:
            return True
        if last != self.seq:
            self.seq, self.since = last, None
            return False
        now = self.state.options.clock()
        if self.since is None:
            self.since = now
        return now - self.since > self.state.options.window + STALL_MARGIN


def _runs(decoded: Decoded, shape: str, state: _State) -> Iterator[List[Record]]:
    """The records of one event the consumer has not had (no replay, no repeated part id,
    control records only when asked for), in runs; a record the consumer never sees is
    stored, a control record routed, once the run before it has been consumed."""
    _check_order(decoded, shape, state)
    records = decoded.records
    check_each = not state.dedup.add_all(records)
    if not check_each and _all_new_data(records, state.last_seq):
        state.last_seq = records[-1]["seq"]
        yield records
    else:
        yield from _selected(records, check_each, state)
    last = decoded.last_seq
    if last is not None and (state.last_seq is None or last > state.last_seq):
        state.last_seq = last  # command records end the event: move the cursor past them
        state.store(last)


def _all_new_data(records: List[Record], last_seq: Optional[int]) -> bool:
    """Whether ``records`` (in seq order) are all data records after ``last_seq``."""
    if not records or (last_seq is not None and records[0]["seq"] <= last_seq):
        return False
    return list(map(_control_of, records)).count(None) == len(records)


def _selected(records: List[Record], check_each: bool, state: _State) -> Iterator[List[Record]]:
    """The runs of :func:`_runs`, record by record (``check_each``: each part id too)."""
    run: List[Record] = []
    last = -1 if state.last_seq is None else state.last_seq  # seqs are never negative
    for record in records:
        seq = record["seq"]
        if seq <= last:
            continue  # a replay: processed (and stored) before
        state.last_seq = last = seq
        repeat = check_each and state.dedup.seen(record["part_id"])
        if not repeat and record["control"] is None:
            run.append(record)
            continue
        if run:
            yield run
        run = _set_aside(record, repeat, state)
    if run:
        yield run


def _set_aside(record: Record, repeat: bool, state: _State) -> List[Record]:
    """A control record (routed to the session and ``on_control``) or a repeated part id:
    ``[record]`` if the consumer gets it, else ``[]`` with its seq stored."""
    options = state.options
    if not repeat:
        for handler in (options.handle_control, options.on_control):
            if handler is not None:
                handler(record)
        if options.include_control:
            return [record]
    state.store(record["seq"])
    return []


def _check_order(decoded: Decoded, shape: str, state: _State) -> None:
    """Report a first seq past the one expected as a trim (after a reconnect; on v2, whose
    events cover command records, at any time); within a connection, a seq that goes back
    with a part id not seen before is a :class:`ProtocolError`."""
    reconnected, state.reconnected = state.reconnected, False
    first = decoded.first_seq
    if first is None or state.last_seq is None:
        return
    expected = state.last_seq + 1
    if first > expected and (reconnected or shape == "v2"):
        _report_trim(expected, first, shape, state.options)
    elif first < expected and not reconnected and _new_content(decoded, expected, state):
        raise ProtocolError(f"{state.options.path}: seq went back to {first} after {expected - 1}")


def _new_content(decoded: Decoded, expected: int, state: _State) -> bool:
    """Whether a record before ``expected`` has a part id the window does not hold."""
    old = (r for r in decoded.records if r["seq"] < expected)
    return any(r["part_id"] and not state.dedup.holds(r["part_id"]) for r in old)


def _report_trim(expected: int, first: int, shape: str, options: ReaderOptions) -> None:
    why = " (or were command records, which v1 streams never carry)" if shape == "v1" else ""
    message = "%s skipped ahead: expected seq %d, got %d; the records in between were trimmed%s"
    logger.warning(message, options.path, expected, first, why)
    if options.on_trim is not None:
        options.on_trim(expected, first)


def _iter_chunks(
    response: requests.Response, stall: float, deadline: Deadline, path: str
) -> Iterator[bytes]:
    """One stream's body as it arrives, each wait for bytes cut to ``stall`` and to the
    deadline; a broken or stalled stream is :class:`_Transient`."""
    raw: Any = response.raw
    # urllib3 1.26 (requests >= 2.25 allows it) has no read1, and read(n) waits for n bytes.
    read1 = getattr(raw, "read1", None) or raw._fp.read1
    timeout = math.inf  # the socket timeout last set
    while True:
        wanted = min(stall, deadline.check())
        if timeout > wanted + DEADLINE_SLACK:
            with suppress(AttributeError, OSError):  # best effort
                raw.connection.sock.settimeout(max(wanted, 0.001))  # 0: non-blocking
                timeout = wanted
        try:
            data = read1(READ_SIZE)
        except _STREAM_ERRORS as exc:
            deadline.check()  # a socket wait cut to the time left, or cut at the deadline
            why = f"broke: {type(exc).__name__}: {exc}"
            if isinstance(exc, _STALLS):
                why = "stalled: no bytes within the stall timeout"
            raise _Transient(NetworkError(f"stream on {path} {why}")) from exc
        if not data:
            return
        yield data
