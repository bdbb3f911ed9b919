"""How fast the embedded LocalServer serves (issue 2's server targets).

    python benchmarks/bench_server.py [--records 200000] [--appends 2000] [--rounds 3]

The server runs in a child process (its own interpreter and GIL); the client side
is deliberately lean (``http.client`` and a raw socket read), so the figures are
the server's, not a client library's. Printed, not asserted:

- records/s served on one v2 stream: one GET of the whole channel, read until the
  batch ids (``seq,count,bytes``) account for every record (target >= 100,000);
- sequential keep-alive appends/s over one connection, on ``:memory:`` and on a
  database file (target >= 1,000).

Medians of ``--rounds`` runs; loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List
from urllib.parse import urlsplit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

SECRET_KEY = "tr_dev_bench"


def _serve(db: str, records: int, conn: Any) -> None:
    from sessions_client.testing import LocalServer

    with LocalServer(secret_key=SECRET_KEY, db=db, wire="v2") as srv:
        srv.create_session("bench-read")
        srv.create_session("bench-append")
        for seq in range(records):
            body = json.dumps({"type": "text-delta", "delta": f"token {seq} "})
            srv.append("bench-read", "out", body, part_id=f"p{seq:011d}")
        conn.send(srv.url)
        conn.recv()  # wait until the parent is done


def _read_stream(url: str, expected: int) -> float:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    start = time.perf_counter()
    connection.request(
        "GET",
        "/realtime/v1/sessions/bench-read/out",
        headers={
            "Authorization": f"Bearer {SECRET_KEY}",
            "Accept": "text/event-stream",
            "Timeout-Seconds": "5",
        },
    )
    response = connection.getresponse()
    seen = 0
    pending = b""
    while seen < expected:
        chunk = response.read1(1 << 20)
        if not chunk:
            raise RuntimeError(f"stream ended after {seen} of {expected} records")
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.startswith(b"id: "):
                seen += int(line[4:].split(b",")[1])
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def _append_loop(url: str, count: int) -> float:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = json.dumps({"type": "text", "text": "hello from the benchmark"}).encode()
    headers = {"Authorization": f"Bearer {SECRET_KEY}", "Content-Type": "application/json"}
    start = time.perf_counter()
    for n in range(count):
        headers["X-Part-Id"] = f"bench-{time.monotonic_ns()}-{n}"
        connection.request(
            "POST", "/realtime/v1/sessions/bench-append/in/append", body=body, headers=headers
        )
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"append answered {response.status}")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def _measure(db: str, records: int, appends: int, rounds: int) -> Dict[str, List[float]]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve, args=(db, records, child), daemon=True)
    process.start()
    try:
        url = parent.recv()
        figures: Dict[str, List[float]] = {"read": [], "append": []}
        for _ in range(rounds):
            if records:
                figures["read"].append(records / _read_stream(url, records))
            figures["append"].append(appends / _append_loop(url, appends))
        return figures
    finally:
        parent.send("stop")
        process.join(30)


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--appends", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        memory = _measure(":memory:", args.records, args.appends, args.rounds)
        on_file = _measure(os.path.join(tmp, "bench.db"), 0, args.appends, args.rounds)
    rows = [
        ("records/s served, one v2 stream (:memory:)", memory["read"], 100_000),
        ("sequential keep-alive appends/s (:memory:)", memory["append"], 1_000),
        ("sequential keep-alive appends/s (db file)", on_file["append"], 1_000),
    ]
    print(f"LocalServer, medians of {args.rounds} rounds, cpus={os.cpu_count()}")
    print(f"{'figure':46} {'median':>10} {'min':>10} {'max':>10} {'target':>9}  result")
    for name, values, target in rows:
        median = statistics.median(values)
        verdict = "PASS" if median >= target else "FAIL"
        print(
            f"{name:46} {median:10,.0f} {min(values):10,.0f} {max(values):10,.0f}"
            f" {target:>9,}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
