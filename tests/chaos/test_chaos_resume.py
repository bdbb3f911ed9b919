"""Chaos: a consumer that stops and restarts from a FileCursor while connections are cut.

A cron-style consumer reads a random number of records, ``break``s out of its loop (which
stores the cursor) and is started again later with a fresh Session and the same
``FileCursor``; meanwhile the server cuts every connection at a seeded random byte offset.
Across all runs every record must be seen exactly once, in order. Reconnect pauses are
injected (recorded, not waited).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from typing import Any, Iterator, List

import pytest
from _chaoslib import Pauses, Rearmer, Tally, n_of, payloads, run_bounded

from sessions_client.cursor import FileCursor
from sessions_client.session import Session
from sessions_client.testing import LocalServer

pytestmark = pytest.mark.chaos

SHM = "/dev/shm"


@pytest.fixture
def cursor_dir(tmp_path: Any) -> Iterator[str]:
    """A directory for the cursor file, in memory (tmpfs) where the system has one.

    The consumer stores its cursor after every record (thousands of atomic replaces): on
    a journaling disk file system each costs milliseconds of waiting for the journal,
    which is not what this test is about (see the FileCursor tests for durability).
    """
    if os.path.isdir(SHM) and os.access(SHM, os.W_OK):
        path = tempfile.mkdtemp(prefix="chaos-cursor-", dir=SHM)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    else:
        yield str(tmp_path)


@pytest.mark.parametrize("wire", ["v1", "v2"])
def test_consumer_restarts_from_file_cursor_exactly_once(
    wire: str, cursor_dir: str, chaos_figures: Any
) -> None:
    total = 5_000
    seed = {"v1": 13013, "v2": 14014}[wire]
    rng = random.Random(seed)
    runs_rng = random.Random(seed + 1)
    session_id = f"chaos-resume-{wire}"
    cursor_path = os.path.join(cursor_dir, "cursor")
    with LocalServer(wire=wire, db=":memory:") as srv:
        srv.create_session(session_id)
        srv.append_many(session_id, "out", payloads(total, seed))

        def arm(r: random.Random) -> None:
            limit = {"v1": 40_000, "v2": 480_000}[wire]
            srv.faults.cut_stream(after_bytes=r.randint(1, limit), count=1)

        tally = Tally(total)
        runs = 0
        current: List[Session] = []
        pauses = Pauses()  # shared by every run's Session

        def close_current() -> None:
            for session in current:
                session.close()

        def consume_all() -> None:
            nonlocal runs
            while len(tally.seen) < total and runs < 200:
                runs += 1
                quota = runs_rng.randint(1, 800)
                with Session(
                    session_id, token=srv.secret_key, api_url=srv.url, sleep=pauses
                ) as session:
                    current[:] = [session]
                    # fsync=False: the cursor semantics are under test here, not durability
                    cursor = FileCursor(cursor_path, fsync=False)
                    records = session.iter_out(follow=False, timeout_seconds=1, cursor=cursor)
                    for taken, rec in enumerate(records, start=1):
                        tally.add(n_of(rec))
                        if taken >= quota:
                            break
                    records.close()  # what a `for` loop's exit does once the generator is freed

        started = time.monotonic()
        with Rearmer(srv, arm, rng):
            run_bounded(consume_all, 120, f"restarting consumer ({wire})", on_hang=close_current)
        elapsed = time.monotonic() - started
        connections = int(srv.request_counts.get("read", 0))
        final_cursor = FileCursor(cursor_path).get()

    chaos_figures(
        f"resume-{wire}",
        records=len(tally.seen),
        consumer_runs=runs,
        connections=connections,
        cuts_at_least=connections - runs,
        reconnect_pauses=len(pauses.delays),
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        elapsed_s=elapsed,
    )
    assert tally.seen == list(range(total))
    assert final_cursor == total - 1
    assert runs >= 5
    assert connections - runs >= 10
    assert all(0.05 <= d <= 0.1 for d in pauses.delays)  # each after a good connect
