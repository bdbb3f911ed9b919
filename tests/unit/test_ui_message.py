"""``assemble_message`` and ``parse_partial_json`` on key cases, without node.

The expected values were produced by the AI SDK's ``readUIMessageStream`` / ``parsePartialJson``
(``ai`` 6.0.325); ``tests/uimessage`` compares against the SDK itself on many more lists.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List

import pytest

from sessions_client._partial_json import UNDEFINED, fix_json, parse_partial_json
from sessions_client._ui_message import assemble_message
from sessions_client.errors import ProtocolError

Chunks = List[Dict[str, Any]]


def test_text_turn_with_steps_and_metadata() -> None:
    chunks: Chunks = [
        {"type": "start", "messageId": "m1", "messageMetadata": {"a": {"x": 1}}},
        {"type": "start-step"},
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": "echo: "},
        {"type": "text-delta", "id": "t", "delta": "hi"},
        {"type": "text-end", "id": "t"},
        {"type": "finish-step"},
        {"type": "finish", "messageMetadata": {"a": {"y": 2}, "b": [1]}},
    ]
    assert assemble_message(chunks) == {
        "id": "m1",
        "metadata": {"a": {"x": 1, "y": 2}, "b": [1]},
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {"type": "text", "text": "echo: hi", "state": "done"},
        ],
    }


def test_a_cut_off_reply_keeps_streaming_states() -> None:
    chunks: Chunks = [
        {"type": "start", "messageId": "m1"},
        {"type": "reasoning-start", "id": "r", "providerMetadata": {"p": {"k": 1}}},
        {"type": "reasoning-delta", "id": "r", "delta": "hmm"},
        {"type": "tool-input-start", "toolCallId": "c", "toolName": "echo"},
        {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": '{"text": "he'},
        {"type": "start-step"},
    ]
    assert assemble_message(chunks) == {
        "id": "m1",
        "role": "assistant",
        "parts": [
            {
                "type": "reasoning",
                "id": "r",
                "text": "hmm",
                "providerMetadata": {"p": {"k": 1}},
                "state": "streaming",
            },
            {
                "type": "tool-echo",
                "toolCallId": "c",
                "state": "input-streaming",
                "input": {"text": "he"},
                "rawInput": '{"text": "he',
            },
        ],  # the trailing step-start was never emitted
    }


def test_tool_call_through_output() -> None:
    chunks: Chunks = [
        {"type": "tool-input-start", "toolCallId": "c", "toolName": "echo", "dynamic": True},
        {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": '{"text": "X"}'},
        {
            "type": "tool-input-available",
            "toolCallId": "c",
            "toolName": "echo",
            "dynamic": True,
            "input": {"text": "X"},
        },
        {"type": "tool-output-available", "toolCallId": "c", "output": 1, "preliminary": True},
        {"type": "tool-output-available", "toolCallId": "c", "output": {"text": "X"}},
    ]
    assert assemble_message(chunks)["parts"] == [
        {
            "type": "dynamic-tool",
            "toolName": "echo",
            "toolCallId": "c",
            "state": "output-available",
            "input": {"text": "X"},
            "output": {"text": "X"},
        }
    ]


def test_approval_denial_and_input_error() -> None:
    chunks: Chunks = [
        {"type": "tool-input-available", "toolCallId": "a", "toolName": "rm", "input": {}},
        {"type": "tool-approval-request", "approvalId": "ap", "toolCallId": "a"},
        {"type": "tool-output-denied", "toolCallId": "a"},
        {
            "type": "tool-input-error",
            "toolCallId": "b",
            "toolName": "rm",
            "input": "{x",
            "errorText": "bad",
        },
    ]
    assert assemble_message(chunks)["parts"] == [
        {
            "type": "tool-rm",
            "toolCallId": "a",
            "state": "output-denied",
            "input": {},
            "approval": {"id": "ap"},
        },
        {
            "type": "tool-rm",
            "toolCallId": "b",
            "state": "output-error",
            "rawInput": "{x",
            "errorText": "bad",
        },
    ]


def test_data_parts_replaced_by_id_and_transient_dropped() -> None:
    chunks: Chunks = [
        {"type": "data-w", "id": "1", "data": "loading"},
        {"type": "data-v", "id": "1", "data": "other type"},
        {"type": "data-w", "data": "no id", "transient": True},
        {"type": "data-w", "id": "1", "data": "done", "transient": False},
        {"type": "error", "errorText": "not a part"},
        {"type": "abort"},
    ]
    assert assemble_message(chunks) == {
        "id": "",
        "role": "assistant",
        "parts": [
            {"type": "data-w", "id": "1", "data": "done"},
            {"type": "data-v", "id": "1", "data": "other type"},
        ],
    }


def test_a_new_message_id_starts_over() -> None:
    chunks: Chunks = [
        {"type": "start", "messageId": "a", "messageMetadata": {"k": 1}},
        {"type": "file", "url": "u", "mediaType": "image/png"},
        {"type": "start", "messageId": "b"},
        {"type": "source-url", "sourceId": "s", "url": "https://x"},
    ]
    assert assemble_message(chunks) == {
        "id": "b",
        "role": "assistant",
        "parts": [{"type": "source-url", "sourceId": "s", "url": "https://x"}],
    }


@pytest.mark.parametrize(
    "chunks",
    [[], [{"type": "start"}], [{"type": "start-step"}, {"type": "finish"}]],
    ids=["empty", "start without id", "nothing emitted"],
)
def test_before_any_emitted_change_the_starting_message(chunks: Chunks) -> None:
    assert assemble_message(chunks) == {"id": "", "role": "assistant", "parts": []}


@pytest.mark.parametrize(
    ("chunks", "needle"),
    [
        ([{"type": "text-delta", "id": "x", "delta": "a"}], 'missing text part with ID "x"'),
        ([{"type": "reasoning-end", "id": "r"}], 'missing reasoning part with ID "r"'),
        (
            [{"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": "{"}],
            'missing tool call with ID "c"',
        ),
        ([{"type": "tool-output-denied", "toolCallId": "c"}], 'tool call ID "c"'),
        (
            [
                {"type": "start", "messageMetadata": "s"},
                {"type": "finish", "messageMetadata": {"a": 1}},
            ],
            "non-object metadata",
        ),
        ([{"id": "no type"}], "string 'type'"),
        ([{"type": "text-start", "id": 1}], "string 'id'"),
    ],
)
def test_invalid_sequences_raise_protocol_error(chunks: Chunks, needle: str) -> None:
    with pytest.raises(ProtocolError, match="UI message chunk") as caught:
        assemble_message([{"type": "start", "messageId": "m"}, *chunks])
    assert needle in str(caught.value)


def test_the_chunks_are_not_modified_nor_shared() -> None:
    chunks: Chunks = [
        {"type": "data-w", "id": "1", "data": {"v": 1}},
        {"type": "data-w", "id": "1", "data": {"v": 2}},
        {"type": "tool-input-available", "toolCallId": "c", "toolName": "t", "input": {"q": 1}},
    ]
    before = copy.deepcopy(chunks)
    message = assemble_message(chunks)
    assert chunks == before
    message["parts"][1]["input"]["q"] = 99
    assert chunks[2]["input"] == {"q": 1}


@pytest.mark.parametrize(
    ("text", "fixed", "value"),
    [
        ('{"a": [1, 2, tr', '{"a": [1, 2, true]}', {"a": [1, 2, True]}),
        ('{"a":-', "{}", {}),
        ('{"key', "{}", {}),
        ("[1.5e", "[1.5]", [1.5]),
        ('"abc\\u00', '"abc"', "abc"),
        ('{"a": "x\\', '{"a": "x"}', {"a": "x"}),
        ("[1\U0001f600", "[1\U0001f600]", UNDEFINED),
        ('{"__proto__": {"x": 1}}', '{"__proto__": {"x": 1}}', UNDEFINED),
        ("NaN", "", UNDEFINED),
        (
            "[9007199254740993, 2, 1e999]",
            "[9007199254740993, 2, 1e999]",
            [9007199254740992.0, 2, float("inf")],
        ),
        ("1" + "0" * 5000, "1" + "0" * 5000, float("inf")),
        ("", "", UNDEFINED),
    ],
)
def test_parse_partial_json_follows_the_sdk(text: str, fixed: str, value: Any) -> None:
    assert fix_json(text) == fixed
    assert parse_partial_json(text) == value
