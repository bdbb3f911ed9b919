"""Server-sent events: network chunks -> :class:`SSEEvent` s, by the WHATWG rules. No I/O.

Our own parser, not sseclient-py's (still the declared dependency): sseclient-py glues an
event ended by mixed line endings (LF then CRLF) to the next one, dispatches the cut-off
event of a broken connection (a truncated batch: a protocol error, not a reconnect), and
holds an event of any size (a stream without a blank line: unbounded memory).
"""

from __future__ import annotations

from typing import Iterable, Iterator, List, NamedTuple, Optional, Union

from .errors import ProtocolError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEEvent", "iter_sse_events"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
Chunk = Union[bytes, bytearray, memoryview]


class SSEEvent(NamedTuple):
    """One dispatched event: its type (``"message"`` when the stream named none), its
    ``data`` lines joined with ``"\\n"``, and its own ``id`` field (``None`` without one;
    not carried over from earlier events: the cursor is the record seq, the caller's)."""

    event: str = "message"
    data: str = ""
    id: Optional[str] = None


def iter_sse_events(
    chunks: Iterable[Chunk], *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> Iterator[SSEEvent]:
    """Yield the events of an event stream fed as raw network ``chunks``, each as soon as
    its blank line has arrived: LF, CR and CRLF line endings in any mix, split anywhere;
    a UTF-8 BOM stripped only at the very start; events without data, and an incomplete
    event at the end, not dispatched. :class:`ProtocolError` once an event (its lines with
    their ``\\n``) grows past ``max_event_bytes`` or is not UTF-8; ``ValueError`` for a
    limit below 1."""
    if max_event_bytes < 1:
        raise ValueError("max_event_bytes must be positive")
    too_large = f"server-sent event larger than max_event_bytes ({max_event_bytes} bytes)"
    buffer = bytearray()
    searched = 0  # the buffer before this offset holds no blank line
    for chunk in _normalised(chunks):
        buffer += chunk
        start = 0
        end = buffer.find(b"\n\n", max(searched - 1, 0))
        while end >= 0:
            if end + 1 - start > max_event_bytes:
                raise ProtocolError(too_large)
            try:
                event = _parse_event(buffer[start : end + 1].decode())
            except UnicodeDecodeError as exc:
                raise ProtocolError(f"event stream is not valid UTF-8 ({exc.reason})") from None
            if event is not None:
                yield event
            start = end + 2
            end = buffer.find(b"\n\n", start)
        del buffer[:start]
        searched = len(buffer)
        if searched > max_event_bytes:
            raise ProtocolError(too_large)


def _normalised(chunks: Iterable[Chunk]) -> Iterator[bytes]:
    """``chunks`` as ``bytes``, a UTF-8 BOM at the very start removed and every line
    ending made ``\\n`` (a CRLF split across two chunks included)."""
    head: Optional[bytes] = b""  # the first bytes, until they show whether a BOM starts them
    after_cr = False  # the previous chunk ended with CR: a leading LF completes that CRLF
    for piece in chunks:
        if head is not None:
            head += piece
            if len(head) < len(_BOM) and _BOM.startswith(head):
                continue
            piece, head = head[len(_BOM) :] if head.startswith(_BOM) else head, None
        if not piece:
            continue  # an empty chunk says nothing about a CRLF
        chunk = bytes(piece)
        if after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        after_cr = chunk[-1:] == b"\r"
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        yield chunk


def _parse_event(text: str) -> Optional[SSEEvent]:
    """The event of the ``\\n``-ended lines ``text`` (``None`` without a ``data`` field), by
    the WHATWG field rules: split at the first colon (none: an empty value), one space
    after it stripped; comments (``:``), unknown fields and an ``id`` with NUL ignored."""
    kind = ""
    data: List[str] = []
    ident: Optional[str] = None
    start, size = 0, len(text)
    while start < size:
        stop = text.find("\n", start)  # found: the block ends with one
        colon = text.find(":", start, stop)
        colon = stop if colon < 0 else colon  # no colon: the line is the name
        skip = colon + 2 if text.startswith(" ", colon + 1, stop) else colon + 1
        name, value = text[start:colon], text[skip:stop]
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            ident = value
        start = stop + 1
    return SSEEvent(kind or "message", "\n".join(data), ident) if data else None
