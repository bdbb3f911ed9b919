"""The Python peers of the benchmark, each run in a fresh subprocess by run.py.

Every command prints one JSON object on stdout. Timings start after the
imports and stop when the last expected record has been handled, so the
interpreter's start-up is never measured.

    python benchmarks/peers.py read PEER URL SESSION EXPECT [--memory]
        PEER: raw | json | sseclient | sseclient64k | httpx | sessions
    python benchmarks/peers.py append PEER URL TOKEN SESSION COUNT [--threads N]
        PEER: bare | sessions
    python benchmarks/peers.py latency URL TOKEN SESSION COUNT
    python benchmarks/peers.py reconnect URL TOKEN SESSION_PREFIX TRIALS

Every peer stops once it has seen EXPECT records (the raw read: once the last
record's ``seq_num`` has gone by), so a long-poll window that stays open after
the backlog, as on LocalServer, is never part of the figure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import queue
import sys
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

DEFAULT_TOKEN = "tr_dev_bench"
PEER_MODULES = {
    "raw": ["requests"],
    "json": ["requests"],
    "sseclient": ["requests", "sseclient"],
    "sseclient64k": ["requests", "sseclient"],
    "httpx": ["httpx", "httpx_sse"],
    "sessions": ["sessions_client"],
}
APPEND_BODY = '{"type":"text-delta","delta":" the quick brown fox"}'


def stream_url(base: str, session: str, io: str = "out") -> str:
    """The SSE read URL of a channel (PROTOCOL.md 3)."""
    return f"{base.rstrip('/')}/realtime/v1/sessions/{session}/{io}"


def read_headers(token: str) -> Dict[str, str]:
    """The request headers every reading peer sends."""
    return {
        "Accept": "text/event-stream",
        "Authorization": f"Bearer {token}",
        "Timeout-Seconds": "60",
    }


def proc_status_kb(field: str) -> int:
    """A ``kB`` figure of /proc/self/status (``VmHWM``, ``VmRSS``); 0 if unavailable."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- reading peers: each returns (records, bytes or 0) -------------------------------------


def count_records(payload: str, shape: str) -> int:
    """Decode one SSE event's data as the record contract does, return its records.

    ``json.loads`` of the event (v2: then of every record's body), then of the string
    payload when it holds JSON (PROTOCOL 3.3), as ``sessions_client`` must.
    """
    if payload == "[DONE]":
        return 0
    event = json.loads(payload)
    envelopes = [event] if shape == "v1" else [json.loads(r["body"]) for r in event["records"]]
    for envelope in envelopes:
        data = envelope["data"]
        if type(data) is str:
            try:  # noqa: SIM105  (contextlib.suppress would add a call per record)
                json.loads(data)
            except ValueError:
                pass
    return len(envelopes)


def read_raw(url: str, token: str, expect: int) -> Tuple[int, int]:
    """(a) The floor: raw bytes through requests' iter_content with 1 MiB chunks."""
    import requests

    marker = b'"seq_num":%d,' % (expect - 1)
    v1_marker = b"id: %d\n" % (expect - 1)
    total = 0
    tail = b""
    with requests.Session() as http, http.get(
        url, headers=read_headers(token), stream=True, timeout=(5, 60)
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_content(chunk_size=1 << 20):
            total += len(chunk)
            window = tail + chunk
            if marker in window or v1_marker in window:
                break
            tail = chunk[-64:]
    return expect, total


def read_json_floor(url: str, token: str, expect: int) -> Tuple[int, int]:
    """(f) The JSON floor: the raw read, then only the JSON decoding PROTOCOL 3.3 asks of
    every record, by the C scanner called directly (the batch or v1 event, each record's
    body envelope, its string payload), on lines split with one C call. No SSE rules, no
    validation, no record dicts: no CPython client that decodes the records can be
    faster, so its records/s over a peer's is the best ratio within reach."""
    import requests

    scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
    chunks: List[bytes] = []
    marker = b'"seq_num":%d,' % (expect - 1)
    v1_marker = b"id: %d\n" % (expect - 1)
    tail = b""
    with requests.Session() as http, http.get(
        url, headers=read_headers(token), stream=True, timeout=(5, 60)
    ) as response:
        response.raise_for_status()
        v2 = response.headers.get("X-Stream-Version") == "v2"
        for chunk in response.iter_content(chunk_size=1 << 20):
            chunks.append(chunk)
            if marker in tail + chunk or v1_marker in tail + chunk:
                break
            tail = chunk[-64:]
    count = 0
    for line in b"".join(chunks).split(b"\n"):
        if not line.startswith(b"data: {"):
            continue
        try:
            event = scan(line[6:].decode(), 0)[0]
        except StopIteration:  # the last event, cut where the read stopped
            break
        for record in event["records"] if v2 else [{"body": None, "event": event}]:
            envelope = scan(record["body"], 0)[0] if v2 else record["event"]
            payload = envelope["data"]
            if type(payload) is str:
                try:  # noqa: SIM105  (contextlib.suppress would add a call per record)
                    scan(payload, 0)
                except StopIteration:
                    pass
            count += 1
    return min(count, expect), 0


def read_sseclient(url: str, token: str, expect: int, chunk: int = 0) -> Tuple[int, int]:
    """(b) requests + sseclient-py + json, as sseclient-py's README shows it.

    With ``chunk``, sseclient-py is fed ``response.iter_content(chunk)`` instead of the
    response itself (which requests iterates in 128-byte pieces).
    """
    import requests
    import sseclient

    count = 0
    with requests.Session() as http, http.get(
        url, headers=read_headers(token), stream=True, timeout=(5, 60)
    ) as response:
        response.raise_for_status()
        shape = "v2" if response.headers.get("X-Stream-Version") == "v2" else "v1"
        source = response.iter_content(chunk) if chunk else response  # README: the response
        client = sseclient.SSEClient(source)  # type: ignore[arg-type]
        for event in client.events():
            count += count_records(event.data, shape)
            if count >= expect:
                break
    return count, 0


def read_httpx(url: str, token: str, expect: int) -> Tuple[int, int]:
    """(c) httpx + httpx-sse (connect_sse / iter_sse) + json."""
    import httpx
    from httpx_sse import connect_sse

    count = 0
    with httpx.Client(timeout=httpx.Timeout(60, connect=5)) as client, connect_sse(
        client, "GET", url, headers=read_headers(token)
    ) as source:
        source.response.raise_for_status()
        shape = "v2" if source.response.headers.get("X-Stream-Version") == "v2" else "v1"
        for event in source.iter_sse():
            count += count_records(event.data, shape)
            if count >= expect:
                break
    return count, 0


def _session(base: str, session: str, token: str) -> Any:
    from sessions_client import Session

    return Session(session, token=token, api_url=base)


def read_sessions(base: str, session: str, token: str, expect: int) -> Tuple[int, int]:
    """(e) Session.iter_out(follow=False): full record dicts, cursor, dedup."""
    count = 0
    reader = _session(base, session, token).iter_out(follow=False)
    try:
        for _record in reader:
            count += 1
            if count >= expect:
                break
    finally:
        reader.close()
    return count, 0


def run_read(args: argparse.Namespace) -> Dict[str, Any]:
    url = stream_url(args.url, args.session)
    readers: Dict[str, Callable[[], Tuple[int, int]]] = {
        "raw": lambda: read_raw(url, args.token, args.expect),
        "json": lambda: read_json_floor(url, args.token, args.expect),
        "sseclient": lambda: read_sseclient(url, args.token, args.expect),
        "sseclient64k": lambda: read_sseclient(url, args.token, args.expect, 65536),
        "httpx": lambda: read_httpx(url, args.token, args.expect),
        "sessions": lambda: read_sessions(args.url, args.session, args.token, args.expect),
    }
    for module in PEER_MODULES[args.peer]:  # imported before the baselines, never timed
        importlib.import_module(module)
    hwm_before = proc_status_kb("VmHWM")
    cpu_start = time.process_time()
    start = time.perf_counter()
    records, size = readers[args.peer]()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    result: Dict[str, Any] = {
        "records": records,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "bytes": size,
    }
    if args.memory:
        result["hwm_before_kb"] = hwm_before
        result["hwm_after_kb"] = proc_status_kb("VmHWM")
    return result


# --- appends -----------------------------------------------------------------------------


def append_bare(base: str, token: str, session: str, count: int) -> None:
    """A bare keep-alive ``requests.Session().post`` loop with the client's headers."""
    import requests

    url = stream_url(base, session, "in") + "/append"
    http = requests.Session()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for _ in range(count):
        headers["X-Part-Id"] = uuid.uuid4().hex
        response = http.post(url, data=APPEND_BODY.encode(), headers=headers, timeout=(5, 30))
        response.raise_for_status()
        response.json()
    http.close()


def append_sessions(base: str, token: str, session: str, count: int, threads: int) -> None:
    """``Session.append_in`` from ``threads`` threads sharing one Session."""
    client = _session(base, session, token)
    errors: List[BaseException] = []

    def worker(share: int) -> None:
        try:
            for _ in range(share):
                client.append_in(APPEND_BODY)
        except BaseException as exc:  # reported below, never swallowed
            errors.append(exc)

    shares = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if errors:
        raise errors[0]


def run_append(args: argparse.Namespace) -> Dict[str, Any]:
    # imported before the clock starts, as in run_read
    importlib.import_module("sessions_client" if args.peer == "sessions" else "requests")
    cpu_start = time.process_time()
    start = time.perf_counter()
    if args.peer == "bare":
        append_bare(args.url, args.token, args.session, args.count)
    else:
        append_sessions(args.url, args.token, args.session, args.count, args.threads)
    return {
        "appends": args.count,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
    }


# --- latency and reconnect ---------------------------------------------------------------


def percentile(values: List[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def run_latency(args: argparse.Namespace) -> Dict[str, Any]:
    """append_out -> yielded by a followed iter_out on an idle stream."""
    reader_session = _session(args.url, args.session, args.token)
    writer = _session(args.url, args.session, args.token)
    arrivals: queue.Queue[Tuple[int, float]] = queue.Queue()
    stop = threading.Event()

    def follow() -> None:
        stream: Iterator[Dict[str, Any]] = reader_session.iter_out(follow=True)
        for record in stream:
            arrivals.put((record["seq"], time.perf_counter()))
            if stop.is_set():
                break

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    latencies: List[float] = []
    for i in range(args.count + 1):
        time.sleep(0.01)  # let the stream go idle
        start = time.perf_counter()
        seq = writer.append_out(APPEND_BODY)["seq"]
        arrived_seq, arrived = arrivals.get(timeout=10)
        while arrived_seq < seq:  # an older record (preloaded, or the first catch-up)
            arrived_seq, arrived = arrivals.get(timeout=10)
        if i:  # the first record also opens the connection
            latencies.append(arrived - start)
    stop.set()
    writer.append_out(APPEND_BODY)
    thread.join(timeout=5)
    return {
        "count": len(latencies),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "over_20ms": sum(1 for value in latencies if value > 0.020),
        "max_ms": max(latencies) * 1000,
    }


def run_reconnect(args: argparse.Namespace) -> Dict[str, Any]:
    """Gap between the last record before a cut and the first one after it.

    Each trial reads session ``PREFIX-i``, whose server sends record 0 and
    cuts the connection; the gap to record 1 covers noticing the cut, the
    backoff and the new request.
    """
    gaps: List[float] = []
    for trial in range(args.trials):
        session = f"{args.session}-{trial}"
        reader = _session(args.url, session, args.token).iter_out(follow=True)
        times: List[float] = []
        try:
            for _record in reader:
                times.append(time.perf_counter())
                if len(times) == 2:
                    break
        finally:
            reader.close()
        gaps.append(times[1] - times[0])
    return {
        "trials": len(gaps),
        "p50_ms": percentile(gaps, 0.5) * 1000,
        "max_ms": max(gaps) * 1000,
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark peers (see module docstring)")
    commands = parser.add_subparsers(dest="command", required=True)
    read = commands.add_parser("read")
    read.add_argument("peer", choices=sorted(PEER_MODULES))
    read.add_argument("url")
    read.add_argument("session")
    read.add_argument("expect", type=int)
    read.add_argument("--token", default=DEFAULT_TOKEN)
    read.add_argument("--memory", action="store_true")
    append = commands.add_parser("append")
    append.add_argument("peer", choices=["bare", "sessions"])
    for name in ("url", "token", "session"):
        append.add_argument(name)
    append.add_argument("count", type=int)
    append.add_argument("--threads", type=int, default=1)
    latency = commands.add_parser("latency")
    for name in ("url", "token", "session"):
        latency.add_argument(name)
    latency.add_argument("count", type=int)
    reconnect = commands.add_parser("reconnect")
    for name in ("url", "token", "session"):
        reconnect.add_argument(name)
    reconnect.add_argument("trials", type=int)
    args = parser.parse_args(argv)
    handlers: Dict[str, Callable[[argparse.Namespace], Dict[str, Any]]] = {
        "read": run_read,
        "append": run_append,
        "latency": run_latency,
        "reconnect": run_reconnect,
    }
    print(json.dumps(handlers[args.command](args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
