"""Shared pieces of the hostile tests: a measured server process and raw sockets.

Everything stays on 127.0.0.1, every loop is bounded by a deadline, and memory is
read from ``/proc`` (Linux; the memory assertions are skipped elsewhere).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

SECRET = "tr_dev_local"
HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024


def rss_kib(pid: int, field: str = "VmRSS") -> Optional[int]:
    """``VmRSS`` or ``VmHWM`` (peak) of a process in KiB, or None off Linux."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class ServerProcess:
    """A :class:`LocalServer` in a child process (see ``_server_proc.py``)."""

    def __init__(self, limits: Dict[str, Any], **options: Any) -> None:
        env = dict(os.environ, PYTHONPATH=str(HERE.parents[1]))
        config = json.dumps({"limits": limits, **options})
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_server_proc.py"), config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise RuntimeError("the server process did not start")
        self.port = int(json.loads(line)["port"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.idle_kib = rss_kib(self.proc.pid)

    def stats(self) -> Dict[str, Any]:
        """Open and refused connections and the CPU seconds used so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def peak_growth_mib(self) -> Optional[float]:
        """How far the peak RSS rose above the idle RSS measured at start, in MiB."""
        peak = rss_kib(self.proc.pid, "VmHWM")
        if peak is None or self.idle_kib is None:
            return None
        return (peak - self.idle_kib) / 1024

    def close(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(10)


def assert_memory_bounded(server: ServerProcess, bound_mib: float = 64) -> None:
    growth = server.peak_growth_mib()
    if growth is None:
        pytest.skip("no /proc: peak memory not measured here")
    assert growth < bound_mib, f"server peak RSS rose {growth:.1f} MiB above idle"


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes or ``deadline`` (monotonic) passes."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionError:
            break
        if not chunk:
            break
        data += chunk
    return data


def closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """True once the server has closed ``sock`` (EOF or reset) before ``deadline``."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except ConnectionError:
            return True
    return False


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer (0 when there is none)."""
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0


def legitimate_append(url: str, text: str = "hello") -> int:
    """One append through the library; returns its seq (raises on failure)."""
    from sessions_client import Session
    from sessions_client._http import RetryPolicy

    policy = RetryPolicy(max_attempts=20, initial_delay=0.05, max_delay=0.5, total_timeout=15)
    with Session("victim", token=SECRET, api_url=url, append_retry=policy) as session:
        seq = session.append_in({"text": text})["seq"]
    assert isinstance(seq, int)
    return seq


def close_all(socks: List[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()
