"""``eventually``: wait for a condition with a bounded loop, never sleep-then-assert.

Every test that waits for something another thread or process does (a connection to
close, an agent to answer, a count to reach a value) uses this one helper: it returns as
soon as the condition holds, so a fast machine does not wait, and fails with a clear
message after ``timeout`` seconds, so a slow one gets time without hanging the suite.
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar, Union

T = TypeVar("T")

#: First and longest pause between two checks (seconds): checks start fast and back
#: off, so short waits end at once and long ones do not burn a shared CPU.
FIRST_PAUSE = 0.001
MAX_PAUSE = 0.05


def eventually(
    condition: Callable[[], T],
    timeout: float = 5.0,
    message: Union[None, str, Callable[[], Any]] = None,
) -> T:
    """Call ``condition`` until it returns a truthy value and return that value; raise
    ``AssertionError`` after ``timeout`` s, with ``message`` (a text, or a callable
    whose result, computed then, describes the state) or else the condition's repr."""
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            if callable(message):
                raise AssertionError(message())
            raise AssertionError(message or f"not true within {timeout:g} s: {condition!r}")
        time.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE)
