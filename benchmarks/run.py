"""Benchmark sessions_client against its peers and its limits, on loopback only.

    python benchmarks/run.py            # full run (< 10 min on 2 cores), writes RESULTS.md
    python benchmarks/run.py --quick    # smoke run (< 1 min), prints only

Every figure is measured in this one run, each peer in a fresh subprocess,
peers interleaved in a rotating order over several rounds; a figure is the
median over the rounds. Targets (issue 7) are printed as PASS/FAIL next to the
figures and never asserted. Benchmark-only dependencies:
``pip install -r benchmarks/requirements.txt`` (httpx, httpx-sse); the
TypeScript peer is installed with ``npm ci`` into benchmarks/ts/ on first use,
or reported as skipped when node/npm are missing.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
TS_DIR = os.path.join(HERE, "ts")
PEERS = os.path.join(HERE, "peers.py")
STREAM_TOKEN = "tr_dev_bench"
PEER_TIMEOUT = 300.0
SLOW_APPEND_LATENCY = 0.005

READ_PEERS = ["raw", "sseclient", "httpx", "ts", "sessions"]
PEER_LABELS = {
    "raw": "(a) raw bytes, requests iter_content(1 MiB)",
    "sseclient": "(b) requests + sseclient-py + json (README loop)",
    "httpx": "(c) httpx + httpx-sse + json",
    "ts": "(d) TS SDK SSEStreamSubscription (node)",
    "sessions": "(e) sessions_client Session.iter_out",
}


NOTES = [
    "How to read the targets:",
    "",
    "- Judged on wall-clock medians of interleaved runs. In parentheses: the same ratio",
    "  in CPU time of the reading process alone, which other load on the machine (see the",
    "  load averages above) disturbs far less than wall-clock time.",
    "- Raw bytes: the floor. A Python client that only ran `json.loads` on the batch",
    "  events and record bodies would already take 5-8x the raw read (see PROFILE.md), so",
    "  the 1.5x goal is out of reach for any decoding client in CPython.",
    "- 8 threads vs 1: LocalServer is pure Python (one GIL, SQLite) on the same 2 cores,",
    "  so it saturates before the client does. The run with 5 ms of server latency per",
    "  append takes the server's CPU out of the picture and shows the client's own",
    "  concurrency (one Session, a pool of 10 keep-alive connections).",
    "- Reconnect: the p50 over the trials; it includes the client's first backoff delay",
    "  (100 ms with 50 % jitter, as the TS SDK) after an abrupt cut.",
    "- Memory: measured at 1,000,000 records only in the full run.",
]


class BenchError(Exception):
    """A peer or helper failed; the message is shown in the table."""


# --- environment ---------------------------------------------------------------------------


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    return env


def _version(command: Sequence[str]) -> Optional[str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _module_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "not installed"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    """The 1/5/15-minute load averages (other work on the machine skews wall-clock figures)."""
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def ts_core_version() -> str:
    try:
        path = os.path.join(TS_DIR, "node_modules", "@trigger.dev", "core", "package.json")
        with open(path) as package:
            return str(json.load(package)["version"])
    except (OSError, ValueError, KeyError):
        return "not installed"


def machine_note() -> Dict[str, str]:
    """What the figures were measured on."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "os": platform.platform(),
        "python": platform.python_version(),
        "node": _version(["node", "--version"]) or "absent",
        "load average (1/5/15 min) at start": load_average(),
        "packages": ", ".join(
            f"{name} {_module_version(name)}"
            for name in ("sessions_client", "requests", "urllib3", "sseclient-py", "httpx")
        )
        + f", httpx-sse {_module_version('httpx-sse')}, @trigger.dev/core {ts_core_version()}",
    }


def ensure_ts_peer() -> Optional[str]:
    """Install the TS peer with ``npm ci`` if needed; a reason when it cannot run."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "skipped: node/npm not found"
    if not os.path.isdir(os.path.join(TS_DIR, "node_modules", "@trigger.dev", "core")):
        print("installing the TypeScript peer: npm ci in benchmarks/ts ...", flush=True)
        try:
            done = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=TS_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"skipped: npm ci failed ({exc})"
        if done.returncode != 0:
            return "skipped: npm ci failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    return None


def missing_modules(names: Sequence[str]) -> Optional[str]:
    """None when every module imports, else a skip reason naming the missing ones."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if not missing:
        return None
    return f"skipped: {', '.join(missing)} missing (pip install -r benchmarks/requirements.txt)"


def session_missing() -> Optional[str]:
    """None when ``from sessions_client import Session`` works."""
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    try:
        from sessions_client import Session  # noqa: F401
    except ImportError as exc:
        return f"skipped: sessions_client.Session not importable ({exc})"
    return None


# --- subprocess helpers --------------------------------------------------------------------


def run_json(command: Sequence[str], timeout: float = PEER_TIMEOUT) -> Dict[str, Any]:
    """Run one peer; its last stdout line is a JSON object."""
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, env=_child_env()
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"timed out after {timeout:.0f} s") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise BenchError(tail[:160])
    result: Dict[str, Any] = json.loads(lines[-1])
    return result


class Helper:
    """A long-lived helper process that prints one JSON line per command."""

    def __init__(self, command: Sequence[str], ready_timeout: float = 600.0) -> None:
        self.process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_child_env(),
        )
        self.first_line = self._readline(ready_timeout)

    def _readline(self, timeout: float) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.process.stdout.readline()
        if not line or time.monotonic() > deadline:
            self.close()
            raise BenchError(f"helper {self.process.args!r} stopped")
        return line.strip()

    def command(self, **fields: Any) -> Dict[str, Any]:
        stdin: Optional[IO[str]] = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(fields) + "\n")
        stdin.flush()
        answer: Dict[str, Any] = json.loads(self._readline(PEER_TIMEOUT))
        if not answer.get("ok"):
            raise BenchError(str(answer.get("error")))
        return answer

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_stream_server(datasets: Sequence[str]) -> Tuple[Helper, str, Dict[str, int]]:
    """The in-memory SSE server in its own process: (helper, url, record bytes)."""
    helper = Helper([sys.executable, os.path.join(HERE, "streamserver.py"), *datasets])
    _ready, port, sizes = helper.first_line.split(" ", 2)
    return helper, f"http://127.0.0.1:{port}", json.loads(sizes)


def start_local_server(wire: str = "v2") -> Tuple[Helper, str, str]:
    """LocalServer in its own process: (helper, url, secret key)."""
    helper = Helper([sys.executable, os.path.join(HERE, "localserver.py"), "--wire", wire])
    info = json.loads(helper.first_line)
    return helper, info["url"], info["secret_key"]


# --- measurement ---------------------------------------------------------------------------


class Samples:
    """Timings of one peer over the rounds (or why it could not run)."""

    def __init__(self, skip: Optional[str] = None) -> None:
        self.seconds: List[float] = []
        self.cpu_seconds: List[float] = []
        self.error: Optional[str] = skip

    def median(self) -> Optional[float]:
        return statistics.median(self.seconds) if self.seconds and not self.error else None

    def cpu_median(self) -> Optional[float]:
        """Median CPU time of the reading process (user + system), when reported."""
        if not self.cpu_seconds or self.error:
            return None
        return statistics.median(self.cpu_seconds)


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


# --- report --------------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), separator, *(line(row) for row in rows)])


def verdict(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


class Report:
    """Sections of markdown plus the targets table."""

    def __init__(self) -> None:
        self.sections: List[Tuple[str, str]] = []
        self.targets: List[List[str]] = []

    def section(self, title: str, body: str) -> None:
        self.sections.append((title, body))
        print(f"\n### {title}\n\n{body}\n", flush=True)

    def target(self, name: str, goal: str, figure: str, ok: Optional[bool]) -> None:
        self.targets.append([name, goal, figure, verdict(ok)])

    def render(self, machine: Dict[str, str], command: str) -> str:
        note = "\n".join(f"- {key}: {value}" for key, value in machine.items())
        parts = [
            "# Benchmark results",
            "",
            f"Command: `{command}` (loopback only; medians of interleaved rounds,",
            "each peer in a fresh process; start-up and imports are not timed).",
            "",
            "Machine:",
            "",
            note,
            "",
            "## Targets (issue 7)",
            "",
            markdown_table(["target", "goal", "measured", "result"], self.targets),
            "",
            *NOTES,
        ]
        for title, body in self.sections:
            parts += ["", f"## {title}", "", body]
        return "\n".join(parts) + "\n"


def rate(records: int, seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{records / seconds:,.0f}"


def read_section(samples: Dict[str, Samples], records: int, note: str) -> str:
    """Records/s per peer and the ratio of Session.iter_out to each."""
    ours = samples["sessions"].median() if "sessions" in samples else None
    ours_cpu = samples["sessions"].cpu_median() if "sessions" in samples else None
    rows = []
    for name, sample in samples.items():
        median, cpu = sample.median(), sample.cpu_median()
        if median is None:
            rows.append([PEER_LABELS[name], "-", "-", "-", "-", "-", sample.error or "-"])
            continue
        mine = name == "sessions"
        ratio = "-" if ours is None or mine else f"{median / ours:.2f}x"
        cpu_ratio = "-" if ours_cpu is None or cpu is None or mine else f"{cpu / ours_cpu:.2f}x"
        spread = f"{min(sample.seconds):.3f}-{max(sample.seconds):.3f}"
        cpu_text = "-" if cpu is None else f"{cpu:.3f}"
        rows.append(
            [
                PEER_LABELS[name],
                rate(records, median),
                f"{median:.3f}",
                ratio,
                cpu_text,
                cpu_ratio,
                spread,
            ]
        )
    header = [
        "peer",
        "records/s",
        "median s",
        "(e) speed vs peer",
        "CPU s",
        "(e) CPU advantage",
        "range s",
    ]
    return note + "\n\n" + markdown_table(header, rows)


def ratio_target(
    report: Report,
    samples: Dict[str, Samples],
    name: str,
    other: str,
    goal: float,
    label: str,
) -> None:
    """Session.iter_out's records/s over ``other``'s must be at least ``goal``."""
    ours, theirs = samples["sessions"].median(), samples[other].median()
    if ours is None or theirs is None:
        reason = samples["sessions"].error or samples[other].error or "missing"
        report.target(name, label, reason, None)
        return
    speedup = theirs / ours
    ours_cpu, theirs_cpu = samples["sessions"].cpu_median(), samples[other].cpu_median()
    cpu = "" if ours_cpu is None or theirs_cpu is None else f" (CPU {theirs_cpu / ours_cpu:.2f}x)"
    report.target(name, label, f"{speedup:.2f}x{cpu}", speedup >= goal)


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
        extra = ""
        if slow_one is not None and slow_eight is not None:
            extra = f" ({slow_one / slow_eight:.2f}x with 5 ms server latency)"
        report.target(
            "8 threads vs 1 thread", ">= 3x", f"{ours / eight:.2f}x{extra}", ours / eight >= 3
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
    rows = [[f"{result['p50_ms']:.2f}", f"{result['p99_ms']:.2f}", f"{result['max_ms']:.2f}"]]
    body = (
        "One record at a time on an idle `.out` of `LocalServer` (own process): time from "
        "calling `append_out` to the reader thread receiving the record, 10 ms idle between.\n\n"
        + markdown_table(["p50 ms", "p99 ms", "max ms"], rows)
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
    args = parser.parse_args(argv)
    quick = args.quick
    records = 20_000 if quick else 200_000
    memory_records = 100_000 if quick else 1_000_000
    rounds = args.rounds or (1 if quick else 5)
    local_rounds = 1 if quick else 3
    append_count = 200 if quick else 1000
    output = args.output or (None if quick else os.path.join(HERE, "RESULTS.md"))
    started = time.monotonic()

    session_skip = session_missing()
    skips: Dict[str, Optional[str]] = {
        "ts": ensure_ts_peer(),
        "httpx": missing_modules(["httpx", "httpx_sse"]),
        "sseclient": missing_modules(["sseclient"]),
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
        ratio_target(report, v2, "batch read vs TS SDK", "ts", 2.5, ">= 2.5x")
        ratio_target(report, v2, "batch read vs sseclient loop", "sseclient", 1.0, ">= 1.0x")
        raw, ours = v2["raw"].median(), v2["sessions"].median()
        if raw is None or ours is None:
            report.target("batch read vs raw bytes", "time <= 1.5x raw", "missing", None)
        else:
            slower = ours / raw
            goal = "time <= 1.5x raw"
            report.target("batch read vs raw bytes", goal, f"{slower:.2f}x", slower <= 1.5)
        v1 = bench_reads(report, url, "v1", records, rounds, skips, sizes[datasets[1]])
        ratio_target(report, v1, "per-record read vs TS SDK", "ts", 1.5, ">= 1.5x")
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
    if output:
        with open(output, "w") as out:
            out.write(text)
        print(f"\nwrote {os.path.relpath(output)} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
