"""Chat turn latency: the Python ``AgentChat`` next to the official TypeScript one.

    python benchmarks/bench_chat.py                 # 200 turns per client
    python benchmarks/bench_chat.py --turns 50      # a quicker look

One ``LocalServer(echo_agent=True)`` (no agent delay) serves both clients on loopback.
Each client runs in its own fresh process (so neither shares a GIL with the server),
over ``--rounds`` interleaved rounds; a turn is timed from the ``send_message`` call
to the first ``text-delta`` chunk and to ``text()`` returning. Printed: p50 / p99 in
milliseconds per client and the ratios Python / TypeScript (below 1: Python faster).
The TypeScript peer (``benchmarks/ts/chat.mjs``) needs node and ``npm ci`` in
``benchmarks/ts`` (run here on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TS_DIR = os.path.join(HERE, "ts")
TEXT = "hello from the chat benchmark"

Samples = Dict[str, List[float]]


def run_python_peer(url: str, key: str, turns: int, warmup: int, text: str) -> Samples:
    """Time ``turns`` turns of the Python AgentChat (after ``warmup`` untimed ones)."""
    from sessions_client.chat import AgentChat

    first: List[float] = []
    done: List[float] = []
    with AgentChat("echo", token=key, api_url=url) as chat:
        for turn in range(warmup + turns):
            started = time.perf_counter()
            stream = chat.send_message(text)
            first_at: Optional[float] = None
            for chunk in stream:
                if chunk.get("type") == "text-delta":
                    first_at = time.perf_counter()
                    break
            stream.text()
            ended = time.perf_counter()
            if first_at is None:
                raise RuntimeError("a turn without a text delta")
            if turn >= warmup:
                first.append((first_at - started) * 1000)
                done.append((ended - started) * 1000)
    return {"first": first, "text": done}


def _peer(command: List[str], cwd: str) -> Samples:
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{command[0]} peer failed: {out.stderr.strip()[-2000:]}")
    samples: Samples = json.loads(out.stdout.strip().splitlines()[-1])
    return samples


def _ts_ready() -> Optional[str]:
    """None when the TypeScript peer can run (installing it if needed), else why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not found"
    if not os.path.isdir(os.path.join(TS_DIR, "node_modules", "@trigger.dev", "sdk")):
        print("installing the TypeScript peer: npm ci in benchmarks/ts ...", flush=True)
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=TS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            return "npm ci failed: " + done.stderr.strip()[-300:]
    return None


def _quantile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(results: Dict[str, Samples]) -> None:
    print(f"{'client':<12}{'first delta p50':>17}{'p99':>9}{'text() p50':>13}{'p99':>9}  (ms)")
    for name, samples in results.items():
        print(
            f"{name:<12}{statistics.median(samples['first']):>17.2f}"
            f"{_quantile(samples['first'], 0.99):>9.2f}"
            f"{statistics.median(samples['text']):>13.2f}{_quantile(samples['text'], 0.99):>9.2f}"
        )
    if "python" in results and "typescript" in results:
        py, ts = results["python"], results["typescript"]
        for metric, label in (("first", "first delta"), ("text", "text()")):
            p50 = statistics.median(py[metric]) / statistics.median(ts[metric])
            p99 = _quantile(py[metric], 0.99) / _quantile(ts[metric], 0.99)
            print(f"python / typescript, {label}: p50 {p50:.2f}x, p99 {p99:.2f}x")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200, help="timed turns per client")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=10, help="untimed turns per round")
    parser.add_argument("--peer", choices=("python",), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer == "python":  # one round of the Python client, in its own process
        samples = run_python_peer(args.url, args.key, args.turns, args.warmup, TEXT)
        print(json.dumps(samples))
        return 0

    sys.path.insert(0, ROOT)
    from sessions_client.testing import LocalServer

    skip_ts = _ts_ready()
    if skip_ts:
        print(f"TypeScript peer skipped: {skip_ts}")
    per_round = max(1, args.turns // args.rounds)
    counts = [str(per_round), str(args.warmup)]
    results: Dict[str, Samples] = {}
    with LocalServer(echo_agent=True) as srv:
        python = [sys.executable, os.path.abspath(__file__), "--peer", "python"]
        python += ["--url", srv.url, "--key", srv.secret_key]
        python += ["--turns", counts[0], "--warmup", counts[1]]
        peers = [("python", python, ROOT)]
        if not skip_ts:
            node = ["node", os.path.join(TS_DIR, "chat.mjs"), srv.url, srv.secret_key]
            peers.append(("typescript", node + counts + [TEXT], TS_DIR))
        for _ in range(args.rounds):
            for name, command, cwd in peers:
                for metric, values in _peer(command, cwd).items():
                    results.setdefault(name, {}).setdefault(metric, []).extend(values)
            peers.reverse()  # alternate who goes first
    print(f"{per_round * args.rounds} turns per client, text {TEXT!r}, loopback LocalServer")
    _report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
