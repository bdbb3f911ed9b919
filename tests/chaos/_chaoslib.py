"""Helpers shared by the chaos tests: payloads, tallies, fault schedulers, deadlines."""

from __future__ import annotations

import json
import random
import string
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar

T = TypeVar("T")

# Mostly ASCII, plus characters that stress the decoders when a cut or a read boundary
# splits them: multi-byte UTF-8 (2, 3 and 4 bytes), JSON escapes, U+2028 (a line break for
# str.splitlines but not for SSE).
_PAD_ALPHABET = string.ascii_letters + string.digits + " " + '\u00e9\u6f22\U0001f642"\\/\u2028'


def payloads(count: int, seed: int, *, low: int = 60, high: int = 160) -> List[str]:
    """``count`` JSON records, each with a unique sequential ``n`` and a seeded random pad.

    A record is ``{"n":<n>,"pad":"<low..high chars>"}`` (UTF-8, not ASCII-escaped): about
    80-200 bytes.
    """
    rng = random.Random(seed)
    pool = "".join(rng.choice(_PAD_ALPHABET) for _ in range(4096 + high))
    out: List[str] = []
    for n in range(count):
        start = rng.randrange(4096)
        pad = pool[start : start + rng.randint(low, high)]
        out.append(json.dumps({"n": n, "pad": pad}, separators=(",", ":"), ensure_ascii=False))
    return out


class Tally:
    """Exactly-once bookkeeping for a stream of ``n`` values expected to be ``range(total)``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.seen: List[int] = []

    def add(self, n: int) -> None:
        self.seen.append(n)

    @property
    def distinct(self) -> int:
        return len(set(self.seen))

    @property
    def lost(self) -> int:
        return self.total - len(set(self.seen) & set(range(self.total)))

    @property
    def duplicated(self) -> int:
        return len(self.seen) - self.distinct

    @property
    def out_of_order(self) -> int:
        """Number of adjacent pairs that go backwards (0 for a strictly increasing stream)."""
        return sum(1 for a, b in zip(self.seen, self.seen[1:]) if b <= a)

    def first_problems(self, limit: int = 10) -> List[Tuple[int, int]]:
        """(index, n) of the first positions where ``seen`` departs from ``range(total)``."""
        return [(i, n) for i, n in enumerate(self.seen) if n != i][:limit]


def n_of(record: Dict[str, Any]) -> int:
    data = record["data"]
    if isinstance(data, str):
        data = json.loads(data)
    return int(data["n"])


class Rearmer:
    """Keeps one fault armed for every new request on ``route`` (default: SSE reads).

    ``arm(rng)`` arms the fault for the next request. A background thread polls
    ``srv.request_counts[route]``; each time a new request arrives (it consumes the armed
    fault) the next fault is armed, well before the client's reconnect backoff ends.
    ``arm`` may arm nothing (a probabilistic schedule).
    """

    def __init__(
        self,
        srv: Any,
        arm: Callable[[random.Random], None],
        rng: random.Random,
        *,
        limit: Optional[int] = None,
        poll: float = 0.001,
        route: str = "read",
    ) -> None:
        self.srv = srv
        self.route = route
        self._arm = arm
        self.rng = rng
        self.limit = limit
        self.poll = poll
        self.armed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-rearmer", daemon=True)

    def reads(self) -> int:
        return int(self.srv.request_counts.get(self.route, 0))

    def start(self) -> Rearmer:
        self._seen = self.reads()
        self._arm_one()
        self._thread.start()
        return self

    def _arm_one(self) -> None:
        if self.limit is not None and self.armed >= self.limit:
            return
        self._arm(self.rng)
        self.armed += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.reads()
            for _ in range(now - self._seen):  # one per new request, even if several came
                self._arm_one()
            self._seen = now
            time.sleep(self.poll)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.srv.faults.clear()

    def __enter__(self) -> Rearmer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_bounded(
    fn: Callable[[], T],
    timeout: float,
    what: str,
    on_hang: Optional[Callable[[], None]] = None,
) -> T:
    """Run ``fn`` in a daemon thread; fail the test (instead of hanging) after ``timeout`` s.

    ``on_hang`` (e.g. ``session.close``) runs before failing, so that the stuck reader
    ends at its next reconnect instead of polling whatever later test gets its port.
    """
    box: Dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="chaos-bounded", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        if on_hang is not None:
            on_hang()
        raise AssertionError(f"{what} did not finish within {timeout:g} s (hang)")
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


def collect(
    records: Iterable[Dict[str, Any]],
    tally: Tally,
    stop_at: Optional[int] = None,
    keep: Optional[List[Any]] = None,
) -> None:
    """Feed ``n`` of every record into ``tally``; stop after ``n == stop_at`` when given.
    With ``keep``, every record's ``data`` is appended to it (for content checks).

    The generator is closed on the way out (``break`` semantics), whatever happens.
    """
    try:
        for rec in records:
            n = n_of(rec)
            tally.add(n)
            if keep is not None:
                keep.append(rec["data"])
            if stop_at is not None and n >= stop_at:
                return
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
