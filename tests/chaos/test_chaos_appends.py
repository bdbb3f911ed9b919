"""Chaos: 2,000 appends stored exactly once while ~30% of append requests fail.

Before each logical append a seeded schedule arms 0..MAX_FAULTS failures on the append
route (each further failure with probability FAIL_P, so ~30% of all requests fail): 503,
429 with a small ``Retry-After``, connections dropped before the record is stored, and
connections dropped after it was stored (only the answer is lost: the case ``X-Part-Id``
idempotency exists for). The Session retries with the same ``X-Part-Id``; the channel must
then hold each payload once, in append order. Retry pauses are injected (recorded, not
waited): one per failed request, each within the retry policy or the ``Retry-After`` asked.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from typing import Any, Dict, List

import pytest
from _chaoslib import Pauses, Rearmer, Tally, collect, n_of, payloads, run_bounded
from _waiting import eventually

from sessions_client._http import RetryPolicy
from sessions_client.session import Session
from sessions_client.testing import LocalServer

pytestmark = pytest.mark.chaos

APPENDS = 2_000
FAIL_P = 0.3
MAX_FAULTS = 5
SEEDS = {"v1": 3003, "v2": 4004}
KINDS = ("503", "429", "drop", "drop_stored")


def fast_policy(max_attempts: int = MAX_FAULTS + 3) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts,
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
        pauses = Pauses()
        session = Session(
            session_id,
            token=srv.secret_key,
            api_url=srv.url,
            append_retry=fast_policy(),
            sleep=pauses,
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
        streamed = Tally(APPENDS)
        run_bounded(
            lambda: collect(session.iter_in(follow=False), streamed),
            60,
            f"iter_in({wire})",
            on_hang=session.close,
        )
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
        retry_pauses_s=sum(pauses.delays),
        errors=len(errors),
        stored=len(stored),
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        streamed_back=len(streamed.seen),
        seed=seed,
        elapsed_s=elapsed,
    )
    assert errors == []
    assert tally.seen == list(range(APPENDS))
    assert streamed.seen == list(range(APPENDS))
    # a retried append answers the seq the record was stored under, also after a lost answer
    assert [r["seq"] for r in results] == [rec["seq"] for rec in stored]
    assert requests_made == APPENDS + failed  # every armed fault hit exactly one request
    assert 0.2 < failed / requests_made < 0.4
    assert len(pauses.delays) == failed  # one pause before each retry
    assert all(0 <= d <= 0.01 for d in pauses.delays)  # max_delay, or Retry-After 0 / 0.01
    part_ids = [r["part_id"] for r in results]
    assert len(set(part_ids)) == APPENDS
    assert [rec["part_id"] for rec in stored] == part_ids


@pytest.mark.parametrize("wire", ["v1", "v2"])
def test_concurrent_appends_exactly_once_under_failures(wire: str, chaos_figures: Any) -> None:
    """8 threads share one Session and append 150 records each while ~30% of requests fail.

    As each new append request arrives, the server arms (with probability FAIL_P) one
    fault of a random kind; the faults land on whichever thread's request takes them
    first (pooled keep-alive connections get dropped under other threads' feet). Retry
    pauses are injected.
    """
    threads, per_thread = 8, 150
    total = threads * per_thread
    seed = {"v1": 11011, "v2": 12012}[wire]
    rng = random.Random(seed)
    bodies = payloads(total, seed)
    session_id = f"chaos-concurrent-{wire}"
    injected: Counter[str] = Counter()
    errors: List[str] = []
    results: Dict[int, Dict[str, Any]] = {}

    with LocalServer(wire=wire, db=":memory:") as srv:
        srv.create_session(session_id)
        # Here nothing caps the faults one append meets: each request fails with p ~ FAIL_P,
        # so with 8 attempts an append ran out with p = 0.3**8 ~ 7e-5: in ~8 % of runs of
        # 1,200 appends (seen in CI). 25 attempts: 1,200 * 0.3**25 ~ 1e-10 per run.
        pauses = Pauses()
        session = Session(
            session_id,
            token=srv.secret_key,
            api_url=srv.url,
            append_retry=fast_policy(max_attempts=25),
            sleep=pauses,
        )

        def arm(r: random.Random) -> None:
            if r.random() < FAIL_P:
                kind = r.choice(KINDS)
                arm_fault(srv, kind, r)
                injected[kind] += 1

        def worker(index: int) -> None:
            for n in range(index, total, threads):
                try:
                    results[n] = session.append_in(json.loads(bodies[n]))
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(f"{type(exc).__name__}: {exc}")

        workers = [
            threading.Thread(target=worker, args=(i,), name=f"chaos-appender-{i}", daemon=True)
            for i in range(threads)
        ]
        started = time.monotonic()
        with Rearmer(srv, arm, rng, route="append"):
            for t in workers:
                t.start()
            for t in workers:
                t.join(120)
        elapsed = time.monotonic() - started
        requests_made = int(srv.request_counts.get("append", 0))
        stored = session.drain_in()
        streamed: List[int] = []
        run_bounded(
            lambda: streamed.extend(n_of(r) for r in session.iter_in(follow=False)),
            60,
            f"iter_in({wire})",
            on_hang=session.close,
        )
        session.close()

    counts = Counter(n_of(rec) for rec in stored)
    lost = sum(1 for n in range(total) if counts[n] == 0)
    duplicated = sum(c - 1 for c in counts.values() if c > 1)
    failed = requests_made - total  # every logical append ends with one successful request
    chaos_figures(
        f"concurrent-appends-{wire}",
        appends=total,
        threads=threads,
        requests=requests_made,
        injected_failures=failed,
        failure_rate=failed / max(requests_made, 1),
        armed_by_kind=dict(sorted(injected.items())),
        retry_pauses=len(pauses.delays),
        errors=len(errors),
        stored=len(stored),
        lost=lost,
        duplicated=duplicated,
        seed=seed,
        elapsed_s=elapsed,
    )
    assert not any(t.is_alive() for t in workers)
    assert errors == []
    assert sorted(counts) == list(range(total)) and duplicated == 0
    assert streamed == [n_of(rec) for rec in stored]
    assert {n: r["seq"] for n, r in results.items()} == {n_of(r): r["seq"] for r in stored}
    assert 0.2 < failed / requests_made < 0.4
    assert len(pauses.delays) == failed  # one pause before each retry


def test_ambiguous_append_failure_then_replay_stores_once(chaos_figures: Any) -> None:
    """Every answer comes too late: each append raises after its retries, yet the server
    stored it (once). Replaying it with the same part id stores nothing more and answers
    the original seq: the recipe docs/reliability.md gives for an append that raised."""
    appends = 15
    session_id = "chaos-ambiguous"
    errors: List[str] = []
    part_ids: List[str] = []
    with LocalServer(db=":memory:") as srv:
        srv.create_session(session_id)
        session = Session(
            session_id,
            token=srv.secret_key,
            api_url=srv.url,
            timeout=(2.0, 0.05),
            append_retry=RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002),
        )
        # Answers 20x later than the read timeout: a client starved of CPU for a while
        # after sending (a loaded CI box) still finds no answer when it starts to wait.
        srv.faults.set_latency(1.0, route="append")
        started = time.monotonic()
        for n in range(appends):
            part_id = f"chaos-ambiguous-{n}"
            part_ids.append(part_id)
            try:
                session.append_in({"n": n}, part_id=part_id)
            except Exception as exc:  # noqa: BLE001 - expected: every attempt times out
                errors.append(type(exc).__name__)
        # every late attempt reached the server, and the first of each stored its record
        eventually(
            lambda: (
                srv.request_counts.get("append", 0) >= 3 * appends
                and len(srv.records(session_id, "in")) == appends
            )
        )
        srv.faults.clear()
        late_requests = int(srv.request_counts.get("append", 0))
        replays = [session.append_in({"n": n}, part_id=part_ids[n]) for n in range(appends)]
        elapsed = time.monotonic() - started
        stored = session.drain_in()
        session.close()

    tally = Tally(appends)
    for rec in stored:
        tally.add(n_of(rec))
    chaos_figures(
        "ambiguous-appends",
        appends=appends,
        raised=len(errors),
        attempts=late_requests,
        stored=len(stored),
        lost=tally.lost,
        duplicated=tally.duplicated,
        elapsed_s=elapsed,
    )
    assert errors == ["NetworkError"] * appends
    assert late_requests == 3 * appends
    assert tally.seen == list(range(appends))
    assert [r["seq"] for r in replays] == [rec["seq"] for rec in stored]
    assert [rec["part_id"] for rec in stored] == part_ids


def test_appends_across_a_server_restart_stored_once(tmp_path: Any, chaos_figures: Any) -> None:
    """A writer appends 1,500 records while the server is closed mid-way (in-flight
    requests and answers are lost), stays down for 1 s of the writer's (injected) retry
    pauses and comes back on the same port and database file: the part ids stored before
    the restart must still dedupe the retries."""
    total, down_for = 1_500, 1.0
    db = str(tmp_path / "sessions.sqlite3")
    session_id = "chaos-append-restart"
    servers: List[Any] = [LocalServer(db=db)]
    port = servers[0].port
    errors: List[str] = []
    restart_errors: List[BaseException] = []
    policy = RetryPolicy(max_attempts=40, initial_delay=0.05, max_delay=0.2, total_timeout=20)
    pauses = Pauses()
    try:
        servers[0].create_session(session_id)
        session = Session(
            session_id,
            token=servers[0].secret_key,
            api_url=servers[0].url,
            append_retry=policy,
            sleep=pauses,
        )

        def restart() -> None:
            try:
                pauses.start_outage(down_for)
                servers[0].close()
                pauses.wait_outage()  # the writer asked for down_for s of pauses meanwhile
                servers.append(LocalServer(db=db, port=port))
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                restart_errors.append(exc)
            finally:
                pauses.end_outage()

        restarter = threading.Thread(target=restart, name="chaos-restart", daemon=True)
        started = time.monotonic()
        for n in range(total):
            if n == total // 3:
                restarter.start()
            try:
                session.append_in({"n": n})
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}")
        elapsed = time.monotonic() - started
        restarter.join(10)
        stored = session.drain_in()
        requests_after = int(servers[-1].request_counts.get("append", 0))
        session.close()
    finally:
        for server in servers:
            server.close()

    tally = Tally(total)
    for rec in stored:
        tally.add(n_of(rec))
    chaos_figures(
        "appends-restart",
        appends=total,
        restarts=len(servers) - 1,
        down_s=sum(pauses.outage_delays),
        retries_while_down=len(pauses.outage_delays),
        errors=len(errors),
        stored=len(stored),
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        elapsed_s=elapsed,
    )
    assert restart_errors == []
    assert errors == []
    assert len(servers) == 2 and requests_after > 0
    assert sum(pauses.outage_delays) >= down_for
    assert all(0 <= d <= policy.max_delay for d in pauses.delays)
    assert tally.seen == list(range(total))
