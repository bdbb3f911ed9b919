"""decode_event / decode_drain_item / decode_payload / wire_shape: record dicts and errors."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
from requests.structures import CaseInsensitiveDict

from sessions_client._sse import SSEEvent, iter_sse_events
from sessions_client._wire import (
    CONTROL_HEADER,
    Decoded,
    decode_drain_item,
    decode_event,
    decode_payload,
    wire_shape,
)
from sessions_client.errors import ProtocolError


def body(data: Any, part_id: Optional[str] = "p") -> str:
    """The body of a data record: the JSON envelope the server stores."""
    return json.dumps({"data": data, "id": part_id})


def batch(
    *records: Dict[str, Any], tail: Optional[int] = None, event_id: str = "1,1,1"
) -> SSEEvent:
    doc: Dict[str, Any] = {"records": list(records)}
    if tail is not None:
        doc["tail"] = {"seq_num": tail, "timestamp": 5}
    return SSEEvent("batch", json.dumps(doc), event_id)


def v1(seq: str, doc: Any) -> SSEEvent:
    return SSEEvent("message", json.dumps(doc), seq)


def decode_stream(stream: bytes, shape: str, cuts: Sequence[int] = ()) -> List[Tuple[Any, ...]]:
    """Decode a whole stream fed in pieces; one tuple per event (kind, records, cursor...)."""
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:])]
    return [tuple(decode_event(e, shape)) for e in iter_sse_events(chunks)]


def every_split(length: int) -> Iterator[List[int]]:
    for i in range(1, length):
        yield [i]
        for j in range(i + 1, length):
            yield [i, j]


# ----------------------------------------------------------------------------- v2 batches


def test_v2_data_record_string_data_is_parsed_as_json() -> None:
    decoded = decode_event(
        batch(
            {
                "seq_num": 10,
                "timestamp": 1712150400000,
                "body": body(json.dumps({"type": "text-delta", "delta": "po"}), "abc"),
            },
            tail=11,
        ),
        "v2",
    )
    assert decoded == Decoded(
        "records",
        [
            {
                "seq": 10,
                "data": {"type": "text-delta", "delta": "po"},
                "part_id": "abc",
                "timestamp": 1712150400000,
                "headers": [],
                "control": None,
            }
        ],
        10,
        11,
        None,
        10,
    )


def test_v2_data_forms() -> None:
    decoded = decode_event(
        batch(
            {"seq_num": 1, "body": body("plain text")},
            {"seq_num": 2, "body": body({"type": "text", "text": "direct writer"})},
            {"seq_num": 3, "body": body("42")},
            {"seq_num": 4, "body": body(' {"a": 1} \n')},
            {"seq_num": 5, "body": body("{broken")},
            {"seq_num": 6, "body": body(None, None)},
        ),
        "v2",
    )
    assert [r["data"] for r in decoded.records] == [
        "plain text",
        {"type": "text", "text": "direct writer"},
        42,
        {"a": 1},
        "{broken",
        None,
    ]
    assert [r["part_id"] for r in decoded.records] == ["p"] * 5 + [None]
    assert all(r["timestamp"] is None and r["control"] is None for r in decoded.records)


def test_v2_missing_body_is_an_empty_record_and_missing_headers_mean_none() -> None:
    (record,) = decode_event(batch({"seq_num": 3, "timestamp": 9}), "v2").records
    assert record == {
        "seq": 3,
        "data": "",
        "part_id": None,
        "timestamp": 9,
        "headers": [],
        "control": None,
    }


def test_v2_body_that_is_json_but_not_an_envelope_is_delivered_whole() -> None:
    decoded = decode_event(
        batch(
            {"seq_num": 1, "body": json.dumps({"type": "text", "text": "x"})},
            {"seq_num": 2, "body": "[1, 2]"},
        ),
        "v2",
    )
    assert [(r["data"], r["part_id"]) for r in decoded.records] == [
        ({"type": "text", "text": "x"}, None),
        ([1, 2], None),
    ]


def test_v2_numeric_part_id_becomes_a_string_and_odd_ones_are_dropped() -> None:
    decoded = decode_event(
        batch(
            {"seq_num": 1, "body": json.dumps({"data": "a", "id": 7})},
            {"seq_num": 2, "body": json.dumps({"data": "b", "id": ["x"]})},
        ),
        "v2",
    )
    assert [r["part_id"] for r in decoded.records] == ["7", None]


def test_v2_non_integer_timestamp_is_dropped() -> None:
    decoded = decode_event(
        batch(
            {"seq_num": 1, "timestamp": "soon", "body": body("a")},
            {"seq_num": 2, "timestamp": True},
        ),
        "v2",
    )
    assert [r["timestamp"] for r in decoded.records] == [None, None]


def test_v2_control_record_keeps_its_sibling_headers() -> None:
    headers = [
        [CONTROL_HEADER, "turn-complete"],
        ["public-access-token", "jwt-2"],
        ["session-in-event-id", "4"],
    ]
    (record,) = decode_event(
        batch({"seq_num": 8, "timestamp": 3, "headers": headers}), "v2"
    ).records
    assert record == {
        "seq": 8,
        "data": None,
        "part_id": None,
        "timestamp": 3,
        "headers": headers,
        "control": "turn-complete",
    }


def test_v2_control_header_need_not_come_first() -> None:
    headers = [["x-other", "1"], [CONTROL_HEADER, "upgrade-required"]]
    (record,) = decode_event(batch({"seq_num": 8, "headers": headers}), "v2").records
    assert record["control"] == "upgrade-required"


def test_v2_record_with_unrelated_headers_is_a_data_record() -> None:
    (record,) = decode_event(
        batch({"seq_num": 1, "headers": [["x-trace", "t"]], "body": body("hi")}), "v2"
    ).records
    assert (record["data"], record["headers"], record["control"]) == (
        "hi",
        [["x-trace", "t"]],
        None,
    )


def test_v2_command_records_are_dropped_but_advance_the_cursor() -> None:
    decoded = decode_event(
        batch(
            {"seq_num": 1, "body": body("a")},
            {"seq_num": 2, "headers": [["", "trim"]], "body": "\x00\x01 not json"},
            {"seq_num": 3, "headers": [["", "fence"], [CONTROL_HEADER, "turn-complete"]]},
        ),
        "v2",
    )
    assert [r["seq"] for r in decoded.records] == [1]
    assert decoded.last_seq == 3


def test_first_seq_counts_command_records() -> None:
    decoded = decode_event(
        batch({"seq_num": 7, "headers": [["", "fence"]]}, {"seq_num": 9, "body": body("a")}), "v2"
    )
    assert (decoded.first_seq, decoded.last_seq) == (7, 9)
    assert [r["seq"] for r in decoded.records] == [9]
    assert decode_event(batch(), "v2").first_seq is None


def test_v2_batch_of_only_command_records_still_moves_the_cursor() -> None:
    decoded = decode_event(batch({"seq_num": 41, "headers": [["", "trim"]]}), "v2")
    assert decoded == Decoded("records", [], 41, None, None, 41)


def test_v2_batch_event_id_is_never_the_cursor() -> None:
    decoded = decode_event(batch({"seq_num": 10, "body": body("a")}, event_id="99,3,512"), "v2")
    assert decoded.last_seq == 10
    assert decoded.records[0]["seq"] == 10


def test_v2_empty_batch() -> None:
    assert decode_event(batch(tail=5), "v2") == Decoded("records", [], None, 5, None)


def test_records_do_not_share_mutable_headers() -> None:
    decoded = decode_event(batch({"seq_num": 1, "body": body("a")}, {"seq_num": 2}), "v2")
    decoded.records[0]["headers"].append(["x", "y"])
    assert decoded.records[1]["headers"] == []


# ----------------------------------------------------------------------------- legacy


@pytest.mark.parametrize(
    ("kind", "control"),
    [("trigger:turn-complete", "turn-complete"), ("trigger:upgrade-required", "upgrade-required")],
)
def test_legacy_control_data_record_becomes_a_control_record(kind: str, control: str) -> None:
    data = {"type": kind, "publicAccessToken": "jwt"}
    for wire_data in (json.dumps(data), data):
        (record,) = decode_event(
            batch({"seq_num": 5, "body": body(wire_data, "pid")}), "v2"
        ).records
        assert record == {
            "seq": 5,
            "data": data,
            "part_id": "pid",
            "timestamp": None,
            "headers": [[CONTROL_HEADER, control]],
            "control": control,
        }


def test_legacy_control_in_v1_and_drain() -> None:
    data = {"type": "trigger:turn-complete"}
    (record,) = decode_event(v1("3", {"data": json.dumps(data), "id": "x"}), "v1").records
    assert (record["control"], record["data"], record["seq"]) == ("turn-complete", data, 3)
    drained = decode_drain_item({"data": data, "id": "x", "seqNum": 4})
    assert (drained["control"], drained["headers"]) == (
        "turn-complete",
        [[CONTROL_HEADER, "turn-complete"]],
    )


def test_other_trigger_types_and_unhashable_types_stay_data() -> None:
    decoded = decode_event(
        batch(
            {"seq_num": 1, "body": body({"type": "trigger:other"})},
            {"seq_num": 2, "body": body({"type": ["trigger:turn-complete"]})},
            {"seq_num": 3, "body": body({"type": {"a": 1}})},
        ),
        "v2",
    )
    assert [r["control"] for r in decoded.records] == [None, None, None]


# ----------------------------------------------------------------------------- other events


@pytest.mark.parametrize("shape", ["v1", "v2"])
def test_done_in_both_shapes(shape: str) -> None:
    assert decode_event(SSEEvent("message", "[DONE]"), shape) == Decoded("done", [])


@pytest.mark.parametrize("shape", ["v1", "v2"])
def test_error_event_carries_its_text(shape: str) -> None:
    decoded = decode_event(SSEEvent("error", "storage unavailable"), shape)
    assert decoded == Decoded("error", [], None, None, "storage unavailable")


@pytest.mark.parametrize("shape", ["v1", "v2"])
def test_error_event_json_reports_the_server_message(shape: str) -> None:
    data = json.dumps({"code": "STREAM_UNAVAILABLE", "message": "storage unavailable"})
    decoded = decode_event(SSEEvent("error", data), shape)
    assert decoded == Decoded("error", [], None, None, "storage unavailable")
    odd = json.dumps({"code": "X", "message": 5})
    assert decode_event(SSEEvent("error", odd), shape).error == odd


def test_ping_carries_the_tail() -> None:
    ping = SSEEvent("ping", '{"timestamp":1712150405000,"tail":{"seq_num":11,"timestamp":1}}')
    assert decode_event(ping, "v2") == Decoded("ping", [], None, 11, None)


@pytest.mark.parametrize(
    "data",
    ["", "not json", "[1]", '{"timestamp": 1}', '{"tail": {"seq_num": "11"}}', '{"tail": 3}'],
)
def test_malformed_ping_is_still_a_ping_without_tail(data: str) -> None:
    assert decode_event(SSEEvent("ping", data), "v2") == Decoded("ping", [])


def test_malformed_batch_tail_is_dropped() -> None:
    event = SSEEvent("batch", '{"records": [], "tail": {"seq_num": true}}')
    assert decode_event(event, "v2").tail is None


@pytest.mark.parametrize(
    ("event", "shape"),
    [("message", "v2"), ("foo", "v2"), ("foo", "v1"), ("Batch", "v2"), ("", "v1")],
)
def test_unknown_event_types_are_ignored(event: str, shape: str) -> None:
    assert decode_event(SSEEvent(event, '{"records": []}', "1"), shape) == Decoded("ignored", [])


def test_batch_is_understood_whatever_the_advertised_shape() -> None:
    assert decode_event(batch({"seq_num": 2, "body": body("a")}), "v1").last_seq == 2


def test_unknown_shape_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        decode_event(SSEEvent("message", "[DONE]"), "v3")


# ----------------------------------------------------------------------------- v1


def test_v1_record() -> None:
    decoded = decode_event(
        v1("42", {"data": {"type": "text", "text": "echo: hello"}, "id": "p42"}), "v1"
    )
    assert decoded == Decoded(
        "records",
        [
            {
                "seq": 42,
                "data": {"type": "text", "text": "echo: hello"},
                "part_id": "p42",
                "timestamp": None,
                "headers": [],
                "control": None,
            }
        ],
        42,
        None,
        None,
        42,
    )


def test_v1_documented_example_with_numeric_envelope_id() -> None:
    event = SSEEvent("message", '{"data":{"type":"text","text":"echo: hello"},"id":42}', "42")
    (record,) = decode_event(event, "v1").records
    assert (record["seq"], record["part_id"]) == (42, "42")


def test_v1_string_data_is_parsed_and_plain_text_kept() -> None:
    assert decode_event(v1("1", {"data": '{"a":1}', "id": "x"}), "v1").records[0]["data"] == {
        "a": 1
    }
    assert (
        decode_event(v1("1", {"data": "hi there", "id": "x"}), "v1").records[0]["data"]
        == "hi there"
    )


def test_v1_control_and_command_records_via_headers() -> None:
    control = v1("5", {"data": None, "id": "c", "headers": [[CONTROL_HEADER, "turn-complete"]]})
    (record,) = decode_event(control, "v1").records
    assert (record["control"], record["data"], record["seq"]) == ("turn-complete", None, 5)
    command = v1("6", {"data": "opaque", "id": "c", "headers": [["", "trim"]]})
    assert decode_event(command, "v1") == Decoded("records", [], 6, None, None, 6)


def test_v1_non_envelope_data_is_delivered_whole() -> None:
    (record,) = decode_event(v1("7", [1, 2, 3]), "v1").records
    assert (record["data"], record["part_id"]) == ([1, 2, 3], None)


# ----------------------------------------------------------------------------- errors


def raw_batch(data: str) -> SSEEvent:
    return SSEEvent("batch", data, "1,1,1")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"records": [', "batch event data is not valid JSON"),
        ("", "batch event data is not valid JSON"),
        ("[" * 100_000, "nested too deeply"),
        ("[]", "not a JSON object"),
        ("{}", "no 'records' list"),
        ('{"records": {}}', "no 'records' list"),
        ('{"records": [1]}', "record #0 is not a JSON object"),
        ('{"records": [{"body": "x"}]}', "record #0 seq_num: missing sequence number"),
        ('{"records": [{"seq_num": "5"}]}', "non-negative integer, got str"),
        ('{"records": [{"seq_num": true}]}', "non-negative integer, got bool True"),
        ('{"records": [{"seq_num": 5.0}]}', "non-negative integer, got float 5.0"),
        ('{"records": [{"seq_num": -1}]}', "non-negative integer, got int -1"),
        ('{"records": [{"seq_num": null}]}', "missing sequence number"),
        ('{"records": [{"seq_num": 5}, {"seq_num": 5}]}', "seq_num 5 does not follow 5"),
        ('{"records": [{"seq_num": 5}, {"seq_num": 4}]}', "seq_num 4 does not follow 5"),
        ('{"records": [{"seq_num": 5, "headers": {}}]}', "record 5: headers must be"),
        ('{"records": [{"seq_num": 5, "headers": [["a"]]}]}', "record 5: headers must be"),
        ('{"records": [{"seq_num": 5, "headers": [["a", 1]]}]}', "record 5: headers must be"),
        ('{"records": [{"seq_num": 5, "headers": ["ab"]}]}', "record 5: headers must be"),
        ('{"records": [{"seq_num": 5, "headers": 0}]}', "record 5: headers must be"),
        ('{"records": [{"seq_num": 5, "body": 1}]}', "record 5: body must be a string"),
        (
            '{"records": [{"seq_num": 5, "body": "{\\"data\\": "}]}',
            "record 5 body is not valid JSON",
        ),
        ('{"records": [{"seq_num": 5, "body": "hello"}]}', "record 5 body is not valid JSON"),
    ],
)
def test_bad_batches_are_protocol_errors_that_say_what_is_wrong(data: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message.replace("[", r"\[")):
        decode_event(raw_batch(data), "v2")


def test_a_bad_record_fails_the_whole_batch_so_the_cursor_cannot_move_past_it() -> None:
    event = raw_batch('{"records": [{"seq_num": 1, "body": "{}"}, {"seq_num": 2, "body": "{"}]}')
    with pytest.raises(ProtocolError, match="record 2 body"):
        decode_event(event, "v2")


def test_a_body_nested_too_deeply_is_a_protocol_error_not_a_recursion_error() -> None:
    event = raw_batch(json.dumps({"records": [{"seq_num": 1, "body": "[" * 100_000}]}))
    with pytest.raises(ProtocolError, match="record 1 body is nested too deeply"):
        decode_event(event, "v2")


def test_raw_batch_records_are_released_but_first_seq_is_kept() -> None:
    decoded = decode_event(batch({"seq_num": 4, "body": body("a")}, {"seq_num": 6}), "v2")
    assert (decoded.first_seq, decoded.last_seq, len(decoded.records)) == (4, 6, 2)


@pytest.mark.parametrize("event_id", [None, "", "10,3,512", "-1", "1.0", " 1", "١"])
def test_v1_record_without_a_decimal_id_is_a_protocol_error(event_id: Optional[str]) -> None:
    with pytest.raises(ProtocolError, match="decimal integer id"):
        decode_event(SSEEvent("message", '{"data": 1, "id": "x"}', event_id), "v1")


def test_v1_invalid_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="v1 event 3 data is not valid JSON"):
        decode_event(SSEEvent("message", "{nope", "3"), "v1")


def test_v1_malformed_headers_are_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="headers"):
        decode_event(v1("3", {"data": 1, "headers": "x"}), "v1")


# ----------------------------------------------------------------------------- drain


def test_drain_data_item() -> None:
    assert decode_drain_item({"data": '{"a": 1}', "id": "p", "seqNum": 43}) == {
        "seq": 43,
        "data": {"a": 1},
        "part_id": "p",
        "timestamp": None,
        "headers": [],
        "control": None,
    }


def test_drain_control_item() -> None:
    headers = [[CONTROL_HEADER, "turn-complete"], ["session-in-event-id", "2"]]
    record = decode_drain_item({"data": "", "id": "c", "seqNum": 44, "headers": headers})
    assert record == {
        "seq": 44,
        "data": None,
        "part_id": None,
        "timestamp": None,
        "headers": headers,
        "control": "turn-complete",
    }


def test_drain_item_missing_data_and_id() -> None:
    record = decode_drain_item({"seqNum": 1})
    assert (record["data"], record["part_id"]) == (None, None)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ([1], "not a JSON object"),
        ({"data": "a"}, "missing sequence number"),
        ({"data": "a", "seqNum": "43"}, "got str"),
        ({"data": "a", "seqNum": False}, "got bool"),
        ({"data": "a", "seqNum": 1, "headers": [[1, 2]]}, "headers must be"),
        ({"data": "a", "seqNum": 1, "headers": [["", "trim"]]}, "command record"),
    ],
)
def test_bad_drain_items_are_protocol_errors(item: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_drain_item(item)


# ----------------------------------------------------------------------------- payload, shape


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        (" \t1\r\n", 1),
        ('"quoted"', "quoted"),
        ("null", None),
        ("true", True),
        ("hello", "hello"),
        ("", ""),
        ("  ", "  "),
        ("1 2", "1 2"),
        ('{"a": 1} x', '{"a": 1} x'),
        ("\ufeff1", "\ufeff1"),
        ("NaN", "NaN"),
        ("-Infinity", "-Infinity"),
        ("[1, Infinity]", "[1, Infinity]"),
        ("1.5e3", 1500.0),
        ("1" * 5000, "1" * 5000),
        ("[" * 100_000, "[" * 100_000),
        (5, 5),
        (None, None),
        ({"a": "1"}, {"a": "1"}),
    ],
)
def test_decode_payload(value: Any, expected: Any) -> None:
    assert decode_payload(value) == expected


@pytest.mark.parametrize(
    ("headers", "shape"),
    [
        ({}, "v1"),
        ({"X-Stream-Version": "v2"}, "v2"),
        ({"x-stream-version": "v2"}, "v2"),
        ({"X-STREAM-VERSION": " V2 "}, "v2"),
        ({"X-Stream-Version": "v1"}, "v1"),
        ({"Content-Type": "text/event-stream"}, "v1"),
        (CaseInsensitiveDict({"x-Stream-version": "v2"}), "v2"),
    ],
)
def test_wire_shape(headers: Any, shape: str) -> None:
    assert wire_shape(headers) == shape


# ----------------------------------------------------------------------------- chunking

V2_STREAM = (
    b"\xef\xbb\xbf: hi\r\n"
    b"event: batch\r\nid: 1,3,9\r\n"
    b'data: {"records":[{"seq_num":1,"timestamp":7,'
    b'"body":"{\\"data\\":\\"h\xc3\xa9\\",\\"id\\":\\"a\\"}"},'
    b'{"seq_num":2,"headers":[["","trim"]]},'
    b'{"seq_num":3,"headers":[["trigger-control","turn-complete"]]}],"tail":{"seq_num":4}}\r\n\r\n'
    b'event: ping\rdata: {"tail":{"seq_num":4}}\r\r'
    b"data: [DONE]\n\n"
)

V1_STREAM = (
    b'id: 1\r\ndata: {"data":"{\\"t\\":\\"\xe2\x82\xac\\"}","id":"a"}\r\n\r\n'
    b": keep-alive\n\n"
    b'id: 2\rdata: {"data":{"type":"trigger:turn-complete"},"id":"b"}\r\r'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize(
    ("stream", "shape"), [(V2_STREAM, "v2"), (V1_STREAM, "v1")], ids=["v2", "v1"]
)
def test_every_two_and_three_piece_chunking_gives_identical_records(
    stream: bytes, shape: str
) -> None:
    expected = decode_stream(stream, shape)
    kinds = [e[0] for e in expected]
    assert kinds == (
        ["records", "ping", "done"] if shape == "v2" else ["records", "records", "done"]
    )
    assert len(stream) > 100
    count = 0
    for cuts in every_split(len(stream)):
        assert decode_stream(stream, shape, cuts) == expected, cuts
        count += 1
    assert count == (len(stream) - 1) * len(stream) // 2


def test_chunked_v2_stream_decodes_to_the_expected_records() -> None:
    (records, ping, done) = decode_stream(V2_STREAM, "v2")
    assert records == (
        "records",
        [
            {
                "seq": 1,
                "data": "hé",
                "part_id": "a",
                "timestamp": 7,
                "headers": [],
                "control": None,
            },
            {
                "seq": 3,
                "data": None,
                "part_id": None,
                "timestamp": None,
                "headers": [["trigger-control", "turn-complete"]],
                "control": "turn-complete",
            },
        ],
        3,
        4,
        None,
        1,
    )
    assert ping == ("ping", [], None, 4, None, None)
    assert done == ("done", [], None, None, None, None)
