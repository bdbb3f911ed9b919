"""Wire decoding: server-sent events -> record dicts, for both wire shapes. No I/O.

:func:`decode_event` turns one event of a channel stream into a :class:`Decoded`;
:func:`decode_drain_item` one item of a drain answer into a record. Every record dict is
built by :func:`_record` (docs/channels.md, "The record dict": ``seq, data, part_id, timestamp,
headers, control``).

Anything that could change which records are delivered, what they contain, or the
cursor raises :class:`ProtocolError` (invalid JSON in a batch, a v1 event or a body; no
``records`` list; a bad or non-increasing ``seq_num``; malformed ``headers``; a
non-string ``body``; a v1 event without a decimal ``id:``). Advisory values are skipped
with a debug log (a bad ``tail`` or ``timestamp`` is ``None``; a ping without JSON is a
ping; an unknown event is ``"ignored"``). A body that is JSON but not an envelope
``{"data": X, "id": ...}`` is delivered whole as the data, without part id; a missing
body is ``data=""``. Legacy ``trigger:turn-complete`` / ``trigger:upgrade-required``
data becomes a control record that keeps its data and part id and whose headers gain
``["trigger-control", subtype]``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, List, Mapping, NamedTuple, Optional, Tuple, TypedDict

from ._sse import SSEEvent
from .errors import ProtocolError

__all__ = ["Decoded", "Record", "decode_drain_item", "decode_event", "decode_payload", "wire_shape"]

logger = logging.getLogger("sessions_client.wire")

CONTROL_HEADER = "trigger-control"

_LEGACY_CONTROL_TYPES = {
    "trigger:turn-complete": "turn-complete",
    "trigger:upgrade-required": "upgrade-required",
}


class Record(TypedDict):
    """The record dict every reader yields (docs/channels.md); a plain ``dict`` at runtime."""

    seq: int
    data: Any
    part_id: Optional[str]
    timestamp: Optional[int]
    headers: List[List[str]]
    control: Optional[str]


class Decoded(NamedTuple):
    """What one event means for a reader: its ``kind`` (``"records"``, ``"ping"``,
    ``"done"`` for ``[DONE]``, ``"error"`` with the server's message in ``error``, or
    ``"ignored"``); its data and control ``records`` (command records removed); the
    ``first_seq`` and ``last_seq`` it covers, command records included; and the
    ``tail`` (the next seq the server will write) of a v2 ping or batch."""

    kind: str
    records: List[Record]
    last_seq: Optional[int] = None
    tail: Optional[int] = None
    error: Optional[str] = None
    first_seq: Optional[int] = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Strict JSON, as JavaScript's JSON.parse (the official SDK) reads it: Python's json also
# accepts NaN and Infinity, which would turn a record whose text is "NaN" into a float.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_raw_decode = _DECODER.raw_decode


def _loads(text: str) -> Any:
    """``text`` as strict JSON; raises ``ValueError`` or ``RecursionError`` if it is not.

    ``raw_decode`` reads a document that starts at index 0; ``decode`` is the full
    judgement (surrounding whitespace allowed, nothing else after the value).
    """
    try:
        value, end = _raw_decode(text)
    except ValueError:
        if text[:1].isspace():  # raw_decode does not skip leading whitespace
            return _DECODER.decode(text)
        raise
    if end != len(text):
        return _DECODER.decode(text)
    return value


def _parse_json(text: str, what: str, seq: Optional[int] = None) -> Any:
    """``text`` decoded as strict JSON; :class:`ProtocolError` naming ``what`` (formatted
    with ``seq``) if invalid."""
    try:
        return _loads(text)
    except RecursionError:
        raise ProtocolError(f"{what.format(seq)} is nested too deeply to decode") from None
    except ValueError as exc:
        raise ProtocolError(f"{what.format(seq)} is not valid JSON ({exc})") from None


#: The characters a JSON text can start with (a value, or JSON whitespace before one).
_JSON_FIRST = frozenset('{["-0123456789tfn \t\n\r')


def decode_payload(data: Any) -> Any:
    """Decode an envelope's ``data`` (docs/protocol.md, "Decoding").

    A string is parsed as JSON when it is valid JSON, judged like JavaScript's
    ``JSON.parse`` in the official SDK (surrounding JSON whitespace allowed; ``NaN`` and
    ``Infinity`` are not JSON), and returned unchanged otherwise (also when too deeply
    nested or holding an integer too long for Python); any other value is returned as is.
    """
    if type(data) is not str or data[:1] not in _JSON_FIRST:
        return data
    try:
        value, end = _raw_decode(data)
        if end == len(data):
            return value
    except (ValueError, RecursionError):
        pass
    try:
        return _loads(data)
    except (ValueError, RecursionError):
        return data


def _json_document(text: str, what: str, seq: Optional[int] = None) -> Any:
    """``text`` as strict JSON; :class:`ProtocolError` naming ``what`` (formatted with
    ``seq``) if it is not."""
    try:
        value, end = _raw_decode(text)
        if end == len(text):
            return value
    except ValueError:
        pass
    return _parse_json(text, what, seq)


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
    if type(value) is int or value is None:
        return value
    logger.debug("ignoring a non-integer record timestamp")
    return None


def _part_id(value: Any) -> Optional[str]:
    if type(value) is str or value is None:
        return value
    if type(value) is int:
        return str(value)
    logger.debug("ignoring a part id that is neither a string nor an integer")
    return None


def _is_pair(pair: Any) -> bool:
    return type(pair) is list and len(pair) == 2 and type(pair[0]) is type(pair[1]) is str


def _check_headers(value: Any, where: str) -> List[List[str]]:
    """Validate ``headers`` (absent = empty) as a list of ``[name, value]`` string pairs."""
    if value is None:
        return []
    if type(value) is not list or not all(_is_pair(pair) for pair in value):
        raise ProtocolError(f"{where}: headers must be a list of [name, value] string pairs")
    return [[name, text] for name, text in value]


def _classify(headers: List[List[str]]) -> Tuple[bool, Optional[str]]:
    """Return ``(is_command, control_subtype)`` for a record's headers (docs/protocol.md,
    "Data, control and command records")."""
    if headers and headers[0][0] == "":
        return True, None
    for name, value in headers:
        if name == CONTROL_HEADER:
            return False, value
    return False, None


def _record(
    seq: int,
    timestamp: Optional[int],
    headers: List[List[str]],
    data: Any,
    part_id: Any,
    control: Optional[str] = None,
) -> Record:
    """The record dict: the one place it is built. A data record (``control`` None) has
    its data decoded (:func:`decode_payload`); legacy ``trigger:*`` data makes it a
    control record that keeps its data and part id."""
    if control is None:
        data = decode_payload(data)
        kind = data.get("type") if type(data) is dict else None
        if type(kind) is str and kind in _LEGACY_CONTROL_TYPES:
            control = _LEGACY_CONTROL_TYPES[kind]
            headers = headers + [[CONTROL_HEADER, control]]
    if type(part_id) is not str:
        part_id = _part_id(part_id)
    return {
        "seq": seq,
        "data": data,
        "part_id": part_id,
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
        return _record(seq, timestamp, headers, envelope["data"], envelope.get("id"))
    logger.debug("record %d: body is not a {data, id} envelope; delivering it whole", seq)
    return _record(seq, timestamp, headers, envelope, None)


def _stored_record(seq: int, raw: Mapping[str, Any]) -> Optional[Record]:
    """The record of a batch record ``raw`` (``None``: a command record)."""
    if raw.get("headers") is not None:
        return _headed_record(seq, raw)
    body = raw.get("body", "")
    timestamp = raw.get("timestamp")
    if type(timestamp) is not int:
        timestamp = _timestamp(timestamp)
    if type(body) is not str or not body:
        return _body_record(seq, timestamp, [], body)
    try:
        envelope, end = _raw_decode(body)
    except ValueError:
        end = -1
    if end != len(body) or type(envelope) is not dict or "data" not in envelope:
        return _body_record(seq, timestamp, [], body)
    return _record(seq, timestamp, [], envelope["data"], envelope.get("id"))


def _headed_record(seq: int, raw: Mapping[str, Any]) -> Optional[Record]:
    """A batch record with ``headers``: a command (``None``), control or data record."""
    headers = _check_headers(raw["headers"], f"record {seq}")
    timestamp = _timestamp(raw.get("timestamp"))
    is_command, control = _classify(headers)
    if is_command:
        return None
    if control is not None:
        return _record(seq, timestamp, headers, None, None, control)
    return _body_record(seq, timestamp, headers, raw.get("body", ""))


def _body_record(seq: int, timestamp: Optional[int], headers: List[List[str]], body: Any) -> Record:
    """A data record from a stored ``body`` (a string; empty: ``data=""``)."""
    if type(body) is not str:
        raise ProtocolError(f"record {seq}: body must be a string")
    if not body:
        return _record(seq, timestamp, headers, "", None)
    return _envelope_record(seq, timestamp, headers, _json_document(body, "record {} body", seq))


# --------------------------------------------------------------------------- events


def _batch_record_error(index: int, raw: Any, last: int) -> ProtocolError:
    """The error for the bad record ``raw`` at ``index`` of a batch."""
    if type(raw) is not dict:
        return ProtocolError(f"batch record #{index} is not a JSON object")
    seq = raw.get("seq_num")
    if type(seq) is not int or seq < 0:
        return _seq_error(seq, f"batch record #{index} seq_num")
    return ProtocolError(f"batch record #{index}: seq_num {seq} does not follow {last}")


def _decode_batch(data: str) -> Decoded:
    """A v2 batch: one JSON parse of the event, then each record's body and data."""
    doc = _parse_json(data, "batch event data")
    if type(doc) is not dict:
        raise ProtocolError("batch event data is not a JSON object")
    raw_records = doc.get("records")
    if type(raw_records) is not list:
        raise ProtocolError("batch event has no 'records' list")
    records: List[Record] = []
    last = -1  # seq_num is never negative, so the first record always follows it
    for index, raw in enumerate(raw_records):
        seq = raw.get("seq_num") if type(raw) is dict else None
        if type(seq) is not int or seq <= last:
            raise _batch_record_error(index, raw, last)
        last = seq
        record = _stored_record(seq, raw)
        if record is not None:
            records.append(record)
    if not raw_records:
        return Decoded("records", records, None, _tail(doc.get("tail"), "batch"))
    first = raw_records[0]["seq_num"]
    return Decoded("records", records, last, _tail(doc.get("tail"), "batch"), None, first)


def _tail(value: Any, where: str) -> Optional[int]:
    if value is None:
        return None
    seq = value.get("seq_num") if type(value) is dict else None
    if type(seq) is int and seq >= 0:
        return seq
    logger.debug("%s event: ignoring a malformed tail", where)
    return None


def _decode_ping(data: str) -> Decoded:
    try:
        doc = _loads(data)
    except (ValueError, RecursionError):
        logger.debug("ping event data is not JSON; treating it as a bare ping")
        return Decoded("ping", [])
    tail = _tail(doc.get("tail"), "ping") if type(doc) is dict else None
    return Decoded("ping", [], None, tail)


def _decode_error(data: str) -> Decoded:
    """``event: error``: production sends ``{"code", "message"}``; the message is kept
    (the whole text when it is not that JSON)."""
    try:
        doc = _loads(data)
    except (ValueError, RecursionError):
        doc = None
    message = doc.get("message") if type(doc) is dict else None
    return Decoded("error", [], None, None, message if type(message) is str else data)


def _decode_v1_record(event: SSEEvent) -> Decoded:
    """A v1 record event: ``id:`` is the seq, data the envelope (``headers`` honoured)."""
    raw_id = event.id
    if raw_id is None or not (raw_id.isascii() and raw_id.isdigit()):
        raise ProtocolError("v1 record event without a decimal integer id")
    seq = int(raw_id)
    doc = _json_document(event.data, "v1 event {} data", seq)
    if type(doc) is not dict:
        record: Optional[Record] = _envelope_record(seq, None, [], doc)
    elif doc.get("headers") is None:
        record = _envelope_record(seq, _timestamp(doc.get("timestamp")), [], doc)
    else:
        record = _stored_v1_record(seq, doc)
    return Decoded("records", [] if record is None else [record], seq, None, None, seq)


def _stored_v1_record(seq: int, doc: Mapping[str, Any]) -> Optional[Record]:
    """A v1 envelope with ``headers``: a command (``None``), control or data record."""
    headers = _check_headers(doc["headers"], f"record {seq}")
    is_command, control = _classify(headers)
    if is_command:
        return None
    if control is not None:
        return _record(seq, None, headers, None, None, control)
    return _envelope_record(seq, _timestamp(doc.get("timestamp")), headers, doc)


def decode_event(event: SSEEvent, shape: str) -> Decoded:
    """Decode one event of a channel stream spoken in ``shape`` (``"v1"``/``"v2"``).

    ``[DONE]``, ``event: error`` and ``event: ping`` in both shapes; ``event: batch``
    (v2; accepted under v1 too) is the batch's records, its ``id:`` unused (the cursor
    is ``seq_num``); under v1 an unnamed event is one record whose ``id:`` is the seq
    and whose data is the envelope. Any other event is ``"ignored"``. Raises
    :class:`ProtocolError` on bad input, ``ValueError`` for another shape.
    """
    if shape not in ("v1", "v2"):
        raise ValueError(f"unknown wire shape {shape!r}")
    kind = event.event
    if kind == "error":
        return _decode_error(event.data)
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
        return _record(seq, timestamp, headers, None, None, control)
    return _record(seq, timestamp, headers, item.get("data"), item.get("id"))


def wire_shape(headers: Mapping[str, str]) -> str:
    """Return ``"v2"`` when the response headers say ``X-Stream-Version: v2``, else ``"v1"``.

    The header name is matched case-insensitively (a ``requests`` CaseInsensitiveDict or
    a plain dict both work); the value is compared case-insensitively, spaces stripped.
    """
    for name, value in headers.items():
        if name.lower() == "x-stream-version":
            return "v2" if str(value).strip().lower() == "v2" else "v1"
    return "v1"
