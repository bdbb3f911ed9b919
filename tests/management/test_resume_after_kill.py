"""The cron-job guarantee: a tail killed with SIGKILL mid-stream and restarted with the same
FileCursor skips nothing and repeats at most one record."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterator, List, Tuple

import pytest

from sessions_client import FileCursor
from sessions_client.testing import LocalServer

HERE = Path(__file__).resolve().parent
SCRIPT = str(HERE / "tail_with_cursor.py")
REPO_ROOT = str(HERE.parents[1])


@pytest.fixture(params=["v2", "v1"])
def server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    with LocalServer(wire=request.param) as srv:
        yield srv


class Tail:
    """The tail script as a subprocess whose stdout lines arrive on a queue."""

    def __init__(self, srv: LocalServer, session: str, cursor_path: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, SCRIPT, srv.url, srv.secret_key, session, str(cursor_path), "0.002"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True)
        self._reader.start()
        self.seen: List[Tuple[int, str]] = []

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def read_until(
        self, predicate: Callable[[List[Tuple[int, str]]], bool], timeout: float = 20.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"tail stalled; stderr: {self._stderr()}"
            try:
                line = self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                assert self.proc.poll() is None, f"tail died: {self._stderr()}"
                continue
            seq, data = line.rstrip("\n").split(" ", 1)
            self.seen.append((int(seq), data))
            if predicate(self.seen):
                return

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)
        while True:  # lines printed before the kill
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            seq, data = line.rstrip("\n").split(" ", 1)
            self.seen.append((int(seq), data))
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-2000:]


def test_sigkill_mid_stream_then_restart_skips_nothing_and_repeats_at_most_one(
    server: LocalServer, tmp_path: Path
) -> None:
    session = "cron-tail"
    server.create_session(session)
    for i in range(200):
        server.append(session, "out", f"r{i}")
    cursor_path = tmp_path / "out.cursor"

    first = Tail(server, session, cursor_path)
    first.read_until(lambda seen: len(seen) >= 80)
    first.kill()
    killed_at = FileCursor(cursor_path).get()  # never torn, even after SIGKILL
    assert killed_at is not None
    for i in range(200, 240):  # more records arrive while the job is down
        server.append(session, "out", f"r{i}")

    second = Tail(server, session, cursor_path)
    try:
        second.read_until(lambda seen: seen[-1][0] == 239)
    finally:
        second.kill()

    one = [seq for seq, _ in first.seen]
    two = [seq for seq, _ in second.seen]
    assert one == list(range(len(one))), "the first run starts at 0 with no gap or repeat"
    assert 80 <= len(one) < 240, "killed mid-stream"
    assert two == list(range(two[0], 240)), "the second run has no gap or repeat"
    assert set(one) | set(two) == set(range(240)), "nothing skipped"
    assert len(set(one) & set(two)) <= 1, "at most one record repeated"
    assert two[0] in (one[-1], one[-1] + 1)
    assert two[0] == killed_at + 1, "the restart begins right after the stored seq"
    assert all(data == f"r{seq}" for seq, data in first.seen + second.seen)
