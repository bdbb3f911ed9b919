"""What AgentChat sends, as the official client builds it (``sessions_client._chat_wire``)."""

from __future__ import annotations

import re

from sessions_client._chat_wire import message_id, slim, trigger_config


def test_trigger_config_folds_the_options_like_the_official_client() -> None:
    config = trigger_config(
        "c1",
        {"userId": "u"},
        {
            "basePayload": {"trigger": "submit-message", "extra": 1, "chatId": "other"},
            "tags": ["a", "b"],
            "concurrency": "per-user",
            "maxDuration": 600,
            "idleTimeoutInSeconds": None,
        },
    )
    assert config == {
        "basePayload": {
            "trigger": "submit-message",  # basePayload wins over the default "preload"
            "extra": 1,
            "chatId": "c1",  # ... but not over the chat id
            "metadata": {"userId": "u"},
        },
        "concurrency": ["per-user"],
        "maxDuration": 600,
        "tags": ["chat:c1", "a", "b"],
    }


def test_run_tags_are_capped_and_skip_a_chat_tag_too_long() -> None:
    many = [f"t{i}" for i in range(12)]
    assert trigger_config("c", None, {"tags": many})["tags"] == ["chat:c"] + many[:9]
    long_id = "x" * 200
    assert trigger_config(long_id, None, {"tags": ["a"]})["tags"] == ["a"]
    assert "metadata" not in trigger_config("c", None, {})["basePayload"]


def test_message_ids_look_like_the_official_ones() -> None:
    assert re.fullmatch(r"msg-\d{13}-[0-9a-z]{6}", message_id())
    assert message_id() != message_id()


def test_slim_keeps_only_resolved_tool_parts_of_an_assistant_message() -> None:
    user = {"id": "u", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
    assert slim(user) is user
    plain = {"id": "a", "role": "assistant", "parts": [{"type": "text", "text": "x"}]}
    assert slim(plain) is plain
    answered = {
        "id": "a",
        "role": "assistant",
        "parts": [
            {"type": "reasoning", "text": "long"},
            {"type": "tool-search", "toolCallId": "1", "state": "input-available", "input": {}},
            {
                "type": "tool-search",
                "toolCallId": "2",
                "state": "output-available",
                "input": {"q": "big"},
                "output": {"hits": 3},
            },
            {
                "type": "dynamic-tool",
                "toolName": "fetch",
                "toolCallId": "3",
                "state": "output-error",
                "errorText": "boom",
            },
            {
                "type": "tool-delete",
                "toolCallId": "4",
                "state": "output-denied",
                "approval": {"id": "ap", "approved": False},
            },
        ],
    }
    assert slim(answered) == {
        "id": "a",
        "role": "assistant",
        "parts": [
            {
                "type": "tool-search",
                "toolCallId": "2",
                "state": "output-available",
                "output": {"hits": 3},
            },
            {
                "type": "dynamic-tool",
                "toolCallId": "3",
                "state": "output-error",
                "toolName": "fetch",
                "errorText": "boom",
            },
            {
                "type": "tool-delete",
                "toolCallId": "4",
                "state": "output-denied",
                "approval": {"id": "ap", "approved": False},
            },
        ],
    }
