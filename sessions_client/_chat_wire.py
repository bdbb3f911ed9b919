"""What ``AgentChat`` sends (docs/protocol.md, "Starting a chat" and "Sending"), as
the official client builds it: the
create call's ``triggerConfig``, message ids, and assistant messages cut to their
resolved tool parts."""

from __future__ import annotations

import random
import string
import time
from typing import Any, Dict, List, Mapping, Optional

__all__ = ["message_id", "now_ms", "slim", "trigger_config"]

Message = Dict[str, Any]

_MAX_RUN_TAGS = 10
_MAX_RUN_TAG_CHARS = 128
_ADVANCED_TOOL_STATES = ("output-available", "output-error", "approval-responded", "output-denied")


def now_ms() -> int:
    """The time in Unix milliseconds (``Date.now()``)."""
    return int(time.time() * 1000)


def message_id() -> str:
    """``msg-<ms>-<6 base-36 chars>``, as the official client names a message."""
    alphabet = string.digits + string.ascii_lowercase
    return f"msg-{now_ms()}-{''.join(random.choice(alphabet) for _ in range(6))}"


def _run_tags(chat_id: str, tags: Any) -> List[str]:
    """``chat:<id>`` (when short enough) then the caller's tags, at most 10."""
    chat_tag = f"chat:{chat_id}"
    own = [chat_tag] if len(chat_tag) <= _MAX_RUN_TAG_CHARS else []
    return (own + list(tags or []))[:_MAX_RUN_TAGS]


def trigger_config(
    chat_id: str, client_data: Optional[Mapping[str, Any]], config: Mapping[str, Any]
) -> Dict[str, Any]:
    """The create call's ``triggerConfig``, folded as the official client does."""
    base: Dict[str, Any] = {"trigger": "preload"}
    base.update(config.get("basePayload") or {})
    base["chatId"] = chat_id
    if client_data:
        base["metadata"] = dict(client_data)
    folded: Dict[str, Any] = {"basePayload": base}
    for key, value in config.items():
        if key not in ("basePayload", "tags") and value is not None:
            folded[key] = value
    if isinstance(folded.get("concurrency"), str):
        folded["concurrency"] = [folded["concurrency"]]
    folded["tags"] = _run_tags(chat_id, config.get("tags"))
    return folded


def slim(message: Message) -> Message:
    """An assistant message answering tools, cut to the resolved tool parts (the
    agent rebuilds the rest); any other message as it is."""
    if message.get("role") != "assistant":
        return message
    parts = []
    for part in message.get("parts") or []:
        kind = part.get("type") if isinstance(part, dict) else None
        tool = isinstance(kind, str) and (kind.startswith("tool-") or kind == "dynamic-tool")
        if tool and part.get("state") in _ADVANCED_TOOL_STATES:
            parts.append(part)
    if not parts:
        return message
    return {"id": message.get("id"), "role": "assistant", "parts": [_slim_part(p) for p in parts]}


def _slim_part(part: Dict[str, Any]) -> Dict[str, Any]:
    slim = {"type": part["type"], "toolCallId": part.get("toolCallId"), "state": part["state"]}
    if part["type"] == "dynamic-tool" and isinstance(part.get("toolName"), str):
        slim["toolName"] = part["toolName"]
    keep = {"output-available": ("output", "approval"), "output-error": ("errorText", "approval")}
    for key in keep.get(part["state"], ("approval",)):
        if part.get(key) is not None:
            slim[key] = part[key]
    return slim
