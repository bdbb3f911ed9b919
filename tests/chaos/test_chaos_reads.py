"""Chaos: 50,000 records read exactly once, in order, while SSE connections are cut.

The server cuts every read connection abruptly at a seeded random byte offset (a new offset
is armed for each new connection), so records, events, UTF-8 sequences and chunk framing
get split at arbitrary places. The reader must resume from its cursor every time.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from _chaoslib import Rearmer, Tally, collect, payloads, run_bounded

from sessions_client.session import Session
from sessions_client.testing import LocalServer

pytestmark = pytest.mark.chaos

RECORDS = 50_000
MIN_CUTS = 50
SEEDS = {"v1": 1001, "v2": 2002}
# Cut offsets are uniform in [1, MAX_CUT_BYTES[wire]] bytes of event stream after the
# response headers. v1 is ~170 bytes per record (8.6 MB in all) and a cut loses at most
# one event, so 215 KB gives ~80 cuts. v2 sends the backlog as batch events of 1,000
# records (~237 KB each, 11.9 MB in all): a cut before the end of a batch loses that whole
# batch's progress, so the range is twice a batch: about half the connections deliver one
# batch, half deliver nothing, ~100 cuts.
MAX_CUT_BYTES = {"v1": 215_000, "v2": 475_000}


@pytest.mark.parametrize("wire", ["v1", "v2"])
def test_reads_exactly_once_under_random_cuts(wire: str, chaos_figures: Any) -> None:
    seed = SEEDS[wire]
    rng = random.Random(seed)
    session_id = f"chaos-reads-{wire}"
    with LocalServer(wire=wire, db=":memory:") as srv:
        srv.create_session(session_id)
        started = time.monotonic()
        for body in payloads(RECORDS, seed):
            srv.append(session_id, "out", body)
        preload = time.monotonic() - started

        def arm(r: random.Random) -> None:
            srv.faults.cut_stream(after_bytes=r.randint(1, MAX_CUT_BYTES[wire]), count=1)

        session = Session(session_id, token=srv.secret_key, api_url=srv.url)
        tally = Tally(RECORDS)
        started = time.monotonic()
        with Rearmer(srv, arm, rng) as rearmer:
            run_bounded(
                lambda: collect(session.iter_out(follow=False, timeout_seconds=2), tally),
                150,
                f"iter_out({wire}) under cuts",
            )
        elapsed = time.monotonic() - started
        connections = int(srv.request_counts.get("read", 0))
        session.close()

    cuts = connections - 1
    chaos_figures(
        f"reads-{wire}",
        records=len(tally.seen),
        cuts=cuts,
        reconnects=connections - 1,
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        seed=seed,
        armed=rearmer.armed,
        preload_s=preload,
        elapsed_s=elapsed,
    )
    assert tally.first_problems() == []
    assert tally.seen == list(range(RECORDS))
    assert cuts >= MIN_CUTS
