"""Cron runs that overlap: the run lock, a cursor that never goes back, drain --lock."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator, List

import pytest
from _cli_env import point_env_at

from sessions_client import CursorLockedError, FileCursor, Session, cli
from sessions_client.testing import LocalServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    return point_env_at(server, monkeypatch)


def _load_cron_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "cron_drain_example", ROOT / "examples" / "cron_drain.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_lock_refuses_a_second_holder_until_released(tmp_path: Path) -> None:
    path = tmp_path / "c"
    first = FileCursor(path, lock=True)
    assert first.locked
    assert repr(first).endswith("lock=True)")
    with pytest.raises(CursorLockedError) as info:
        FileCursor(path, lock=True)
    assert f"pid {os.getpid()}" in str(info.value)
    assert str(path) in str(info.value)
    FileCursor(path).set(3)  # get/set never need the run lock
    first.close()
    first.close()  # idempotent
    assert not first.locked
    with FileCursor(path, lock=True) as again:
        assert again.get() == 3
    assert not again.locked
    FileCursor(path, lock=True).close()


HOLDER = textwrap.dedent(
    """
    import sys
    from sessions_client import FileCursor
    cursor = FileCursor(sys.argv[1], lock=True)
    print("locked", flush=True)
    sys.stdin.readline()
    """
)


def test_run_lock_holds_across_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "c"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(CursorLockedError, match=f"pid {holder.pid}"):
            FileCursor(path, lock=True)
    finally:
        holder.kill()  # a killed run leaves no stale lock behind
        holder.wait(10)
    FileCursor(path, lock=True).close()


def _fill(server: LocalServer, external_id: str, count: int) -> None:
    server.create_session(external_id)
    for i in range(count):
        server.append(external_id, "out", f'{{"n": {i}}}')


def test_overlapping_cron_runs_process_each_record_once_in_total(
    env: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A is slow (blocked in its handler); run B starts meanwhile and must skip."""
    _fill(env, "overlap-1", 30)
    cron = _load_cron_example()
    cursor_file = tmp_path / "job.cursor"
    handled: List[int] = []
    a_inside = threading.Event()
    release_a = threading.Event()

    def slow_handle(record: Dict[str, Any]) -> None:
        if threading.current_thread().name == "run-a" and not a_inside.is_set():
            a_inside.set()
            assert release_a.wait(20)
        handled.append(record["seq"])

    monkeypatch.setattr(cron, "handle", slow_handle)
    args = ["overlap-1", "--cursor-file", str(cursor_file)]
    codes: Dict[str, int] = {}
    run_a = threading.Thread(target=lambda: codes.update(a=cron.main(args)), name="run-a")
    run_a.start()
    assert a_inside.wait(20)
    assert cron.main(args) == cron.EXIT_LOCKED  # B: at once, while A is still working
    release_a.set()
    run_a.join(20)
    assert codes == {"a": 0}
    assert cron.main(args) == 0  # C: after A, nothing new
    assert handled == list(range(30))
    assert FileCursor(cursor_file).get() == 29


def test_unlocked_overlapping_readers_never_move_the_cursor_back(
    server: LocalServer, tmp_path: Path
) -> None:
    """Without the lock two readers redo work, but the stored position only grows."""
    _fill(server, "overlap-2", 200)
    path = tmp_path / "shared.cursor"
    stop = threading.Event()
    observed: List[int] = []

    def watch() -> None:
        while not stop.is_set():
            value = FileCursor(path).get()
            if value is not None:
                observed.append(value)

    def run(delay_every: int) -> None:
        with Session("overlap-2", server.secret_key, server.url) as session:
            for record in session.iter_out(cursor=FileCursor(path, fsync=False), follow=False):
                if record["seq"] % delay_every == 0:
                    stop.wait(0.001)  # a slower consumer, overtaken by the other

    watcher = threading.Thread(target=watch)
    watcher.start()
    runs = [threading.Thread(target=run, args=(n,)) for n in (1, 50)]
    for t in runs:
        t.start()
    for t in runs:
        t.join(60)
    stop.set()
    watcher.join(10)
    assert FileCursor(path).get() == 199
    assert observed == sorted(observed), "the cursor went backwards"


def test_cli_drain_lock_exits_75_with_one_line_while_another_run_holds_it(
    env: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(env, "overlap-3", 3)
    cursor_file = tmp_path / "c"
    with FileCursor(cursor_file, lock=True):
        code = cli.main(["drain", "overlap-3", "--cursor", str(cursor_file), "--lock"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_LOCKED == 75
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert "another run holds the lock" in captured.err
    assert cli.main(["drain", "overlap-3", "--cursor", str(cursor_file), "--lock"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    FileCursor(cursor_file, lock=True).close()  # the run released its lock


def test_cli_drain_lock_needs_a_cursor(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["drain", "x", "--lock"]) == cli.EXIT_USAGE
    assert "--lock needs --cursor" in capsys.readouterr().err


class _CountingCursor(FileCursor):
    """Records every set() call, to see when drain stores its position."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.calls: List[int] = []

    def set(self, seq: int) -> None:
        self.calls.append(seq)
        super().set(seq)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[_CountingCursor]]:
    made: List[_CountingCursor] = []

    def factory(path: str, **kwargs: Any) -> _CountingCursor:
        cursor = _CountingCursor(path, **kwargs)
        made.append(cursor)
        return cursor

    import sessions_client.cursor as cursor_module

    monkeypatch.setattr(cursor_module, "FileCursor", factory)
    yield made


def test_cli_drain_saves_the_cursor_after_every_printed_record(
    env: LocalServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    counting: List[_CountingCursor],
) -> None:
    _fill(env, "overlap-4", 5)
    cursor_file = tmp_path / "c"
    assert cli.main(["drain", "overlap-4", "--cursor", str(cursor_file)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert counting[0].calls == [0, 1, 2, 3, 4]


def test_cli_drain_killed_mid_page_reprints_at_most_one_record(
    env: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stdout breaks after the third record: the cursor holds what was printed."""
    _fill(env, "overlap-5", 10)
    cursor_file = tmp_path / "c"

    class Breaking:
        def __init__(self) -> None:
            self.lines = 0

        def write(self, text: str) -> int:
            if self.lines == 3:
                raise KeyboardInterrupt  # the run is stopped here
            self.lines += 1
            return len(text)

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", Breaking())
    assert cli.main(["drain", "overlap-5", "--cursor", str(cursor_file)]) == cli.EXIT_INTERRUPTED
    assert FileCursor(cursor_file).get() == 2
