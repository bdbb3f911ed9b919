"""Cursor stores: where a reader resumes after a restart.

A cursor store holds one integer, the ``seq`` of the last record a consumer has
finished with. Readers (``Session.iter_out(cursor=...)``, ``drain_*``,
``read_turn``) start *after* the stored seq and store a record's seq only once the
consumer has finished with it, which gives at-least-once delivery: after a crash
at most the record being processed is seen again, and none is skipped.

Any object with ``get() -> Optional[int]`` and ``set(seq: int) -> None`` is a
cursor store (:class:`Cursor`). Two ship here: :class:`MemoryCursor` (one
process) and :class:`FileCursor` (survives the process, never moves backwards,
and can hold a run lock so that cron runs never overlap).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from types import TracebackType
from typing import IO, Any, Optional, Protocol, Type, Union, runtime_checkable

from .errors import ConfigurationError, CursorLockedError

try:  # POSIX only; on other platforms FileCursor relies on os.replace alone.
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - exercised on Windows only
    _fcntl = None  # type: ignore[assignment]

__all__ = ["Cursor", "MemoryCursor", "FileCursor"]

logger = logging.getLogger("sessions_client.cursor")


@runtime_checkable
class Cursor(Protocol):
    """A store for one resume position: the seq of the last record fully processed."""

    def get(self) -> Optional[int]:
        """Return the stored seq, or ``None`` when nothing was stored yet."""
        ...

    def set(self, seq: int) -> None:
        """Store ``seq`` (a non-negative int)."""
        ...


def _check_seq(seq: Any) -> int:
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"a cursor seq must be a non-negative int, got {seq!r}")
    return seq


class MemoryCursor:
    """A thread-safe in-process cursor store.

    ``MemoryCursor(initial=None)``: ``get()`` returns ``initial`` until ``set()`` is
    called; ``set(seq)`` stores ``seq`` as given (a lower value rewinds).
    """

    def __init__(self, initial: Optional[int] = None) -> None:
        self._lock = threading.Lock()
        self._seq = None if initial is None else _check_seq(initial)

    def get(self) -> Optional[int]:
        """Return the stored seq, or ``None``."""
        with self._lock:
            return self._seq

    def set(self, seq: int) -> None:
        """Store ``seq``; raises ``ValueError`` unless it is a non-negative int."""
        checked = _check_seq(seq)
        with self._lock:
            self._seq = checked

    def __repr__(self) -> str:
        return f"MemoryCursor({self.get()!r})"


class _FileLock:
    """An exclusive ``flock`` on a side file, also held across threads of one process."""

    def __init__(self, path: str, thread_lock: threading.Lock) -> None:
        self._path = path
        self._thread_lock = thread_lock
        self._file: Optional[IO[bytes]] = None

    def __enter__(self) -> _FileLock:
        self._thread_lock.acquire()
        if _fcntl is None:  # pragma: no cover - non-POSIX
            return self
        try:
            self._file = open(self._path, "ab")  # noqa: SIM115 - closed in __exit__
            _fcntl.flock(self._file.fileno(), _fcntl.LOCK_EX)
        except BaseException:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._thread_lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        try:
            if self._file is not None and _fcntl is not None:
                _fcntl.flock(self._file.fileno(), _fcntl.LOCK_UN)
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._thread_lock.release()


class FileCursor:
    """A cursor store in a small text file, for jobs that resume across processes.

    ``FileCursor(path, *, fsync=True, lock=False)``

    - The file holds the seq as decimal digits and a newline (``"42\\n"``).
    - ``get()`` returns ``None`` while the file does not exist, and raises
      :class:`~sessions_client.errors.ConfigurationError` naming the path when its
      content is not such a number (delete the file to start over).
    - ``set(seq)`` never moves the cursor backwards: under an exclusive
      ``fcntl.flock`` on ``path + ".lock"`` it reads the stored value and writes
      ``seq`` only when it is higher (a lower or equal value is ignored). Two
      processes or threads advancing the same file therefore end at the highest
      position either reached, whatever the order of their writes. The write goes
      to a temporary file in the same directory, is fsynced, ``os.replace``-d over
      ``path``, and the directory is fsynced: a reader, even in another process
      or after a power cut, sees the old or the new value, never a torn one.
      (Without ``fcntl``, i.e. not on POSIX, only the atomic replace protects it.)
    - ``reset(seq=None)`` rewinds on purpose: it stores ``seq`` as given, or
      deletes the file (``None``: start from the beginning).
    - ``lock=True`` takes a *run lock* at construction: a non-blocking ``flock`` on
      ``path + ".run-lock"``, held until :meth:`close` (or the end of a ``with``
      block, or the process). While one ``FileCursor`` holds it, constructing
      another with ``lock=True`` on the same path, in any process, raises
      :class:`~sessions_client.errors.CursorLockedError` at once: a cron job that
      overlaps the previous run exits instead of redoing its work. ``get`` /
      ``set`` do not need the run lock (plain ``FileCursor(path)`` still works).
      POSIX only (elsewhere ``lock=True`` raises ``ConfigurationError``).
    - ``fsync=False`` skips both fsyncs: the file still never tears (the rename is
      atomic, also under SIGKILL), but a power cut may bring back an older value.
      Each ``set()`` is then a few times faster.
    """

    def __init__(
        self, path: Union[str, os.PathLike[str]], *, fsync: bool = True, lock: bool = False
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.lock_path = self.path + ".lock"
        self.run_lock_path = self.path + ".run-lock"
        self.fsync = fsync
        self._thread_lock = threading.Lock()
        self._run_lock: Optional[int] = None
        if lock:
            self._run_lock = _take_run_lock(self.run_lock_path, self.path)

    def get(self) -> Optional[int]:
        """Return the stored seq, ``None`` if the file does not exist."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(64)
        except FileNotFoundError:
            return None
        return self._parse(raw)

    def set(self, seq: int) -> None:
        """Store ``seq`` if it is higher than the stored value; otherwise do nothing."""
        checked = _check_seq(seq)
        with _FileLock(self.lock_path, self._thread_lock):
            current = self.get()
            if current is not None and current >= checked:
                if current > checked:
                    logger.debug("cursor %s stays at %d (ignored %d)", self.path, current, checked)
                return
            self._write(checked)

    def reset(self, seq: Optional[int] = None) -> None:
        """Rewind on purpose: store ``seq`` as given, or delete the file when ``None``."""
        checked = None if seq is None else _check_seq(seq)
        with _FileLock(self.lock_path, self._thread_lock):
            if checked is not None:
                self._write(checked)
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    @property
    def locked(self) -> bool:
        """Whether this instance holds the run lock."""
        return self._run_lock is not None

    def close(self) -> None:
        """Release the run lock, if held (idempotent). The stored value stays."""
        fd, self._run_lock = self._run_lock, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> FileCursor:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def _parse(self, raw: bytes) -> int:
        text = raw.decode("ascii", "replace").strip()
        if not text.isdigit() or not text.isascii():
            raise ConfigurationError(
                f"cursor file {self.path!r} is corrupt (expected a decimal seq, "
                f"found {text[:20]!r}); delete it to start from the beginning"
            )
        return int(text)

    def _write(self, seq: int) -> None:
        directory = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(
            prefix="." + os.path.basename(self.path) + ".", suffix=".tmp", dir=directory
        )
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"%d\n" % seq)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            _fsync_directory(directory)

    def __repr__(self) -> str:
        suffix = ", lock=True" if self.locked else ""
        return f"FileCursor({self.path!r}{suffix})"


def _take_run_lock(lock_path: str, cursor_path: str) -> int:
    """Open ``lock_path`` and take a non-blocking exclusive flock; return the fd.

    Writes this process's pid into the file, so that a refused run can name the
    holder. Raises :class:`CursorLockedError` when another holder has it.
    """
    if _fcntl is None:  # pragma: no cover - non-POSIX
        raise ConfigurationError("FileCursor(lock=True) needs fcntl.flock (POSIX)")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise CursorLockedError(
            f"another run holds the lock on cursor {cursor_path!r}{who}; lock file {lock_path!r}"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, b"%d\n" % os.getpid())
    return fd


def _fsync_directory(directory: str) -> None:
    """Make a rename durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse
        logger.debug("could not fsync directory %s", directory)
    finally:
        os.close(fd)
