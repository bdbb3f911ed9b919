"""The reader loop: one SSE channel, read across reconnects, exactly once and in order.

:class:`Backoff` is the capped, jittered exponential delay between failed
connections (100 ms doubling to 5 s, up to 50 % jitter, reset after a
successful connect). :func:`read_channel` is the explicit reconnect loop behind
``Session.iter_out`` / ``iter_in``: it resumes with ``Last-Event-ID`` = the seq of
the last record processed (never anything else), skips replays, advances past
command records, routes control records, detects trims and stalls, and stores
the cursor only once the consumer is done with a record. With a
``total_timeout`` it raises :class:`~sessions_client.errors.ReaderTimeoutError`
once that many seconds have passed, whatever the server does (pings, stalls,
refused connections, long ``Retry-After`` delays).
"""

from __future__ import annotations

import http.client
import logging
import math
import random
import socket
import time
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Iterator,
    List,
    Optional,
    Set,
)

import requests
import urllib3

from .errors import (
    APIError,
    NetworkError,
    ProtocolError,
    RateLimitedError,
    ReaderTimeoutError,
    SessionsError,
)
from .http import Transport, is_certificate_error
from .wire import DEFAULT_MAX_EVENT_BYTES, Decoded, iter_decoded
from .wire import wire_shape as _wire_shape

logger = logging.getLogger("sessions_client.reader")

Record = Dict[str, Any]

#: Statuses after which a reader gives up at once (PROTOCOL.md §7, plus 501: no backend).
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 409, 410, 422, 501})
#: Read size: ``read1`` returns whatever has arrived, up to this many bytes.
READ_SIZE = 65536
#: Stall window on a v2 stream (pings every ~5 s) when the caller chose none.
V2_STALL_TIMEOUT = 15.0
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


class _StreamFailure(Exception):
    """A transient failure of one connection; the loop reconnects."""

    def __init__(self, error: SessionsError) -> None:
        super().__init__(str(error))
        self.error = error


class _Deadline:
    """The end of a reader's ``total_timeout`` on ``clock`` (monotonic seconds)."""

    def __init__(self, seconds: float, path: str, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self.path = path
        self.clock = clock
        self.at = clock() + seconds

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


def _iter_chunks(
    response: requests.Response, before_read: Optional[Callable[[], None]] = None
) -> Iterator[bytes]:
    """The body as it arrives: each chunk is whatever the socket has, up to READ_SIZE.

    ``before_read()`` runs before each wait for bytes (the deadline check).
    """
    raw: Any = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # urllib3 1.26: read the http.client response directly
        read1 = raw._fp.read1
    while True:
        if before_read is not None:
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


def _first_seq(decoded: Decoded) -> Optional[int]:
    """The lowest seq an event carries, command records included, when it is known."""
    if decoded.first_seq is not None:
        return decoded.first_seq
    if decoded.records:
        return int(decoded.records[0]["seq"])
    return decoded.last_seq


def _content_type_ok(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type")
    if content_type is None:
        return True
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


def read_channel(
    transport: Transport,
    path: str,
    *,
    last_seq: Optional[int],
    follow: bool,
    timeout_seconds: int,
    include_control: bool,
    on_control: Optional[Callable[[Record], Any]],
    handle_control: Callable[[Record], None],
    store: Optional[Callable[[int], None]],
    max_retries: Optional[int],
    stall_timeout: Optional[float],
    connect_timeout: float,
    dedup_window: int,
    on_trim: Optional[Callable[[int, int], Any]],
    peek_settled: bool,
    sleep: Callable[[float], None] = time.sleep,
    backoff: Optional[Backoff] = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    total_timeout: Optional[float] = None,
    clock: Callable[[], float] = time.monotonic,
) -> Generator[Record, None, None]:
    """Yield the records of one channel after ``last_seq``; see ``Session.iter_out``.

    ``handle_control`` sees every control record first (token refresh);
    ``store(seq)`` persists the cursor once the consumer has finished with a
    record (asked for the next one or closed the generator), or at once for
    records it never sees (command, deduplicated, unyielded control records).

    ``total_timeout`` (seconds from the first ``next()`` on ``clock``; ``None``: no
    limit) ends the reader with :class:`ReaderTimeoutError`: connect and socket
    timeouts and backoff pauses are bounded by the time left, and it is checked
    before every wait for bytes, after every event (pings included) and after
    every record the consumer has finished with.
    """
    deadline = None if total_timeout is None else _Deadline(total_timeout, path, clock)
    last_error: Optional[SessionsError] = None
    delays = backoff if backoff is not None else Backoff()
    window = timeout_seconds if follow else min(timeout_seconds, NON_FOLLOW_WINDOW)
    if stall_timeout is None:
        read_timeout = window + V1_STALL_SLACK
    else:
        # An idle long-poll window must end (with [DONE]) before a stall is declared,
        # so the window is kept below the stall timeout, and the stall timeout is never
        # shorter than the (1-s minimum) window plus a margin: silence is never taken
        # for a stall, nor a stall for the end.
        window = min(window, max(1, math.ceil(stall_timeout) - 1))
        read_timeout = max(stall_timeout, window + STALL_MARGIN)
    seen_ids: Set[str] = set()
    # A list, not a deque: the window is trimmed in bulk with one slice deletion (C) once it
    # holds twice dedup_window ids, instead of a Python popleft/discard loop per id.
    seen_order: List[str] = []
    trim_at = 2 * dedup_window
    failures = 0
    pause = 0.0

    def remember_all(records: List[Record]) -> bool:
        """Remember the part ids of ``records``; False when one may be a duplicate.

        The common case (no id seen before, none repeated) costs a few C-level set
        operations per batch; the window is trimmed in bulk, so it holds between
        ``dedup_window`` and twice that many recent ids.
        """
        ids = [r["part_id"] for r in records if r["part_id"]]
        fresh = set(ids)
        if len(fresh) != len(ids) or not seen_ids.isdisjoint(fresh):
            return False
        seen_ids.update(fresh)
        seen_order.extend(ids)
        if len(seen_order) > trim_at:
            trim()
        return True

    def trim() -> None:
        """Forget all but the ``dedup_window`` most recent ids (the window holds no repeats)."""
        drop = len(seen_order) - dedup_window
        seen_ids.difference_update(seen_order[:drop])
        del seen_order[:drop]

    while True:
        if pause > 0:
            sleep(pause)
            pause = 0.0
        left = math.inf
        if deadline is not None:
            left = deadline.left()
            if left <= 0:
                raise deadline.expired() from last_error
        headers = {"Accept": "text/event-stream", "Timeout-Seconds": str(window)}
        if last_seq is not None:
            headers["Last-Event-ID"] = str(last_seq)
            if peek_settled:
                headers["X-Peek-Settled"] = "1"
        try:
            try:
                response = transport.open_stream(
                    path,
                    headers=headers,
                    connect_timeout=min(connect_timeout, left),
                    read_timeout=min(read_timeout, left),
                )
            except APIError as exc:
                if exc.status in PERMANENT_STATUSES:
                    raise
                raise _StreamFailure(exc) from exc
            except NetworkError as exc:
                if is_certificate_error(exc.__cause__):
                    raise
                raise _StreamFailure(exc) from exc
            delays.reset()
            last_error = None
            done = False
            expected = None if last_seq is None else last_seq + 1
            try:
                if not _content_type_ok(response):
                    raise ProtocolError(
                        f"expected text/event-stream, got {response.headers.get('Content-Type')!r}",
                        status=response.status_code,
                    )
                shape = _wire_shape(response.headers)
                settled = response.headers.get("X-Session-Settled", "").lower() == "true"
                stall = read_timeout
                if stall_timeout is None and shape == "v2":
                    stall = V2_STALL_TIMEOUT
                before_read = None
                if deadline is None:
                    if stall != read_timeout:
                        _set_read_timeout(response, stall)
                else:
                    before_read = _deadline_guard(response, deadline, stall)
                logger.debug("connected to %s (%s), after seq %s", path, shape, last_seq)
                events = iter_decoded(
                    _iter_chunks(response, before_read), shape, max_event_bytes=max_event_bytes
                )
                while True:
                    if deadline is not None:
                        deadline.check()
                    try:
                        decoded = next(events)
                    except StopIteration:
                        break
                    except ReaderTimeoutError:
                        raise
                    except _STREAM_ERRORS as exc:
                        if deadline is not None and deadline.left() <= 0 and _is_timeout(exc):
                            raise deadline.expired() from None
                        raise _StreamFailure(_read_error(exc, path)) from exc
                    failures = 0
                    if decoded.kind != "records":  # one test on the path of every record event
                        if decoded.kind == "done":
                            done = True
                            break
                        if decoded.kind == "error":
                            raise _StreamFailure(
                                NetworkError(f"server error event on {path}: {decoded.error or ''}")
                            )
                        if (
                            decoded.kind == "ping"
                            and not follow
                            and _caught_up_on_ping(last_seq, decoded.tail)
                        ):
                            return
                        continue
                    if expected is not None:
                        first = _first_seq(decoded)
                        if first is not None and first > expected:
                            logger.warning(
                                "%s skipped ahead: expected seq %d, got %d; the records in "
                                "between were trimmed%s",
                                path,
                                expected,
                                first,
                                " (or were command records, which v1 streams never carry)"
                                if shape == "v1"
                                else "",
                            )
                            if on_trim is not None:
                                on_trim(expected, first)
                        expected = None
                    records = decoded.records
                    check_each = dedup_window > 0 and (
                        len(records) == 1 or not remember_all(records)
                    )
                    for record in records:
                        seq = record["seq"]
                        if last_seq is not None and seq <= last_seq:
                            logger.debug("skipping replayed seq %d on %s", seq, path)
                            continue
                        last_seq = seq
                        if check_each:
                            # The dedup window inlined (no call per record on v1 streams).
                            part_id = record["part_id"]
                            if part_id:
                                if part_id in seen_ids:
                                    logger.debug("skipping duplicate part id at seq %d", seq)
                                    if store is not None:
                                        store(seq)
                                    continue
                                seen_ids.add(part_id)
                                seen_order.append(part_id)
                                if len(seen_order) > trim_at:
                                    trim()
                        if record["control"] is not None:
                            handle_control(record)
                            if on_control is not None:
                                on_control(record)
                            if not include_control:
                                if store is not None:
                                    store(seq)
                                continue
                        try:
                            yield record
                        except GeneratorExit:
                            if store is not None:
                                store(seq)
                            raise
                        if store is not None:
                            store(seq)
                        if deadline is not None:
                            deadline.check()
                    if decoded.last_seq is not None and (
                        last_seq is None or decoded.last_seq > last_seq
                    ):
                        last_seq = decoded.last_seq
                        if store is not None:
                            store(last_seq)
                    if (
                        not follow
                        and decoded.tail is not None
                        and last_seq is not None
                        and last_seq >= decoded.tail - 1
                    ):
                        return
            finally:
                response.close()
            if settled:
                logger.debug("%s is settled; ending the reader", path)
                return
            if not done:
                # Only [DONE] ends a window normally; a body that just stops is a break.
                raise _StreamFailure(NetworkError(f"stream on {path} ended without [DONE]"))
            if not follow:
                return
        except _StreamFailure as failure:
            error = failure.error
            failures += 1
            if max_retries is not None and failures > max_retries:
                raise error from failure.__cause__
            pause = delays.next_delay()
            if isinstance(error, RateLimitedError) and error.retry_after is not None:
                pause = max(pause, error.retry_after)
            if deadline is not None:
                last_error = error
                left = deadline.left()
                if left <= 0:
                    raise deadline.expired() from error
                pause = min(pause, left)
            logger.info("reader on %s: %s; reconnecting in %.2f s", path, error, pause)


def _caught_up_on_ping(last_seq: Optional[int], tail: Optional[int]) -> bool:
    """Whether a ping's tail says the reader has every record (unknown tail: no)."""
    if tail is None:
        return False
    if last_seq is None:
        return tail <= 0
    return last_seq >= tail - 1


def _deadline_guard(
    response: requests.Response, deadline: _Deadline, stall: float
) -> Callable[[], None]:
    """The ``before_read`` of a stream with a deadline: raise once it has passed, else
    keep the socket timeout within the time left (plus ``DEADLINE_SLACK``)."""
    current = [math.inf]  # the socket timeout last set

    def before_read() -> None:
        wanted = min(stall, deadline.check())
        if current[0] > wanted + DEADLINE_SLACK and _set_read_timeout(response, wanted):
            current[0] = wanted

    return before_read


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (urllib3.exceptions.ReadTimeoutError, socket.timeout, requests.Timeout))


def _read_error(exc: BaseException, path: str) -> NetworkError:
    if _is_timeout(exc):
        return NetworkError(f"stream on {path} stalled: no bytes within the stall timeout")
    return NetworkError(f"stream on {path} broke: {type(exc).__name__}: {exc}")


__all__ = ["Backoff", "PERMANENT_STATUSES", "read_channel"]
