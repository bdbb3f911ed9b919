"""Server-sent events: network chunks -> :class:`SSEEvent` s, by the WHATWG rules. No I/O.

:func:`iter_sse_events` frames the byte stream into complete events here (line-ending
normalisation across chunk boundaries, BOM, size limit: where ``sseclient-py`` falls
short); ``sseclient-py`` parses the fields of every event except the canonical
``[event: X][id: Y]data: Z`` ones servers send, which one regular expression reads to
the same result four times faster (``tests/unit/test_wire_differential.py`` holds the two
paths to the same answers on arbitrary input). What the events mean for a session is
:mod:`sessions_client.wire`'s business.
"""

from __future__ import annotations

import itertools
import operator
import re
from typing import Iterable, Iterator, List, Match, NamedTuple, Optional

import sseclient

from .errors import ProtocolError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEEvent", "iter_sse_events"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_new_tuple = tuple.__new__


class SSEEvent(NamedTuple):
    """One dispatched server-sent event.

    ``event`` is the event type (``"message"`` when the stream named none); ``data`` the
    ``data`` lines joined with ``"\\n"``; ``id`` the value of this event's own ``id``
    field (``None`` when it had none; unlike a browser's last-event-ID buffer it is not
    carried over from earlier events, because the cursor is the record ``seq``, tracked
    by the caller); ``retry`` the last valid (ASCII digits only) ``retry`` field of the
    event, as an int, else ``None``.
    """

    event: str = "message"
    data: str = ""
    id: Optional[str] = None
    retry: Optional[int] = None


def _too_large(limit: int) -> ProtocolError:
    return ProtocolError(f"server-sent event larger than max_event_bytes ({limit} bytes)")


def _drop_ignored_fields(block: bytes) -> bytes:
    """Remove the lines WHATWG says to ignore but sseclient would apply.

    Those are an ``id`` whose value contains NUL and a ``retry`` whose value is not
    all ASCII digits (sseclient keeps the last value of either field, valid or not).
    """
    kept = []
    for line in block.split(b"\n"):
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"id" and b"\0" in value:
            continue
        if name == b"retry" and not (value and value.isdigit()):
            continue
        kept.append(line)
    return b"\n".join(kept)


def _has_ignored_fields(block: bytes) -> bool:
    """Whether ``block`` may hold a ``retry`` line or an ``id`` line containing NUL."""
    if len(block) <= 4096:
        # Small events: two C-level scans cost less than a Python loop over the lines.
        return b"retry" in block or b"\0" in block
    # Big events: walk the line starts with find (memchr speed, a handful of lines), ten
    # times cheaper than searching a megabyte data line for b"retry".
    start = 0
    end = len(block)
    while start < end:
        newline = block.find(b"\n", start)
        if newline < 0:
            newline = end  # the last line (events are yielded without their blank line)
        if block.startswith(b"retry", start) or (
            block.startswith(b"id", start) and block.find(b"\0", start, newline) >= 0
        ):
            return True
        start = newline + 1
    return False


def _frame_events(chunks: Iterable[bytes], limit: int) -> Iterator[List[bytes]]:
    """Cut a byte stream into complete events, LF-normalised, yielded as one list per chunk.

    Each event is the bytes of its lines, ``\n``-separated, with or without the blank
    line that ended it (the field parser reads both alike). Handles CR, LF and CRLF line
    endings (also split across chunks), strips a UTF-8 BOM at the very start of the
    stream, and raises :class:`ProtocolError` as soon as an event (counted after
    normalisation, up to and including its last line's ``\n``) exceeds ``limit`` bytes,
    so at most about ``limit`` bytes plus one chunk are held; the events of a chunk
    before the one too large are yielded first. A trailing incomplete event is discarded
    at the end of the stream (WHATWG).
    """
    # The incomplete event is kept as a list of chunk pieces, joined once when it
    # completes: no per-chunk buffer growth, no memmove of the remainder, one copy.
    pieces: List[bytes] = []
    held = 0
    head: Optional[bytes] = b""  # bytes held until we know whether the stream starts with a BOM
    skip_lf = False  # the previous chunk ended with CR: a leading LF here belongs to that CRLF
    for chunk in chunks:
        if type(chunk) is not bytes:
            chunk = bytes(chunk)
        if head is not None:
            head += chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                continue
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
            head = None
        if skip_lf and chunk:
            skip_lf = False
            if chunk[0] == 10:
                chunk = chunk[1:]
        # One C-level scan decides; chunks without CR (the usual case) are not copied.
        if b"\r" in chunk:
            skip_lf = chunk[-1] == 13
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if not chunk:
            continue
        events: List[bytes] = []
        if pieces and chunk[0] == 10 and pieces[-1][-1] == 10:
            # The blank line straddles the chunk boundary (held <= limit: no size check).
            pieces.append(b"\n")
            block = b"".join(pieces)
            if _has_ignored_fields(block):
                block = _drop_ignored_fields(block)
            events.append(block)
            pieces = []
            held = 0
            chunk = chunk[1:]
        # One C-level split per chunk finds every complete event in it (the bytes after
        # the last blank line are the start of the next one), instead of a find, a slice,
        # a size check and a yield per event: per-record (v1) streams carry ~100 a chunk.
        parts = chunk.split(b"\n\n")
        rest = parts.pop()
        if parts:
            if pieces:
                if held + len(parts[0]) + 1 > limit:
                    raise _too_large(limit)
                pieces.append(parts[0])
                block = b"".join(pieces)
                pieces = []
                held = 0
                if _has_ignored_fields(block):
                    block = _drop_ignored_fields(block)
                events.append(block)
                del parts[0]
            oversize = -1
            if len(chunk) > limit:  # only then can one of the events be too large
                for index, part in enumerate(parts):
                    if len(part) + 1 > limit:
                        oversize = index
                        del parts[index:]
                        break
            # One scan of the chunk rules out ignored fields in all of its events at once.
            if parts and (b"retry" in chunk or b"\0" in chunk):
                parts = [_drop_ignored_fields(p) if _has_ignored_fields(p) else p for p in parts]
            events += parts
            if oversize >= 0:
                if events:
                    yield events
                raise _too_large(limit)
        if events:
            yield events
        if rest:
            pieces.append(rest)
            held += len(rest)
            if held > limit:
                raise _too_large(limit)


_EVENT_FIELDS = operator.attrgetter("event", "data", "id", "retry")

# A canonical event: an optional ``event: X`` line, an optional ``id: Y`` line (no NUL),
# then one ``data: Z`` line that is the last (the caller checks that no newline follows).
# Production and LocalServer send nothing else, and for those events this match plus one
# UTF-8 decode gives exactly what sseclient-py's line loop gives, four times cheaper
# (benchmarks/PROFILE.md): the per-event loop was most of the per-record (v1) read cost
# and five copies of each 150 KB batch line. tests/unit/test_wire_differential.py holds
# the two to the same answers on arbitrary input.
_CANONICAL = re.compile(rb"(?:event: ([^\n]+)\n)?(?:id: ([^\n\0]*)\n)?data: ")


class _EventParser(sseclient.SSEClient):
    """sseclient-py's field parser (``events()``), fed complete, LF-normalised events."""

    def __init__(self, blocks: Iterator[List[bytes]]) -> None:
        super().__init__(blocks)  # type: ignore[arg-type]  # only _read (below) reads it
        self._blocks = blocks

    def _read(self) -> Iterator[bytes]:
        # The blocks are whole events already: skip sseclient's line-by-line re-joining
        # (a copy of every event per line); chain flattens the per-chunk lists in C. Were
        # ``_read`` ever renamed, the base class would split lists, not bytes, and every
        # test would fail.
        return itertools.chain.from_iterable(self._blocks)


def _parse_with_sseclient(blocks: Iterator[List[bytes]]) -> Iterator[SSEEvent]:
    """The events of complete, LF-normalised ``blocks``, parsed by sseclient-py."""
    parsed = _EventParser(blocks).events()
    try:
        # attrgetter reads the four fields in one C call and tuple.__new__ builds the
        # named tuple without the Python-level __new__ of NamedTuple: half the cost.
        for fields in map(_EVENT_FIELDS, parsed):
            if fields[3] is not None:
                fields = (fields[0], fields[1], fields[2], int(fields[3]))
            yield _new_tuple(SSEEvent, fields)
    finally:
        parsed.close()


def iter_sse_events(
    chunks: Iterable[bytes], *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> Iterator[SSEEvent]:
    """Yield the events of an event stream fed as raw network ``chunks``.

    Follows the WHATWG event-stream rules: LF, CR and CRLF line endings (in any mix, and
    split anywhere across chunks); comments; multi-line ``data`` joined with ``"\\n"``; a
    UTF-8 BOM stripped only at the very start; unknown fields ignored; a field without a
    colon has an empty value; one space after the colon is stripped; an ``id`` containing
    NUL is ignored; events without data are not dispatched; ``event`` defaults to
    ``"message"``; ``retry`` only when all digits. An incomplete event at the end of the
    stream is discarded. Each event is yielded as soon as its terminating blank line has
    arrived (no read-ahead).

    Raises :class:`ProtocolError` when an event grows past ``max_event_bytes`` (memory
    stays bounded, even for a stream that never sends a blank line) or the stream is not
    valid UTF-8. Framing is done here; fields are parsed by sseclient-py, except in the
    canonical ``[event: X\\n][id: Y\\n]data: Z`` events that servers send, which one
    regular expression reads to the same result.
    """
    if max_event_bytes < 1:
        raise ValueError("max_event_bytes must be positive")
    match = _CANONICAL.match
    try:
        for blocks in _frame_events(chunks, max_event_bytes):
            for block in blocks:
                found = match(block)
                if found is not None and block.find(b"\n", found.end()) < 0:
                    yield _canonical_event(block, found)
                else:
                    yield from _parse_with_sseclient(iter(([block],)))
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"event stream is not valid UTF-8 ({exc.reason})") from None


def _canonical_event(block: bytes, found: Match[bytes]) -> SSEEvent:
    """The event of a ``block`` that ``_CANONICAL`` matched up to its only data line."""
    kind, ident = found.groups()
    return _new_tuple(
        SSEEvent,
        (
            "message" if kind is None else kind.decode(),
            block[found.end() :].decode(),
            None if ident is None else ident.decode(),
            None,
        ),
    )
