"""The pool under gevent: 50 greenlets each holding an open reader on one ``Client``
never starve its ordinary calls (``gevent.monkey.patch_all()``, in a child process so
the patching cannot leak into this one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from sessions_client.testing import LocalServer

READERS = 50
RECORDS = 10
CHILD = Path(__file__).with_name("_gevent_load.py")

try:
    import gevent  # noqa: F401
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("gevent is not installed (pip install -e '.[test]')", allow_module_level=True)


@pytest.fixture
def srv() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def test_fifty_greenlet_readers_leave_ordinary_calls_free(srv: LocalServer, tmp_path: Path) -> None:
    srv.create_session("busy")
    gate = tmp_path / "readers-open"
    env = dict(
        os.environ,
        LOAD_URL=srv.url,
        LOAD_KEY=srv.secret_key,
        LOAD_SESSION="busy",
        LOAD_READERS=str(READERS),
        LOAD_GATE=str(gate),
    )
    child = subprocess.Popen(
        [sys.executable, str(CHILD)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while srv.request_counts.get("read", 0) < READERS and time.monotonic() < deadline:
            time.sleep(0.02)
        readers_seen = srv.request_counts.get("read", 0)
        gate.touch()  # every reader's request is open: the child's calls start now
        stdout, stderr = child.communicate(timeout=90)
    finally:
        child.kill()
        child.wait(10)
    assert child.returncode == 0, stderr[-3000:]
    assert readers_seen >= READERS, "the readers did not all open"
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["patched"] is True and result["gate_opened"] is True
    assert result["errors"] == []
    assert result["calls_done"] and result["calls_error"] is None, result["calls_error"]
    assert len(result["timings"]) == RECORDS and max(result["timings"]) < 5, result["timings"]
    assert result["readers_done"] == READERS
    assert all(seqs == list(range(RECORDS)) for seqs in result["received"])
