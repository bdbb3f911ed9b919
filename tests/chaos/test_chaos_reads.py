"""Chaos: 50,000 records read exactly once, in order, while SSE connections are cut.

The server cuts every read connection abruptly at a seeded random byte offset (a new offset
is armed as each new connection arrives), so records, events, UTF-8 sequences and chunk
framing get split at arbitrary places. The reader must resume from its cursor every time.
Its reconnect pauses are injected (recorded, not waited): each must be a first backoff step
(0.05-0.1 s), since every cut connection had connected.
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import Any, List

import pytest
from _chaoslib import Pauses, Rearmer, Tally, collect, encode, payload_values, run_bounded
from _waiting import eventually

from sessions_client.session import Session
from sessions_client.testing import LocalServer

pytestmark = pytest.mark.chaos

RECORDS = 50_000
MIN_CUTS = 50
SEEDS = {"v1": 1001, "v2": 2002}
# Cut offsets are uniform in [1, MAX_CUT_BYTES[wire]] bytes of event stream after the
# response headers. v1 is ~196 bytes per record (9.8 MB in all) and a cut loses at most
# one event: ~90 cuts. v2 sends the backlog as batch events of 1,000 records (~270 KB
# each, 13.7 MB in all): a cut before the end of a batch loses that whole batch's progress,
# so the range is ~1.8 batches: ~45% of the connections deliver a batch, ~120 cuts.
MAX_CUT_BYTES = {"v1": 215_000, "v2": 475_000}


@pytest.mark.parametrize("wire", ["v1", "v2"])
def test_reads_exactly_once_under_random_cuts(wire: str, chaos_figures: Any) -> None:
    seed = SEEDS[wire]
    rng = random.Random(seed)
    session_id = f"chaos-reads-{wire}"
    with LocalServer(wire=wire, db=":memory:") as srv:
        srv.create_session(session_id)
        started = time.monotonic()
        expected = payload_values(RECORDS, seed)
        srv.append_many(session_id, "out", [encode(value) for value in expected])
        preload = time.monotonic() - started

        def arm(r: random.Random) -> None:
            srv.faults.cut_stream(after_bytes=r.randint(1, MAX_CUT_BYTES[wire]), count=1)

        pauses = Pauses()
        session = Session(session_id, token=srv.secret_key, api_url=srv.url, sleep=pauses)
        tally = Tally(RECORDS)
        received: List[Any] = []
        trims: List[Any] = []  # a reconnect must never look like a trim
        started = time.monotonic()
        with Rearmer(srv, arm, rng) as rearmer:
            run_bounded(
                lambda: collect(
                    session.iter_out(
                        follow=False, timeout_seconds=2, on_trim=lambda *gap: trims.append(gap)
                    ),
                    tally,
                    keep=received,
                ),
                150,
                f"iter_out({wire}) under cuts",
                on_hang=session.close,
            )
        elapsed = time.monotonic() - started
        connections = int(srv.request_counts.get("read", 0))
        session.close()
        with contextlib.suppress(AssertionError):
            eventually(lambda: srv.open_connections == 0)
        leaked = srv.open_connections  # every cut connection was closed by the client too

    cuts = connections - 1  # a non-following reader reconnects only after a failure
    corrupted = sum(1 for got, want in zip(received, expected) if got != want)
    chaos_figures(
        f"reads-{wire}",
        records=len(tally.seen),
        cuts=cuts,
        reconnects=connections - 1,
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        corrupted=corrupted,
        false_trims=len(trims),
        open_connections_after_close=leaked,
        seed=seed,
        armed=rearmer.armed,
        backoff_s=sum(pauses.delays),
        preload_s=preload,
        elapsed_s=elapsed,
    )
    assert tally.first_problems() == []
    assert tally.seen == list(range(RECORDS))
    assert corrupted == 0
    assert trims == []
    assert leaked == 0
    assert cuts >= MIN_CUTS
    # one pause per cut, each the first step of the backoff (reset by every connect)
    assert len(pauses.delays) == cuts
    assert all(0.05 <= d <= 0.1 for d in pauses.delays), max(pauses.delays)
