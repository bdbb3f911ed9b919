"""The fast paths of wire.py and their fallbacks: the same events, records and errors."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

from sessions_client.errors import ProtocolError
from sessions_client.wire import SSEEvent, decode_event, iter_sse_events

# ----------------------------------------------------------------------------- framing

BIG = "x" * 5000  # over the 4096 bytes below which one C scan replaces the line walk


def events_of(chunks: List[bytes], **kwargs: int) -> List[SSEEvent]:
    return list(iter_sse_events(chunks, **kwargs))


@pytest.mark.parametrize("size", [1, 7, 100, 4099, 1 << 20])
def test_many_events_per_chunk_big_and_small_with_ignored_fields(size: int) -> None:
    stream = (
        f"id: 1\ndata: {BIG}\n\n"
        "retry: 12\ndata: a\n\n"
        f"retry: no\nid: 2\x003\ndata: {BIG}\nretry: 7x\n\n"
        "id: 4\0\ndata: b\n\n"
        f"data: {BIG}\nretry: 9"  # incomplete at the end: discarded
    ).encode()
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    assert events_of(chunks) == [
        SSEEvent("message", BIG, "1", None),
        SSEEvent("message", "a", None, 12),
        SSEEvent("message", BIG, None, None),
        SSEEvent("message", "b", None, None),
    ]


def test_big_event_ending_a_chunk_without_its_blank_line_is_complete_later() -> None:
    first = f"event: batch\nid: 1\ndata: {BIG}\n".encode()
    assert events_of([first, b"\ndata: c\n\n"]) == [
        SSEEvent("batch", BIG, "1", None),
        SSEEvent("message", "c", None, None),
    ]


def test_oversized_event_mid_chunk_after_complete_ones_raises_after_them() -> None:
    events: List[SSEEvent] = []
    stream = b"data: a\n\ndata: b\n\ndata: " + b"y" * 500 + b"\n\ndata: c\n\n"
    with pytest.raises(ProtocolError, match="max_event_bytes"):
        for event in iter_sse_events([stream], max_event_bytes=100):
            events.append(event)
    assert [e.data for e in events] == ["a", "b"]


def test_oversized_event_completing_held_bytes_raises_first() -> None:
    events: List[SSEEvent] = []
    with pytest.raises(ProtocolError, match="max_event_bytes"):
        for event in iter_sse_events(
            [b"data: " + b"y" * 90, b"y" * 20 + b"\n\ndata: a\n\n"], max_event_bytes=100
        ):
            events.append(event)
    assert events == []


def test_held_event_then_more_events_in_the_same_chunk() -> None:
    chunks = [b"id: 5\nda", b"ta: one\n\ndata: two\n\nid: 6\ndata: thr", b"ee\n\n"]
    assert events_of(chunks) == [
        SSEEvent("message", "one", "5", None),
        SSEEvent("message", "two", None, None),
        SSEEvent("message", "three", "6", None),
    ]


# ----------------------------------------------------------------------------- v2 batches


def batch(*records: Dict[str, Any]) -> SSEEvent:
    return SSEEvent("batch", json.dumps({"records": list(records)}), "1,1,1", None)


def data_record(seq: int, body: Any) -> Dict[str, Any]:
    return {"seq_num": seq, "timestamp": 10 + seq, "body": body}


def expect(seq: int, data: Any, part_id: Optional[str]) -> Dict[str, Any]:
    return {
        "seq": seq,
        "data": data,
        "part_id": part_id,
        "timestamp": 10 + seq,
        "headers": [],
        "control": None,
    }


DATA_STRINGS = [
    ('{"type":"text-delta","delta":"hi"}', {"type": "text-delta", "delta": "hi"}),
    (' {"a": 1}\n', {"a": 1}),  # surrounding JSON whitespace: still JSON (decode_payload)
    ("hello", "hello"),  # not JSON: the text itself
    ("12 apples", "12 apples"),  # a JSON prefix is not JSON
    ("", ""),
    (" ", " "),
    ("NaN", "NaN"),  # not JSON for JSON.parse
    ("\ufeff1", "\ufeff1"),
    ("[1,2]", [1, 2]),
    ('"s"', "s"),
]


def test_batch_data_strings_decode_as_decode_payload_does() -> None:
    records = [
        data_record(seq, json.dumps({"data": text, "id": f"p{seq}"}))
        for seq, (text, _) in enumerate(DATA_STRINGS)
    ]
    decoded = decode_event(batch(*records), "v2")
    assert decoded.records == [
        expect(seq, value, f"p{seq}") for seq, (_, value) in enumerate(DATA_STRINGS)
    ]


def test_batch_with_one_body_not_json_raises_as_before() -> None:
    records = [
        data_record(1, json.dumps({"data": "a", "id": "x"})),
        data_record(2, "{not json"),
        data_record(3, json.dumps({"data": "c", "id": "z"})),
    ]
    with pytest.raises(ProtocolError, match=r"record 2 body is not valid JSON"):
        decode_event(batch(*records), "v2")


def test_batch_bodies_that_are_not_compact_envelopes_take_the_full_path() -> None:
    records = [
        data_record(1, ' {"data": "1", "id": 7} '),  # whitespace around the body
        data_record(2, "[1, 2]"),  # JSON, not an envelope: delivered whole
        data_record(3, ""),  # empty body: data ""
        data_record(4, '{"id": "p"}'),  # no data: delivered whole
        data_record(5, '{"data": {"type": "trigger:turn-complete"}, "id": "t"}'),
    ]
    decoded = decode_event(batch(*records), "v2")
    assert decoded.records[:4] == [
        expect(1, 1, "7"),
        expect(2, [1, 2], None),
        expect(3, "", None),
        expect(4, {"id": "p"}, None),
    ]
    legacy = decoded.records[4]
    assert legacy["control"] == "turn-complete"
    assert legacy["headers"] == [["trigger-control", "turn-complete"]]
    assert legacy["data"] == {"type": "trigger:turn-complete"}
    assert decoded.last_seq == 5 and decoded.first_seq == 1


@pytest.mark.parametrize(
    "records, message",
    [
        ([data_record(1, "1"), 5], r"batch record #1 is not a JSON object"),
        ([data_record(1, "1"), data_record(-2, "1")], r"batch record #1 seq_num: .* int -2"),
        ([data_record(1, "1"), data_record(True, "1")], r"batch record #1 seq_num: .*bool"),
        ([data_record(1, "1"), {"body": "1"}], r"batch record #1 seq_num: missing"),
        (
            [data_record(3, "1"), data_record(3, "1")],
            r"batch record #1: seq_num 3 does not follow 3",
        ),
        ([data_record(0, "1"), data_record(4, 1)], r"record 4: body must be a string"),
    ],
)
def test_batch_errors_name_the_record(records: List[Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_event(batch(*records), "v2")


def test_batch_of_identical_items_names_the_first_bad_one() -> None:
    with pytest.raises(ProtocolError, match=r"batch record #0 is not a JSON object"):
        decode_event(batch(*([1] * 3)), "v2")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- v1 records


def v1(seq: int, doc: Any) -> SSEEvent:
    return SSEEvent("message", json.dumps(doc), str(seq), None)


@pytest.mark.parametrize("text, value", DATA_STRINGS)
def test_v1_data_strings_decode_as_decode_payload_does(text: str, value: Any) -> None:
    decoded = decode_event(v1(4, {"data": text, "id": 4, "timestamp": 9}), "v1")
    assert decoded.records == [
        {"seq": 4, "data": value, "part_id": "4", "timestamp": 9, "headers": [], "control": None}
    ]
    assert (decoded.last_seq, decoded.first_seq, decoded.tail) == (4, 4, None)


def test_v1_slow_shapes_are_unchanged() -> None:
    padded = SSEEvent("message", ' {"data": {"k": 1}, "id": "p"} ', "1", None)
    assert decode_event(padded, "v1").records[0]["data"] == {"k": 1}
    headers = v1(2, {"data": "x", "id": "p", "headers": [["trigger-control", "turn-complete"]]})
    assert decode_event(headers, "v1").records[0]["control"] == "turn-complete"
    command = v1(3, {"data": "x", "headers": [["", "trim"]]})
    assert decode_event(command, "v1").records == []
    whole = decode_event(v1(5, {"id": "p", "timestamp": "x"}), "v1").records[0]
    assert (whole["data"], whole["part_id"], whole["timestamp"]) == (
        {"id": "p", "timestamp": "x"},
        None,
        None,
    )
    legacy = decode_event(v1(6, {"data": {"type": "trigger:upgrade-required"}, "id": 1}), "v1")
    assert legacy.records[0]["control"] == "upgrade-required"
    assert legacy.records[0]["part_id"] == "1"
    with pytest.raises(ProtocolError, match=r"v1 event 7 data is not valid JSON"):
        decode_event(SSEEvent("message", '{"data": 1', "7", None), "v1")
