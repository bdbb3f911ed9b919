"""Wire decoding: server-sent events -> record dicts, for both wire shapes. No I/O.

* :mod:`sessions_client.sse` turns network chunks into :class:`SSEEvent` s
  (:func:`iter_sse_events`, re-exported here).
* :func:`decode_event` / :func:`decode_drain_item` turn events (or drain items) into the
  record dicts of DESIGN.md: ``{"seq", "data", "part_id", "timestamp", "headers",
  "control"}``. :func:`iter_decoded` does both for the reader, fused on its hot path.

Error policy (``ProtocolError`` vs logged skip). Anything that could change which records
are delivered, what they contain, or the cursor raises :class:`ProtocolError`: invalid
JSON in a batch, a v1 event or a record body; a batch without a ``records`` list; a record
that is not an object; a missing, negative, non-integer (``bool`` counts as non-integer)
or non-increasing ``seq_num``; malformed ``headers`` (they decide whether a record is
data, control or command); a non-string ``body``; a v1 data event without a decimal
``id:``; an event larger than ``max_event_bytes``; a stream that is not UTF-8. Advisory
values are skipped with a debug log instead: a malformed ``tail`` or ``timestamp``
becomes ``None``, an unparsable ``ping`` is still a ping (without tail), an unknown event
type decodes to kind ``"ignored"``. A body that is valid JSON but not an envelope
``{"data": X, "id": ...}`` is delivered as a data record whose data is that JSON value
(exactly what :func:`decode_payload` would make of the raw body) with ``part_id=None``:
nothing is lost and the cursor stays right. A data record without ``body`` (omitted when
empty) is delivered with ``data=""`` and ``part_id=None``. A command record in a drain
answer (the server removes those) raises: :func:`decode_drain_item` returns one record
and cannot skip.

Legacy controls: a data record whose decoded data is an object with ``type``
``"trigger:turn-complete"`` or ``"trigger:upgrade-required"`` is delivered as a control
record (``control="turn-complete"`` / ``"upgrade-required"``) that keeps its data and
part id, and whose ``headers`` gain a synthesised ``["trigger-control", subtype]`` pair,
so that code looking at ``headers`` sees every control record the same way.
"""

from __future__ import annotations

import json
import logging
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Tuple,
)

from .errors import ProtocolError
from .sse import (
    _CANONICAL,
    DEFAULT_MAX_EVENT_BYTES,
    SSEEvent,
    _canonical_event,
    _frame_events,
    _new_tuple,
    _parse_with_sseclient,
    iter_sse_events,
)

__all__ = [
    "CONTROL_HEADER",
    "DEFAULT_MAX_EVENT_BYTES",
    "Decoded",
    "Record",
    "SSEEvent",
    "decode_drain_item",
    "decode_event",
    "decode_payload",
    "iter_decoded",
    "iter_sse_events",
    "wire_shape",
]

logger = logging.getLogger("sessions_client.wire")

CONTROL_HEADER = "trigger-control"

Record = Dict[str, Any]

_JSON_WHITESPACE = " \t\n\r"
_LEGACY_CONTROL_TYPES = {
    "trigger:turn-complete": "turn-complete",
    "trigger:upgrade-required": "upgrade-required",
}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Strict JSON, as JavaScript's JSON.parse (the official SDK) reads it: Python's json also
# accepts NaN and Infinity, which would turn a record whose text is "NaN" into a float.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)

# The C scanner behind the decoder, called directly: one C call per value instead of
# json.loads' Python-level wrapper (type checks, two regex matches), ~3x less overhead per
# small record body. Its answers are the decoder's whenever the text has no surrounding
# whitespace; every other case falls back to the decoder's full decode().
_scan_once: Callable[[str, int], Tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


class Decoded(NamedTuple):
    """What one event means for a reader.

    ``kind``: ``"records"`` (v1 record events or a v2 batch), ``"ping"``, ``"done"`` (``[DONE]``:
    the normal end of a long-poll window), ``"error"`` (``event: error``; ``error`` holds
    its text) or ``"ignored"`` (an event type this client does not know).
    ``records``: data and control records in stream order; command records removed.
    ``last_seq``: the highest seq the event covers, command records included: the cursor
    to resume after. ``tail``: the next seq the server will write (v2 ping or batch tail).
    ``first_seq``: the first seq the event covers, command records included (to spot a
    trimmed stream after a reconnect without parsing the event again).
    """

    kind: str
    records: List[Record]
    last_seq: Optional[int] = None
    tail: Optional[int] = None
    error: Optional[str] = None
    first_seq: Optional[int] = None


# --------------------------------------------------------------------------- the readers' entry


def iter_decoded(
    chunks: Iterable[bytes], shape: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> Iterator[Decoded]:
    """The meaning of the events of ``chunks``, for a reader: what ``decode_event(event,
    shape)`` gives for each event of ``iter_sse_events(chunks)``, in the same order, with
    the same errors, except that consecutive v1 record events that arrived in one network
    chunk come as one ``"records"`` item (their records in order; ``first_seq`` the
    first event's id, ``last_seq`` the highest), as a v2 batch does.

    That is the per-record stream's hot path: a canonical v1 record event
    (``id: <digits>\\ndata: ...``) is decoded straight from its bytes, without building
    an :class:`SSEEvent` or dispatching on its type, and the reader's per-event work runs
    once per chunk (~100 events) instead of once per record. Nothing waits for more
    bytes: a chunk's events have all arrived. When an event fails to decode, the records
    of the events before it are yielded first, then the error is raised.
    """
    if shape not in ("v1", "v2"):
        raise ValueError(f"unknown wire shape {shape!r}")
    if max_event_bytes < 1:
        raise ValueError("max_event_bytes must be positive")
    match = _CANONICAL.match
    v1 = shape == "v1"
    try:
        for blocks in _frame_events(chunks, max_event_bytes):
            records: List[Record] = []  # of the v1 record events not yet yielded
            first = last = -1  # their first and highest seq (-1: none pending)
            try:
                for block in blocks:
                    found = match(block)
                    if found is None or block.find(b"\n", found.end()) >= 0:
                        events = list(_parse_with_sseclient(iter(([block],))))
                    else:
                        kind, ident = found.groups()
                        if v1 and kind is None and ident and ident.isdigit():
                            text = block[found.end() :].decode()
                            if text != "[DONE]":
                                seq = int(ident)
                                record = _v1_record(seq, text)
                                if record is not None:
                                    records.append(record)
                                if first < 0:
                                    first = seq
                                if seq > last:
                                    last = seq
                                continue
                        events = [_canonical_event(block, found)]
                    for event in events:
                        decoded = decode_event(event, shape)
                        if first >= 0:
                            yield _v1_batch(records, first, last)
                            records = []
                            first = last = -1
                        yield decoded
            except (ProtocolError, UnicodeDecodeError):
                if first >= 0:
                    yield _v1_batch(records, first, last)
                raise
            if first >= 0:
                yield _v1_batch(records, first, last)
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"event stream is not valid UTF-8 ({exc.reason})") from None


def _v1_batch(records: List[Record], first: int, last: int) -> Decoded:
    """One ``"records"`` item for the v1 record events of one chunk."""
    return _new_tuple(Decoded, ("records", records, last, None, None, first))


def wire_shape(headers: Mapping[str, str]) -> str:
    """Return ``"v2"`` when the response headers say ``X-Stream-Version: v2``, else ``"v1"``.

    The header name is matched case-insensitively (a ``requests`` CaseInsensitiveDict or
    a plain dict both work); the value is compared case-insensitively, spaces stripped.
    """
    for name, value in headers.items():
        if name.lower() == "x-stream-version":
            return "v2" if str(value).strip().lower() == "v2" else "v1"
    return "v1"


# --------------------------------------------------------------------------- JSON helpers


def _parse_json(text: str, what: str, seq: Optional[int] = None) -> Any:
    """``text`` decoded as strict JSON; :class:`ProtocolError` if invalid.

    The error names ``what`` (formatted with ``seq`` only then: no string building on the
    hot path).
    """
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError, RecursionError):
        pass
    else:
        if end == len(text):
            return value
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ProtocolError(f"{what.format(seq)} is nested too deeply to decode") from None
    except ValueError as exc:
        raise ProtocolError(f"{what.format(seq)} is not valid JSON ({exc})") from None


def _decode_text(text: str) -> Any:
    """The JSON value ``text`` holds when it parses as JSON, else ``text`` itself."""
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError, RecursionError):
        # decode() starts scanning at the first non-whitespace character: when that is
        # index 0 it would fail exactly like the scanner did, so skip the slow retry.
        if not text or text[0] not in _JSON_WHITESPACE:
            return text
    else:
        if end == len(text) or not text[end:].strip(_JSON_WHITESPACE):
            return value
        return text
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError):
        return text


def decode_payload(data: Any) -> Any:
    """Decode an envelope's ``data`` (PROTOCOL.md 3.3).

    A string is parsed as JSON when it is valid JSON, judged like JavaScript's
    ``JSON.parse`` in the official SDK (surrounding JSON whitespace allowed; ``NaN`` and
    ``Infinity`` are not JSON), and returned unchanged otherwise (also when too deeply
    nested or holding an integer too long for Python); any other value is returned as is.
    """
    if type(data) is str:
        return _decode_text(data)
    return data


# --------------------------------------------------------------------------- records


def _seq_error(value: Any, where: str) -> ProtocolError:
    if value is None:
        return ProtocolError(f"{where}: missing sequence number")
    return ProtocolError(
        f"{where}: sequence number must be a non-negative integer, got {type(value).__name__}"
        + (f" {value!r}" if type(value) in (int, float, bool) else "")
    )


def _check_seq(value: Any, where: str) -> int:
    if type(value) is not int or value < 0:
        raise _seq_error(value, where)
    return value


def _timestamp(value: Any) -> Optional[int]:
    if type(value) is int:
        return value
    if value is not None:
        logger.debug("ignoring a non-integer record timestamp")
    return None


def _part_id(value: Any) -> Optional[str]:
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    if value is not None:
        logger.debug("ignoring a part id that is neither a string nor an integer")
    return None


def _check_headers(value: Any, where: str) -> List[List[str]]:
    """Validate ``headers`` (absent = empty) as a list of ``[name, value]`` string pairs."""
    if value is None:
        return []
    if type(value) is not list:
        raise ProtocolError(f"{where}: headers must be a list of [name, value] pairs")
    headers = []
    for pair in value:
        if (
            type(pair) is not list
            or len(pair) != 2
            or type(pair[0]) is not str
            or type(pair[1]) is not str
        ):
            raise ProtocolError(f"{where}: headers must be a list of [name, value] string pairs")
        headers.append([pair[0], pair[1]])
    return headers


def _classify(headers: List[List[str]]) -> Tuple[bool, Optional[str]]:
    """Return ``(is_command, control_subtype)`` for a record's headers (PROTOCOL 3.2)."""
    if not headers:
        return False, None
    if headers[0][0] == "":
        return True, None
    for name, value in headers:
        if name == CONTROL_HEADER:
            return False, value
    return False, None


def _control_record(
    seq: int, timestamp: Optional[int], headers: List[List[str]], control: str
) -> Record:
    return {
        "seq": seq,
        "data": None,
        "part_id": None,
        "timestamp": timestamp,
        "headers": headers,
        "control": control,
    }


def _data_record(
    seq: int, timestamp: Optional[int], headers: List[List[str]], data: Any, part_id: Any
) -> Record:
    """A data record; legacy ``trigger:*`` data becomes a control record (data kept).

    Legacy controls get a synthesised ``["trigger-control", subtype]`` header appended,
    so that ``headers`` identifies a control record the same way in every shape.
    """
    if type(data) is str:
        data = _decode_text(data)
    control = None
    if type(data) is dict:
        kind = data.get("type")
        if type(kind) is str and kind in _LEGACY_CONTROL_TYPES:
            control = _LEGACY_CONTROL_TYPES[kind]
            headers = headers + [[CONTROL_HEADER, control]]
    return {
        "seq": seq,
        "data": data,
        "part_id": _part_id(part_id),
        "timestamp": timestamp,
        "headers": headers,
        "control": control,
    }


def _envelope_record(
    seq: int, timestamp: Optional[int], headers: List[List[str]], envelope: Any
) -> Record:
    """A data record from a decoded envelope ``{"data": X, "id": part id}``.

    A JSON value that is not an envelope is delivered whole as the data, without part id.
    """
    if type(envelope) is dict and "data" in envelope:
        return _data_record(seq, timestamp, headers, envelope["data"], envelope.get("id"))
    logger.debug("record %d: body is not a {data, id} envelope; delivering it whole", seq)
    return _data_record(seq, timestamp, headers, envelope, None)


def _tail(value: Any, where: str) -> Optional[int]:
    if value is None:
        return None
    if type(value) is dict:
        seq = value.get("seq_num")
        if type(seq) is int and seq >= 0:
            return seq
    logger.debug("%s event: ignoring a malformed tail", where)
    return None


def _batch_record_error(raw_records: List[Any], raw: Any, last: int) -> ProtocolError:
    """The error for the first bad record ``raw`` of a batch (off the hot path)."""
    # Every record before ``raw`` is a distinct dict, so the first identical item is it.
    index = next(i for i, item in enumerate(raw_records) if item is raw)
    if type(raw) is not dict:
        return ProtocolError(f"batch record #{index} is not a JSON object")
    seq = raw.get("seq_num")
    if type(seq) is not int or seq < 0:
        return _seq_error(seq, f"batch record #{index} seq_num")
    return ProtocolError(f"batch record #{index}: seq_num {seq} does not follow {last}")


def _decode_batch(data: str) -> Decoded:
    doc = _parse_json(data, "batch event data")
    if type(doc) is not dict:
        raise ProtocolError("batch event data is not a JSON object")
    raw_records = doc.get("records")
    if type(raw_records) is not list:
        raise ProtocolError("batch event has no 'records' list")
    records: List[Record] = []
    append = records.append
    # Hot loop: module globals bound to locals, one combined check per failure class
    # (the exact error is worked out off the hot path), the record dict built as a
    # literal, and the two C scans (body, then data string) called directly.
    scan = _scan_once
    legacy = _LEGACY_CONTROL_TYPES
    last = -1  # seq_num is never negative, so the first record always follows it
    for raw in raw_records:
        if type(raw) is not dict:
            raise _batch_record_error(raw_records, raw, last)
        seq = raw.get("seq_num")
        if type(seq) is not int or seq <= last:
            raise _batch_record_error(raw_records, raw, last)
        last = seq
        timestamp = raw.get("timestamp")
        if type(timestamp) is not int:
            timestamp = _timestamp(timestamp)
        raw_headers = raw.get("headers")
        headers: List[List[str]] = []
        if raw_headers is not None:
            headers = _check_headers(raw_headers, f"record {seq}")
            is_command, control = _classify(headers)
            if is_command:
                continue
            if control is not None:
                append(_control_record(seq, timestamp, headers, control))
                continue
        body = raw.get("body", "")
        if type(body) is not str:
            raise ProtocolError(f"record {seq}: body must be a string")
        # Hot path: a compact JSON envelope whose data is a string holding JSON.
        try:
            envelope, end = scan(body, 0)
        except (StopIteration, ValueError, RecursionError):
            end = -1
        if end != len(body):
            if not body:
                append(_data_record(seq, timestamp, headers, "", None))
                continue
            envelope = _parse_json(body, "record {} body", seq)
        if type(envelope) is not dict or "data" not in envelope:
            append(_envelope_record(seq, timestamp, headers, envelope))
            continue
        value = envelope["data"]
        part_id = envelope.get("id")
        if type(part_id) is not str:
            part_id = _part_id(part_id)
        if type(value) is str:
            value = _decode_text(value)
        if type(value) is dict:
            kind = value.get("type")
            if type(kind) is str and kind in legacy:
                append(_data_record(seq, timestamp, headers, value, part_id))
                continue
        append(
            {
                "seq": seq,
                "data": value,
                "part_id": part_id,
                "timestamp": timestamp,
                "headers": headers,
                "control": None,
            }
        )
    first = raw_records[0]["seq_num"] if raw_records else None
    tail = _tail(doc.get("tail"), "batch")
    return Decoded("records", records, last if raw_records else None, tail, None, first)


def _decode_ping(data: str) -> Decoded:
    try:
        doc = _DECODER.decode(data)
    except (ValueError, RecursionError):
        logger.debug("ping event data is not JSON; treating it as a bare ping")
        return Decoded("ping", [], None, None, None)
    tail = _tail(doc.get("tail"), "ping") if type(doc) is dict else None
    return Decoded("ping", [], None, tail, None)


def _decode_v1_record(event: SSEEvent) -> Decoded:
    raw_id = event.id
    if raw_id is None or not (raw_id.isascii() and raw_id.isdigit()):
        raise ProtocolError("v1 record event without a decimal integer id")
    return _decode_v1_text(int(raw_id), event.data)


def _decode_v1_text(seq: int, text: str) -> Decoded:
    """A v1 record event with id ``seq`` and data ``text``."""
    record = _v1_record(seq, text)
    return Decoded("records", [] if record is None else [record], seq, None, None, seq)


def _v1_record(seq: int, text: str) -> Optional[Record]:
    """The record of a v1 record event with id ``seq`` and data ``text`` (``None``: a
    command record)."""
    # Hot path, as in _decode_batch: direct C scans and the record dict built here, instead
    # of _parse_json -> _envelope_record -> _data_record -> decode_payload per record.
    try:
        doc, end = _scan_once(text, 0)
    except (StopIteration, ValueError, RecursionError):
        end = -1
    if end != len(text):
        doc = _parse_json(text, "v1 event {} data", seq)
    if type(doc) is dict and "data" in doc and doc.get("headers") is None:
        value = doc["data"]
        part_id = doc.get("id")
        if type(part_id) is not str:
            part_id = str(part_id) if type(part_id) is int else _part_id(part_id)
        timestamp = doc.get("timestamp")
        if timestamp is not None and type(timestamp) is not int:
            timestamp = _timestamp(timestamp)
        if type(value) is str:
            value = _decode_text(value)
        if type(value) is dict:
            kind = value.get("type")
            if type(kind) is str and kind in _LEGACY_CONTROL_TYPES:
                return _data_record(seq, timestamp, [], value, part_id)
        return {
            "seq": seq,
            "data": value,
            "part_id": part_id,
            "timestamp": timestamp,
            "headers": [],
            "control": None,
        }
    headers: List[List[str]] = []
    if type(doc) is not dict:
        return _envelope_record(seq, None, headers, doc)
    if doc.get("headers") is not None:
        headers = _check_headers(doc["headers"], f"record {seq}")
        is_command, control = _classify(headers)
        if is_command:
            return None
        if control is not None:
            return _control_record(seq, None, headers, control)
    return _envelope_record(seq, _timestamp(doc.get("timestamp")), headers, doc)


def decode_event(event: SSEEvent, shape: str) -> Decoded:
    """Decode one event of a session channel stream spoken in ``shape`` (``"v1"``/``"v2"``).

    * ``data: [DONE]`` -> kind ``"done"``; ``event: error`` -> kind ``"error"`` with the
      text; ``event: ping`` -> kind ``"ping"`` with the tail, if any (both shapes).
    * ``event: batch`` -> the batch's records (v2; also accepted under ``"v1"``, the event
      type being unambiguous). The event ``id:`` (an S2 triple) is never used: the cursor
      is ``records[].seq_num``. Command records (first header name empty) are dropped but
      count in ``last_seq``; control records (a ``trigger-control`` header) have
      ``data=None`` and keep all their headers.
    * v1: an unnamed (``message``) event is one record; its ``id:`` is the seq and its
      data the envelope ``{"data": X, "id": part id}`` (optional ``headers`` honoured).
    * Any other event type -> kind ``"ignored"``.

    Data is decoded with :func:`decode_payload`; legacy ``trigger:turn-complete`` /
    ``trigger:upgrade-required`` data records become control records whose data is kept
    and whose headers gain ``["trigger-control", subtype]``. Raises
    :class:`ProtocolError` on bad input (see the module docstring for the policy).
    """
    if shape not in ("v1", "v2"):
        raise ValueError(f"unknown wire shape {shape!r}")
    kind = event.event
    if kind == "error":
        return Decoded("error", [], None, None, event.data)
    if event.data == "[DONE]":
        return Decoded("done", [])
    if kind == "batch":
        return _decode_batch(event.data)
    if kind == "ping":
        return _decode_ping(event.data)
    if kind == "message" and shape == "v1":
        return _decode_v1_record(event)
    logger.debug("ignoring a %r event on a %s stream", kind, shape)
    return Decoded("ignored", [])


def decode_drain_item(item: Mapping[str, Any]) -> Record:
    """Decode one item of ``GET .../records``: ``{"data", "id", "seqNum", "headers"?}``.

    Returns the record dict (a control record when a ``trigger-control`` header is
    present, or for legacy ``trigger:*`` data). Raises :class:`ProtocolError` when the
    item is not an object, ``seqNum`` is not a non-negative integer, ``headers`` is
    malformed, or the item is a command record (the server removes those from drains).
    """
    if not isinstance(item, Mapping):
        raise ProtocolError("drain item is not a JSON object")
    seq = _check_seq(item.get("seqNum"), "drain item seqNum")
    headers = _check_headers(item.get("headers"), f"drain item {seq}")
    is_command, control = _classify(headers)
    if is_command:
        raise ProtocolError(f"drain item {seq} is a command record, which drains never hold")
    timestamp = _timestamp(item.get("timestamp"))
    if control is not None:
        return _control_record(seq, timestamp, headers, control)
    return _data_record(seq, timestamp, headers, item.get("data"), item.get("id"))
