"""Run ``sessions_client.testing.LocalServer`` in its own process for the benchmarks.

The server gets a process (and a GIL) of its own, so that a client measured
against it never competes with it for the interpreter. run.py drives it with
one JSON command per line on stdin and reads one JSON answer per line:

    python benchmarks/localserver.py [--wire v2|v1]
    -> {"url": "...", "secret_key": "..."}
    {"cmd": "preload", "session": "s", "io": "out", "count": 200000}
    -> {"ok": true, "seconds": 3.1}       # direct store appends, text-delta bodies
    {"cmd": "cut_stream", "after_records": 1}          # faults.cut_stream(...)
    {"cmd": "set_latency", "seconds": 0.005, "route": "append"}   # faults.set_latency
    {"cmd": "stats"} -> {"ok": true, "request_counts": {...}, "total_connections": n}

End of stdin closes the server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (REPO_ROOT, os.path.dirname(os.path.abspath(__file__))):
    if path not in sys.path:
        sys.path.insert(0, path)

from streamserver import make_deltas, part_id  # noqa: E402

SECRET_KEY = "tr_dev_bench"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def preload(server: Any, session: str, io: str, count: int) -> Dict[str, Any]:
    """Create session ``session`` if needed, then append ``count`` text-delta records
    straight to the store (no HTTP)."""
    start = time.perf_counter()
    server.create_session(session)  # find-or-create by externalId
    for seq, delta in enumerate(make_deltas(count)):
        body = _compact({"type": "text-delta", "delta": delta})
        server.append(session, io, body, part_id=part_id(seq))
    return {"ok": True, "seconds": time.perf_counter() - start}


def handle(server: Any, command: Dict[str, Any]) -> Dict[str, Any]:
    """Execute one command against ``server``."""
    name = command.pop("cmd")
    if name == "preload":
        return preload(server, command["session"], command.get("io", "out"), command["count"])
    if name == "cut_stream":
        server.faults.cut_stream(**command)
        return {"ok": True}
    if name == "set_latency":
        server.faults.set_latency(**command)
        return {"ok": True}
    if name == "stats":
        return {
            "ok": True,
            "request_counts": dict(server.request_counts),
            "total_connections": server.total_connections,
        }
    return {"ok": False, "error": f"unknown command {name!r}"}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="LocalServer in a process of its own")
    parser.add_argument("--wire", choices=["v1", "v2"], default="v2")
    args = parser.parse_args(argv)
    from sessions_client.testing import LocalServer

    with LocalServer(secret_key=SECRET_KEY, db=":memory:", wire=args.wire, port=0) as server:
        print(json.dumps({"url": server.url, "secret_key": server.secret_key}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                answer = handle(server, json.loads(line))
            except Exception as exc:  # reported to run.py, which shows it in the table
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
