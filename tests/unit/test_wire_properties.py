"""Property tests (hypothesis) for the wire decoder: robustness and chunking invariance."""

from __future__ import annotations

import json
from typing import Any, List, Optional, Sequence, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions_client._sse import SSEEvent, iter_sse_events
from sessions_client._wire import decode_event, decode_payload
from sessions_client.errors import ProtocolError

# Bounded, and tolerant of a busy CI machine (generation speed is not what is tested).
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Outcome = Tuple[List[Any], Optional[str]]


def chunk(stream: bytes, cuts: Sequence[int]) -> List[bytes]:
    bounds = [0, *sorted(set(cuts)), len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:])]


def outcome(chunks: List[bytes], shape: str, max_event_bytes: int = 1 << 20) -> Outcome:
    """Every decoded event until the end or a ProtocolError (whose presence is recorded).

    Any other exception escapes and fails the test.
    """
    results: List[Any] = []
    try:
        for event in iter_sse_events(chunks, max_event_bytes=max_event_bytes):
            results.append(event)
            try:
                results.append(tuple(decode_event(event, shape)))
            except ProtocolError:
                results.append("decode error")
    except ProtocolError:
        return results, "stream error"
    return results, None


TOKENS = [
    b"data:",
    b"data: ",
    b"data",
    b"id: ",
    b"id: 7",
    b"event: batch",
    b"event: ping",
    b"event: error",
    b"retry: 10",
    b"retry",
    b":",
    b" ",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"[DONE]",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b'"records":',
    b'"seq_num":',
    b'"body":',
    b'"headers":',
    b'"tail":',
    b'""',
    b'"trigger-control"',
    b"1",
    b"-1",
    b"true",
    b"null",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xa9",
    b"\xef\xbb\xbf",
    b'{"data":"x","id":"p"}',
    b'{"records":[{"seq_num":1,"body":"{\\"data\\":1}"}]}',
]

event_limits = st.sampled_from([8, 64, 1 << 20])
streams = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join),
)


@SETTINGS
@given(stream=streams, data=st.data())
def test_random_bytes_only_ever_raise_protocol_error(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    limit = data.draw(event_limits)
    for shape in ("v1", "v2"):
        whole = outcome([stream], shape, limit)
        assert outcome(chunk(stream, cuts), shape, limit) == whole
        assert outcome([bytes([b]) for b in stream], shape, limit) == whole


# ----------------------------------------------------------------------------- valid SSE

line_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"),
    max_size=12,
)
# Strategies the composites below draw from, built once: a strategy built inside a
# composite is built and validated again at every draw.
event_names = st.one_of(st.none(), st.sampled_from(["batch", "ping", ""]), line_text)
event_ids = st.one_of(st.none(), line_text)
data_lines = st.lists(line_text, max_size=3)
line_endings = st.sampled_from(["\n", "\r", "\r\n"])
line_endings_after_cr = st.sampled_from(["\r", "\r\n"])


@st.composite
def valid_streams(draw: st.DrawFn) -> Tuple[bytes, List[SSEEvent]]:
    """A well-formed stream with random line endings, comments and BOM, and its events."""
    lines: List[str] = []
    expected: List[SSEEvent] = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(event_names)
        event_id = draw(event_ids)
        data = draw(data_lines)
        body: List[str] = []
        if name is not None:
            body.append("event: " + name)
        if event_id is not None:
            body.append("id: " + event_id)
        for value in data:
            # Only one space after the colon is stripped, so "data:" + " x" would lose it.
            spaced = value.startswith(" ") or draw(st.booleans())
            body.append(("data: " if spaced else "data:") + value)
        if draw(st.booleans()):
            body.insert(draw(st.integers(0, len(body))), ":" + draw(line_text))
        lines.extend(body)
        lines.append("")
        if data:
            expected.append(
                SSEEvent(
                    name or "message",
                    "\n".join(data),
                    event_id if event_id is not None and "\0" not in event_id else None,
                )
            )
    out = [b"\xef\xbb\xbf"] if draw(st.booleans()) else []
    previous = ""
    for line in lines:
        endings = line_endings
        if previous == "\r" and line == "":
            endings = line_endings_after_cr  # a lone LF would merge with the CR into one CRLF
        previous = draw(endings)
        out.append(line.encode() + previous.encode())
    return b"".join(out), expected


@SETTINGS
@given(case=valid_streams(), data=st.data())
def test_valid_streams_parse_to_their_events_whatever_the_chunking(
    case: Tuple[bytes, List[SSEEvent]], data: st.DataObject
) -> None:
    stream, expected = case
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    assert list(iter_sse_events([stream])) == expected
    assert list(iter_sse_events(chunk(stream, cuts))) == expected


# ----------------------------------------------------------------------------- valid v2

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
record_kinds = st.sampled_from(["text", "json", "control", "command"])
part_ids = st.text(max_size=6)


def _not_json(name: str) -> Any:
    raise ValueError(name)


def json_parse_or_text(text: str) -> Any:
    """What JavaScript's JSON.parse makes of ``text`` (no NaN/Infinity), else ``text``."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text


@st.composite
def v2_records(draw: st.DrawFn) -> Tuple[List[dict], List[dict], int]:  # type: ignore[type-arg]
    """Wire records of one batch, the records a reader must get, and the cursor."""
    wire: List[dict] = []  # type: ignore[type-arg]
    expected: List[dict] = []  # type: ignore[type-arg]
    seq = draw(st.integers(0, 1000))
    for _ in range(draw(st.integers(1, 6))):
        seq += draw(st.integers(1, 3))
        kind = draw(record_kinds)
        stamp = draw(st.integers(0, 2**45))
        if kind == "command":
            wire.append(
                {"seq_num": seq, "timestamp": stamp, "headers": [["", "trim"]], "body": "x"}
            )
        elif kind == "control":
            headers = [["trigger-control", "turn-complete"], ["session-in-event-id", "3"]]
            wire.append({"seq_num": seq, "timestamp": stamp, "headers": headers})
            expected.append(
                {
                    "seq": seq,
                    "data": None,
                    "part_id": None,
                    "timestamp": stamp,
                    "headers": headers,
                    "control": "turn-complete",
                }
            )
        else:
            value = draw(json_values)
            if isinstance(value, dict) and isinstance(value.get("type"), str):
                value["type"] = "x" + value["type"]  # not a legacy control by accident
            raw = json.dumps(value) if kind == "text" else value
            if isinstance(raw, str) and kind == "json":
                # A string datum is JSON-decoded when it parses (PROTOCOL 3.3): "0" -> 0.
                value = json_parse_or_text(raw)
            part = draw(part_ids)
            envelope = json.dumps({"data": raw, "id": part})
            wire.append({"seq_num": seq, "timestamp": stamp, "body": envelope})
            expected.append(
                {
                    "seq": seq,
                    "data": value,
                    "part_id": part,
                    "timestamp": stamp,
                    "headers": [],
                    "control": None,
                }
            )
    return wire, expected, seq


@SETTINGS
@given(batches=st.lists(v2_records(), min_size=1, max_size=3), data=st.data())
def test_valid_v2_streams_decode_to_their_records_whatever_the_chunking(
    batches: List[Tuple[List[dict], List[dict], int]],  # type: ignore[type-arg]
    data: st.DataObject,
) -> None:
    ending = data.draw(line_endings)
    parts = []
    for wire, _, last in batches:
        doc = json.dumps({"records": wire, "tail": {"seq_num": last + 1}}, ensure_ascii=False)
        parts.append(f"event: batch{ending}id: 9,9,9{ending}data: {doc}{ending}{ending}")
    parts.append(f"data: [DONE]{ending}{ending}")
    stream = "".join(parts).encode()
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    decoded = [decode_event(e, "v2") for e in iter_sse_events(chunk(stream, cuts))]
    assert [d.kind for d in decoded] == ["records"] * len(batches) + ["done"]
    for got, (_, records, last) in zip(decoded, batches):
        assert got.records == records
        assert got.last_seq == last
        assert got.tail == last + 1


# ----------------------------------------------------------------------------- payloads


def reject(name: str) -> Any:
    raise ValueError(name)


def reference_payload(value: str) -> Any:
    """json.loads, minus the NaN/Infinity extension that JavaScript's JSON.parse lacks."""
    try:
        return json.loads(value, parse_constant=reject)
    except (ValueError, RecursionError):
        return value


payload_texts = st.one_of(
    st.text(max_size=20),
    st.builds(
        lambda v, a, b: a + json.dumps(v) + b,
        json_values | st.floats(),
        st.sampled_from(["", " ", "\n\t", "x", "\ufeff"]),
        st.sampled_from(["", " ", "\r\n", "x", ","]),
    ),
)


@SETTINGS
@given(text=payload_texts)
def test_decode_payload_is_json_loads_when_it_parses(text: str) -> None:
    assert repr(decode_payload(text)) == repr(reference_payload(text))
