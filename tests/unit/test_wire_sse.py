"""iter_sse_events: the WHATWG event-stream rules, chunking, limits, no read-ahead."""

from __future__ import annotations

from typing import Any, Generator, Iterator, List, Optional, Sequence, cast

import pytest

from sessions_client._sse import DEFAULT_MAX_EVENT_BYTES, SSEEvent, iter_sse_events
from sessions_client.errors import ProtocolError


def parse(stream: bytes, cuts: Sequence[int] = (), **kwargs: int) -> List[SSEEvent]:
    """All events of ``stream`` fed in pieces cut at the offsets ``cuts``."""
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:])]
    return list(iter_sse_events(chunks, **kwargs))


def every_cut(stream: bytes) -> Iterator[List[int]]:
    """Every way to cut ``stream`` into two or three pieces."""
    for i in range(1, len(stream)):
        yield [i]
        for j in range(i + 1, len(stream)):
            yield [i, j]


def msg(data: str, event: str = "message", id: Optional[str] = None) -> SSEEvent:
    return SSEEvent(event, data, id)


# ----------------------------------------------------------------------------- line endings

BODY = "event: batch\nid: 7\ndata: first\ndata: second\n\n: comment\ndata: x\n\n"
EXPECTED = [msg("first\nsecond", "batch", "7"), msg("x")]


@pytest.mark.parametrize("ending", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_each_line_ending_gives_the_same_events(ending: str) -> None:
    stream = BODY.replace("\n", ending).encode()
    assert parse(stream) == EXPECTED


@pytest.mark.parametrize("ending", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_line_endings_split_across_chunks_at_every_offset(ending: str) -> None:
    stream = BODY.replace("\n", ending).encode()
    for cuts in every_cut(stream):
        assert parse(stream, cuts) == EXPECTED, cuts


def test_crlf_split_between_chunks_is_one_line_ending() -> None:
    assert parse(b"data: a\r\ndata: b\r\n\r\n", [8]) == [msg("a\nb")]
    assert parse(b"data: a\r\n\r\n", [8, 10]) == [msg("a")]


def test_cr_then_crlf_ends_the_event() -> None:
    # CR, then CRLF: two line endings, i.e. a blank line.
    assert parse(b"data: a\r\r\ndata: b\r\n\r\n") == [msg("a"), msg("b")]
    assert parse(b"data: a\r\r\ndata: b\r\n\r\n", [8]) == [msg("a"), msg("b")]


def test_mixed_line_endings() -> None:
    stream = b"data: a\n\r\ndata: b\r\n\ndata: c\r\rdata: d\n\r\r\n"
    expected = [msg("a"), msg("b"), msg("c"), msg("d")]
    assert parse(stream) == expected
    for cuts in every_cut(stream):
        assert parse(stream, cuts) == expected, cuts


def test_multibyte_utf8_split_across_chunks() -> None:
    stream = "data: héllo € 🎉\n\n".encode()
    for cuts in every_cut(stream):
        assert parse(stream, cuts) == [msg("héllo € 🎉")], cuts


def test_empty_chunks_are_harmless() -> None:
    chunks = [b"", b"data: a\r", b"", b"\n", b"", b"\r\n", b""]
    assert list(iter_sse_events(chunks)) == [msg("a")]


def test_bytearray_and_memoryview_chunks_are_accepted() -> None:
    chunks: List[Any] = [bytearray(b"data: a\n"), memoryview(b"\n")]
    assert list(iter_sse_events(chunks)) == [msg("a")]


# ----------------------------------------------------------------------------- fields


def test_comment_lines_are_ignored() -> None:
    assert parse(b": hello\ndata: a\n:\n: data: b\n\n") == [msg("a")]


def test_comment_only_blocks_dispatch_nothing() -> None:
    assert parse(b": keep-alive\n\n: keep-alive\n\ndata: a\n\n") == [msg("a")]


def test_multiline_data_is_joined_with_newlines() -> None:
    assert parse(b"data: a\ndata: b\ndata: c\n\n") == [msg("a\nb\nc")]
    assert parse(b"data:\ndata:\n\n") == [msg("\n")]


def test_leading_bom_is_stripped() -> None:
    assert parse(b"\xef\xbb\xbfdata: a\n\n") == [msg("a")]


def test_leading_bom_split_across_chunks_is_stripped() -> None:
    stream = b"\xef\xbb\xbfdata: a\n\n"
    for cuts in every_cut(stream):
        assert parse(stream, cuts) == [msg("a")], cuts


def test_bom_is_only_stripped_at_the_very_start() -> None:
    # A second BOM makes the field name "\ufeffdata": an unknown field, ignored.
    assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n") == [msg("b")]
    assert parse(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [msg("a")]


def test_unknown_fields_are_ignored() -> None:
    assert parse(b"foo: bar\nData: x\ndata : y\ndata: a\nx\n\n") == [msg("a")]


def test_field_without_colon_has_an_empty_value() -> None:
    assert parse(b"data\n\n") == [msg("")]
    assert parse(b"data\ndata\n\n") == [msg("\n")]
    assert parse(b"event: foo\nevent\ndata: a\n\n") == [msg("a")]
    assert parse(b"id\ndata: a\n\n") == [msg("a", id="")]


def test_only_one_space_after_the_colon_is_stripped() -> None:
    assert parse(b"data:a\n\n") == [msg("a")]
    assert parse(b"data: a\n\n") == [msg("a")]
    assert parse(b"data:  a \n\n") == [msg(" a ")]
    assert parse(b"event:\tping\ndata: a\n\n") == [msg("a", "\tping")]


def test_colons_in_the_value_are_kept() -> None:
    assert parse(b'data: {"a": "b:c"}\n\n') == [msg('{"a": "b:c"}')]


def test_id_containing_nul_is_ignored() -> None:
    assert parse(b"id: 1\nid: 2\x003\ndata: a\n\n") == [msg("a", id="1")]
    assert parse(b"id: \x00\ndata: a\n\n") == [msg("a", id=None)]


def test_nul_outside_id_is_kept() -> None:
    assert parse(b"data: a\x00b\n\n") == [msg("a\x00b")]


def test_events_without_data_are_not_dispatched() -> None:
    assert parse(b"event: foo\n\nid: 3\n\nretry: 10\n\n: c\n\n") == []


def test_event_type_defaults_to_message() -> None:
    assert parse(b"data: a\n\n") == [msg("a", "message")]
    assert parse(b"event:\ndata: a\n\n") == [msg("a", "message")]
    assert parse(b"event: ping\ndata: a\n\ndata: b\n\n") == [msg("a", "ping"), msg("b")]


def test_id_is_the_event_own_id_field() -> None:
    events = parse(b"id: 1\ndata: a\n\ndata: b\n\nid:\ndata: c\n\n")
    assert [e.id for e in events] == ["1", None, ""]


def test_data_mentioning_retry_is_untouched() -> None:
    assert parse(b"data: retry: soon\nretry\ndata: retry\n\n") == [msg("retry: soon\nretry")]


def test_blank_lines_between_events() -> None:
    assert parse(b"\n\n\ndata: a\n\n\n\ndata: b\n\n\n") == [msg("a"), msg("b")]


def test_incomplete_event_at_end_of_stream_is_discarded() -> None:
    assert parse(b"data: a\n\ndata: b\n") == [msg("a")]
    assert parse(b"data: a\n\ndata: b") == [msg("a")]
    # A trailing CR ends the line, not the event.
    assert parse(b"data: a\r") == []


# ----------------------------------------------------------------------------- latency


class CountingChunks:
    """An iterator over chunks that counts how many were pulled."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self.chunks = list(chunks)
        self.pulled = 0

    def __iter__(self) -> CountingChunks:
        return self

    def __next__(self) -> bytes:
        if self.pulled >= len(self.chunks):
            raise StopIteration
        self.pulled += 1
        return self.chunks[self.pulled - 1]


@pytest.mark.parametrize("blank", [b"\n\n", b"\r\r", b"\r\n\r\n"], ids=["LF", "CR", "CRLF"])
def test_event_is_yielded_without_reading_the_next_chunk(blank: bytes) -> None:
    source = CountingChunks([b"data: a", blank, b"data: b" + blank, b"data: c" + blank])
    events = iter_sse_events(source)
    assert next(events) == msg("a")
    assert source.pulled == 2
    assert next(events) == msg("b")
    assert source.pulled == 3


def test_several_events_in_one_chunk_come_one_by_one() -> None:
    source = CountingChunks([b"data: a\n\ndata: b\n\n", b"data: c\n\n"])
    events = iter_sse_events(source)
    assert next(events) == msg("a")
    assert next(events) == msg("b")
    assert source.pulled == 1


def test_closing_the_generator_stops_reading() -> None:
    source = CountingChunks([b"data: a\n\n", b"data: b\n\n"])
    events = cast(Generator[SSEEvent, None, None], iter_sse_events(source))
    assert next(events) == msg("a")
    events.close()
    assert list(events) == []
    assert source.pulled == 1


# ----------------------------------------------------------------------------- limits


def test_default_max_event_bytes_is_16_mib() -> None:
    assert DEFAULT_MAX_EVENT_BYTES == 16 * 1024 * 1024


def test_event_at_the_limit_passes_and_one_byte_more_fails() -> None:
    line = b"data: " + b"x" * 94 + b"\n"  # exactly 101 bytes, its newline included
    assert len(line) == 101
    assert parse(line + b"\n", max_event_bytes=101) == [msg("x" * 94)]
    with pytest.raises(ProtocolError, match="max_event_bytes"):
        parse(line + b"\n", max_event_bytes=100)
    for cuts in ([50], [101], [100, 101], [10, 60]):
        with pytest.raises(ProtocolError, match="max_event_bytes"):
            parse(line + b"\n", cuts, max_event_bytes=100)


def test_limit_applies_per_event_not_per_stream() -> None:
    stream = b"data: aaaa\n\n" * 100
    assert len(parse(stream, max_event_bytes=11)) == 100


def test_endless_event_fails_with_bounded_reading() -> None:
    limit = 64 * 1024
    source = CountingChunks([b"data: " + b"x" * 1000 + b"\n"] * 10_000)
    with pytest.raises(ProtocolError, match="max_event_bytes"):
        list(iter_sse_events(source, max_event_bytes=limit))
    assert source.pulled <= limit // 1000 + 2


def test_endless_comments_without_blank_line_fail_too() -> None:
    source = CountingChunks([b": keep-alive\r\n"] * 100_000)
    with pytest.raises(ProtocolError):
        list(iter_sse_events(source, max_event_bytes=4096))
    assert source.pulled < 400


def test_events_before_an_oversized_one_are_delivered() -> None:
    events: List[SSEEvent] = []
    with pytest.raises(ProtocolError):
        for event in iter_sse_events([b"data: a\n\ndata: " + b"y" * 500], max_event_bytes=100):
            events.append(event)
    assert events == [msg("a")]


def test_max_event_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        parse(b"data: a\n\n", max_event_bytes=0)


# ----------------------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    "bad",
    [b"data: \xff\n\n", b"data: \xc3\n\n", b"data: \xed\xa0\x80\n\n", b": \xfe\ndata: a\n\n"],
)
def test_invalid_utf8_is_a_protocol_error(bad: bytes) -> None:
    with pytest.raises(ProtocolError, match="UTF-8"):
        parse(bad)


def test_events_before_invalid_utf8_are_delivered() -> None:
    events = iter_sse_events([b"data: a\n\ndata: \xff\n\n"])
    assert next(events) == msg("a")
    with pytest.raises(ProtocolError):
        next(events)


def test_invalid_utf8_in_a_discarded_trailing_event_is_not_an_error() -> None:
    assert parse(b"data: a\n\ndata: \xff") == [msg("a")]
