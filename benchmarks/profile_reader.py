"""CPU time of the read pipeline on recorded chunks, no server in the timed part.

    python benchmarks/profile_reader.py [--records 200000] [--shape v1|v2|both]
                                        [--repeat 5] [--cprofile]

Records the network chunks of one read of benchmarks/streamserver.py (exactly
what ``_reader._iter_chunks`` yields), then replays them in this process
through growing slices of the pipeline and prints the minimum CPU time of
``--repeat`` runs of each:

    json      the JSON floor: json.loads of every data line, v2 batch record body and
              string payload (PROTOCOL 3.3), on lines split with one C call; no SSE
              rules, no validation, no record dicts
    events    _sse.iter_sse_events (framing + fields)
    decoded   + _wire.decode_event (JSON and record dicts)
    iter_out  the whole _reader.read_channel (as Session.iter_out calls it),
              over a fake transport that hands out the recorded chunks

No socket and no second process is involved in the timing, so the figures are
far steadier than the end-to-end ones on a shared machine; they leave out only
the HTTP read itself (~0.03 s per 200,000 records, see PROFILE.md).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import sys
import time
from typing import Any, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import requests  # noqa: E402
from harness import start_stream_server  # noqa: E402

from sessions_client._reader import Deadline, ReaderOptions, _iter_chunks, read_channel  # noqa: E402
from sessions_client._sse import iter_sse_events  # noqa: E402
from sessions_client._wire import decode_event, wire_shape  # noqa: E402

TOKEN = "tr_dev_bench"


def record_chunks(base: str, session: str) -> Dict[str, Any]:
    url = f"{base}/realtime/v1/sessions/{session}/out"
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {TOKEN}"}
    never = Deadline(None, url, time.monotonic)
    with requests.get(url, headers=headers, stream=True, timeout=(5, 60)) as response:
        chunks = list(_iter_chunks(response, math.inf, never, url))
        return {"headers": dict(response.headers), "chunks": chunks}


class _Raw:
    def __init__(self, chunks: List[bytes]) -> None:
        self._chunks = iter(chunks)

    def read1(self, size: int) -> bytes:
        return next(self._chunks, b"")


class _Response:
    status_code = 200

    def __init__(self, recorded: Dict[str, Any]) -> None:
        self.headers = requests.structures.CaseInsensitiveDict(recorded["headers"])
        self.raw = _Raw(recorded["chunks"])

    def close(self) -> None:
        pass


class _Transport:
    def __init__(self, recorded: Dict[str, Any]) -> None:
        self._recorded = recorded

    def open_stream(self, path: str, **kwargs: Any) -> _Response:
        return _Response(self._recorded)


def run_json(recorded: Dict[str, Any]) -> int:
    count = 0
    for line in b"".join(recorded["chunks"]).split(b"\n"):
        if not line.startswith(b"data: {"):
            continue
        event = json.loads(line[6:])
        for record in event.get("records", [event]):
            envelope = json.loads(record["body"]) if "body" in record else record
            if type(envelope["data"]) is str:
                try:  # noqa: SIM105  (contextlib.suppress would add a call per record)
                    json.loads(envelope["data"])
                except ValueError:
                    pass
            count += 1
    return count


def run_events(recorded: Dict[str, Any]) -> int:
    return sum(1 for _ in iter_sse_events(iter(recorded["chunks"])))


def run_decoded(recorded: Dict[str, Any]) -> int:
    shape = wire_shape(recorded["headers"])
    events = iter_sse_events(iter(recorded["chunks"]))
    return sum(len(decode_event(event, shape).records) for event in events)


def run_iter_out(recorded: Dict[str, Any]) -> int:
    options = ReaderOptions("/realtime/v1/sessions/x/out", follow=False, max_retries=0)
    reader = read_channel(_Transport(recorded), options, None)  # type: ignore[arg-type]
    return sum(1 for _ in reader)


def best_cpu(run: Callable[[], int], times: int) -> float:
    best = float("inf")
    for _ in range(times):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="CPU time of the read pipeline, replayed")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--shape", choices=["v1", "v2", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args(argv)
    shapes = ["v2", "v1"] if args.shape == "both" else [args.shape]
    sessions = [f"{shape}-{args.records}" for shape in shapes]
    server, base, _sizes = start_stream_server(sessions)
    with server:
        recorded = {session: record_chunks(base, session) for session in sessions}
    for session in sessions:
        data = recorded[session]
        assert run_iter_out(data) == args.records
        layers: Dict[str, Callable[[], int]] = {
            "json": lambda data=data: run_json(data),
            "events": lambda data=data: run_events(data),
            "decoded": lambda data=data: run_decoded(data),
            "iter_out": lambda data=data: run_iter_out(data),
        }
        print(f"{session} ({len(data['chunks'])} chunks): layer | CPU s | added | records/s")
        previous = 0.0
        for name, run in layers.items():
            cpu = best_cpu(run, args.repeat)
            added = cpu - previous if name != "json" else cpu
            print(f"  {name:<9} {cpu:7.3f}  {added:+7.3f}  {args.records / cpu:>10,.0f}")
            previous = cpu if name != "json" else 0.0
        if args.cprofile:
            profile = cProfile.Profile()
            profile.enable()
            run_iter_out(data)
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
