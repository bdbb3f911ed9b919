"""The connection pool of a ``Transport``: readers never starve other calls, and no
call waits for a connection without a bound.

A reader holds its connection for as long as it is open (minutes, hours), an
ordinary call (append, drain page, management) for one request. With one fixed,
blocking pool of N connections, N open readers made every other call wait for
ever. :class:`PoolAdapter` separates the two:

- a reader's request (``Accept: text/event-stream``) never waits: it takes an idle
  connection or opens one of its own, for as long as the reader is open;
- ordinary requests share N slots; a request that finds all N busy waits at most
  its connect timeout (the pool wait is part of the call's timeout), then raises
  :class:`~sessions_client.errors.PoolTimeoutError` naming the cause.

Up to N idle connections are kept for reuse (``urllib3`` logs "Connection pool is
full, discarding connection" when more come back at once). It is a ``requests``
transport adapter, the documented extension point; the rest is ``HTTPAdapter``'s.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import requests

from ._deadline import DeadlineAdapter
from .errors import PoolTimeoutError

__all__ = ["PoolAdapter"]

#: The pool wait when a request has no connect timeout.
DEFAULT_POOL_WAIT = 30.0


def _connect_timeout(timeout: Any) -> float:
    """The connect part of a ``requests`` timeout (a number or ``(connect, read)``)."""
    if isinstance(timeout, tuple):
        timeout = timeout[0]
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    return DEFAULT_POOL_WAIT


class PoolAdapter(DeadlineAdapter):
    """A :class:`DeadlineAdapter` whose ordinary requests share ``pool_maxsize`` slots, waited
    for at most the request's connect timeout, and whose readers' requests never wait
    (see the module docstring)."""

    def __init__(self, pool_maxsize: int) -> None:
        super().__init__(
            pool_connections=4, pool_maxsize=pool_maxsize, pool_block=False, max_retries=0
        )
        self.slots = pool_maxsize
        self._calls = threading.BoundedSemaphore(pool_maxsize)
        self._held = threading.local()

    @contextlib.contextmanager
    def call_slot(self, wait: float) -> Iterator[None]:
        """Hold one of the ``pool_maxsize`` slots for an ordinary call, waiting at most
        ``wait`` seconds (else :class:`PoolTimeoutError`). A caller that reads the
        answer after ``send`` returns (``stream=True``) holds the slot around both, so
        the connection is back in the pool before the slot is free; ``send`` inside
        it takes no second slot."""
        if getattr(self._held, "slot", False):
            yield
            return
        if not self._calls.acquire(timeout=wait):
            raise PoolTimeoutError(
                f"no free connection within {wait:g} s: all {self.slots} connections of the "
                "pool are busy with other calls (open readers use their own); make fewer "
                "concurrent calls or raise pool_maxsize"
            )
        self._held.slot = True
        try:
            yield
        finally:
            self._held.slot = False
            self._calls.release()

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send ``request``; an ordinary one first waits (bounded) for a free slot."""
        if request.headers.get("Accept") == "text/event-stream":  # a reader
            return super().send(request, stream=stream, timeout=timeout, **kwargs)
        with self.call_slot(_connect_timeout(timeout)):
            response = super().send(request, stream=stream, timeout=timeout, **kwargs)
            if not stream:  # read the body within the slot: the connection goes back now
                response.content  # noqa: B018
            return response
