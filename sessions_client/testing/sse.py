"""Encoders for the two SSE wire shapes the local server speaks.

See docs/protocol.md, "Read a channel".

**v2** (production, ``X-Stream-Version: v2``)::

    event: batch
    id: <first seq>,<count>,<bytes>
    data: {"records":[<fragment>,...],"tail":{"seq_num":<next seq>,"timestamp":<ms>}}

    event: ping
    data: {"timestamp":<now ms>,"tail":{...}}

    event: error
    data: {"code":"...","message":"..."}

    data: [DONE]

Catch-up batches (the backlog, before the first ping) carry no ``"tail"``.

Every record is sent, command records included (readers skip them but advance their
cursor). ``<bytes>`` is the byte length of the batch's record fragments.

**v1** (documented per-record shape, no version header)::

    id: <seq>
    data: {"data":<envelope data>,"id":<seq>}

``<envelope data>`` is the stored envelope's ``data`` verbatim (the raw appended text
as a JSON string for HTTP appends, a JSON value for records written directly).
Command records are never sent in v1. A control record is sent in the legacy
data-record form that readers already treat as control::

    data: {"data":{"type":"trigger:turn-complete","publicAccessToken":"...",
           "sessionInEventId":"3","headers":[["trigger-control","turn-complete"],...]},"id":7}

(each sibling header becomes a camelCase field; ``headers`` keeps the exact list).
Idle v1 streams get an SSE comment ``: ping`` every ping interval; both shapes end
with ``data: [DONE]``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from .store import StoredRecord, now_ms

DONE = b"data: [DONE]\n\n"
V1_PING = b": ping\n\n"


# One shared encoder: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(value: Any) -> str:
    """Compact JSON, UTF-8 as is (what ``json.dumps`` with those options gives)."""
    return _ENCODER.encode(value)


def _tail(next_seq: int, last_ts: Optional[int]) -> str:
    return f'{{"seq_num":{next_seq},"timestamp":{last_ts or 0}}}'


def v2_batch(records: List[StoredRecord], tail: Optional[Tuple[int, Optional[int]]]) -> bytes:
    """One ``batch`` event holding ``records`` (non-empty); a live batch carries the
    channel ``tail`` (``(next seq, last timestamp)``), a catch-up batch (None) does not."""
    fragments = [r.fragment for r in records]
    size = sum(len(f) for f in fragments)
    text = "".join(
        (
            "event: batch\nid: ",
            f"{records[0].seq},{len(records)},{size}",
            '\ndata: {"records":[',
            ",".join(fragments),
            "]" if tail is None else '],"tail":' + _tail(*tail),
            "}\n\n",
        )
    )
    return text.encode("utf-8")


def v2_ping(next_seq: int, last_ts: Optional[int]) -> bytes:
    """One ``ping`` event carrying the channel tail."""
    tail = _tail(next_seq, last_ts)
    return (
        'event: ping\ndata: {"timestamp":' + str(now_ms()) + ',"tail":' + tail + "}\n\n"
    ).encode()


def v2_error(code: str, message: str) -> bytes:
    """One ``error`` event: the storage layer's error as JSON ``{"code", "message"}``."""
    return ("event: error\ndata: " + _dumps({"code": code, "message": message}) + "\n\n").encode(
        "utf-8"
    )


def _camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def v1_payload(record: StoredRecord) -> Optional[Any]:
    """The ``data`` value a v1 event carries for ``record``; None for command records."""
    if record.is_command:
        return None
    subtype = record.control
    if subtype is not None:
        legacy: Dict[str, Any] = {"type": f"trigger:{subtype}"}
        for name, value in record.headers:
            if name != "trigger-control":
                legacy[_camel(name)] = value
        legacy["headers"] = record.headers
        return legacy
    try:
        envelope = json.loads(record.body)
    except ValueError:
        return record.body
    return envelope.get("data") if isinstance(envelope, dict) else envelope


def v1_events(records: List[StoredRecord]) -> bytes:
    """Per-record v1 events for ``records`` (command records left out)."""
    out: List[str] = []
    for record in records:
        if record.is_command:
            continue
        # the text of {"data": <payload>, "id": <seq>}, built without the dict
        data = _dumps(v1_payload(record))
        out.append(f'id: {record.seq}\ndata: {{"data":{data},"id":{record.seq}}}\n\n')
    return "".join(out).encode("utf-8")
