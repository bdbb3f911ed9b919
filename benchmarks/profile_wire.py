"""Throughput of sessions_client.wire against a bare sseclient-py + json.loads loop.

Builds a synthetic, in-memory v2 stream (text-delta records of ~150 bytes, batches of
1,000, one ~170 KB data line per batch), feeds it in 64 KiB chunks to

* ``wire``: ``iter_decoded`` (what ``Session.iter_out`` runs),
* ``bare``: ``sseclient.SSEClient(chunks).events()`` + ``json.loads`` of the batch, of
  each body and of each string payload, building the same record dicts, and
* ``json``: the raw cost of those ``json.loads`` calls alone (no SSE, no dicts built),

and prints events/s and records/s for each: CPU seconds (``time.process_time``), best of
``--repeat`` interleaved runs, so that other load on the machine distorts the comparison
as little as possible. ``--profile`` prints a cProfile of the wire decoder instead. No
network, no server. Run from the repository root:

    python -m benchmarks.profile_wire [--records 200000] [--batch 1000] [--chunk 65536]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import sseclient

from sessions_client.wire import iter_decoded, iter_sse_events


def build_v2_stream(records: int, batch: int) -> bytes:
    """A v2 stream of ``records`` text-delta records in batches of ``batch``, then [DONE]."""
    parts: List[bytes] = []
    seq = 0
    while seq < records:
        items = []
        for seq in range(seq, min(seq + batch, records)):  # noqa: B020
            payload = json.dumps({"type": "text-delta", "delta": f"token {seq % 997:>4} "})
            envelope = json.dumps({"data": payload, "id": f"part-{seq:012d}-abcdef"})
            items.append({"seq_num": seq, "timestamp": 1712150400000 + seq, "body": envelope})
        seq += 1
        doc = {"records": items, "tail": {"seq_num": seq, "timestamp": 1712150400000 + seq}}
        data = json.dumps(doc, separators=(",", ":"))
        parts.append(f"event: batch\nid: {seq},{len(items)},{len(data)}\ndata: {data}\n\n".encode())
        if len(parts) % 10 == 0:
            parts.append(b'event: ping\ndata: {"timestamp":1,"tail":{"seq_num":%d}}\n\n' % seq)
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def chunked(stream: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(stream), size):
        yield stream[start : start + size]


def run_wire(stream: bytes, chunk: int) -> Tuple[int, int]:
    events = records = 0
    for decoded in iter_decoded(chunked(stream, chunk), "v2"):
        events += 1
        records += len(decoded.records)
    return events, records


def _payload(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def run_bare(stream: bytes, chunk: int) -> Tuple[int, int]:
    events = records = 0
    for event in sseclient.SSEClient(chunked(stream, chunk)).events():
        events += 1
        if event.event != "batch":
            continue
        doc = json.loads(event.data)
        out: List[Dict[str, Any]] = []
        for raw in doc["records"]:
            envelope = json.loads(raw["body"])
            out.append(
                {
                    "seq": raw["seq_num"],
                    "data": _payload(envelope["data"]),
                    "part_id": envelope["id"],
                    "timestamp": raw.get("timestamp"),
                    "headers": [],
                    "control": None,
                }
            )
        records += len(out)
    return events, records


def run_json_only(datas: List[str]) -> Tuple[int, int]:
    """The raw cost of JSON parsing alone: batch, bodies and payloads, nothing else."""
    records = 0
    loads = json.loads
    for data in datas:
        for raw in loads(data)["records"]:
            loads(loads(raw["body"])["data"])
            records += 1
    return len(datas), records


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--chunk", type=int, default=64 * 1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile the wire decoder")
    args = parser.parse_args(argv)

    stream = build_v2_stream(args.records, args.batch)
    print(
        f"v2 stream: {args.records} records, batches of {args.batch}, "
        f"{len(stream) / 1e6:.1f} MB, fed in {args.chunk} B chunks"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run_wire, stream, args.chunk)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return 0

    datas = [e.data for e in iter_sse_events([stream]) if e.event == "batch"]
    runs: Dict[str, Callable[[], Tuple[int, int]]] = {
        "wire": lambda: run_wire(stream, args.chunk),
        "bare": lambda: run_bare(stream, args.chunk),
        "json": lambda: run_json_only(datas),
    }
    # Interleaved runs, best of each: a busy machine slows all contenders alike.
    results = {name: float("inf") for name in runs}
    counts = {}
    for _ in range(args.repeat):
        for name, run in runs.items():
            started = time.process_time()
            counts[name] = run()
            results[name] = min(results[name], time.process_time() - started)
    for name, seconds in results.items():
        events, records = counts[name]
        print(
            f"{name:>4}: {seconds:6.3f} s  {events / seconds:>10,.0f} events/s  "
            f"{records / seconds:>12,.0f} records/s  ({records} records)"
        )
    print(f"wire / bare time: {results['wire'] / results['bare']:.2f} (lower is faster)")
    print(f"wire / json-only time: {results['wire'] / results['json']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
