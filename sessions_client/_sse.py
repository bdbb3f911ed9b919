"""Server-sent events: network chunks -> :class:`SSEEvent` s, by the WHATWG rules. No I/O.

Two steps, one function each: :func:`iter_event_blocks` frames the byte stream into
complete events, :func:`parse_event` reads one event's fields; :func:`iter_sse_events`
chains them. What the events mean for a session is :mod:`sessions_client._wire`'s
business.

Why a parser of our own rather than sseclient-py's (the design card's dependency, still
declared, no longer imported by the reader): sseclient-py frames events by looking for
``\n\n``, ``\r\r`` or ``\r\n\r\n`` at the end of its buffer, so an event ended by
mixed line endings (``LF`` then ``CRLF``) is glued to the next one; it dispatches the
incomplete event of a cut connection (a truncated batch would then be a protocol error
rather than a reconnect); it holds an event of any size (a server that never sends a
blank line grows it without bound); and it keeps an ``id`` holding NUL and a non-numeric
``retry``, which the WHATWG rules ignore. Each of those changes what a reader delivers,
and the rules fit in the few lines below.
"""

from __future__ import annotations

from typing import Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

from .errors import ProtocolError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEEvent", "iter_event_blocks", "iter_sse_events"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
Chunk = Union[bytes, bytearray, memoryview]


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


def _without_bom(chunks: Iterable[Chunk]) -> Iterator[bytes]:
    """``chunks`` as non-empty ``bytes``, a UTF-8 BOM at the very start removed."""
    head = b""  # the stream's first bytes, until they show whether a BOM starts it
    pieces = iter(chunks)
    for piece in pieces:
        head += piece
        if len(head) < len(_BOM) and _BOM.startswith(head):
            continue
        if head:
            yield head[len(_BOM) :] if head.startswith(_BOM) else head
            break
    for piece in pieces:
        if piece:
            yield bytes(piece)


def _normalised(chunks: Iterable[Chunk]) -> Iterator[bytes]:
    """``chunks`` without a leading BOM, every line ending made ``\n`` (a CRLF split
    across two chunks included)."""
    after_cr = False  # the previous chunk ended with CR: a leading LF completes that CRLF
    for chunk in _without_bom(chunks):
        if after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        after_cr = chunk[-1:] == b"\r"
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        yield chunk


def iter_event_blocks(chunks: Iterable[Chunk], max_event_bytes: int) -> Iterator[bytearray]:
    """The complete events of a byte stream: each event's lines, ``\\n``-terminated.

    Line endings are normalised first (:func:`_normalised`). An event is yielded as soon
    as its blank line has arrived, before the next chunk is read. It may not exceed
    ``max_event_bytes`` (its lines with their ``\\n``): :class:`ProtocolError` as soon as
    one does, complete or not, after the events before it. An incomplete event at the
    end of the stream is discarded (WHATWG).
    """
    buffer = bytearray()
    searched = 0  # the buffer before this offset holds no blank line
    for chunk in _normalised(chunks):
        buffer += chunk
        start = 0
        end = buffer.find(b"\n\n", max(searched - 1, 0))
        while end >= 0:
            if end + 1 - start > max_event_bytes:
                raise _too_large(max_event_bytes)
            yield buffer[start : end + 1]  # a copy: the buffer moves on
            start = end + 2
            end = buffer.find(b"\n\n", start)
        del buffer[:start]
        searched = len(buffer)
        if searched > max_event_bytes:
            raise _too_large(max_event_bytes)


def parse_event(block: Union[bytes, bytearray]) -> Optional[SSEEvent]:
    """The event whose lines are ``block`` (``\\n``-separated), or ``None`` when it has no
    ``data`` field (not dispatched).

    WHATWG field rules: a line starting with ``:`` is a comment; a line without a colon
    is a field with an empty value; one space after the colon is stripped; unknown
    fields are ignored; ``data`` lines are joined with ``\\n``; an empty ``event``
    means ``"message"``; an ``id`` holding NUL is ignored; ``retry`` counts only when
    all ASCII digits. Raises :class:`ProtocolError` when the block is not UTF-8.
    """
    kind = ""
    data: List[str] = []
    ident: Optional[str] = None
    retry: Optional[int] = None
    for name, value in _fields(block):
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id":
            ident = _ident(value, ident)
        elif name == "retry":
            retry = _retry(value, retry)
    if not data:
        return None
    return SSEEvent(kind or "message", "\n".join(data), ident, retry)


def _fields(block: Union[bytes, bytearray]) -> List[Tuple[str, str]]:
    """The ``(name, value)`` of each ``\\n``-separated line of ``block``: split at the
    first colon, one space after it stripped, the value empty when there is no colon.
    :class:`ProtocolError` when ``block`` is not UTF-8."""
    try:
        text = block.decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"event stream is not valid UTF-8 ({exc.reason})") from None
    fields: List[Tuple[str, str]] = []
    start, size = 0, len(text)
    while start < size:
        stop = text.find("\n", start)
        stop = size if stop < 0 else stop
        colon = text.find(":", start, stop)
        if colon < 0:
            fields.append((text[start:stop], ""))
        else:
            skip = colon + 2 if text.startswith(" ", colon + 1) else colon + 1
            fields.append((text[start:colon], text[skip:stop]))
        start = stop + 1
    return fields


def _ident(value: str, current: Optional[str]) -> Optional[str]:
    """An ``id`` field's value unless it holds NUL (then ignored: ``current``)."""
    return current if "\0" in value else value


def _retry(value: str, current: Optional[int]) -> Optional[int]:
    """A ``retry`` field's value when it is all ASCII digits, else ``current``."""
    return int(value) if value.isascii() and value.isdigit() else current


def iter_sse_events(
    chunks: Iterable[Chunk], *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> Iterator[SSEEvent]:
    """Yield the events of an event stream fed as raw network ``chunks``.

    :func:`iter_event_blocks` then :func:`parse_event`: LF, CR and CRLF line endings in
    any mix, split anywhere across chunks; a UTF-8 BOM stripped only at the very start;
    each event yielded as soon as its blank line has arrived (no read-ahead); events
    without data not dispatched. Raises :class:`ProtocolError` when an event grows past
    ``max_event_bytes`` (memory stays bounded, even for a stream that never sends a
    blank line) or an event is not valid UTF-8; ``ValueError`` for a limit below 1.
    """
    if max_event_bytes < 1:
        raise ValueError("max_event_bytes must be positive")
    for block in iter_event_blocks(chunks, max_event_bytes):
        event = parse_event(block)
        if event is not None:
            yield event
