"""Chaos: 2,000 appends stored exactly once while ~30% of append requests fail.

Before each logical append a seeded schedule arms 0..MAX_FAULTS failures on the append
route (each further failure with probability FAIL_P, so ~30% of all requests fail): 503,
429 with a small ``Retry-After``, connections dropped before the record is stored, and
connections dropped after it was stored (only the answer is lost: the case ``X-Part-Id``
idempotency exists for). The Session retries with the same ``X-Part-Id``; the channel must
then hold each payload once, in append order.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from typing import Any, Dict, List

import pytest
from _chaoslib import Tally, n_of, payloads

from sessions_client.http import RetryPolicy
from sessions_client.session import Session
from sessions_client.testing import LocalServer

pytestmark = pytest.mark.chaos

APPENDS = 2_000
FAIL_P = 0.3
MAX_FAULTS = 5
SEEDS = {"v1": 3003, "v2": 4004}
KINDS = ("503", "429", "drop", "drop_stored")


def fast_policy() -> RetryPolicy:
    return RetryPolicy(
        max_attempts=MAX_FAULTS + 3,
        initial_delay=0.001,
        max_delay=0.01,
        total_timeout=30.0,
    )


def arm_fault(srv: Any, kind: str, rng: random.Random) -> None:
    if kind == "503":
        srv.faults.fail_next(1, status=503, route="append")
    elif kind == "429":
        srv.faults.fail_next(1, status=429, route="append", retry_after=rng.choice([0, 0, 0.01]))
    elif kind == "drop":
        srv.faults.drop_next(1, route="append")
    elif kind == "drop_stored":  # stored, then the answer is lost: X-Part-Id must dedupe
        srv.faults.drop_next(1, route="append", process=True)
    else:  # pragma: no cover - schedule bug
        raise AssertionError(kind)


@pytest.mark.parametrize("wire", ["v1", "v2"])
def test_appends_exactly_once_under_failures(wire: str, chaos_figures: Any) -> None:
    seed = SEEDS[wire]
    rng = random.Random(seed)
    bodies = payloads(APPENDS, seed)
    session_id = f"chaos-appends-{wire}"
    injected: Counter[str] = Counter()
    results: List[Dict[str, Any]] = []
    errors: List[str] = []
    with LocalServer(wire=wire, db=":memory:") as srv:
        srv.create_session(session_id)
        session = Session(
            session_id, token=srv.secret_key, api_url=srv.url, append_retry=fast_policy()
        )
        started = time.monotonic()
        for body in bodies:
            faults = 0
            while faults < MAX_FAULTS and rng.random() < FAIL_P:
                kind = rng.choice(KINDS)
                arm_fault(srv, kind, rng)
                injected[kind] += 1
                faults += 1
            try:
                results.append(session.append_in(json.loads(body)))
            except Exception as exc:  # noqa: BLE001 - counted and reported, then asserted
                errors.append(f"{type(exc).__name__}: {exc}")
                srv.faults.clear()
        elapsed = time.monotonic() - started
        requests_made = int(srv.request_counts.get("append", 0))
        stored = session.drain_in()
        session.close()

    tally = Tally(APPENDS)
    for rec in stored:
        tally.add(n_of(rec))
    failed = sum(injected.values())
    chaos_figures(
        f"appends-{wire}",
        appends=APPENDS,
        requests=requests_made,
        injected_failures=failed,
        failure_rate=failed / max(requests_made, 1),
        by_kind=dict(sorted(injected.items())),
        retries=requests_made - APPENDS,
        errors=len(errors),
        stored=len(stored),
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        seed=seed,
        elapsed_s=elapsed,
    )
    assert errors == []
    assert tally.seen == list(range(APPENDS))
    assert requests_made == APPENDS + failed  # every armed fault hit exactly one request
    assert 0.2 < failed / requests_made < 0.4
    part_ids = [r["part_id"] for r in results]
    assert len(set(part_ids)) == APPENDS
    assert [rec["part_id"] for rec in stored] == part_ids
