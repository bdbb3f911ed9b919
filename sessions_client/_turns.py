"""Chat turns (docs/protocol.md, "A turn, on the channel level"): send to ``.in``, read
``.out`` until the turn is complete.

``Session.read_turn`` and ``Session.ask`` delegate here.

A turn ends with a ``turn-complete`` control record on ``.out`` whose
``session-in-event-id`` header is the highest ``.in`` seq the agent consumed in
that turn. A turn-complete of an earlier turn can arrive first (the agent was
still busy, or the reader started before the previous turn's end): it is
skipped. A turn-complete without that header (older agents) ends any turn.

**Where reading starts.** Each :class:`~sessions_client.session.Session` object
remembers the ``.out`` seq where its last turn ended (its ``turn_position``). The
next ``read_turn`` / ``ask`` starts after it, so the history
of ``.out`` is read at most once per ``Session`` object: the first turn of a
fresh object reads ``.out`` from the start of what is retained (or after
``last_event_id`` / ``cursor`` when given). That is correct even when the reply
is written before the read starts, because the read never starts *after* the
reply. While skipping a stale turn-complete, :func:`ask` also drops the data
records that came before it (they were the earlier turn's reply);
:func:`read_turn`, a generator, has already yielded them, so start it at the
previous turn's end (``last_event_id``, ``cursor`` or the remembered position).

**Reading and deadline.** A turn is read by one following ``.out`` reader
(``Session.iter_out(follow=True, include_control=True, total_timeout=...)``): a
reply streamed slowly is read over one connection, record by record as it
arrives. Transient failures (connection errors, 408/429/5xx, broken or stalled
streams) are the reader's to resume, with its capped backoff; 400, 401, 403,
404, 409, 410, 422 and 501 raise their typed error at once. ``timeout`` bounds
the whole turn: once it has passed, :class:`~sessions_client.errors.TurnTimeoutError`
is raised promptly (within about ``_reader.DEADLINE_SLACK``), whatever the
server does - pings, a stalled stream, refused connections - because the reader
cuts every connect, socket wait and backoff pause to the time left.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Generator, Iterator, List, Optional, Protocol, Tuple

from ._wire import Record
from .cursor import Cursor
from .errors import ConfigurationError, ReaderTimeoutError, TurnTimeoutError

__all__ = [
    "TURN_COMPLETE",
    "IN_EVENT_ID_HEADER",
    "TurnPosition",
    "TurnSession",
    "turn_in_seq",
    "read_turn",
    "ask",
]

logger = logging.getLogger("sessions_client._turns")

TURN_COMPLETE = "turn-complete"
IN_EVENT_ID_HEADER = "session-in-event-id"


class TurnPosition:
    """The ``.out`` seq where a session's last turn ended; it never moves back.

    Each :class:`~sessions_client.session.Session` holds one; thread-safe.
    """

    def __init__(self) -> None:
        self._seq: Optional[int] = None
        self._lock = threading.Lock()

    def get(self) -> Optional[int]:
        with self._lock:
            return self._seq

    def advance(self, seq: int) -> None:
        """Move to ``seq`` unless the position is already past it."""
        with self._lock:
            if self._seq is None or seq > self._seq:
                self._seq = seq


class TurnSession(Protocol):
    """What a turn needs of a session (``Session`` is one)."""

    turn_position: TurnPosition

    def append_in(self, record: Any, *, part_id: Optional[str] = None) -> Dict[str, Any]: ...

    def iter_out(
        self,
        *,
        last_event_id: Optional[int] = None,
        follow: bool = True,
        include_control: bool = False,
        cursor: Optional[Cursor] = None,
        total_timeout: Optional[float] = None,
    ) -> Generator[Record, None, None]: ...


def _remembered(session: TurnSession) -> Optional[int]:
    return session.turn_position.get()


def _remember(session: TurnSession, seq: int) -> None:
    session.turn_position.advance(seq)


def _as_seq(value: Any) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and text.isascii():
            return int(text)
    return None


def turn_in_seq(record: Record) -> Optional[int]:
    """The ``session-in-event-id`` of a control record as an int, else ``None``.

    Read from the record's headers, or for a legacy ``trigger:turn-complete`` data
    record from its data (``sessionInEventId``, or the ``headers`` list it carries).
    """
    headers = list(record.get("headers") or [])
    data = record.get("data")
    if isinstance(data, dict):
        legacy = _as_seq(data.get("sessionInEventId"))
        if legacy is not None:
            return legacy
        if isinstance(data.get("headers"), list):
            headers.extend(data["headers"])
    for header in headers:
        named = isinstance(header, (list, tuple)) and len(header) == 2
        if named and header[0] == IN_EVENT_ID_HEADER:
            seq = _as_seq(header[1])
            if seq is not None:
                return seq
    return None


def _check_seq(value: Any, name: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative (got {value})")
    return value


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds")
    if not timeout > 0:
        raise ConfigurationError("timeout must be positive")
    return float(timeout)


def _turn_events(
    session: TurnSession,
    *,
    start: Optional[int],
    after_in_seq: Optional[int],
    timeout: float,
    cursor: Optional[Cursor],
) -> Generator[Tuple[str, Record], None, None]:
    """Yield ``("data", r)``, ``("stale", r)`` and finally ``("end", r)`` for one turn.

    One following reader does all the reading (reconnects included); its
    ``total_timeout`` is the turn's deadline.
    """

    def expired() -> TurnTimeoutError:
        after = "" if after_in_seq is None else f" for .in seq {after_in_seq}"
        return TurnTimeoutError(f"no turn-complete{after} on .out within {timeout:g} s")

    reader = session.iter_out(
        last_event_id=start,
        follow=True,
        include_control=True,
        cursor=cursor,
        total_timeout=timeout,
    )
    try:
        for record in reader:
            seq = int(record["seq"])
            kind = _classify(record, after_in_seq)
            if kind == "end":
                _remember(session, seq)
                yield kind, record
                return
            if kind == "skip":
                _remember(session, seq)
                continue
            try:
                yield kind, record
            finally:
                _remember(session, seq)
    except ReaderTimeoutError as error:
        raise expired() from error
    finally:
        reader.close()
    raise expired()  # pragma: no cover - a following reader never just ends


def _classify(record: Record, after_in_seq: Optional[int]) -> str:
    """``data``, ``end`` (this turn's turn-complete), ``stale`` (an earlier one) or ``skip``."""
    control = record.get("control")
    if control is None:
        return "data"
    if control != TURN_COMPLETE:
        return "skip"
    consumed = turn_in_seq(record)
    if after_in_seq is None or consumed is None or consumed >= after_in_seq:
        return "end"
    logger.debug(
        "skipping a stale turn-complete (session-in-event-id %d < %d)", consumed, after_in_seq
    )
    return "stale"


def _start_position(
    session: TurnSession, last_event_id: Optional[int], cursor: Optional[Cursor]
) -> Optional[int]:
    if last_event_id is not None:
        return last_event_id
    if cursor is not None and cursor.get() is not None:
        return None  # the reader starts after the cursor's stored seq
    return _remembered(session)


def read_turn(
    session: TurnSession,
    *,
    after_in_seq: Optional[int] = None,
    last_event_id: Optional[int] = None,
    timeout: float = 60,
    cursor: Optional[Cursor] = None,
) -> Iterator[Record]:
    """Yield the ``.out`` data records of one turn, then stop at its ``turn-complete``.

    The turn ends at the first ``turn-complete`` whose ``session-in-event-id`` is
    ≥ ``after_in_seq`` (any turn-complete when ``after_in_seq`` is ``None`` or the
    header is missing); earlier turn-completes and other control records are not
    yielded. Reading starts after ``last_event_id``, else after ``cursor.get()``,
    else where this ``Session`` object's previous turn ended, else at the start of
    ``.out``. ``cursor.set(seq)`` is called once the consumer is done with a record
    (the turn-complete included). ``timeout`` (seconds, counted from the first
    ``next()``) bounds the whole turn: :class:`TurnTimeoutError` when it passes. A
    refreshed public token on a turn-complete is adopted by the session.
    """
    start = _check_seq(last_event_id, "last_event_id")
    after = _check_seq(after_in_seq, "after_in_seq")
    seconds = _check_timeout(timeout)
    if cursor is not None and (
        not callable(getattr(cursor, "get", None)) or not callable(getattr(cursor, "set", None))
    ):
        raise TypeError("cursor must have get() and set(seq) methods")
    return _read_turn(session, start, after, seconds, cursor)


def _read_turn(
    session: TurnSession,
    start: Optional[int],
    after_in_seq: Optional[int],
    timeout: float,
    cursor: Optional[Cursor],
) -> Iterator[Record]:
    events = _turn_events(
        session,
        start=_start_position(session, start, cursor),
        after_in_seq=after_in_seq,
        timeout=timeout,
        cursor=cursor,
    )
    try:
        for kind, record in events:
            if kind == "data":
                yield record
    finally:
        events.close()


def ask(
    session: TurnSession,
    record: Any,
    *,
    timeout: float = 60,
    last_event_id: Optional[int] = None,
) -> Dict[str, Any]:
    """Append ``record`` to ``.in`` and return the agent's reply to it.

    Returns ``{"in_seq": n, "records": [data records of the reply],
    "control": <the turn-complete record>}``. The reply is the data records on
    ``.out`` before the first turn-complete whose ``session-in-event-id`` is ≥ ``n``;
    records of earlier turns (those before a stale turn-complete) are dropped.
    Reading starts where this ``Session`` object's previous turn ended (or after
    ``last_event_id``, or at the start of ``.out``). ``timeout`` seconds bound the
    append and the read together (:class:`TurnTimeoutError`). If the server
    returns no seq for the append (``in_seq`` is ``None``), the first turn-complete
    ends the turn.
    """
    seconds = _check_timeout(timeout)
    start = _check_seq(last_event_id, "last_event_id")
    deadline = time.monotonic() + seconds
    if start is None:
        start = _remembered(session)
    appended = session.append_in(record)
    in_seq = appended.get("seq")
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TurnTimeoutError(f"the append to .in took longer than {seconds:g} s")
    records: List[Record] = []
    events = _turn_events(session, start=start, after_in_seq=in_seq, timeout=remaining, cursor=None)
    try:
        for kind, item in events:
            if kind == "data":
                records.append(item)
            elif kind == "stale":
                records.clear()
            else:
                return {"in_seq": in_seq, "records": records, "control": item}
    finally:
        events.close()
    raise TurnTimeoutError("the .out reader ended without a turn-complete")  # pragma: no cover
