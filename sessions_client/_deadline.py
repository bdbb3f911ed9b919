"""One deadline per call, enforced on the connection itself.

``requests`` bounds each socket operation (the ``(connect, read)`` timeout), never a
whole answer: a server that sends one byte a second keeps a call alive for ever. A
:class:`CallGuard` is the deadline of one call; while it is active (``with guard:``)
every connection the call uses is noted on it, and a single watchdog thread shuts
that connection down once the deadline passes. The blocked call then fails at once
with a ``requests`` connection error, and :attr:`CallGuard.fired` tells the caller
why.

Connections are noted by :class:`DeadlineAdapter`, the ``requests`` adapter that a
:class:`~sessions_client._http.Transport` mounts on the ``requests.Session`` it makes.
A session given by the caller keeps its own adapters: the deadline then holds
between attempts and lowers each attempt's socket timeouts, but cannot cut a server
that trickles bytes. Proxied connections are guarded too (SOCKS ones are not).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import socket
import threading
import time
from typing import Any, List, Optional, Tuple

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

_local = threading.local()


class CallGuard:
    """The deadline (``time.monotonic()`` seconds) of one call and the connection it
    uses now.

    ``with guard:`` around each request notes the connections it uses (and starts
    the watch); :meth:`finish` ends the watch once the call is over. A guard never
    finished (a stream handed to its reader) simply fires at its deadline.
    """

    __slots__ = ("deadline", "fired", "_lock", "_conn", "_done", "_outer", "_watched")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        self._lock = threading.Lock()
        self._conn: Optional[HTTPConnection] = None
        self._done = False
        self._outer: Optional[CallGuard] = None
        self._watched = False

    @property
    def done(self) -> bool:
        """True once the guarded block has ended."""
        return self._done

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once past)."""
        return self.deadline - time.monotonic()

    def attach(self, conn: HTTPConnection) -> None:
        """Note that the call now sends a request on ``conn``."""
        with self._lock:
            if not self._done:
                self._conn = conn
                conn.sessions_guard = self  # type: ignore[attr-defined]

    def cut(self) -> None:
        """Past the deadline: shut the call's connection down (if it still has it)."""
        with self._lock:
            if self._done:
                return
            self.fired = True
            conn = self._conn
            if conn is None or getattr(conn, "sessions_guard", None) is not self:
                return
            sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> CallGuard:
        self._outer = getattr(_local, "guard", None)
        _local.guard = self
        if not self._watched:
            self._watched = True
            _WATCHDOG.watch(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _local.guard = self._outer

    def finish(self) -> None:
        """The call is over: never cut anything (idempotent)."""
        with self._lock:
            if self._done:
                return
            self._done = True
        if self._watched:
            _WATCHDOG.forget()


def current_guard() -> Optional[CallGuard]:
    """The guard of the call running on this thread, if any."""
    return getattr(_local, "guard", None)


class _Watchdog:
    """One daemon thread that cuts every guard whose deadline passed."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: List[Tuple[float, int, CallGuard]] = []
        self._count = 0
        self._finished = 0
        self._thread: Optional[threading.Thread] = None

    def watch(self, guard: CallGuard) -> None:
        with self._cond:
            self._count += 1
            heapq.heappush(self._heap, (guard.deadline, self._count, guard))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sessions-client-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is guard:
                self._cond.notify()

    def forget(self) -> None:
        """A guard ended: drop the ended ones once they are most of the heap."""
        with self._cond:
            self._finished += 1
            if self._finished > 256 and self._finished * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._finished = 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else 3600.0
                    self._cond.wait(min(wait, 3600.0))
                _, _, guard = heapq.heappop(self._heap)
            guard.cut()

    def reset_after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.reset_after_fork)


class _GuardedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:
        guard = current_guard()
        if guard is not None:
            guard.attach(self)
        return super().request(*args, **kwargs)


class _GuardedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:
        guard = current_guard()
        if guard is not None:
            guard.attach(self)
        return super().request(*args, **kwargs)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def _guard_pools(manager: PoolManager) -> None:
    classes = manager.pool_classes_by_scheme
    if classes.get("http") is HTTPConnectionPool and classes.get("https") is HTTPSConnectionPool:
        manager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections note the :class:`CallGuard` using them."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _guard_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, PoolManager):
            _guard_pools(manager)
        return manager


__all__ = ["CallGuard", "DeadlineAdapter", "current_guard"]
