"""Wire decoding: server-sent events -> record dicts (docs/channels.md), both shapes. No I/O.

What could change which records are delivered, what they hold, or the cursor raises
:class:`ProtocolError` (bad JSON in a batch, v1 event or body; no ``records`` list; a bad or
non-increasing ``seq_num``; bad ``headers``; a non-string ``body``; a v1 event without a
decimal ``id:``). Advisory values are dropped (a bad ``tail``, ``timestamp`` or part id
is ``None``; a ping without JSON is a ping; an unknown event is ``"ignored"``).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any, Callable, List, Mapping, NamedTuple, Optional, Tuple, TypedDict

from ._sse import SSEEvent
from .errors import ProtocolError

__all__ = ["Decoded", "Record", "decode_drain_item", "decode_event", "decode_payload", "wire_shape"]

logger = logging.getLogger("sessions_client.wire")

CONTROL_HEADER = "trigger-control"
_LEGACY = {"trigger:turn-complete": "turn-complete", "trigger:upgrade-required": "upgrade-required"}
_LEGACY_TYPES = tuple(_LEGACY)  # matched by equality: a record's "type" may be unhashable
_JSON_FIRST = frozenset('{["-0123456789tfn \t\n\r')  # what a JSON text can start with
_OPTIONAL_STR, _OPTIONAL_INT = (str, type(None)), (int, type(None))
Headers = List[List[str]]


class Record(TypedDict):
    """The record dict every reader yields (docs/channels.md); a plain ``dict`` at runtime."""

    seq: int
    data: Any
    part_id: Optional[str]
    timestamp: Optional[int]
    headers: Headers
    control: Optional[str]


class Decoded(NamedTuple):
    """What an event means: kind, records (no commands), seqs covered, error message, tail."""

    kind: str
    records: List[Record]
    last_seq: Optional[int] = None
    tail: Optional[int] = None
    error: Optional[str] = None
    first_seq: Optional[int] = None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


# Strict JSON, as JSON.parse: Python's json would also take NaN, Infinity and -Infinity.
_DECODER = json.JSONDecoder(parse_constant=_not_json)


def _loads(text: str) -> Any:
    """``text`` as one strict JSON document (whitespace around it allowed); ``ValueError``
    or ``RecursionError`` when it is not."""
    try:
        value, end = _DECODER.raw_decode(text)  # the document at index 0, and its end
        if end == len(text):
            return value
    except ValueError:
        pass  # leading whitespace, or not JSON: decode() gives the full judgement
    return _DECODER.decode(text)


def _json(text: str, what: str) -> Any:
    """``text`` as one JSON document (whitespace around it allowed), else ProtocolError."""
    try:
        return _loads(text)
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply to decode") from None
    except ValueError as exc:
        raise ProtocolError(f"{what} is not valid JSON ({exc})") from None


def decode_payload(data: Any) -> Any:
    """An envelope's ``data`` decoded (docs/protocol.md, "Decoding"): a string that is strict
    JSON (as the SDK's ``JSON.parse`` judges it) is parsed; anything else is returned as is."""
    if type(data) is not str or data[:1] not in _JSON_FIRST:
        return data
    try:
        return _loads(data)
    except (ValueError, RecursionError):  # also too deep, or an integer too long for Python
        return data


def _ignored(what: str) -> Any:
    logger.debug("ignoring %s", what)
    return None


def _record(seq: int, stamp: Any, headers: Headers, stored: Any, control: Optional[str]) -> Record:
    """The record dict, the one place it is built, from the record's JSON (an envelope
    ``{"data": X, "id": part id}``, or the data whole); legacy ``trigger:*`` data: control."""
    envelope = type(stored) is dict and "data" in stored
    data = decode_payload(stored["data"] if envelope else stored)
    part_id = stored.get("id") if envelope else None
    if type(data) is dict and data.get("type") in _LEGACY_TYPES:
        control = _LEGACY[data["type"]]
        headers = headers + [[CONTROL_HEADER, control]]
    if type(part_id) not in _OPTIONAL_STR:
        part_id = str(part_id) if type(part_id) is int else _ignored("a non-string part id")
    if type(stamp) not in _OPTIONAL_INT:
        stamp = _ignored("a non-integer record timestamp")
    return {
        "seq": seq,
        "data": data,
        "part_id": part_id,
        "timestamp": stamp,
        "headers": headers,
        "control": control,
    }


def _is_pair(pair: Any) -> bool:
    return type(pair) is list and len(pair) == 2 and type(pair[0]) is type(pair[1]) is str


def _headed_record(seq: int, raw: Any, where: str, stored: Callable[[], Any]) -> Optional[Record]:
    """A command (``None``), control or data record (of ``stored()``), as its headers say."""
    headers, stamp = raw.get("headers"), raw.get("timestamp")
    if headers is None:
        return _record(seq, stamp, [], stored(), None)
    if type(headers) is not list or not all(map(_is_pair, headers)):
        raise ProtocolError(f"{where}: headers must be a list of [name, value] string pairs")
    if headers and headers[0][0] == "":
        return None
    control = dict(headers[::-1]).get(CONTROL_HEADER)  # the first such header
    headers = [[name, text] for name, text in headers]
    return _record(seq, stamp, headers, None if control is not None else stored(), control)


def _body(seq: int, body: Any) -> Any:
    """A stored ``body`` decoded: a string holding JSON, or empty or absent (``""``)."""
    if type(body) is not str:
        raise ProtocolError(f"record {seq}: body must be a string")
    return _json(body, f"record {seq} body") if body else ""


def _batch_records(raws: List[Any]) -> Tuple[List[Record], int]:
    """A batch's records and last seq, each raw record released once read (memory)."""
    records: List[Record] = []
    last = -1  # seq_num is never negative, so the first record always follows it
    for index, raw in enumerate(raws):
        seq = raw.get("seq_num") if type(raw) is dict else None
        if type(seq) is not int or seq <= last:
            raise _seq_error(f"batch record #{index}", raw, last)
        last = seq
        raws[index] = None
        body = raw.get("body")
        if type(body) is str and raw.get("headers") is None:  # the common case
            try:
                stored, end = _DECODER.raw_decode(body)
            except (ValueError, RecursionError):
                end = -1
            if end == len(body):
                records.append(_record(seq, raw.get("timestamp"), [], stored, None))
                continue
        record = _headed_record(seq, raw, f"record {seq}", partial(_body, seq, raw.get("body", "")))
        if record is not None:
            records.append(record)
    return records, last


def _seq_error(where: str, raw: Any, last: int = -1, key: str = "seq_num") -> ProtocolError:
    """What is wrong with ``raw[key]``: absent, not a seq, or not after ``last``."""
    if not isinstance(raw, Mapping):
        return ProtocolError(f"{where} is not a JSON object")
    seq, where = raw.get(key), f"{where} {key}"
    if type(seq) is int and seq >= 0:
        return ProtocolError(f"{where} {seq} does not follow {last}")
    if seq is None:
        return ProtocolError(f"{where}: missing sequence number")
    shown = type(seq).__name__ + (f" {seq!r}" if type(seq) in (int, float, bool) else "")
    return ProtocolError(f"{where}: sequence number must be a non-negative integer, got {shown}")


def _tail(doc: Any) -> Optional[int]:
    """The ``tail.seq_num`` of a batch or ping, when valid (advisory: else ``None``)."""
    value = doc.get("tail") if type(doc) is dict else None
    seq = value.get("seq_num") if type(value) is dict else None
    return seq if type(seq) is int and seq >= 0 else None


def _decode_batch(data: str) -> Decoded:
    doc = _json(data, "batch event data")
    if type(doc) is not dict:
        raise ProtocolError("batch event data is not a JSON object")
    raws = doc.get("records")
    if type(raws) is not list:
        raise ProtocolError("batch event has no 'records' list")
    if not raws:
        return Decoded("records", [], None, _tail(doc))
    head = raws[0]
    records, last = _batch_records(raws)
    return Decoded("records", records, last, _tail(doc), None, head["seq_num"])


def _decode_other(kind: str, data: str) -> Decoded:
    """``ping`` (its tail) or ``error`` (production's ``{"code", "message"}``: the message)."""
    try:
        doc = _json(data, f"{kind} event data")
    except ProtocolError:
        doc = _ignored(f"{kind} event data that is not JSON")
    if kind == "ping":
        return Decoded("ping", [], None, _tail(doc))
    message = doc.get("message") if type(doc) is dict else None
    return Decoded("error", [], None, None, message if type(message) is str else data)


def _decode_v1_record(event: SSEEvent) -> Decoded:
    """A v1 record event: ``id:`` is the seq, data the envelope (``headers`` honoured)."""
    if event.id is None or not (event.id.isascii() and event.id.isdigit()):
        raise ProtocolError("v1 record event without a decimal integer id")
    seq, doc = int(event.id), _json(event.data, f"v1 event {event.id} data")
    record = _headed_record(seq, doc if type(doc) is dict else {}, f"record {seq}", lambda: doc)
    return Decoded("records", [] if record is None else [record], seq, None, None, seq)


def decode_event(event: SSEEvent, shape: str) -> Decoded:
    """One event of a ``"v1"``/``"v2"`` stream (else ValueError); a batch's ``id:`` is unused."""
    if shape not in ("v1", "v2"):
        raise ValueError(f"unknown wire shape {shape!r}")
    if event.event != "error" and event.data == "[DONE]":
        return Decoded("done", [])
    if event.event == "batch":
        return _decode_batch(event.data)
    if event.event in ("ping", "error"):
        return _decode_other(event.event, event.data)
    if event.event == "message" and shape == "v1":
        return _decode_v1_record(event)
    _ignored(f"a {event.event!r} event on a {shape} stream")
    return Decoded("ignored", [])


def decode_drain_item(item: Mapping[str, Any]) -> Record:
    """The record of an item of ``GET .../records``; a command record is a ProtocolError."""
    seq = item.get("seqNum") if isinstance(item, Mapping) else None
    if type(seq) is not int or seq < 0:
        raise _seq_error("drain item", item, -1, "seqNum")
    envelope = {"data": item.get("data"), "id": item.get("id")}
    record = _headed_record(seq, item, f"drain item {seq}", lambda: envelope)
    if record is None:
        raise ProtocolError(f"drain item {seq} is a command record, which drains never hold")
    return record


def wire_shape(headers: Mapping[str, str]) -> str:
    """``"v2"`` if the response headers say ``X-Stream-Version: v2`` (any case), else ``"v1"``."""
    value = next((v for k, v in headers.items() if k.lower() == "x-stream-version"), "")
    return "v2" if str(value).strip().lower() == "v2" else "v1"
