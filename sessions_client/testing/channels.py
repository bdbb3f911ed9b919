"""Channel routes of the local server: append, SSE read and drain.

See docs/protocol.md, "Append a record" to "Drain without streaming".

Checks come in production's order. Reads (SSE, drain): 401 (token) → 400 (``io``)
→ 404 ``{"error": "Not found"}`` with ``x-should-retry: false`` (an unknown
``session_…`` id) → 403 (scope). Appends: 401 → 413 (no ``Content-Length``, or over
1 MiB) → 400 (``io``) → 403 (scope: an under-scoped token gets 403 even on a missing
session) → 404 ``{"error": "Resource not found"}`` → 400 (closed or expired) → 403
(``.out`` without the secret key) → body checks. An externalId that names no session
yet is not an error for reads: the SSE stream is empty (it picks the session up if
it is created while the stream is open) and the drain returns no records; an
append to it is a 404, as production auto-creates nothing.

Append stores ``{"data": <raw body text>, "id": <part id>}`` (compact JSON) and
answers ``{"ok": true, "seq": n}``. A replayed ``X-Part-Id`` (one claimed on that
channel less than ``part_id_ttl`` seconds before, 5 minutes by default) appends
nothing and answers ``{"ok": true}`` **without** ``seq``, as production; after that
window the same part id appends again. A body that is not UTF-8 is a 400.

The drain answers every record after ``afterEventId`` up to the tail in one
response. An SSE stream sends the backlog as batches without ``tail``, then a ping
at once on reaching the live edge, then live batches (with ``tail``) and a ping
after every idle interval drawn at random from ``ping_interval`` (5-15 s by
default). A read of ``.out`` with ``X-Peek-Settled: 1`` whose tail is settled (a
``turn-complete`` under at most one trailing command record, see ``_is_settled``)
answers ``X-Session-Settled: true``, sends what follows the cursor without a ping and
ends with ``[DONE]`` at once, as production's ``wait=0`` read.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import time
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from .auth import UNAUTHORIZED_BODY, Principal
from .faults import StreamPlan
from .handler import (
    MAX_BODY_BYTES,
    Request,
    Response,
    ServerContext,
    StreamWriter,
    json_response,
    text_response,
)
from .sse import DONE, V1_PING, v1_events, v2_batch, v2_error, v2_ping
from .store import SessionRecord, StoredRecord

ENVELOPE_OVERHEAD = 20
DEFAULT_TIMEOUT_SECONDS = 60
PAGE_RECORDS = 1000
PAGE_BYTES = 1024 * 1024
STREAM_START_HEADER = "X-Trigger-Stream-Start"
MAX_SQLITE_INT = 2**63 - 1
PEEK_RECORDS = 2  # production's peek: tail_offset=2, count=2 (s2realtimeStreams.server.ts)


def _error(status: int, message: str) -> Response:
    return json_response(status, {"ok": False, "error": message})


def _new_part_id() -> str:
    return secrets.token_urlsafe(6)[:7]


class _Target:
    """The session and channel a channel route addresses."""

    def __init__(self, param: str, io: str, session: Optional[SessionRecord]) -> None:
        self.param = param
        self.io = io
        self.session = session

    def ids(self) -> Set[str]:
        ids = {self.param}
        if self.session is not None:
            ids.update(self.session.ids())
        return ids


def _resolve(
    request: Request, ctx: ServerContext, action: str
) -> Union[Tuple[Principal, _Target], Response]:
    principal = request.authenticate()
    if action == "write":
        declared = (request.header("Content-Length") or "").strip()
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            return json_response(413, {"error": "Request body too large"})
    param, io = request.segments[3], request.segments[4]
    if io not in ("in", "out"):
        details = [{"path": ["io"], "message": "Invalid enum value. Expected 'out' | 'in'"}]
        return json_response(400, {"error": "Params Error", "details": details})
    session = ctx.store.get_session(param)
    if session is None and action == "read" and param.startswith("session_"):
        return json_response(404, {"error": "Not found"}, [("x-should-retry", "false")])
    target = _Target(param, io, session)
    if not principal.can(action, target.ids()):
        return json_response(403, UNAUTHORIZED_BODY)
    if session is None and action == "write":
        return json_response(404, {"error": "Resource not found"})
    return principal, target


# ------------------------------------------------------------------- append


def handle_append(request: Request, ctx: ServerContext) -> Response:
    """``POST .../{io}/append``."""
    resolved = _resolve(request, ctx, "write")
    if isinstance(resolved, Response):
        return resolved
    principal, target = resolved
    session = target.session
    assert session is not None
    raw = request.body(MAX_BODY_BYTES)
    if session.closed_at is not None:
        return _error(400, "Cannot append to a closed session")
    if session.status() == "EXPIRED":
        return _error(400, "Cannot append to an expired session")
    if target.io == "out" and not principal.secret:
        return _error(403, "Appending to the out channel requires secret key authentication")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _error(400, "The record body must be valid UTF-8 text")
    client_part_id = request.header("X-Part-Id") or None
    part_id = client_part_id or _new_part_id()
    envelope = json.dumps({"data": text, "id": part_id}, separators=(",", ":"), ensure_ascii=False)
    if len(envelope.encode("utf-8")) + ENVELOPE_OVERHEAD > MAX_BODY_BYTES:
        return _error(413, "Record too large: the stored envelope exceeds 1 MiB")
    seq, appended = ctx.store.append(
        session.id,
        target.io,
        envelope,
        part_id=client_part_id,
        part_ttl_ms=int(ctx.part_id_ttl * 1000),
        claimed_at=int(ctx.clock() * 1000),
    )
    return json_response(200, {"ok": True, "seq": seq} if appended else {"ok": True})


# -------------------------------------------------------------------- drain


def drain_item(record: StoredRecord) -> Dict[str, Any]:
    """One item of the ``/records`` answer for a data or control record."""
    if record.control is not None or not record.body:
        item: Dict[str, Any] = {"data": "", "id": "", "seqNum": record.seq}
    else:
        try:
            envelope = json.loads(record.body)
        except ValueError:
            envelope = None
        if isinstance(envelope, dict):
            part_id = envelope.get("id")
            item = {
                "data": envelope.get("data", ""),
                "id": part_id if isinstance(part_id, str) else "",
                "seqNum": record.seq,
            }
        else:
            item = {"data": record.body, "id": "", "seqNum": record.seq}
    if record.headers:
        item["headers"] = record.headers
    return item


def handle_records(request: Request, ctx: ServerContext) -> Response:
    """``GET .../{io}/records[?afterEventId=n]``: every record after ``n`` up to the tail."""
    resolved = _resolve(request, ctx, "read")
    if isinstance(resolved, Response):
        return resolved
    _, target = resolved
    after = request.param("afterEventId")
    if after is not None and not (after.isascii() and after.isdigit()):
        details = [{"path": ["afterEventId"], "message": "Invalid"}]
        return json_response(400, {"error": "Query Error", "details": details})
    # Past SQLite's integer range nothing can exist (and binding it would raise).
    start = min(int(after) + 1, MAX_SQLITE_INT) if after is not None else 0
    items: List[Dict[str, Any]] = []
    if target.session is not None:
        while True:
            page = ctx.store.read(
                target.session.id, target.io, start, limit=PAGE_RECORDS, max_bytes=PAGE_BYTES
            )
            if not page:
                break
            items.extend(drain_item(r) for r in page if not r.is_command)
            start = page[-1].seq + 1
    return json_response(200, {"records": items})


# --------------------------------------------------------------------- read


def _timeout_seconds(raw: Optional[str]) -> Union[int, Response]:
    if not raw:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw.strip())
    except ValueError:
        return text_response(400, "Invalid timeout seconds")
    if not math.isfinite(value) or not value.is_integer():
        return text_response(400, "Invalid timeout seconds")
    if value < 1:
        return text_response(400, "Timeout seconds must be greater than 0")
    if value > 600:
        return text_response(400, "Timeout seconds must be less than 600")
    return int(value)


def _start_seq(request: Request, ctx: ServerContext, target: _Target) -> int:
    last = request.header("Last-Event-ID")
    if last is not None:
        last = last.strip()
        if last.isascii() and last.isdigit():
            return int(last) + 1
        return 0
    start = request.header(STREAM_START_HEADER)
    if start is not None and start.lower() == "latest" and target.session is not None:
        return ctx.store.tail(target.session.id, target.io)[0]
    return 0


def _is_settled(ctx: ServerContext, target: _Target) -> bool:
    """Production's settled peek (``X-Peek-Settled: 1``, ``.out`` only): read the
    channel's last ``PEEK_RECORDS`` records and walk back past command records (the
    agent's trim after each turn); settled when the first other one is a
    ``turn-complete``. Two trailing commands, or none but commands, is not settled."""
    if target.io != "out" or target.session is None:
        return False
    last = ctx.store.last_record(target.session.id, target.io, within=PEEK_RECORDS)
    return last is not None and last.control == "turn-complete"


def handle_read(request: Request, ctx: ServerContext) -> Optional[Response]:
    """``GET .../{io}`` (SSE). Streams and returns None; answers errors as a Response."""
    resolved = _resolve(request, ctx, "read")
    if isinstance(resolved, Response):
        return resolved
    _, target = resolved
    if request.method == "HEAD":
        return Response(
            200, b"", content_type="text/event-stream", headers=[("X-Last-Chunk-Index", "0")]
        )
    timeout = _timeout_seconds(request.header("Timeout-Seconds"))
    if isinstance(timeout, Response):
        return timeout
    start = _start_seq(request, ctx, target)
    settled = request.header("X-Peek-Settled") == "1" and _is_settled(ctx, target)
    headers = [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("Connection", "keep-alive"),
    ]
    if ctx.wire == "v2":
        headers.append(("X-Stream-Version", "v2"))
    if settled:
        headers.append(("X-Session-Settled", "true"))
    writer = StreamWriter(request.handler)
    stream = _SSEStream(ctx, writer, target, start, timeout, settled, ctx.faults.take_stream_plan())
    try:
        writer.start(headers)
        stream.run()
    except _StreamEnded:
        pass
    except OSError:
        request.handler.close_connection = True
    return None


class _StreamEnded(Exception):
    """The stream was cut (fault) or the server is stopping; the connection is gone."""


class _SSEStream:
    """One open SSE response: sends batches as records arrive, pings while idle."""

    def __init__(
        self,
        ctx: ServerContext,
        writer: StreamWriter,
        target: _Target,
        start: int,
        timeout: int,
        settled: bool,
        plan: StreamPlan,
    ) -> None:
        self.ctx = ctx
        self.writer = writer
        self.target = target
        self.cursor = start
        self.timeout = timeout
        self.settled = settled
        self.plan = plan
        self.stalled = False
        self.records_sent = 0
        self.v2 = ctx.wire == "v2"
        self.live = False  # True once the reader reached the live edge (first ping sent)

    def _abort(self) -> None:
        self.writer.abort()
        raise _StreamEnded()

    def _emit(self, data: bytes) -> None:
        plan, writer = self.plan, self.writer
        if (
            plan.stall_seconds > 0
            and not self.stalled
            and writer.bytes_sent + len(data) > plan.stall_after_bytes
        ):
            keep = max(0, plan.stall_after_bytes - writer.bytes_sent)
            self._write(data[:keep])
            data = data[keep:]
            self._stall()
        self._write(data)

    def _write(self, data: bytes) -> None:
        plan, writer = self.plan, self.writer
        if plan.cut and plan.cut_after_bytes is not None:
            room = plan.cut_after_bytes - writer.bytes_sent
            if len(data) >= room:
                writer.write(data[: max(room, 0)])
                self._abort()
        writer.write(data)

    def _stall(self) -> None:
        self.stalled = True
        if self.ctx.faults.sleep(self.plan.stall_seconds):
            self._abort()

    def run(self) -> None:
        ctx, store, target, plan = self.ctx, self.ctx.store, self.target, self.plan
        if plan.cut and plan.cut_after_records is None and not plan.cut_after_bytes:
            self._abort()
        if plan.stall_seconds > 0 and plan.stall_after_bytes <= 0:
            self._stall()
        if target.session is not None:
            self.cursor = min(self.cursor, store.tail(target.session.id, target.io)[0])
        now = time.monotonic()
        idle_deadline = now + self.timeout
        next_ping = now  # the first ping goes out on reaching the live edge
        while True:
            if ctx.stopping.is_set():
                self._abort()
            if plan.error is not None and self.records_sent >= plan.error_after_records:
                self._emit(v2_error(*plan.error))  # a storage error ends the stream
                self.writer.finish()
                return
            if target.session is None:
                target.session = store.get_session(target.param)
            if target.session is not None and self._send_available():
                now = time.monotonic()
                idle_deadline = now + self.timeout
                if self.live:
                    next_ping = now + self._ping_gap()
                continue
            if self.settled:
                break
            now = time.monotonic()
            if now >= idle_deadline:
                break
            if now >= next_ping:
                self._send_ping()
                self.live = True
                next_ping = now + self._ping_gap()
                continue
            self._wait(min(idle_deadline, next_ping) - now)
        self._emit(DONE)
        self.writer.finish()

    def _send_available(self) -> bool:
        session = self.target.session
        assert session is not None
        store, io = self.ctx.store, self.target.io
        limit = PAGE_RECORDS
        if self.plan.cut and self.plan.cut_after_records is not None:
            limit = max(1, min(limit, self.plan.cut_after_records - self.records_sent))
        if self.plan.error is not None:
            limit = max(1, min(limit, self.plan.error_after_records - self.records_sent))
        records = store.read(session.id, io, self.cursor, limit=limit, max_bytes=PAGE_BYTES)
        if not records:
            return False
        if self.v2:
            self._emit(v2_batch(records, store.tail(session.id, io) if self.live else None))
        else:
            self._emit(v1_events(records))
        self.cursor = records[-1].seq + 1
        self.records_sent += len(records)
        cut_after = self.plan.cut_after_records if self.plan.cut else None
        if cut_after is not None and self.records_sent >= cut_after:
            self._abort()
        return True

    def _ping_gap(self) -> float:
        low, high = self.ctx.ping_interval
        return random.uniform(low, high)

    def _send_ping(self) -> None:
        session = self.target.session
        if self.v2:
            if session is not None:
                next_seq, last_ts = self.ctx.store.tail(session.id, self.target.io)
            else:
                next_seq, last_ts = 0, None
            self._emit(v2_ping(next_seq, last_ts))
        else:
            self._emit(V1_PING)

    def _wait(self, seconds: float) -> None:
        store, ctx, io, cursor = self.ctx.store, self.ctx, self.target.io, self.cursor
        session = self.target.session
        if session is not None:
            sid = session.id
            store.wait(
                lambda: ctx.stopping.is_set() or store.tail_unlocked(sid, io) > cursor,
                max(seconds, 0.0),
            )
        else:
            generation = store.generation
            store.wait(
                lambda: ctx.stopping.is_set() or store.generation_unlocked() != generation,
                max(seconds, 0.0),
            )
