"""Chaos: stalled streams, a server restart mid-read, end to end (a failing writer racing a
cut follower), a short-lived token refreshed across cuts, a trim while reading; plus the
regression tests of chaos findings F1 and F2 (/work/coord/chaos_findings.md).

Reconnect and retry pauses are injected (``Pauses``: recorded, not waited), and so is the
server's clock where token lifetimes matter. What stays real is what is under test: a
stall is silence on a socket until the reader's stall timeout, and a long-poll window
ends on the server after its seconds.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, List

import pytest
from _chaoslib import (
    ManualClock,
    Pauses,
    Rearmer,
    Tally,
    collect,
    n_of,
    payloads,
    run_bounded,
)
from _waiting import eventually

from sessions_client._http import RetryPolicy
from sessions_client.session import Session
from sessions_client.testing import LocalServer

pytestmark = pytest.mark.chaos

WIRES = ["v1", "v2"]


@pytest.mark.parametrize("wire", WIRES)
def test_stalled_streams_reconnect_exactly_once(wire: str, chaos_figures: Any) -> None:
    """Read connections stall (open, silent) at a random offset; stall_timeout fires.

    1.5 s is the shortest stall timeout the reader accepts as given (it is never below its
    long-poll window, at least 1 s, plus 0.5 s). The stalls are waited for real (the
    reader's socket timeout is what is tested); the reconnect pauses are injected.
    """
    total, stalls, stall_timeout = 5_000, 4, 1.5
    seed = {"v1": 5005, "v2": 6006}[wire]
    rng = random.Random(seed)
    session_id = f"chaos-stall-{wire}"
    with LocalServer(wire=wire, db=":memory:", ping_interval=30.0) as srv:
        srv.create_session(session_id)
        srv.append_many(session_id, "out", payloads(total, seed))

        def arm(r: random.Random) -> None:
            srv.faults.stall_stream(5.0, after_bytes=r.randint(1, 150_000), count=1)

        pauses = Pauses()
        session = Session(session_id, token=srv.secret_key, api_url=srv.url, sleep=pauses)
        tally = Tally(total)
        started = time.monotonic()
        with Rearmer(srv, arm, rng, limit=stalls):
            # non-following: a stall must be resumed, never taken for the end (F1, F2)
            run_bounded(
                lambda: collect(session.iter_out(follow=False, stall_timeout=stall_timeout), tally),
                90,
                f"iter_out({wire}) under stalls",
                on_hang=session.close,
            )
        elapsed = time.monotonic() - started
        connections = int(srv.request_counts.get("read", 0))
        session.close()

    chaos_figures(
        f"stalls-{wire}",
        records=len(tally.seen),
        stalls_armed=stalls,
        reconnects=connections - 1,
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        stall_timeout_s=stall_timeout,
        elapsed_s=elapsed,
    )
    assert tally.seen == list(range(total))
    assert connections - 1 >= stalls - 1  # the last armed stall may fall past the end
    assert len(pauses.delays) == connections - 1  # one pause per stall dropped
    assert all(0.05 <= d <= 0.1 for d in pauses.delays)  # each after a good connect


@pytest.mark.parametrize("wire", WIRES)
def test_non_following_reader_with_short_stall_timeout_returns(wire: str) -> None:
    """F1 (chaos_findings.md, fixed in 683f101): a non-following reader whose stall_timeout
    is below its 1-s long-poll window took the idle wait for a stall and reconnected for
    ever on v1."""
    with LocalServer(wire=wire, db=":memory:") as srv:
        srv.create_session("chaos-f1")
        srv.append("chaos-f1", "out", '{"n": 0}')
        session = Session("chaos-f1", token=srv.secret_key, api_url=srv.url)
        tally = Tally(1)
        try:
            run_bounded(
                lambda: collect(session.iter_out(follow=False, stall_timeout=0.5), tally),
                6,
                f"iter_out(follow=False, stall_timeout=0.5) on {wire}",
                on_hang=session.close,
            )
        finally:
            session.close()
    assert tally.seen == [0]


@pytest.mark.parametrize(
    ("wire", "cut_first", "stall_timeout"),
    [("v1", False, 0.5), ("v2", True, 0.5), ("v2", False, 2.0), ("v1", True, 2.0)],
    ids=[
        "v1-stall-first-0.5s",
        "v2-cut-then-stall-0.5s",
        "v2-stall-first-2s",
        "v1-cut-then-stall-2s",
    ],
)
def test_non_following_reader_stalled_before_first_record_still_delivers_all(
    wire: str, cut_first: bool, stall_timeout: float
) -> None:
    """F2 (chaos_findings.md, fixed in 5eea199): a stalled connection is a failure to
    reconnect from, never "caught up" - also before its first record."""
    total = 100
    with LocalServer(wire=wire, db=":memory:") as srv:
        srv.create_session("chaos-f2")
        for body in payloads(total, 15015):
            srv.append("chaos-f2", "out", body)
        if cut_first:
            srv.faults.cut_stream(after_records=40)  # connection 1: 40 records, then cut
            srv.faults.stall_stream(0, count=1)  # connection 1: no stall
        srv.faults.stall_stream(2.5, after_bytes=0)  # next connection: silent for 2.5 s
        session = Session("chaos-f2", token=srv.secret_key, api_url=srv.url)
        tally = Tally(total)
        try:
            run_bounded(
                lambda: collect(session.iter_out(follow=False, stall_timeout=stall_timeout), tally),
                20,
                f"iter_out(follow=False, stall_timeout={stall_timeout}) on {wire}",
                on_hang=session.close,
            )
        finally:
            session.close()
    assert tally.seen == list(range(total))


@pytest.mark.parametrize("wire", WIRES)
def test_server_restart_mid_read(wire: str, tmp_path: Any, chaos_figures: Any) -> None:
    """The server dies mid-stream and comes back on the same port and database file.

    A follower has read 1,000 of 2,000 preloaded records when the server is closed (its
    stream breaks); the server is down (connections refused) for ``down_for`` s of the
    follower's reconnect pauses (injected: the pause that reaches them lasts until the
    server is back), then a new server opens the same database on the same port and 1,000
    more records are appended there. The follower must reconnect to the new server and
    get all 3,000, once, in order.
    """
    before, after, restart_at, down_for = 2_000, 1_000, 1_000, 1.0
    total = before + after
    seed = {"v1": 7007, "v2": 8008}[wire]
    bodies = payloads(total, seed)
    db = str(tmp_path / "sessions.sqlite3")
    session_id = f"chaos-restart-{wire}"
    key = "tr_dev_chaos"
    servers: List[Any] = [LocalServer(secret_key=key, db=db, wire=wire)]
    port = servers[0].port
    restarted_at: List[float] = []
    first_after_restart: List[float] = []
    restart_errors: List[BaseException] = []
    pauses = Pauses()
    try:
        servers[0].create_session(session_id)
        servers[0].append_many(session_id, "out", bodies[:before])
        session = Session(session_id, token=key, api_url=servers[0].url, sleep=pauses)
        tally = Tally(total)

        def restart() -> None:
            try:
                pauses.start_outage(down_for)
                servers[0].close()
                pauses.wait_outage()  # the follower asked for down_for s of pauses meanwhile
                again = LocalServer(secret_key=key, db=db, wire=wire, port=port)
                servers.append(again)
                restarted_at.append(time.monotonic())
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                restart_errors.append(exc)
                return
            finally:
                pauses.end_outage()
            for body in bodies[before:]:  # live records on the new server
                again.append(session_id, "out", body)

        restarter = threading.Thread(target=restart, name="chaos-restart", daemon=True)

        def read() -> None:
            records = session.iter_out(follow=True, timeout_seconds=30)
            try:
                for rec in records:
                    n = n_of(rec)
                    tally.add(n)
                    if n >= before and not first_after_restart:
                        first_after_restart.append(time.monotonic())
                    if len(tally.seen) == restart_at:
                        restarter.start()
                    if n >= total - 1:
                        return
            finally:
                records.close()

        started = time.monotonic()
        run_bounded(read, 60, f"iter_out({wire}) across a server restart", on_hang=session.close)
        elapsed = time.monotonic() - started
        restarter.join(10)
        session.close()
        new_reads = int(servers[-1].request_counts.get("read", 0)) if len(servers) > 1 else 0
    finally:
        for server in servers:
            server.close()

    recovery = first_after_restart[0] - restarted_at[0] if first_after_restart else -1.0
    chaos_figures(
        f"restart-{wire}",
        records=len(tally.seen),
        restarts=len(servers) - 1,
        down_s=sum(pauses.outage_delays),
        reconnects_while_down=len(pauses.outage_delays),
        reads_on_new_server=new_reads,
        recovery_s=recovery,
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        elapsed_s=elapsed,
    )
    assert restart_errors == []
    assert len(servers) == 2
    assert new_reads >= 1
    assert tally.seen == list(range(total))
    assert sum(pauses.outage_delays) >= down_for
    assert all(0 <= d <= 5.0 for d in pauses.delays)  # backoff is capped at 5 s
    assert 0 <= recovery < 10  # the follower is back on the new server at once


@pytest.mark.parametrize("wire", WIRES)
def test_end_to_end_writer_under_failures_follower_under_cuts(
    wire: str, chaos_figures: Any
) -> None:
    """End to end: a writer appends 2,000 records through a Session while ~30% of its
    requests fail (503, 429, dropped before / after storing), and a follower tails .out
    while its connections are cut: every record is stored once and read once, in order.

    Half-way the writer goes idle for longer than the follower's 1-s long-poll window, so
    normal window ends ([DONE], immediate reconnect) mix with the cuts: that idle time is
    real (the server's window is what it exercises); retry and reconnect pauses are
    injected.
    """
    total = 2_000
    seed = {"v1": 9009, "v2": 10010}[wire]
    rng = random.Random(seed)
    append_rng = random.Random(seed + 1)
    bodies = payloads(total, seed)
    session_id = f"chaos-follow-{wire}"
    append_faults: List[str] = []
    with LocalServer(wire=wire, db=":memory:") as srv:
        srv.create_session(session_id)
        # ~30% of append requests fail independently: 25 attempts make running out
        # negligible (2,000 * 0.3**25 ~ 2e-10 per run; 12 attempts were ~1e-3).
        fast = RetryPolicy(max_attempts=25, initial_delay=0.001, max_delay=0.01)
        writer_pauses, reader_pauses = Pauses(), Pauses()
        writer_session = Session(
            session_id,
            token=srv.secret_key,
            api_url=srv.url,
            append_retry=fast,
            sleep=writer_pauses,
        )
        reader_session = Session(
            session_id, token=srv.secret_key, api_url=srv.url, sleep=reader_pauses
        )
        tally = Tally(total)
        trims: List[Any] = []
        write_errors: List[BaseException] = []

        def write() -> None:
            try:
                for i, body in enumerate(bodies):
                    writer_session.append_out(body)
                    if i == total // 2:
                        time.sleep(1.6)  # idle: the follower's 1-s window ends normally
                    elif i % 50 == 0:
                        time.sleep(0.002)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                write_errors.append(exc)

        def arm_cut(r: random.Random) -> None:
            # Mostly short-lived connections, sometimes a longer one. Only short cuts would
            # livelock v2: once the follower is ~170 records behind, the catch-up batch event
            # is longer than any cut and no connection makes progress (see docs/reliability.md).
            # A long cut may fall past the server's largest batch event (1,000 records, at
            # most 1 MiB), so a follower far behind on a loaded machine still gets a whole
            # batch from one connection in ten; below that size it could need hundreds.
            limit = 25_000 if r.random() < 0.9 else 2_000_000
            srv.faults.cut_stream(after_bytes=r.randint(1, limit), count=1)

        def arm_append_fault(r: random.Random) -> None:
            if r.random() < 0.3:
                kind = r.choice(["503", "429", "drop", "drop_stored"])
                append_faults.append(kind)
                if kind == "503":
                    srv.faults.fail_next(1, status=503, route="append")
                elif kind == "429":
                    srv.faults.fail_next(1, status=429, route="append", retry_after=0)
                else:
                    srv.faults.drop_next(1, route="append", process=kind == "drop_stored")

        writer = threading.Thread(target=write, name="chaos-writer", daemon=True)
        started = time.monotonic()
        with Rearmer(srv, arm_cut, rng), Rearmer(srv, arm_append_fault, append_rng, route="append"):
            writer.start()
            run_bounded(
                lambda: collect(
                    reader_session.iter_out(
                        follow=True, timeout_seconds=1, on_trim=lambda *gap: trims.append(gap)
                    ),
                    tally,
                    stop_at=total - 1,
                ),
                90,
                f"follower({wire}) with a concurrent writer",
                on_hang=reader_session.close,
            )
            writer.join(30)
        elapsed = time.monotonic() - started
        connections = int(srv.request_counts.get("read", 0))
        append_requests = int(srv.request_counts.get("append", 0))
        stored = writer_session.drain_out()
        writer_session.close()
        reader_session.close()

    stored_tally = Tally(total)
    for rec in stored:
        stored_tally.add(n_of(rec))
    failed = append_requests - total  # every append ends with exactly one successful request
    chaos_figures(
        f"end-to-end-{wire}",
        records=len(tally.seen),
        append_requests=append_requests,
        append_failures=failed,
        append_failure_rate=failed / max(append_requests, 1),
        stored=len(stored),
        stored_duplicated=stored_tally.duplicated,
        reconnects=connections - 1,
        reconnect_pauses=len(reader_pauses.delays),
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        false_trims=len(trims),
        elapsed_s=elapsed,
    )
    assert trims == []
    assert write_errors == []
    assert not writer.is_alive()
    assert stored_tally.seen == list(range(total))
    assert tally.seen == list(range(total))
    assert 0.2 < failed / append_requests < 0.4
    assert connections - 1 >= 5
    assert len(writer_pauses.delays) == failed  # one pause before each retry
    assert all(0 <= d <= 5.0 for d in reader_pauses.delays)  # backoff is capped at 5 s


@pytest.mark.parametrize("wire", WIRES)
def test_short_lived_token_refreshed_by_turn_complete_survives_cuts(
    wire: str, chaos_figures: Any
) -> None:
    """A follower on a read-only public token that lives 3 s, across cuts.

    The task side writes a ``turn-complete`` carrying a fresh ``public-access-token`` every
    30 records (0.6 s: the server's clock is injected and moves 20 ms per record written).
    Every reconnect after the first token expired must use a refreshed one (else 401 →
    AuthenticationError at once). Tokens carry whole-second expiries, so a token may die
    up to 1 s early: the writer waits while the follower is more than ``LAG`` records
    (0.1 s) behind, which keeps the reader well inside that margin (a v2 reader far
    behind on short cuts would make no progress, see docs/reliability.md).
    """
    total, ttl, step, lag = 240, 3, 0.02, 5
    seed = {"v1": 16016, "v2": 17017}[wire]
    rng = random.Random(seed)
    bodies = payloads(total, seed)
    session_id = f"chaos-token-{wire}"
    clock = ManualClock(time.time())
    clock_start = clock()
    with LocalServer(wire=wire, db=":memory:", clock=clock) as srv:
        srv.create_session(session_id)
        first_token = srv.mint_token(session_id, read=True, write=False, ttl=ttl)
        pauses = Pauses()
        session = Session(session_id, token=first_token, api_url=srv.url, sleep=pauses)
        tally = Tally(total)
        controls: List[Any] = []
        reads_once_first_expired: List[int] = []
        write_errors: List[BaseException] = []

        def write() -> None:
            try:
                for n, body in enumerate(bodies):
                    srv.append(session_id, "out", body)
                    if n % 30 == 29:
                        fresh = srv.mint_token(session_id, read=True, write=False, ttl=ttl)
                        srv.write_control(
                            session_id, "turn-complete", headers=[["public-access-token", fresh]]
                        )
                    if not reads_once_first_expired and clock() - clock_start > ttl + 0.5:
                        reads_once_first_expired.append(int(srv.request_counts.get("read", 0)))
                    eventually(
                        lambda k=n - lag: len(tally.seen) > k, 30, "the follower fell behind"
                    )
                    clock.advance(step)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                write_errors.append(exc)

        def arm(r: random.Random) -> None:
            limit = 12_000 if r.random() < 0.9 else 100_000
            srv.faults.cut_stream(after_bytes=r.randint(1, limit), count=1)

        writer = threading.Thread(target=write, name="chaos-token-writer", daemon=True)
        started = time.monotonic()
        with Rearmer(srv, arm, rng):
            writer.start()
            run_bounded(
                lambda: collect(
                    session.iter_out(follow=True, timeout_seconds=1, on_control=controls.append),
                    tally,
                    stop_at=total - 1,
                ),
                60,
                f"follower on a refreshed public token ({wire})",
                on_hang=session.close,
            )
            writer.join(30)
        elapsed = time.monotonic() - started
        connections = int(srv.request_counts.get("read", 0))
        refreshed = session.token != first_token
        session.close()

    after_expiry = connections - (reads_once_first_expired or [connections])[0]
    chaos_figures(
        f"token-refresh-{wire}",
        records=len(tally.seen),
        token_ttl_s=ttl,
        refreshes_seen=len(controls),
        reconnects=connections - 1,
        reconnects_after_first_token_expired=after_expiry,
        server_clock_s=clock() - clock_start,
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        elapsed_s=elapsed,
    )
    assert write_errors == []
    assert tally.seen == list(range(total))
    assert refreshed
    assert after_expiry >= 1  # reconnected on a refreshed token once the first one was dead


@pytest.mark.parametrize("wire", WIRES)
def test_trim_while_reading_under_cuts_is_reported_once(wire: str, chaos_figures: Any) -> None:
    """The channel is trimmed (records < 1,500 deleted) while a reader is at record 300 and
    connections are cut: the reader reports the gap once (``on_trim``), delivers the rest
    once and in order, and never reports a reconnect as a trim."""
    total, trim_at, trim_before = 2_000, 300, 1_500
    seed = {"v1": 18018, "v2": 19019}[wire]
    rng = random.Random(seed)
    session_id = f"chaos-trim-{wire}"
    with LocalServer(wire=wire, db=":memory:") as srv:
        srv.create_session(session_id)
        srv.append_many(session_id, "out", payloads(total, seed))
        pauses = Pauses()
        session = Session(session_id, token=srv.secret_key, api_url=srv.url, sleep=pauses)
        seen: List[int] = []
        trims: List[Any] = []

        def read() -> None:
            records = session.iter_out(follow=False, on_trim=lambda *gap: trims.append(gap))
            try:
                for rec in records:
                    seen.append(n_of(rec))
                    if len(seen) == trim_at:
                        srv.trim(session_id, "out", before_seq=trim_before)
            finally:
                records.close()

        def arm(r: random.Random) -> None:
            limit = {"v1": 20_000, "v2": 300_000}[wire]
            srv.faults.cut_stream(after_bytes=r.randint(1, limit), count=1)

        started = time.monotonic()
        with Rearmer(srv, arm, rng):
            run_bounded(read, 60, f"iter_out({wire}) across a trim", on_hang=session.close)
        elapsed = time.monotonic() - started
        connections = int(srv.request_counts.get("read", 0))
        session.close()

    before = [n for n in seen if n < trim_before]
    chaos_figures(
        f"trim-{wire}",
        records=len(seen),
        read_before_trim_took_effect=len(before),
        trims_reported=len(trims),
        reconnects=connections - 1,
        duplicated=len(seen) - len(set(seen)),
        elapsed_s=elapsed,
    )
    assert before == list(range(len(before)))  # nothing lost before the gap
    assert [n for n in seen if n >= trim_before] == list(range(trim_before, total))
    assert seen == sorted(set(seen))  # once, in order
    assert trims == ([(len(before), trim_before)] if len(before) < trim_before else [])
    assert len(pauses.delays) == connections - 1  # one pause per cut, none for the trim
