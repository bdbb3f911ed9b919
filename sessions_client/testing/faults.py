"""Fault injection for tests of the local server (``srv.faults``).

Routes are named ``"append"`` (POST .../append), ``"read"`` (GET SSE),
``"records"`` (GET .../records), ``"sessions"`` (/api/v1/sessions...) and ``"claims"``
(POST /api/v1/auth/jwt/claims); ``"*"`` matches every route. Faults are consumed in
the order they were added.

- ``fail_next(k, status=503, route="append", retry_after=None)``: the next ``k``
  requests on ``route`` are answered with ``status`` (body ``{"ok": false, "error":
  "injected fault"}`` on channel routes, ``{"error": "injected fault"}`` on
  management routes) and, when ``retry_after`` is given, a ``Retry-After`` header
  (seconds). The request is not processed. Use 500, 503, 429...
- ``drop_next(k, route="append", process=False)``: the next ``k`` requests on
  ``route`` are read in full, then the connection is closed without an answer.
  With ``process=True`` the request is carried out first (e.g. the record is
  appended) and only the answer is lost — the case idempotent retries exist for.
- ``cut_stream(after_bytes=None, after_records=None, count=1)``: the next ``count``
  SSE responses are closed abruptly (no final chunk, so the reader sees a broken
  stream) after ``after_bytes`` bytes of event stream, or right after
  ``after_records`` records were sent (with neither, right after the headers).
- ``stall_stream(seconds, after_bytes=0, count=1)``: the next ``count`` SSE
  responses stop sending anything (no pings either, connection kept open) for
  ``seconds`` once ``after_bytes`` bytes were sent, then carry on normally.
- ``error_stream(code="unavailable", message="...", after_records=0, count=1)``: the
  next ``count`` SSE responses send an ``event: error`` whose data is
  ``{"code": code, "message": message}`` once ``after_records`` records were sent,
  then end without ``[DONE]`` (as production passes a storage error on).
- ``set_latency(seconds, route="*")``: every answer on ``route`` is delayed by
  ``seconds`` (``0`` removes it). A route-specific latency wins over ``"*"``.
- ``on_request(route, arm)``: call ``arm()`` each time a request on ``route`` arrives
  (once it is counted in ``request_counts``, before it takes any fault), so that a
  test arms the fault of every request deterministically, e.g. a new cut for each
  reconnect, whatever the client's timing (``arm=None`` removes it; one hook per
  route, ``"*"`` for every request). Hooks run one at a time, in the server's
  connection threads, and may arm nothing; one that raises is logged and the
  request goes on. ``clear()`` leaves hooks in place.
- ``clear()``: forget every pending fault and latency.

Waits inside faults end early when the server closes.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

logger = logging.getLogger("sessions_client.testing")

ROUTES = ("append", "read", "records", "sessions", "claims", "*")


def _check_route(route: str) -> None:
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; expected one of {', '.join(ROUTES)}")


@dataclass
class Failure:
    """An injected error answer."""

    status: int
    retry_after: Optional[float]


@dataclass
class StreamPlan:
    """What to do to one SSE response (None fields: nothing)."""

    cut_after_bytes: Optional[int] = None
    cut_after_records: Optional[int] = None
    cut: bool = False
    stall_seconds: float = 0.0
    stall_after_bytes: int = 0
    error: Optional[Tuple[str, str]] = None
    error_after_records: int = 0


@dataclass
class _Pending:
    route: str
    remaining: int
    status: int = 0
    retry_after: Optional[float] = None
    process: bool = False


class FaultInjector:
    """Faults to inject into the next requests; thread-safe. See the module docstring."""

    def __init__(self, stopping: Optional[threading.Event] = None) -> None:
        self._lock = threading.Lock()
        self._stopping = stopping or threading.Event()
        self._failures: List[_Pending] = []
        self._drops: List[_Pending] = []
        self._cuts: List[StreamPlan] = []
        self._stalls: List[StreamPlan] = []
        self._errors: List[StreamPlan] = []
        self._latency: Dict[str, float] = {}
        self._hooks: Dict[str, Callable[[], None]] = {}
        self._hook_lock = threading.Lock()  # hooks run one at a time

    # ------------------------------------------------------------ public API

    def fail_next(
        self, k: int, status: int = 503, route: str = "append", retry_after: Optional[float] = None
    ) -> None:
        """Answer the next ``k`` requests on ``route`` with ``status`` (not processed)."""
        _check_route(route)
        if k > 0:
            with self._lock:
                self._failures.append(_Pending(route, k, status=status, retry_after=retry_after))

    def drop_next(self, k: int, route: str = "append", *, process: bool = False) -> None:
        """Read the next ``k`` requests on ``route`` and close the socket without answering."""
        _check_route(route)
        if k > 0:
            with self._lock:
                self._drops.append(_Pending(route, k, process=process))

    def cut_stream(
        self, after_bytes: Optional[int] = None, after_records: Optional[int] = None, count: int = 1
    ) -> None:
        """Close the next ``count`` SSE responses abruptly after N bytes or N records."""
        with self._lock:
            for _ in range(count):
                self._cuts.append(
                    StreamPlan(
                        cut_after_bytes=after_bytes, cut_after_records=after_records, cut=True
                    )
                )

    def stall_stream(self, seconds: float, after_bytes: int = 0, count: int = 1) -> None:
        """Make the next ``count`` SSE responses go silent for ``seconds`` after N bytes."""
        with self._lock:
            for _ in range(count):
                self._stalls.append(
                    StreamPlan(stall_seconds=seconds, stall_after_bytes=after_bytes)
                )

    def error_stream(
        self,
        code: str = "unavailable",
        message: str = "injected storage error",
        after_records: int = 0,
        count: int = 1,
    ) -> None:
        """Make the next ``count`` SSE responses end with an ``event: error``."""
        with self._lock:
            for _ in range(count):
                self._errors.append(
                    StreamPlan(error=(code, message), error_after_records=after_records)
                )

    def set_latency(self, seconds: float, route: str = "*") -> None:
        """Delay every answer on ``route`` by ``seconds`` (0 removes the delay)."""
        _check_route(route)
        with self._lock:
            if seconds > 0:
                self._latency[route] = seconds
            else:
                self._latency.pop(route, None)

    def on_request(self, route: str, arm: Optional[Callable[[], None]]) -> None:
        """Call ``arm()`` as each new request on ``route`` arrives, before it takes its
        faults (``None``: stop calling it). One hook per route; a new one replaces it."""
        _check_route(route)
        with self._hook_lock:
            if arm is None:
                self._hooks.pop(route, None)
            else:
                self._hooks[route] = arm

    def clear(self) -> None:
        """Forget every pending fault and latency."""
        with self._lock:
            self._failures.clear()
            self._drops.clear()
            self._cuts.clear()
            self._stalls.clear()
            self._errors.clear()
            self._latency.clear()

    # ------------------------------------------------------- server-side use

    def request_arrived(self, route: str) -> None:
        """Run the ``on_request`` hooks of ``route`` (and of ``"*"``) for a new request;
        an exception from a hook is logged and the request goes on."""
        with self._hook_lock:
            for key in (route, "*"):
                hook = self._hooks.get(key)
                if hook is None:
                    continue
                try:
                    hook()
                except Exception:
                    logger.exception("fault injection hook on %r failed", key)

    @staticmethod
    def _take(queue: List[_Pending], route: str) -> Optional[_Pending]:
        for entry in queue:
            if entry.route in ("*", route):
                entry.remaining -= 1
                if entry.remaining <= 0:
                    queue.remove(entry)
                return entry
        return None

    def take_failure(self, route: str) -> Optional[Failure]:
        """Consume the injected failure for this request on ``route``, if any."""
        with self._lock:
            entry = self._take(self._failures, route)
        return Failure(entry.status, entry.retry_after) if entry else None

    def take_drop(self, route: str) -> Optional[bool]:
        """Consume an injected drop: None (no drop), else whether to process first."""
        with self._lock:
            entry = self._take(self._drops, route)
        return entry.process if entry else None

    def latency(self, route: str) -> float:
        """The delay to apply before answering on ``route``."""
        with self._lock:
            return self._latency.get(route, self._latency.get("*", 0.0))

    def take_stream_plan(self) -> StreamPlan:
        """Consume the cut and stall (if any) for one new SSE response."""
        plan = StreamPlan()
        with self._lock:
            if self._cuts:
                cut = self._cuts.pop(0)
                plan.cut = True
                plan.cut_after_bytes = cut.cut_after_bytes
                plan.cut_after_records = cut.cut_after_records
            if self._stalls:
                stall = self._stalls.pop(0)
                plan.stall_seconds = stall.stall_seconds
                plan.stall_after_bytes = stall.stall_after_bytes
            if self._errors:
                error = self._errors.pop(0)
                plan.error = error.error
                plan.error_after_records = error.error_after_records
        return plan

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the server stops first; True if it is stopping."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()
