"""SQLite storage of the local server: sessions, channel records and part ids.

Contract:

- A path or ``":memory:"``. A file is durable across a restart: sessions, records
  (with their sequence numbers) and part ids survive.
- Each ``(session, channel)`` pair has its own sequence numbers, from 0, monotonic,
  never reused (not even after a trim).
- :meth:`Store.append` is idempotent on ``part_id``: a part id seen before on that
  channel (within ``part_ttl_ms``, when given) appends nothing and returns the
  original sequence number. It holds under concurrent duplicate calls (one
  connection, one lock, a UNIQUE constraint).
- Readers block in :meth:`Store.wait` and are woken as soon as a record is appended
  (a condition variable; no polling).
- One store per database file: the file is opened in SQLite's exclusive locking
  mode, so a second store (another ``serve`` process, or a second server in the same
  process) raises :class:`DatabaseInUseError` at once instead of answering 500 to
  every append (the sequence numbers and the reader wake-ups live in this process).
  The lock is the operating system's: it goes with the process, even on ``kill -9``.

Every record is stored with its v2 wire fragment already encoded
(``{"seq_num":..,"timestamp":..,"headers"?:..,"body"?:..}``) so that serving a
batch is a string join.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

Headers = List[List[str]]
AppendListener = Callable[[str, str, int], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    external_id TEXT UNIQUE,
    type TEXT NOT NULL,
    task_identifier TEXT NOT NULL,
    trigger_config TEXT,
    current_run_id TEXT,
    tags TEXT NOT NULL,
    metadata TEXT,
    closed_at INTEGER,
    closed_reason TEXT,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    session_id TEXT NOT NULL,
    io TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    headers TEXT,
    body TEXT NOT NULL,
    frag TEXT NOT NULL,
    PRIMARY KEY (session_id, io, seq)
);
CREATE TABLE IF NOT EXISTS parts (
    session_id TEXT NOT NULL,
    io TEXT NOT NULL,
    part_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL DEFAULT 0,
    UNIQUE (session_id, io, part_id)
);
"""

_SESSION_COLUMNS = (
    "rowid, id, external_id, type, task_identifier, trigger_config, current_run_id, tags, "
    "metadata, closed_at, closed_reason, expires_at, created_at, updated_at"
)


def now_ms() -> int:
    """The current time in Unix milliseconds."""
    return int(time.time() * 1000)


def new_id(prefix: str) -> str:
    """A random friendly id such as ``session_k3v9...`` (lower-case alphanumerics)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(25))


# One shared encoder: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(value: Any) -> str:
    """Compact JSON, UTF-8 as is (what ``json.dumps`` with those options gives)."""
    return _ENCODER.encode(value)


def encode_fragment(seq: int, ts: int, headers: Optional[Headers], body: str) -> str:
    """The v2 wire form of one record; ``headers`` and ``body`` omitted when empty."""
    parts = ['{"seq_num":', str(seq), ',"timestamp":', str(ts)]
    if headers:
        parts.append(',"headers":')
        parts.append(_dumps(headers))
    if body:
        parts.append(',"body":')
        parts.append(_dumps(body))
    parts.append("}")
    return "".join(parts)


@dataclass
class SessionRecord:
    """One stored session (times in Unix ms)."""

    rowid: int
    id: str
    external_id: Optional[str]
    type: str
    task_identifier: str
    trigger_config: Optional[Dict[str, Any]]
    current_run_id: Optional[str]
    tags: List[str]
    metadata: Optional[Dict[str, Any]]
    closed_at: Optional[int]
    closed_reason: Optional[str]
    expires_at: Optional[int]
    created_at: int
    updated_at: int

    def status(self, at_ms: Optional[int] = None) -> str:
        """``CLOSED``, ``EXPIRED`` or ``ACTIVE``."""
        if self.closed_at is not None:
            return "CLOSED"
        if self.expires_at is not None and self.expires_at < (at_ms or now_ms()):
            return "EXPIRED"
        return "ACTIVE"

    def ids(self) -> List[str]:
        """Every id this session answers to (friendly id, then externalId if any)."""
        return [self.id] + ([self.external_id] if self.external_id else [])


@dataclass
class StoredRecord:
    """One record as stored: ``body`` is the envelope JSON text ('' for control records)."""

    seq: int
    timestamp: int
    headers: Headers = field(default_factory=list)
    body: str = ""
    fragment: str = ""

    @property
    def is_command(self) -> bool:
        """An S2 command record: its first header has an empty name."""
        return bool(self.headers) and self.headers[0][0] == ""

    @property
    def control(self) -> Optional[str]:
        """The ``trigger-control`` subtype, or None."""
        for name, value in self.headers:
            if name == "trigger-control":
                return value
        return None


class DatabaseInUseError(RuntimeError):
    """The database file is held by another local server (see the module docstring)."""


LOCK_WAIT = 1.0
"""Seconds a new store waits for the database lock (a server that is just exiting)."""


def _connect(path: str) -> sqlite3.Connection:
    """Open ``path`` and, for a file, take its exclusive lock (see the module docstring)."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=LOCK_WAIT)
    if path == ":memory:":
        return conn
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")  # takes the lock now, not at the first append
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" not in str(exc).lower():
            raise
        raise DatabaseInUseError(
            f"the database {path} is in use by another local server (another "
            "`sessions-client serve --db` or LocalServer on the same file); stop it or "
            "use another database file"
        ) from None
    return conn


class Store:
    """Thread-safe SQLite store (one connection guarded by one lock)."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = _connect(path)
        self._conn.executescript(_SCHEMA)
        part_columns = [row[1] for row in self._conn.execute("PRAGMA table_info(parts)")]
        if "claimed_at" not in part_columns:  # a database of an earlier version
            self._conn.execute("ALTER TABLE parts ADD COLUMN claimed_at INTEGER NOT NULL DEFAULT 0")
        self._cond = threading.Condition(threading.Lock())
        self._tails: Dict[Tuple[str, str], int] = {}
        self._last_ts: Dict[Tuple[str, str], Optional[int]] = {}
        self._generation = 0
        self._listeners: List[AppendListener] = []
        self._create_listeners: List[Callable[[str], None]] = []
        self._closed = False
        self._sessions: Dict[str, SessionRecord] = {}
        # A trim never deletes the channel's last record (the trim command itself), so
        # the highest stored seq always gives the channel's next seq after a restart.
        for sid, io, seq, ts in self._conn.execute(
            "SELECT r.session_id, r.io, r.seq, r.ts FROM records r JOIN"
            " (SELECT session_id, io, MAX(seq) AS top FROM records GROUP BY session_id, io) t"
            " ON r.session_id = t.session_id AND r.io = t.io AND r.seq = t.top"
        ):
            self._tails[(sid, io)] = seq + 1
            self._last_ts[(sid, io)] = ts

    # -------------------------------------------------------------- sessions

    def _row_to_session(self, row: Sequence[Any]) -> SessionRecord:
        return SessionRecord(
            rowid=row[0],
            id=row[1],
            external_id=row[2],
            type=row[3],
            task_identifier=row[4],
            trigger_config=json.loads(row[5]) if row[5] is not None else None,
            current_run_id=row[6],
            tags=json.loads(row[7]),
            metadata=json.loads(row[8]) if row[8] is not None else None,
            closed_at=row[9],
            closed_reason=row[10],
            expires_at=row[11],
            created_at=row[12],
            updated_at=row[13],
        )

    def get_session(self, ident: str) -> Optional[SessionRecord]:
        """The session whose friendly id (``session_…``) or externalId is ``ident``.

        Answers come from a cache that every create and update clears; treat the
        returned record as read-only.
        """
        with self._lock:
            cached = self._sessions.get(ident)
            if cached is not None:
                return cached
            column = "id" if ident.startswith("session_") else "external_id"
            row = self._conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE {column} = ?", (ident,)
            ).fetchone()
            if row is None:
                return None
            session = self._row_to_session(row)
            self._sessions[ident] = session
            return session

    def find_or_create_session(
        self,
        *,
        external_id: Optional[str],
        type: str,
        task_identifier: str,
        trigger_config: Optional[Dict[str, Any]],
        tags: List[str],
        metadata: Optional[Dict[str, Any]],
        expires_at: Optional[int],
    ) -> Tuple[SessionRecord, bool]:
        """Return ``(session, created)``; an existing externalId returns the stored session."""
        with self._lock:
            if external_id is not None:
                existing = self.get_session(external_id)
                if existing is not None:
                    return existing, False
            at = now_ms()
            friendly = new_id("session_")
            self._conn.execute(
                "INSERT INTO sessions (id, external_id, type, task_identifier, trigger_config,"
                " current_run_id, tags, metadata, closed_at, closed_reason, expires_at,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,NULL,NULL,?,?,?)",
                (
                    friendly,
                    external_id,
                    type,
                    task_identifier,
                    _dumps(trigger_config) if trigger_config is not None else None,
                    new_id("run_"),
                    _dumps(tags),
                    _dumps(metadata) if metadata is not None else None,
                    expires_at,
                    at,
                    at,
                ),
            )
            self._sessions.clear()
            created = self.get_session(friendly)
        assert created is not None
        self._bump_generation()
        for listener in list(self._create_listeners):
            listener(created.id)
        return created, True

    def update_session(self, friendly_id: str, changes: Dict[str, Any]) -> SessionRecord:
        """Apply ``changes`` (column name -> Python value) and bump ``updated_at``.

        Raises :class:`sqlite3.IntegrityError` when a new externalId is already taken.
        """
        columns: Dict[str, Callable[[Any], Any]] = {
            "external_id": lambda v: v,
            "trigger_config": lambda v: None if v is None else _dumps(v),
            "tags": _dumps,
            "metadata": lambda v: None if v is None else _dumps(v),
            "closed_at": lambda v: v,
            "closed_reason": lambda v: v,
        }
        sets = []
        values: List[Any] = []
        for name, value in changes.items():
            sets.append(f"{name} = ?")
            values.append(columns[name](value))
        sets.append("updated_at = ?")
        values.append(now_ms())
        values.append(friendly_id)
        with self._lock:
            self._conn.execute(f"UPDATE sessions SET {', '.join(sets)} WHERE id = ?", values)
            self._sessions.clear()
            updated = self.get_session(friendly_id)
        assert updated is not None
        self._bump_generation()
        return updated

    def list_sessions(self) -> List[SessionRecord]:
        """Every session, newest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY rowid DESC"
            ).fetchall()
        return [self._row_to_session(r) for r in rows]

    # --------------------------------------------------------------- records

    def append(
        self,
        session_id: str,
        io: str,
        body: str,
        *,
        headers: Optional[Headers] = None,
        part_id: Optional[str] = None,
        timestamp: Optional[int] = None,
        part_ttl_ms: Optional[int] = None,
        claimed_at: Optional[int] = None,
    ) -> Tuple[int, bool]:
        """Append one record; return ``(seq, appended)``.

        ``appended`` is False when ``part_id`` was already claimed on this channel
        (less than ``part_ttl_ms`` before ``claimed_at``, Unix ms, when a ttl is given;
        forever otherwise): then nothing is written and ``seq`` is the original
        record's. An expired claim is replaced and the record appended again.
        """
        key = (session_id, io)
        claim_ms = claimed_at if claimed_at is not None else now_ms()
        with self._lock:
            conn = self._conn
            if part_id is not None:
                row = conn.execute(
                    "SELECT seq, claimed_at FROM parts WHERE session_id=? AND io=? AND part_id=?",
                    (session_id, io, part_id),
                ).fetchone()
                if row is not None and (part_ttl_ms is None or claim_ms < row[1] + part_ttl_ms):
                    return int(row[0]), False
            seq = self._tails.get(key, 0)
            ts = timestamp if timestamp is not None else now_ms()
            hdrs = headers or []
            fragment = encode_fragment(seq, ts, hdrs, body)
            conn.execute("BEGIN")
            try:
                if part_id is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO parts (session_id, io, part_id, seq, claimed_at)"
                        " VALUES (?,?,?,?,?)",
                        (session_id, io, part_id, seq, claim_ms),
                    )
                conn.execute(
                    "INSERT INTO records (session_id, io, seq, ts, headers, body, frag)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (session_id, io, seq, ts, _dumps(hdrs) if hdrs else None, body, fragment),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            with self._cond:
                self._tails[key] = seq + 1
                self._last_ts[key] = ts
                self._cond.notify_all()
        for listener in list(self._listeners):
            listener(session_id, io, seq)
        return seq, True

    def append_many(self, session_id: str, io: str, bodies: Sequence[str]) -> List[int]:
        """Append one record per body (no headers, no part id claim) in one transaction,
        each stored as :meth:`append` stores it; return their seqs."""
        key = (session_id, io)
        with self._lock:
            first = self._tails.get(key, 0)
            ts = now_ms()
            rows = [
                (session_id, io, seq, ts, body, encode_fragment(seq, ts, None, body))
                for seq, body in enumerate(bodies, start=first)
            ]
            if not rows:
                return []
            conn = self._conn
            conn.execute("BEGIN")
            try:
                conn.executemany(
                    "INSERT INTO records (session_id, io, seq, ts, headers, body, frag)"
                    " VALUES (?,?,?,?,NULL,?,?)",
                    rows,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            with self._cond:
                self._tails[key] = first + len(rows)
                self._last_ts[key] = ts
                self._cond.notify_all()
        seqs = list(range(first, first + len(rows)))
        for seq in seqs:
            for listener in list(self._listeners):
                listener(session_id, io, seq)
        return seqs

    def read(
        self,
        session_id: str,
        io: str,
        start_seq: int,
        *,
        limit: int = 1000,
        max_bytes: int = 1024 * 1024,
    ) -> List[StoredRecord]:
        """Records with ``seq >= start_seq`` in order: at most ``limit`` records and about
        ``max_bytes`` of fragments (always at least one record when any exists)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, ts, headers, body, frag FROM records"
                " WHERE session_id=? AND io=? AND seq>=? ORDER BY seq LIMIT ?",
                (session_id, io, start_seq, limit),
            ).fetchall()
        out: List[StoredRecord] = []
        total = 0
        for seq, ts, headers, body, frag in rows:
            total += len(frag)
            if out and total > max_bytes:
                break
            out.append(
                StoredRecord(seq, ts, json.loads(headers) if headers else [], body, fragment=frag)
            )
        return out

    def tail(self, session_id: str, io: str) -> Tuple[int, Optional[int]]:
        """``(next_seq, timestamp of the last record or None)`` of a channel."""
        with self._cond:
            key = (session_id, io)
            return self._tails.get(key, 0), self._last_ts.get(key)

    def last_record(self, session_id: str, io: str, *, within: int) -> Optional[StoredRecord]:
        """The most recent record that is not a command record among the channel's
        last ``within`` records, or None (none there, or all of them commands)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, ts, headers, body, frag FROM records WHERE session_id=? AND io=?"
                " ORDER BY seq DESC LIMIT ?",
                (session_id, io, within),
            ).fetchall()
        for seq, ts, headers, body, frag in rows:
            record = StoredRecord(seq, ts, json.loads(headers) if headers else [], body, frag)
            if not record.is_command:
                return record
        return None

    def last_control(self, session_id: str, io: str, subtype: str) -> Optional[StoredRecord]:
        """The most recent control record of ``subtype`` on a channel, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT seq, ts, headers, body, frag FROM records WHERE session_id=? AND io=?"
                " AND headers LIKE ? ORDER BY seq DESC LIMIT 1",
                (session_id, io, '%["trigger-control","' + subtype + '"]%'),
            ).fetchone()
        if row is None:
            return None
        seq, ts, headers, body, frag = row
        return StoredRecord(seq, ts, json.loads(headers) if headers else [], body, frag)

    def trim(self, session_id: str, io: str, before_seq: int) -> int:
        """Append a ``["", "trim"]`` command record and delete records with seq < before_seq.

        Returns the command record's seq.
        """
        body = str(before_seq)
        seq, _ = self.append(session_id, io, body, headers=[["", "trim"]])
        with self._lock:
            self._conn.execute(
                "DELETE FROM records WHERE session_id=? AND io=? AND seq<?",
                (session_id, io, min(before_seq, seq)),
            )
        return seq

    # ----------------------------------------------------------- notification

    def add_listener(self, listener: AppendListener) -> None:
        """Call ``listener(session_id, io, seq)`` after every append (on the writer thread)."""
        self._listeners.append(listener)

    def add_create_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(session_id)`` after a session is created (on the creating thread)."""
        self._create_listeners.append(listener)

    def _bump_generation(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    @property
    def generation(self) -> int:
        """A counter bumped on every session create or update."""
        with self._cond:
            return self._generation

    def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Block until ``ready()`` is true (evaluated under the notification lock after
        every append or session change and on :meth:`wake_all`) or ``timeout`` passes."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or ready(), timeout)

    def channels(self) -> List[Tuple[str, str]]:
        """Every ``(session_id, io)`` channel that holds or held records."""
        with self._cond:
            return list(self._tails)

    def tail_unlocked(self, session_id: str, io: str) -> int:
        """``next_seq`` of a channel; only for use inside a :meth:`wait` predicate."""
        return self._tails.get((session_id, io), 0)

    def generation_unlocked(self) -> int:
        """The session generation; only for use inside a :meth:`wait` predicate."""
        return self._generation

    def wake_all(self) -> None:
        """Wake every waiter so that it re-checks its condition (e.g. on shutdown)."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiter for good and close the database."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        with self._lock:
            self._conn.close()
