"""Where Session.iter_out spends its time on the read benchmark (source of PROFILE.md).

    python benchmarks/profile_read.py [--records 200000] [--shape v2|v1] [--cprofile]

Starts benchmarks/streamserver.py, then reads the same stream through growing
slices of the client's pipeline, each the minimum of three runs (the minimum,
not the median: this attributes cost, it does not compare peers), in wall-clock
and in CPU time of this process (the server runs in another one; CPU time is
what other load on the machine disturbs least):

    bytes    requests stream + the reader's chunk loop (_reader._iter_chunks)
    events   + _sse.iter_sse_events (framing + field parsing)
    decoded  + _wire.decode_event (JSON + record dicts)
    iter_out the whole Session.iter_out (cursor, dedup window, control routing)

The difference between two lines is what the added layer costs. ``--cprofile``
also prints the top functions of one iter_out run by internal time.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import os
import pstats
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import requests  # noqa: E402
from harness import start_stream_server  # noqa: E402

from sessions_client import Session  # noqa: E402
from sessions_client._reader import Deadline, _iter_chunks  # noqa: E402
from sessions_client._sse import iter_sse_events  # noqa: E402
from sessions_client._wire import decode_event, wire_shape  # noqa: E402

TOKEN = "tr_dev_bench"


def _chunks(url: str) -> Iterator[bytes]:
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {TOKEN}"}
    with requests.get(url, headers=headers, stream=True, timeout=(5, 60)) as response:
        yield wire_shape(response.headers).encode()
        yield from _iter_chunks(response, math.inf, Deadline(None, url, time.monotonic), url)


def layer_bytes(url: str) -> int:
    return sum(len(c) for c in _chunks(url))


def layer_events(url: str) -> int:
    chunks = _chunks(url)
    next(chunks)
    return sum(1 for _ in iter_sse_events(chunks))


def layer_decoded(url: str) -> int:
    chunks = _chunks(url)
    shape = next(chunks).decode()
    return sum(len(decode_event(event, shape).records) for event in iter_sse_events(chunks))


def layer_iter_out(base: str, session: str) -> int:
    return sum(1 for _ in Session(session, token=TOKEN, api_url=base).iter_out(follow=False))


def best_of(run: Callable[[], int], times: int = 3) -> Tuple[float, float]:
    """The best wall-clock and the best CPU time (this process) of ``times`` runs."""
    wall = cpu = float("inf")
    for _ in range(times):
        start, cpu_start = time.perf_counter(), time.process_time()
        run()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - cpu_start)
    return wall, cpu


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="layered timing of Session.iter_out")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--shape", choices=["v1", "v2"], default="v2")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args(argv)
    session = f"{args.shape}-{args.records}"
    server, base, _sizes = start_stream_server([session])
    url = f"{base}/realtime/v1/sessions/{session}/out"
    layers: Dict[str, Callable[[], int]] = {
        "bytes": lambda: layer_bytes(url),
        "events": lambda: layer_events(url),
        "decoded": lambda: layer_decoded(url),
        "iter_out": lambda: layer_iter_out(base, session),
    }
    with server:
        previous = 0.0
        print(f"{session}: layer | wall s | CPU s | CPU added by the layer | records/s (CPU)")
        for name, run in layers.items():
            wall, cpu = best_of(run)
            print(
                f"  {name:<9} {wall:7.3f}  {cpu:7.3f}  {cpu - previous:+7.3f}  "
                f"{args.records / cpu:>10,.0f}"
            )
            previous = cpu
        if args.cprofile:
            profile = cProfile.Profile()
            profile.enable()
            layer_iter_out(base, session)
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
