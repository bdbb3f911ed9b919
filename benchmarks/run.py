"""Benchmark sessions_client against its peers and its limits, on loopback only.

    python benchmarks/run.py            # full run (< 10 min on 2 cores), writes RESULTS.md
    python benchmarks/run.py --quick    # smoke run (< 1 min), prints only

Every figure is measured in this one run, each peer in a fresh subprocess,
peers interleaved in a rotating order over several rounds; a figure is the
median over the rounds. Targets (issues 7 and 15) are printed as PASS/FAIL next to the
figures and never asserted. Benchmark-only dependencies:
``pip install -r benchmarks/requirements.txt`` (httpx, httpx-sse); the
TypeScript peer is installed with ``npm ci`` into benchmarks/ts/ on first use,
or reported as skipped when node/npm are missing.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from harness import (
    HERE,
    TS_DIR,
    BenchError,
    ensure_ts_peer,
    load_average,
    machine_note,
    missing_modules,
    run_json,
    session_missing,
    start_local_server,
    start_stream_server,
)
from report import (
    PEER_LABELS,
    Report,
    Samples,
    markdown_table,
    rate,
    ratio_target,
    read_section,
)

PEERS = os.path.join(HERE, "peers.py")
STREAM_TOKEN = "tr_dev_bench"
SLOW_APPEND_LATENCY = 0.005

READ_PEERS = ["raw", "json", "sseclient", "sseclient64k", "httpx", "ts", "sessions"]


def read_command(peer: str, url: str, session: str, expect: int, token: str) -> List[str]:
    """The command line that makes ``peer`` read ``expect`` records of ``session``."""
    if peer == "ts":
        stream = f"{url}/realtime/v1/sessions/{session}/out"
        return ["node", os.path.join(TS_DIR, "read.mjs"), stream, token, str(expect)]
    return [sys.executable, PEERS, "read", peer, url, session, str(expect), "--token", token]


def rotations(items: Sequence[str], rounds: int) -> List[List[str]]:
    """``rounds`` orders of ``items``, each rotated by one more place."""
    return [list(items[r % len(items) :]) + list(items[: r % len(items)]) for r in range(rounds)]


def measure_interleaved(
    commands: Dict[str, Callable[[], List[str]]],
    skips: Dict[str, Optional[str]],
    rounds: int,
    expect_key: Optional[Tuple[str, int]] = None,
) -> Dict[str, Samples]:
    """Run every command once per round in rotating order; collect ``seconds``."""
    samples = {name: Samples(skips.get(name)) for name in commands}
    for order in rotations(list(commands), rounds):
        for name in order:
            sample = samples[name]
            if sample.error:
                continue
            try:
                result = run_json(commands[name]())
            except BenchError as exc:
                sample.error = f"error: {exc}"
                continue
            if expect_key and result.get(expect_key[0]) != expect_key[1]:
                sample.error = f"error: {expect_key[0]}={result.get(expect_key[0])}"
                continue
            sample.seconds.append(float(result["seconds"]))
            cpu = result.get("cpu_seconds")
            if cpu is not None:
                sample.cpu_seconds.append(float(cpu))
            cpu_note = "" if cpu is None else f"  (CPU {cpu:.3f} s)"
            print(f"  {name:<10} {result['seconds']:8.3f} s{cpu_note}", flush=True)
    return samples


# --- the benchmarks ------------------------------------------------------------------------


def bench_reads(
    report: Report,
    url: str,
    shape: str,
    records: int,
    rounds: int,
    skips: Dict[str, Optional[str]],
    record_bytes: int,
) -> Dict[str, Samples]:
    session = f"{shape}-{records}"
    print(f"\nread {session} from the in-memory server, {rounds} rounds", flush=True)
    commands: Dict[str, Callable[[], List[str]]] = {
        peer: functools.partial(read_command, peer, url, session, records, STREAM_TOKEN)
        for peer in READ_PEERS
    }
    samples = measure_interleaved(commands, skips, rounds)
    title = {
        "v2": "Read, batch shape (v2, batches of 1,000)",
        "v1": "Read, per-record shape (v1, one event per record)",
    }[shape]
    what = "record JSON" if shape == "v2" else "event"
    note = (
        f"{records:,} text-delta records, {record_bytes / records:.0f} bytes of {what} each, "
        "served from memory by benchmarks/streamserver.py (chunked, keep-alive)."
    )
    note += (
        " (b) hands the response to `SSEClient` as sseclient-py's README does (requests then"
        " iterates the body in 128-byte pieces); (b') is the same loop fed 64 KiB chunks, for"
        " reference (not a target); (c) uses httpx-sse's `connect_sse`/`iter_sse`; every peer"
        " stops at the last record."
    )
    if shape == "v1":
        note += (
            " SSEStreamSubscription reads both shapes (it switches on X-Stream-Version); for"
            " v1 it yields the parsed event data as is (no envelope decoding)."
        )
    else:
        note += (
            " The TS SDK parses each record's body and yields the envelope's `data` string "
            "(it does not JSON-parse it); sessions_client also parses that string (PROTOCOL 3.3)."
        )
    report.section(f"{title}: {records:,} records", read_section(samples, records, note))
    return samples


def bench_local_reads(
    report: Report, records: int, rounds: int, skips: Dict[str, Optional[str]]
) -> None:
    print(f"\nread {records:,} records from LocalServer (v2), {rounds} rounds", flush=True)
    try:
        helper, url, key = start_local_server("v2")
    except BenchError as exc:
        report.section("Read from LocalServer", f"skipped: {exc}")
        return
    with helper:
        try:
            loaded = helper.command(cmd="preload", session="bench-read", io="out", count=records)
        except BenchError as exc:
            report.section("Read from LocalServer", f"skipped: preload failed: {exc}")
            return
        commands: Dict[str, Callable[[], List[str]]] = {
            peer: functools.partial(read_command, peer, url, "bench-read", records, key)
            for peer in READ_PEERS
        }
        samples = measure_interleaved(commands, skips, rounds)
    note = (
        f'The same {records:,} records preloaded into `LocalServer(wire="v2")` (SQLite '
        f":memory:, preload {loaded['seconds']:.1f} s), the server in its own process. "
        "This measures the local server as much as the readers."
    )
    report.section(
        f"Read from LocalServer (v2): {records:,} records", read_section(samples, records, note)
    )


def append_row(label: str, count: int, sample: Samples) -> List[str]:
    """One row of the appends table."""
    median, cpu = sample.median(), sample.cpu_median()
    if median is None:
        return [label, f"{count:,}", "-", sample.error or "-", "-"]
    cpu_text = "-" if cpu is None else f"{cpu / count * 1e6:,.0f}"
    return [label, f"{count:,}", rate(count, median), f"{median:.3f}", cpu_text]


def bench_appends(report: Report, count: int, rounds: int, session_skip: Optional[str]) -> None:
    title = f"Appends to LocalServer: {count:,} per run"
    if session_skip:
        report.section(title, session_skip)
        for name in ("appends vs bare requests", "8 threads vs 1 thread"):
            report.target(name, "", session_skip, None)
        return
    print(f"\nappends, {count} per run, {rounds} rounds", flush=True)
    helper, url, key = start_local_server("v2")
    with helper:
        runs = {"n": 0}

        def fresh_session() -> str:
            runs["n"] += 1
            session = f"append-{runs['n']}"
            helper.command(cmd="preload", session=session, io="in", count=1)
            return session

        def command(peer: str, threads: int, appends: int = count) -> Callable[[], List[str]]:
            def build() -> List[str]:
                args = [sys.executable, PEERS, "append", peer, url, key, fresh_session()]
                return [*args, str(appends), "--threads", str(threads)]

            return build

        commands = {
            "bare": command("bare", 1),
            "sessions": command("sessions", 1),
            "sessions-8": command("sessions", 8),
        }
        samples = measure_interleaved(commands, {}, rounds)
        # The same with 5 ms of server latency per append: the server's CPU stops being
        # the limit, so this shows whether the client itself serialises the threads.
        slow_count = max(40, count // 5)
        helper.command(cmd="set_latency", seconds=SLOW_APPEND_LATENCY, route="append")
        slow = measure_interleaved(
            {
                "sessions": command("sessions", 1, slow_count),
                "sessions-8": command("sessions", 8, slow_count),
            },
            {},
            1,
        )
    labels = {
        "bare": "bare requests.Session().post loop (1 thread)",
        "sessions": "Session.append_in (1 thread)",
        "sessions-8": "Session.append_in, 8 threads sharing one Session",
    }
    lag = f", +{SLOW_APPEND_LATENCY * 1000:.0f} ms server latency"
    rows = [append_row(labels[name], count, sample) for name, sample in samples.items()]
    rows += [append_row(labels[name] + lag, slow_count, sample) for name, sample in slow.items()]
    body = (
        "Sequential keep-alive POSTs of a 52-byte JSON record to `.in` with a fresh "
        "`X-Part-Id` each; `LocalServer` in its own process.\n\n"
        + markdown_table(
            ["client", "appends", "appends/s", "median s", "client CPU µs/append"], rows
        )
    )
    report.section(title, body)
    bare, ours, eight = (samples[k].median() for k in ("bare", "sessions", "sessions-8"))
    if bare is None or ours is None:
        report.target("appends vs bare requests", "<= 10 % slower", "missing", None)
    else:
        slower = ours / bare - 1
        report.target(
            "appends vs bare requests", "<= 10 % slower", f"{slower * 100:+.1f} %", slower <= 0.10
        )
    if ours is None or eight is None:
        report.target("8 threads vs 1 thread", ">= 3x", "missing", None)
    else:
        slow_one, slow_eight = slow["sessions"].median(), slow["sessions-8"].median()
        extra = []
        # The GIL lets one thread of a process run Python at a time, so N threads append
        # at most 1 / (client CPU per append); one thread's wall time over its CPU time is
        # therefore the most any number of threads can gain here.
        cpu_one = samples["sessions"].cpu_median()
        if cpu_one:
            busy = cpu_one / ours
            extra.append(f"ceiling {1 / busy:.2f}x: one thread is on CPU {busy:.0%} of the time")
        if slow_one is not None and slow_eight is not None:
            extra.append(f"{slow_one / slow_eight:.2f}x with 5 ms server latency")
        note = f" ({'; '.join(extra)})" if extra else ""
        report.target(
            "8 threads vs 1 thread", ">= 3x", f"{ours / eight:.2f}x{note}", ours / eight >= 3
        )


def bench_memory(
    report: Report, url: str, records: int, goal_records: int, skip: Optional[str]
) -> None:
    title = f"Memory: {records:,} records through iter_out"
    if skip:
        report.section(title, skip)
        report.target("memory", "< 30 MB RSS growth", skip, None)
        return
    print(f"\nmemory, {records:,} records", flush=True)
    rows = []
    growth: Dict[str, float] = {}
    for peer in ("sessions", "sseclient"):
        command = read_command(peer, url, f"v2-{records}", records, STREAM_TOKEN) + ["--memory"]
        try:
            result = run_json(command)
        except BenchError as exc:
            rows.append([PEER_LABELS[peer], f"error: {exc}", "-", "-"])
            continue
        growth[peer] = (result["hwm_after_kb"] - result["hwm_before_kb"]) / 1024
        rows.append(
            [
                PEER_LABELS[peer],
                f"{growth[peer]:.1f}",
                f"{result['hwm_before_kb'] / 1024:.1f}",
                rate(records, result["seconds"]),
            ]
        )
    body = (
        "Peak RSS (VmHWM from /proc/self/status) after the read minus before it, in a fresh "
        "process reading the v2 stream to the end.\n\n"
        + markdown_table(["reader", "peak RSS growth MB", "RSS before MB", "records/s"], rows)
    )
    report.section(title, body)
    mb = growth.get("sessions")
    scale = "" if records == goal_records else f" (at {records:,} records)"
    report.target(
        "memory",
        "< 30 MB RSS growth at 1,000,000 records",
        "error" if mb is None else f"{mb:.1f} MB{scale}",
        None if mb is None or records != goal_records else mb < 30,
    )


def bench_latency(report: Report, count: int, skip: Optional[str]) -> None:
    title = f"Latency: append_out -> yielded by a followed iter_out, {count} records"
    if skip:
        report.section(title, skip)
        report.target("latency p99", "< 20 ms", skip, None)
        return
    print(f"\nlatency, {count} records", flush=True)
    try:
        helper, url, key = start_local_server("v2")
        with helper:
            helper.command(cmd="preload", session="latency", io="out", count=1)
            result = run_json([sys.executable, PEERS, "latency", url, key, "latency", str(count)])
    except BenchError as exc:
        report.section(title, f"error: {exc}")
        report.target("latency p99", "< 20 ms", f"error: {exc}", None)
        return
    rows = [
        [
            f"{result['p50_ms']:.2f}",
            f"{result['p95_ms']:.2f}",
            f"{result['p99_ms']:.2f}",
            f"{result['max_ms']:.2f}",
            f"{result['over_20ms']} of {result['count']}",
        ]
    ]
    body = (
        "One record at a time on an idle `.out` of `LocalServer` (own process): time from "
        "calling `append_out` to the reader thread receiving the record, 10 ms idle between.\n\n"
        + markdown_table(["p50 ms", "p95 ms", "p99 ms", "max ms", "over 20 ms"], rows)
    )
    report.section(title, body)
    report.target("latency p99", "< 20 ms", f"{result['p99_ms']:.2f} ms", result["p99_ms"] < 20)


def bench_reconnect(report: Report, url: str, trials: int, skip: Optional[str]) -> None:
    title = "Reconnect: cut connection -> first record on the new one"
    if skip:
        report.section(title, skip)
        report.target("reconnect", "< 150 ms", skip, None)
        return
    print(f"\nreconnect, {trials} trials", flush=True)
    rows = []
    ours: Optional[float] = None
    try:
        probe = [sys.executable, PEERS, "reconnect", url, STREAM_TOKEN, "cut", str(trials)]
        result = run_json(probe)
        ours = result["p50_ms"]
        rows.append(
            [
                "in-memory server closes the socket mid-body",
                str(trials),
                f"{result['p50_ms']:.1f}",
                f"{result['max_ms']:.1f}",
            ]
        )
    except BenchError as exc:
        rows.append(["in-memory server closes the socket mid-body", "-", f"error: {exc}", "-"])
    rows.append(local_reconnect_row(max(1, trials // 2)))
    body = (
        "Time between the last record yielded before the cut and the first one after the "
        "reconnect (noticing the cut, the client's backoff, the new request).\n\n"
        + markdown_table(["cut by", "trials", "p50 ms", "max ms"], rows)
    )
    report.section(title, body)
    report.target(
        "reconnect",
        "< 150 ms (p50)",
        "error" if ours is None else f"{ours:.1f} ms",
        None if ours is None else ours < 150,
    )


def local_reconnect_row(trials: int) -> List[str]:
    """The same probe against LocalServer's faults.cut_stream(after_records=1)."""
    label = "LocalServer faults.cut_stream(after_records=1)"
    try:
        helper, url, key = start_local_server("v2")
    except BenchError as exc:
        return [label, "-", f"error: {exc}", "-"]
    gaps: List[float] = []
    with helper:
        try:
            for trial in range(trials):
                session = f"rc-{trial}"
                helper.command(cmd="preload", session=f"{session}-0", io="out", count=2)
                reads_before = helper.command(cmd="stats")["request_counts"].get("read", 0)
                helper.command(cmd="cut_stream", after_records=1)
                result = run_json([sys.executable, PEERS, "reconnect", url, key, session, "1"])
                reads = helper.command(cmd="stats")["request_counts"].get("read", 0)
                if reads - reads_before < 2:
                    return [label, "-", "no reconnect happened (cut not applied?)", "-"]
                gaps.append(result["p50_ms"])
        except BenchError as exc:
            return [label, "-", f"error: {exc}", "-"]
    return [label, str(trials), f"{statistics.median(gaps):.1f}", f"{max(gaps):.1f}"]


# --- main ----------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="sessions_client benchmarks (loopback only)")
    parser.add_argument("--quick", action="store_true", help="short smoke run, prints only")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per read benchmark")
    parser.add_argument("--output", help="markdown file to write (default: benchmarks/RESULTS.md)")
    parser.add_argument("--records", type=int, help="records per read benchmark")
    args = parser.parse_args(argv)
    quick = args.quick
    records = args.records or (20_000 if quick else 200_000)
    memory_records = 100_000 if quick else 1_000_000
    rounds = args.rounds or (1 if quick else 7)
    local_rounds = 1 if quick else 3
    append_count = 200 if quick else 1000
    output = args.output or (None if quick else os.path.join(HERE, "RESULTS.md"))
    started = time.monotonic()

    session_skip = session_missing()
    skips: Dict[str, Optional[str]] = {
        "ts": ensure_ts_peer(),
        "httpx": missing_modules(["httpx", "httpx_sse"]),
        "sseclient": missing_modules(["sseclient"]),
        "sseclient64k": missing_modules(["sseclient"]),
        "sessions": session_skip,
    }
    for reason in skips.values():
        if reason:
            print("note: " + reason, flush=True)
    machine = machine_note()
    report = Report()

    datasets = [f"v2-{records}", f"v1-{records}", f"v2-{memory_records}"]
    print("encoding the datasets (" + ", ".join(datasets) + ") ...", flush=True)
    server, url, sizes = start_stream_server(datasets)
    with server:
        v2 = bench_reads(report, url, "v2", records, rounds, skips, sizes[datasets[0]])
        ratio_target(report, v2, "batch read vs TS SDK", "ts", 2.0, ">= 2.0x")
        ratio_target(report, v2, "batch read vs httpx+httpx-sse+json", "httpx", 1.4, ">= 1.4x")
        ratio_target(report, v2, "batch read vs sseclient loop", "sseclient64k", 1.4, ">= 1.4x")
        ratio_target(report, v2, "batch read vs the JSON floor", "json", 0.8, ">= 0.8x")
        raw, ours = v2["raw"].median(), v2["sessions"].median()
        if raw is None or ours is None:
            report.target("batch read vs raw bytes", "time <= 1.5x raw", "missing", None)
        else:
            slower = ours / raw
            goal = "time <= 1.5x raw"
            floor = v2["json"].median()
            note = "" if floor is None else f" (JSON floor {floor / raw:.2f}x)"
            report.target("batch read vs raw bytes", goal, f"{slower:.2f}x{note}", slower <= 1.5)
        v1 = bench_reads(report, url, "v1", records, rounds, skips, sizes[datasets[1]])
        ratio_target(report, v1, "per-record read vs TS SDK", "ts", 1.0, ">= 1.0x")
        bench_memory(report, url, memory_records, 1_000_000, session_skip)
        bench_reconnect(report, url, 5 if quick else 20, session_skip)
    bench_local_reads(report, records, local_rounds, skips)
    bench_appends(report, append_count, 1 if quick else 3, session_skip)
    bench_latency(report, 50 if quick else 200, session_skip)

    elapsed = time.monotonic() - started
    command = "python benchmarks/run.py" + (" --quick" if quick else "")
    machine["run time"] = f"{elapsed:.0f} s"
    machine["load average at end"] = load_average()
    text = report.render(machine, command)
    print("\n" + markdown_table(["target", "goal", "measured", "result"], report.targets))
    if quick:
        print(
            "\n--quick is a smoke run: 20,000 records are too few for node's JIT to warm up,"
            " so its ratios flatter sessions_client; only the full run's figures count."
        )
    if output:
        with open(output, "w") as out:
            out.write(text)
        print(f"\nwrote {os.path.relpath(output)} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
