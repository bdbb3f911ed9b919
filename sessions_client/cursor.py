"""Cursor stores: where a reader resumes after a restart.

A cursor store holds one integer, the ``seq`` of the last record a consumer has
finished with. Readers (``Session.iter_out(cursor=...)``, ``drain_*``,
``read_turn``) start *after* the stored seq and store a record's seq only once the
consumer has finished with it, which gives at-least-once delivery: after a crash
at most the record being processed is seen again, and none is skipped.

Any object with ``get() -> Optional[int]`` and ``set(seq: int) -> None`` is a
cursor store (:class:`Cursor`). Two ship here: :class:`MemoryCursor` (one
process) and :class:`FileCursor` (survives the process; cron jobs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from types import TracebackType
from typing import IO, Any, Optional, Protocol, Type, Union, runtime_checkable

from .errors import ConfigurationError

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

    ``FileCursor(path, *, monotonic=False, fsync=True)``

    - The file holds the seq as decimal digits and a newline (``"42\\n"``).
    - ``get()`` returns ``None`` while the file does not exist, and raises
      :class:`~sessions_client.errors.ConfigurationError` naming the path when its
      content is not such a number (delete the file to start over).
    - ``set(seq)`` writes a temporary file in the same directory, fsyncs it,
      ``os.replace``-s it over ``path`` and fsyncs the directory: a reader, even in
      another process or after a power cut, sees the old or the new value, never a
      torn one. Writers are serialised with ``fcntl.flock`` on ``path + ".lock"``
      (POSIX; elsewhere only the atomic replace protects the file).
    - By default ``set(seq)`` stores ``seq`` as given, so a lower value rewinds the
      cursor (replay on purpose). With ``monotonic=True`` a lower value than the one
      on disk is ignored under the lock: useful when several processes advance the
      same cursor and the highest position must win.
    - ``fsync=False`` skips both fsyncs: the file still never tears (the rename is
      atomic, also under SIGKILL), but a power cut may bring back an older value.
      Each ``set()`` is then a few times faster.
    """

    def __init__(
        self, path: Union[str, os.PathLike[str]], *, monotonic: bool = False, fsync: bool = True
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.lock_path = self.path + ".lock"
        self.monotonic = monotonic
        self.fsync = fsync
        self._thread_lock = threading.Lock()

    def get(self) -> Optional[int]:
        """Return the stored seq, ``None`` if the file does not exist."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(64)
        except FileNotFoundError:
            return None
        return self._parse(raw)

    def set(self, seq: int) -> None:
        """Atomically store ``seq`` (see the class docstring for ``monotonic``)."""
        checked = _check_seq(seq)
        with _FileLock(self.lock_path, self._thread_lock):
            if self.monotonic:
                current = self.get()
                if current is not None and current >= checked:
                    return
            self._write(checked)

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
        suffix = ", monotonic=True" if self.monotonic else ""
        return f"FileCursor({self.path!r}{suffix})"


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
