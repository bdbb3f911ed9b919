"""The canonical-event fast path of iter_sse_events against sseclient-py, the reference.

``iter_sse_events`` reads canonical events (``[event: X\\n][id: Y\\n]data: Z``) with one
regular expression and hands every other event to sseclient-py. These tests feed
arbitrary streams to both the real function and a reference that sends *every* event
through sseclient-py (same framing), and require the same events and the same errors.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Tuple, Union

import pytest
import sseclient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions_client.errors import ProtocolError
from sessions_client.sse import _frame_events, _parse_with_sseclient
from sessions_client.wire import Decoded, SSEEvent, decode_event, iter_decoded, iter_sse_events

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Outcome = Tuple[List[SSEEvent], Optional[str]]


def collect(events: Iterator[SSEEvent]) -> Outcome:
    got: List[SSEEvent] = []
    try:
        for event in events:
            got.append(event)
    except ProtocolError as exc:
        return got, str(exc)
    except UnicodeDecodeError as exc:  # the reference does not translate it
        return got, f"event stream is not valid UTF-8 ({exc.reason})"
    return got, None


def reference(chunks: List[bytes], limit: int) -> Outcome:
    """Every event parsed by sseclient-py, after the same framing."""
    return collect(_parse_with_sseclient(_frame_events(chunks, limit)))


def actual(chunks: List[bytes], limit: int) -> Outcome:
    return collect(iter_sse_events(chunks, max_event_bytes=limit))


# Pieces that make canonical events, near-canonical ones (no space, other order, repeated
# fields, empty values, NUL, comments, retry, multi-line data) and invalid UTF-8.
PIECES = [
    b"event: ",
    b"event:",
    b"event: batch",
    b"event: ping",
    b"event:  x",
    b"id: ",
    b"id:",
    b"id: 7",
    b"id: 1,2,3",
    b"id: \x00",
    b"data: ",
    b"data:",
    b"data: x",
    b"data:  y",
    b"data: a:b",
    b"data: [DONE]",
    b'data: {"records":[]}',
    b"retry: 10",
    b"retry: x",
    b": comment",
    b"unknown: z",
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b" ",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"\xef\xbb\xbf",
]

EVENT_LINES = [b"event: ", b"event:", b"event: batch", b"event:  x", b"event: \xff", b"event"]
ID_LINES = [
    b"id: ",
    b"id:",
    b"id: 7",
    b"id: 3",
    b"id: 12",
    b"id: 1,2,3",
    b"id: \x00",
    b"id:  8",
    b"id",
    b"id: \xd9\xa3",
]
DATA_LINES = [
    b"data: ",
    b"data:",
    b"data: x",
    b"data:  y",
    b"data: a:b",
    b"data: \xff",
    b"data",
    b"data: [DONE]",
    b'data: {"data":"{\\"a\\":1}","id":"p"}',
    b'data: {"data":{"type":"trigger:turn-complete"},"id":3}',
    b'data: {"data":"x","headers":[["trigger-control","turn-complete"]]}',
    b'data: {"data":1,"headers":[["","trim"]]}',
    b'data: {"records":[{"seq_num":1,"body":"{\\"data\\":1}"}],"tail":{"seq_num":2}}',
    b"data: {",
    b"data: 5",
]
OTHER_LINES = [b"retry: 10", b"retry: x", b": comment", b"unknown: z", b"", b" "]


@st.composite
def near_canonical_events(draw: st.DrawFn) -> bytes:
    """An event shaped like a canonical one, often with one thing off."""
    lines: List[bytes] = []
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(EVENT_LINES)))
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(ID_LINES)))
    lines += draw(st.lists(st.sampled_from(DATA_LINES), min_size=1, max_size=2))
    if draw(st.integers(0, 3)) == 0:
        extra = draw(st.sampled_from(OTHER_LINES + EVENT_LINES + ID_LINES))
        lines.insert(draw(st.integers(0, len(lines))), extra)
    if draw(st.integers(0, 3)) == 0:
        lines = draw(st.permutations(lines))
    return b"\n".join(lines)


streams = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
    st.lists(near_canonical_events(), max_size=6).map(
        lambda items: b"".join(e + b"\n\n" for e in items)
    ),
)


def cut(stream: bytes, cuts: List[int]) -> List[bytes]:
    bounds = [0, *sorted(set(cuts)), len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:])]


@SETTINGS
@given(stream=streams, data=st.data())
def test_fast_path_gives_what_sseclient_py_gives(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    limit = data.draw(st.sampled_from([16, 1 << 20]))
    chunks = cut(stream, cuts)
    assert actual(chunks, limit) == reference(chunks, limit)


CANONICAL_STREAM = (
    b"event: batch\nid: 1,2,3\ndata: {}\n\n"
    b"id: 7\ndata: x\n\n"
    b"event: ping\ndata: {}\n\n"
    b"data: [DONE]\n\n"
    b"id: \ndata: \n\n"
    b"event:  spaced\ndata: a:b\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_canonical_events_match_the_reference_in_any_chunking(size: int) -> None:
    chunks = [CANONICAL_STREAM[i : i + size] for i in range(0, len(CANONICAL_STREAM), size)]
    expected = [
        SSEEvent("batch", "{}", "1,2,3"),
        SSEEvent("message", "x", "7"),
        SSEEvent("ping", "{}"),
        SSEEvent("message", "[DONE]"),
        SSEEvent("message", "", ""),
        SSEEvent(" spaced", "a:b"),
    ]
    assert actual(chunks, 1 << 20) == (expected, None)
    assert reference(chunks, 1 << 20) == (expected, None)


def spy_on_sseclient(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    parsed: List[str] = []
    original = sseclient.SSEClient.events

    def spying_events(self: sseclient.SSEClient) -> Iterator[sseclient.Event]:
        for event in original(self):
            parsed.append(event.data)
            yield event

    monkeypatch.setattr(sseclient.SSEClient, "events", spying_events)
    return parsed


def test_non_canonical_events_are_parsed_by_sseclient_py(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = spy_on_sseclient(monkeypatch)
    stream = (
        b"id: 1\ndata: fast\n\n"  # canonical
        b": hello\ndata: commented\n\n"  # a comment
        b"data: two\ndata: lines\n\n"  # multi-line data
        b"data:nospace\n\n"  # no space after the colon
        b"retry: 10\ndata: retried\n\n"  # a retry field
        b"data: x\nid: 2\n\n"  # id after data
    )
    events = list(iter_sse_events([stream]))
    slow = ["commented", "two\nlines", "nospace", "retried", "x"]
    assert [e.data for e in events] == ["fast", *slow]
    assert events[4].retry == 10 and events[5].id == "2"
    assert parsed == slow


def test_invalid_utf8_is_a_protocol_error_on_either_path() -> None:
    for stream in (b"id: 1\ndata: \xff\n\n", b": c\ndata: \xff\n\n", b"event: \xff\ndata: x\n\n"):
        with pytest.raises(ProtocolError, match="not valid UTF-8"):
            list(iter_sse_events([stream]))


def test_reference_is_not_the_function_under_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """The differential test would prove nothing if both sides took the fast path."""
    parsed = spy_on_sseclient(monkeypatch)
    got = reference([b"id: 1\ndata: a\n\nevent: ping\ndata: b\n\n"], 1 << 20)
    assert got == ([SSEEvent("message", "a", "1"), SSEEvent("ping", "b")], None)
    assert parsed == ["a", "b"]


def test_fast_path_accepts_bytearray_chunks() -> None:
    chunks = [bytearray(b"id: 3\nda"), bytearray(b"ta: z\n\n")]
    assert list(iter_sse_events(chunks)) == [SSEEvent("message", "z", "3")]


Step = Union[Decoded, str]


def merged(steps: List[Step]) -> List[Step]:
    """``steps`` with each run of consecutive v1 record items joined into one, as
    iter_decoded joins the v1 record events of a chunk: records concatenated,
    ``first_seq`` of the first, ``last_seq`` the highest."""
    out: List[Step] = []
    for step in steps:
        previous = out[-1] if out else None
        if (
            isinstance(step, Decoded)
            and isinstance(previous, Decoded)
            and step.kind == previous.kind == "records"
            and step.tail is None
            and previous.tail is None
        ):
            last = max(x for x in (previous.last_seq, step.last_seq) if x is not None)
            out[-1] = previous._replace(records=previous.records + step.records, last_seq=last)
        else:
            out.append(step)
    return out


def decoded_reference(chunks: List[bytes], shape: str) -> List[Step]:
    """decode_event over iter_sse_events, errors recorded as steps; record items merged."""
    steps: List[Step] = []
    try:
        for event in iter_sse_events(chunks, max_event_bytes=1 << 20):
            steps.append(decode_event(event, shape))
    except ProtocolError as exc:
        steps.append(f"error: {exc}")
    return merged(steps)


def decoded_actual(chunks: List[bytes], shape: str) -> List[Step]:
    steps: List[Step] = []
    try:
        for decoded in iter_decoded(chunks, shape, max_event_bytes=1 << 20):
            steps.append(decoded)
    except ProtocolError as exc:
        steps.append(f"error: {exc}")
    return merged(steps)


@SETTINGS
@given(stream=streams, data=st.data())
def test_iter_decoded_gives_what_decode_event_gives(stream: bytes, data: st.DataObject) -> None:
    chunks = cut(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    for shape in ("v1", "v2"):
        assert decoded_actual(chunks, shape) == decoded_reference(chunks, shape)


def test_iter_decoded_rejects_an_unknown_shape() -> None:
    with pytest.raises(ValueError, match="wire shape"):
        next(iter_decoded([b"data: x\n\n"], "v3"))
    with pytest.raises(ValueError, match="max_event_bytes"):
        next(iter_decoded([b"data: x\n\n"], "v1", max_event_bytes=0))


@pytest.mark.parametrize(
    "stream",
    [
        b"id: 7\ndata: [DONE]\n\n",  # [DONE] with an id is still the end of the window
        b"event: batch\nid: 7\ndata: {}\n\n",  # a named event is not a v1 record
        b"event: message\nid: 7\ndata: 5\n\n",  # explicitly named "message": a record
        b"event: ping\nid: 7\ndata: {}\n\n",
        b"id: 07\ndata: 5\n\n",  # leading zero
        b"id: \xd9\xa3\ndata: 5\n\n",  # a non-ASCII digit is not a decimal id
        b"id: \ndata: 5\n\n",  # empty id
        b"data: 5\n\n",  # no id
        b"id: 7\ndata: {\n\n",  # invalid JSON
        b"id: 7\ndata: \xff\n\n",  # invalid UTF-8
        b"id: 5\ndata: 1\n\nid: 3\ndata: 2\n\nid: 4\ndata: 3\n\n",  # ids going back
        b'id: 1\ndata: 1\n\nid: 2\ndata: {"data":1,"headers":[["","x"]]}\n\n',  # command last
    ],
)
def test_iter_decoded_on_v1_edge_cases(stream: bytes) -> None:
    for shape in ("v1", "v2"):
        assert decoded_actual([stream], shape) == decoded_reference([stream], shape)


def test_v1_record_events_of_one_chunk_come_as_one_item() -> None:
    first_chunk = b'id: 1\ndata: {"data":"a","id":"p1"}\n\n'
    second_chunk = (
        b'id: 2\ndata: {"data":1,"headers":[["","trim"]]}\n\n'  # a command record
        b'id: 3\ndata: {"data":"c","id":"p3"}\n\n'
        b': not canonical\nid: 4\ndata: {"data":"d"}\n\n'  # sseclient-py parses this one
        b"event: ping\ndata: {}\n\n"
        b'id: 5\ndata: {"data":"e","id":"p5"}\n\n'
    )
    items = list(iter_decoded([first_chunk, second_chunk], "v1"))
    assert [(d.kind, [r["seq"] for r in d.records], d.first_seq, d.last_seq) for d in items] == [
        ("records", [1], 1, 1),
        ("records", [3], 2, 3),  # the command record moved the cursor to 2, then 3
        ("records", [4], 4, 4),
        ("ping", [], None, None),
        ("records", [5], 5, 5),
    ]


def test_records_before_a_bad_v1_event_are_yielded_before_the_error() -> None:
    stream = b'id: 1\ndata: {"data":"a"}\n\nid: 2\ndata: {"data":"b"}\n\nid: 3\ndata: {\n\n'
    items = iter_decoded([stream], "v1")
    first = next(items)
    assert [r["data"] for r in first.records] == ["a", "b"]
    with pytest.raises(ProtocolError, match="v1 event 3 data is not valid JSON"):
        next(items)
