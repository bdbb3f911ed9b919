"""MemoryCursor and FileCursor: contract, atomicity, and two processes sharing a file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import List

import pytest

from sessions_client.cursor import Cursor, FileCursor, MemoryCursor
from sessions_client.errors import ConfigurationError

REPO_ROOT = str(Path(__file__).resolve().parents[2])


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_memory_cursor_starts_at_initial_and_stores_what_is_set() -> None:
    cursor = MemoryCursor()
    assert cursor.get() is None
    cursor.set(5)
    assert cursor.get() == 5
    cursor.set(2)
    assert cursor.get() == 2
    assert MemoryCursor(7).get() == 7
    assert repr(MemoryCursor(7)) == "MemoryCursor(7)"


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_cursors_reject_anything_but_a_non_negative_int(bad: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        MemoryCursor().set(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FileCursor(tmp_path / "c").set(bad)  # type: ignore[arg-type]


def test_both_stores_satisfy_the_cursor_protocol(tmp_path: Path) -> None:
    assert isinstance(MemoryCursor(), Cursor)
    assert isinstance(FileCursor(tmp_path / "c"), Cursor)


def test_memory_cursor_is_thread_safe() -> None:
    cursor = MemoryCursor()
    seen: List[int] = []

    def worker(base: int) -> None:
        for i in range(500):
            cursor.set(base + i)
            value = cursor.get()
            assert isinstance(value, int)
            seen.append(value)

    threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seen) == 2000
    assert cursor.get() in {499, 1499, 2499, 3499}


def test_file_cursor_missing_file_reads_as_none(tmp_path: Path) -> None:
    assert FileCursor(tmp_path / "nothing-here").get() is None


def test_file_cursor_round_trips_and_survives_a_new_instance(tmp_path: Path) -> None:
    path = tmp_path / "cursor"
    FileCursor(path).set(41)
    assert path.read_text() == "41\n"
    assert FileCursor(str(path)).get() == 41


def test_file_cursor_never_moves_backwards_unless_reset(tmp_path: Path) -> None:
    cursor = FileCursor(tmp_path / "c")
    cursor.set(10)
    cursor.set(4)
    assert cursor.get() == 10, "a lower value is ignored"
    cursor.set(10)
    assert cursor.get() == 10
    cursor.set(11)
    assert cursor.get() == 11
    cursor.reset(3)
    assert cursor.get() == 3, "reset() rewinds on purpose"
    cursor.reset()
    assert cursor.get() is None
    assert not (tmp_path / "c").exists()
    cursor.reset()  # nothing to delete: still fine
    with pytest.raises(ValueError):
        cursor.reset(-1)


@pytest.mark.parametrize("content", ["", "abc", "12x", "-3", "1.5", "\x00\x00"])
def test_file_cursor_corrupt_file_is_a_clear_configuration_error(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "cursor"
    path.write_text(content)
    with pytest.raises(ConfigurationError) as info:
        FileCursor(path).get()
    assert str(path) in str(info.value)
    assert "corrupt" in str(info.value)


def test_file_cursor_tolerates_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "cursor"
    path.write_text("  17 \n")
    assert FileCursor(path).get() == 17


def test_file_cursor_repr_shows_the_path(tmp_path: Path) -> None:
    path = tmp_path / "cursor"
    assert repr(FileCursor(path)) == f"FileCursor({str(path)!r})"


def test_file_cursor_leaves_no_temporary_files(tmp_path: Path) -> None:
    cursor = FileCursor(tmp_path / "cursor")
    for i in range(20):
        cursor.set(i)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cursor", "cursor.lock"]


def test_file_cursor_failed_write_keeps_the_old_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cursor = FileCursor(tmp_path / "cursor")
    cursor.set(7)

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        cursor.set(8)
    monkeypatch.undo()
    assert cursor.get() == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cursor", "cursor.lock"]


def test_file_cursor_readers_never_see_a_torn_value_under_concurrent_threads(
    tmp_path: Path,
) -> None:
    cursor = FileCursor(tmp_path / "cursor")
    cursor.set(0)
    stop = threading.Event()
    errors: List[BaseException] = []

    def writer(base: int) -> None:
        for i in range(60):
            cursor.set(base + i)

    def reader() -> None:
        while not stop.is_set():
            try:
                value = FileCursor(tmp_path / "cursor").get()
                assert value is not None
            except BaseException as exc:
                errors.append(exc)
                return
            time.sleep(0.0005)

    r = threading.Thread(target=reader)
    r.start()
    writers = [threading.Thread(target=writer, args=(k * 100000,)) for k in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(30)
    stop.set()
    r.join(10)
    assert errors == []
    assert cursor.get() == 200059, "the highest value written wins"


WRITER = textwrap.dedent(
    """
    import sys
    from sessions_client.cursor import FileCursor
    path, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cursor = FileCursor(path)
    for i in range(start, start + count):
        cursor.set(i)
        value = cursor.get()
        assert value is not None
    print("done")
    """
)


def _spawn_writer(path: Path, start: int, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(start), str(count)],
        env=_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_setting_one_file_never_corrupt_it(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    procs = [_spawn_writer(path, 0, 150), _spawn_writer(path, 1000, 150)]
    reads = 0
    last = -1
    while any(p.poll() is None for p in procs) and reads < 100000:
        value = FileCursor(path).get()  # raises ConfigurationError on a torn file
        assert value is None or 0 <= value < 150 or 1000 <= value < 1150
        if value is not None:
            assert value >= last, f"the cursor went back from {last} to {value}"
            last = value
        reads += 1
        time.sleep(0.0005)  # leave the CPU to the writers
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert out.strip() == "done"
    assert FileCursor(path).get() == 1149


def test_two_processes_advancing_one_cursor_end_at_the_maximum(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    # Overlapping ranges; the process writing lower values runs longer, yet the highest wins.
    procs = [_spawn_writer(path, 100, 100), _spawn_writer(path, 0, 150)]
    for p in procs:
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
    assert FileCursor(path).get() == 199


def test_file_cursor_fsyncs_file_and_directory_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: List[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    FileCursor(tmp_path / "durable").set(1)
    assert len(calls) == 2
    calls.clear()
    fast = FileCursor(tmp_path / "fast", fsync=False)
    fast.set(2)
    assert calls == []
    assert fast.get() == 2
