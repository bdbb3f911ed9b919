"""Processes and environment for the benchmarks: helper servers, peers, machine note.

Every peer and server runs in a process of its own (so none competes with
another for a GIL); this module starts them, talks to them over JSON lines and
describes the machine the figures come from.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import IO, Any, Dict, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
TS_DIR = os.path.join(HERE, "ts")
PEER_TIMEOUT = 300.0


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
