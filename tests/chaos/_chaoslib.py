"""Helpers shared by the chaos tests: payloads, tallies, fault schedulers, deadlines."""

from __future__ import annotations

import json
import random
import string
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar

T = TypeVar("T")

# Mostly ASCII, plus characters that stress the decoders when a cut or a read boundary
# splits them: multi-byte UTF-8 (2, 3 and 4 bytes), JSON escapes, U+2028 (a line break for
# str.splitlines but not for SSE).
_PAD_ALPHABET = string.ascii_letters + string.digits + " " + '\u00e9\u6f22\U0001f642"\\/\u2028'


def payload_values(
    count: int, seed: int, *, low: int = 60, high: int = 160
) -> List[Dict[str, Any]]:
    """``count`` records ``{"n": <n>, "pad": "<low..high chars>"}``: a unique sequential
    ``n`` and a seeded random pad (the values :func:`payloads` encodes)."""
    rng = random.Random(seed)
    pool = "".join(rng.choice(_PAD_ALPHABET) for _ in range(4096 + high))
    out: List[Dict[str, Any]] = []
    for n in range(count):
        start = rng.randrange(4096)
        out.append({"n": n, "pad": pool[start : start + rng.randint(low, high)]})
    return out


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(value: Dict[str, Any]) -> str:
    """A payload value as compact JSON text, UTF-8 as is (not ASCII-escaped): what
    ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` gives."""
    return '{"n":' + str(value["n"]) + ',"pad":' + _ENCODER.encode(value["pad"]) + "}"


def payloads(count: int, seed: int, *, low: int = 60, high: int = 160) -> List[str]:
    """``count`` JSON records, each with a unique sequential ``n`` and a seeded random pad.

    A record is ``{"n":<n>,"pad":"<low..high chars>"}`` (UTF-8, not ASCII-escaped): about
    80-200 bytes.
    """
    return [encode(value) for value in payload_values(count, seed, low=low, high=high)]


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

    ``arm(rng)`` arms the fault of one request: the server calls it as each new request
    on ``route`` arrives, before the request takes its faults
    (``srv.faults.on_request``), so request k meets the k-th armed fault whatever the
    timing: no polling, and the client's reconnect needs no backoff to leave time for
    it. ``arm`` may arm nothing (a probabilistic schedule); ``limit`` caps the calls.
    """

    def __init__(
        self,
        srv: Any,
        arm: Callable[[random.Random], None],
        rng: random.Random,
        *,
        limit: Optional[int] = None,
        route: str = "read",
    ) -> None:
        self.srv = srv
        self.route = route
        self._arm = arm
        self.rng = rng
        self.limit = limit
        self.armed = 0

    def start(self) -> Rearmer:
        self.srv.faults.on_request(self.route, self._arm_one)
        return self

    def _arm_one(self) -> None:
        if self.limit is not None and self.armed >= self.limit:
            return
        self._arm(self.rng)
        self.armed += 1

    def stop(self) -> None:
        self.srv.faults.on_request(self.route, None)
        self.srv.faults.clear()

    def __enter__(self) -> Rearmer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Pauses:
    """An injected ``sleep`` (``Session(..., sleep=pauses)``): records every pause the
    client asks for and returns at once. Time is injected, not waited.

    An outage (a server restart) lasts a given amount of *requested* time instead of
    wall time: after :meth:`start_outage` ``(seconds)``, the pause that brings the
    pauses asked for since then to ``seconds`` blocks until :meth:`end_outage` (the
    server is back), as a real sleep of that length would have overlapped the outage.
    """

    def __init__(self) -> None:
        self.delays: List[float] = []
        self._cond = threading.Condition()
        self._outage_from: Optional[int] = None
        self._outage_s = 0.0
        self.outage_delays: List[float] = []

    def __call__(self, seconds: float) -> None:
        with self._cond:
            self.delays.append(seconds)
            self._cond.notify_all()
            if self._outage_from is None or not self._outage_over():
                return
            if not self._cond.wait_for(lambda: self._outage_from is None, 30):
                raise AssertionError("the outage did not end within 30 s")

    def _outage_over(self) -> bool:
        assert self._outage_from is not None
        return sum(self.delays[self._outage_from :]) >= self._outage_s

    def start_outage(self, seconds: float) -> None:
        """From now on, the pauses that add up to ``seconds`` pass before the server is
        back (see :meth:`wait_outage`, :meth:`end_outage`)."""
        with self._cond:
            self._outage_from, self._outage_s = len(self.delays), seconds

    def wait_outage(self, timeout: float = 30.0) -> None:
        """Block until the client has asked for the outage's seconds of pauses."""
        with self._cond:
            if not self._cond.wait_for(self._outage_over, timeout):
                raise AssertionError(f"the client did not retry within {timeout:g} s")

    def end_outage(self) -> None:
        """The server is back: release the client's blocked pause."""
        with self._cond:
            assert self._outage_from is not None
            self.outage_delays = self.delays[self._outage_from :]
            self._outage_from = None
            self._cond.notify_all()


class ManualClock:
    """An injected Unix clock (``LocalServer(clock=...)``) that moves only when told."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
