"""Chunk lists for the ``assemble_message`` judge: hand-written turns and a hypothesis strategy.

The hand-written lists use every ``UIMessageChunk`` type of CHAT.md (and the odd corners of
the AI SDK's processing: resets, replacements, metadata merges); the test also runs every
prefix of each, as a reply cut off at any point. ``INVALID`` lists are sequences the SDK's
processing refuses. ``chunk_lists()`` draws mostly well-formed sequences, with the occasional
out-of-order chunk.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from hypothesis import strategies as st

Chunk = Dict[str, Any]

PM = {"openai": {"itemId": "it_1"}}
PM2 = {"openai": {"itemId": "it_2"}, "anthropic": {"cache": True}}


def _text(id_: str, *deltas: str, end: bool = True, **extra: Any) -> List[Chunk]:
    out: List[Chunk] = [{"type": "text-start", "id": id_, **extra}]
    out += [{"type": "text-delta", "id": id_, "delta": d} for d in deltas]
    if end:
        out.append({"type": "text-end", "id": id_})
    return out


def _tool_input(call: str, name: str, text: str, cuts: int = 4, **start: Any) -> List[Chunk]:
    step = max(1, len(text) // cuts)
    out: List[Chunk] = [{"type": "tool-input-start", "toolCallId": call, "toolName": name, **start}]
    for i in range(0, len(text), step):
        out.append(
            {"type": "tool-input-delta", "toolCallId": call, "inputTextDelta": text[i : i + step]}
        )
    return out


ECHO_TURN: List[Chunk] = [
    {"type": "start", "messageId": "msg-1"},
    {"type": "start-step"},
    *_text("t1", "echo:", " hello", " world"),
    {"type": "finish-step"},
    {"type": "finish", "finishReason": "stop"},
]

TOOL_TURN: List[Chunk] = [
    {"type": "start", "messageId": "msg-2"},
    {"type": "start-step"},
    *_tool_input("call-1", "echo", '{"text": "X", "n": [1, 2.5, -3e2], "ok": true, "z": null}', 9),
    {
        "type": "tool-input-available",
        "toolCallId": "call-1",
        "toolName": "echo",
        "input": {"text": "X", "n": [1, 2.5, -300], "ok": True, "z": None},
    },
    {"type": "tool-output-available", "toolCallId": "call-1", "output": {"text": "X"}},
    {"type": "finish-step"},
    {"type": "start-step"},
    *_text("t2", "echo: ", "X"),
    {"type": "finish-step"},
    {"type": "finish"},
]

REASONING_TURN: List[Chunk] = [
    {"type": "start", "messageId": "msg-3", "messageMetadata": {"model": "m1", "usage": {"in": 3}}},
    {"type": "start-step"},
    {"type": "reasoning-start", "id": "r1", "providerMetadata": PM},
    {"type": "reasoning-delta", "id": "r1", "delta": "Let me "},
    {"type": "reasoning-delta", "id": "r1", "delta": "think.", "providerMetadata": PM2},
    {"type": "reasoning-end", "id": "r1"},
    {"type": "text-start", "id": "t1"},
    {"type": "text-delta", "id": "t1", "delta": "Done", "providerMetadata": PM},
    {"type": "text-end", "id": "t1", "providerMetadata": PM2},
    {"type": "message-metadata", "messageMetadata": {"usage": {"out": 5}, "tags": ["a"]}},
    {"type": "finish-step"},
    {
        "type": "finish",
        "finishReason": "stop",
        "messageMetadata": {"usage": {"in": 4}, "tags": ["b"]},
    },
]

DYNAMIC_AND_ERRORS: List[Chunk] = [
    {"type": "start", "messageId": "msg-4"},
    {"type": "start-step"},
    *_tool_input(
        "d-1",
        "mcp_lookup",
        '{"q": "weather in Par',
        3,
        dynamic=True,
        title="Lookup",
        providerExecuted=False,
        toolMetadata={"server": "mcp1"},
    ),
    {
        "type": "tool-input-available",
        "toolCallId": "d-1",
        "toolName": "mcp_lookup",
        "dynamic": True,
        "input": {"q": "weather in Paris"},
        "providerMetadata": PM,
    },
    {
        "type": "tool-output-error",
        "toolCallId": "d-1",
        "errorText": "timeout",
        "providerMetadata": PM2,
    },
    *_tool_input("s-1", "search", '{"query": "ab\\u00e9\\n', 2),
    {"type": "tool-output-error", "toolCallId": "s-1", "errorText": "bad input"},
    {
        "type": "tool-input-error",
        "toolCallId": "s-2",
        "toolName": "search",
        "input": '{"q":',
        "errorText": "Invalid JSON",
    },
    {
        "type": "tool-input-error",
        "toolCallId": "d-2",
        "toolName": "mcp_x",
        "dynamic": True,
        "input": {"raw": 1},
        "errorText": "schema mismatch",
        "providerExecuted": True,
    },
    {"type": "tool-input-start", "toolCallId": "s-3", "toolName": "search"},
    {
        "type": "tool-input-error",
        "toolCallId": "s-3",
        "toolName": "search",
        "input": {"a": 1},
        "errorText": "nope",
        "dynamic": True,
        "toolMetadata": {"k": 1},
    },
    {"type": "finish-step"},
    {"type": "finish"},
]

APPROVALS: List[Chunk] = [
    {"type": "start", "messageId": "msg-5"},
    {"type": "start-step"},
    {
        "type": "tool-input-available",
        "toolCallId": "a-1",
        "toolName": "delete_file",
        "input": {"path": "/tmp/x"},
        "title": "Delete",
    },
    {"type": "tool-approval-request", "approvalId": "ap-1", "toolCallId": "a-1"},
    {
        "type": "tool-input-available",
        "toolCallId": "a-2",
        "toolName": "send_mail",
        "input": {"to": "a@b.c"},
    },
    {
        "type": "tool-approval-request",
        "approvalId": "ap-2",
        "toolCallId": "a-2",
        "approvalDescriptor": {"summary": "mail"},
        "inputSchemaInput": None,
        "signature": "sig",
    },
    {"type": "tool-output-denied", "toolCallId": "a-2"},
    {
        "type": "tool-output-available",
        "toolCallId": "a-1",
        "output": "deleted",
        "providerExecuted": True,
    },
    {"type": "finish-step"},
    {"type": "start-step"},
    {
        "type": "tool-output-available",
        "toolCallId": "a-1",
        "output": "again",
        "toolMetadata": {"late": True},
    },
    {"type": "finish"},
]

PRELIMINARY: List[Chunk] = [
    {"type": "start", "messageId": "msg-6"},
    {"type": "start-step"},
    {"type": "tool-input-available", "toolCallId": "p-1", "toolName": "progress", "input": {}},
    {
        "type": "tool-output-available",
        "toolCallId": "p-1",
        "output": {"pct": 10},
        "preliminary": True,
    },
    {
        "type": "tool-output-available",
        "toolCallId": "p-1",
        "output": {"pct": 60},
        "preliminary": True,
    },
    {"type": "tool-output-available", "toolCallId": "p-1", "output": {"pct": 100}},
    {"type": "tool-input-start", "toolCallId": "p-1", "toolName": "progress2"},
    {"type": "tool-input-delta", "toolCallId": "p-1", "inputTextDelta": '[1, {"a'},
    {"type": "finish"},
]

SOURCES_FILES_DATA: List[Chunk] = [
    {"type": "start"},
    {"type": "source-url", "sourceId": "s1", "url": "https://example.com", "title": "Ex"},
    {"type": "source-url", "sourceId": "s2", "url": "https://example.org", "providerMetadata": PM},
    {
        "type": "source-document",
        "sourceId": "s3",
        "mediaType": "application/pdf",
        "title": "Doc",
        "filename": "doc.pdf",
    },
    {
        "type": "source-document",
        "sourceId": "s4",
        "mediaType": "text/plain",
        "title": "T",
        "providerMetadata": PM,
    },
    {"type": "file", "url": "data:image/png;base64,AAAA", "mediaType": "image/png"},
    {"type": "file", "url": "https://x/y.txt", "mediaType": "text/plain", "providerMetadata": PM},
    {"type": "data-weather", "id": "w1", "data": {"city": "Paris", "status": "loading"}},
    {"type": "data-progress", "id": "w1", "data": 1},
    {"type": "data-weather", "data": {"no": "id"}},
    {"type": "data-weather", "id": "w1", "data": {"city": "Paris", "temp": 21}},
    {"type": "data-notice", "data": "transient", "transient": True},
    {"type": "data-notice", "id": "n1", "data": "kept", "transient": False},
    {"type": "data-notice", "id": "n1", "data": "replaced", "transient": True},
    {"type": "data-progress", "id": "w1", "data": 2, "extra": "kept as it is"},
    {"type": "data-action", "data": {"type": "undo"}},
    {"type": "finish"},
]

RESETS_AND_ABORT: List[Chunk] = [
    *_text("early", "before start"),
    {"type": "start", "messageId": "m-a", "messageMetadata": {"a": 1}},
    *_text("t1", "first ", end=False),
    {"type": "start", "messageId": "m-a", "messageMetadata": {"b": {"c": 2}}},
    {"type": "text-delta", "id": "t1", "delta": "same message"},
    {"type": "error", "errorText": "provider hiccup"},
    {"type": "start", "messageId": "m-b"},
    *_text("t1", "second message", end=False),
    {"type": "abort", "reason": "user stop"},
    {"type": "message-metadata", "messageMetadata": {"b": [1], "c": None}},
    {"type": "start-step"},
]

TEXT_ENCODING_AND_REOPEN: List[Chunk] = [
    {"type": "start", "messageId": "m-t"},
    {"type": "start-step"},
    *_tool_input("enc-1", "write", 'plain "text" input', 3, inputEncoding="text"),
    {"type": "tool-input-available", "toolCallId": "enc-1", "toolName": "write", "input": "x"},
    {
        "type": "tool-input-start",
        "toolCallId": "enc-1",
        "toolName": "write",
        "inputEncoding": "json",
        "providerMetadata": PM,
        "providerExecuted": True,
    },
    {"type": "tool-input-delta", "toolCallId": "enc-1", "inputTextDelta": '{"a": "\\ud83d'},
    {
        "type": "tool-input-delta",
        "toolCallId": "enc-1",
        "inputTextDelta": '\\ude00 \U0001f600", "b": [tr',
    },
    {"type": "text-start", "id": "dup"},
    {"type": "text-delta", "id": "dup", "delta": "one"},
    {"type": "text-start", "id": "dup", "providerMetadata": PM},
    {"type": "text-delta", "id": "dup", "delta": "two"},
    {"type": "finish-step"},
    {"type": "start-step"},
    {"type": "tool-input-delta", "toolCallId": "enc-1", "inputTextDelta": "ue]}"},
    {"type": "unknown-chunk-type", "x": 1},
    {"type": "finish"},
]

METADATA_ODDITIES: List[Chunk] = [
    {"type": "start", "messageMetadata": [1, {"x": 1}]},
    {"type": "message-metadata", "messageMetadata": {"1": {"y": 2}, "k": "v"}},
    {"type": "message-metadata", "messageMetadata": None},
    {"type": "message-metadata", "messageMetadata": {"constructor": {"a": 1}, "z": {"d": 1}}},
    {"type": "message-metadata", "messageMetadata": {"z": {"e": [2]}}},
    {"type": "finish", "messageMetadata": 7},
    {"type": "message-metadata", "messageMetadata": "str"},
]

HAND_WRITTEN: Dict[str, List[Chunk]] = {
    "echo turn": ECHO_TURN,
    "tool turn": TOOL_TURN,
    "reasoning and metadata": REASONING_TURN,
    "dynamic tools and errors": DYNAMIC_AND_ERRORS,
    "approvals and denial": APPROVALS,
    "preliminary outputs": PRELIMINARY,
    "sources, files, data": SOURCES_FILES_DATA,
    "resets, error and abort": RESETS_AND_ABORT,
    "text encoding and reopened ids": TEXT_ENCODING_AND_REOPEN,
    "metadata oddities": METADATA_ODDITIES,
}

# Sequences the SDK's processing refuses (it throws; assemble_message raises ProtocolError).
INVALID: Dict[str, List[Chunk]] = {
    "text-delta unknown id": [{"type": "start"}, {"type": "text-delta", "id": "x", "delta": "a"}],
    "text-end unknown id": [*_text("a", "x", end=False), {"type": "text-end", "id": "b"}],
    "text-end twice": [*_text("a", "x"), {"type": "text-end", "id": "a"}],
    "delta after finish-step": [
        *_text("a", "x", end=False),
        {"type": "finish-step"},
        {"type": "text-delta", "id": "a", "delta": "y"},
    ],
    "reasoning-delta unknown": [{"type": "reasoning-delta", "id": "r", "delta": "a"}],
    "reasoning-end unknown": [{"type": "reasoning-end", "id": "r"}],
    "tool-input-delta unknown": [
        {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": "{"}
    ],
    "tool-output-available unknown": [
        {"type": "tool-output-available", "toolCallId": "c", "output": 1}
    ],
    "tool-output-error unknown": [
        {"type": "tool-output-error", "toolCallId": "c", "errorText": "e"}
    ],
    "tool-approval-request unknown": [
        {"type": "tool-approval-request", "approvalId": "a", "toolCallId": "c"}
    ],
    "tool-output-denied unknown": [{"type": "tool-output-denied", "toolCallId": "c"}],
    "delta after reset": [
        {"type": "start", "messageId": "a"},
        *_text("t", "x", end=False),
        {"type": "start", "messageId": "b"},
        {"type": "text-delta", "id": "t", "delta": "y"},
    ],
    "metadata merged into a string": [
        {"type": "start", "messageMetadata": "ab"},
        {"type": "finish", "messageMetadata": {"a": 1}},
    ],
    "chunk without a type": [{"type": "start"}, {"id": "x"}],
}


# --- hypothesis ------------------------------------------------------------

KEYS = st.text(alphabet="abkxyz19_", min_size=0, max_size=4)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
OBJECTS = st.dictionaries(KEYS, JSON_VALUES, max_size=3)
# Metadata: mostly objects (merged deeply), sometimes anything.
METADATA = st.one_of(OBJECTS, OBJECTS, OBJECTS, JSON_VALUES)
PROVIDER_METADATA = st.none() | st.fixed_dictionaries({"p": OBJECTS})
JSONISH = st.text(alphabet='{}[]",:\\ ntruefalsn0123456789.-eEuab\u00e9\U0001f600', max_size=12)

IDS = ["a", "b", "c"]
CALL_IDS = ["c1", "c2", "c3"]
TOOL_NAMES = ["search", "get-weather", "mcp_x"]
DATA_TYPES = ["data-a", "data-b"]


def _maybe(draw: Any, chunk: Chunk, key: str, strategy: Any) -> None:
    """Add ``key`` from ``strategy`` to ``chunk`` half of the time (``None`` drawn: absent)."""
    if draw(st.booleans()):
        value = draw(strategy)
        if value is not None:
            chunk[key] = value


class _Gen:
    """Draws one chunk at a time, mostly consistent with what is open so far."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw
        self.open_texts: Dict[str, List[str]] = {"text": [], "reasoning": []}
        self.inputs: Dict[str, List[str]] = {}  # call id -> input text pieces still to send
        self.calls: List[str] = []

    def pick(self, options: List[str], known: Optional[List[str]] = None) -> str:
        if known and self.draw(st.integers(0, 39)) > 0:
            return str(self.draw(st.sampled_from(known)))
        return str(self.draw(st.sampled_from(options)))

    def text(self, kind: str) -> Chunk:
        opened = self.open_texts[kind]
        step = self.draw(st.sampled_from(["start", "delta", "delta", "end"]))
        if step == "start" or not opened:
            id_ = self.pick(IDS)
            if id_ not in opened:
                opened.append(id_)
            chunk: Chunk = {"type": f"{kind}-start", "id": id_}
        elif step == "delta":
            chunk = {
                "type": f"{kind}-delta",
                "id": self.pick(IDS, opened),
                "delta": self.draw(st.text(max_size=5)),
            }
        else:
            id_ = self.pick(IDS, opened)
            if id_ in opened:
                opened.remove(id_)
            chunk = {"type": f"{kind}-end", "id": id_}
        _maybe(self.draw, chunk, "providerMetadata", PROVIDER_METADATA)
        return chunk

    def tool_start(self) -> Chunk:
        call = self.pick(CALL_IDS)
        self.calls.append(call)
        chunk: Chunk = {
            "type": "tool-input-start",
            "toolCallId": call,
            "toolName": self.pick(TOOL_NAMES),
        }
        text = json.dumps(self.draw(JSON_VALUES), indent=self.draw(st.sampled_from([None, 1])))
        if self.draw(st.integers(0, 5)) == 0:
            text = self.draw(JSONISH)
        if self.draw(st.integers(0, 5)) == 0:
            chunk["inputEncoding"] = self.draw(st.sampled_from(["text", "json"]))
        cuts = sorted(self.draw(st.sets(st.integers(0, len(text)), max_size=4)))
        bounds = [0, *cuts, len(text)]
        self.inputs[call] = [text[i:j] for i, j in zip(bounds, bounds[1:]) if j > i]
        for key, strategy in (
            ("dynamic", st.booleans()),
            ("title", st.text(max_size=3)),
            ("providerExecuted", st.booleans()),
            ("providerMetadata", PROVIDER_METADATA),
            ("toolMetadata", OBJECTS),
        ):
            _maybe(self.draw, chunk, key, strategy)
        return chunk

    def tool_delta(self) -> Chunk:
        if not self.inputs:
            return self.tool_start()
        pending = [c for c, pieces in self.inputs.items() if pieces] or list(self.inputs)
        call = self.pick(CALL_IDS, pending)
        pieces = self.inputs.get(call) or [self.draw(JSONISH)]
        return {"type": "tool-input-delta", "toolCallId": call, "inputTextDelta": pieces.pop(0)}

    def tool_other(self) -> Chunk:
        kind = self.draw(
            st.sampled_from(
                [
                    "tool-input-available",
                    "tool-input-error",
                    "tool-output-available",
                    "tool-output-available",
                    "tool-output-error",
                    "tool-approval-request",
                    "tool-output-denied",
                ]
            )
        )
        if not self.calls:
            kind = "tool-input-available"
        call = self.pick(CALL_IDS, self.calls)
        chunk: Chunk = {"type": kind, "toolCallId": call}
        if kind in ("tool-input-available", "tool-input-error"):
            self.calls.append(call)
            chunk["toolName"] = self.pick(TOOL_NAMES)
            chunk["input"] = self.draw(JSON_VALUES)
            _maybe(self.draw, chunk, "dynamic", st.booleans())
            _maybe(self.draw, chunk, "title", st.text(max_size=3))
        if kind in ("tool-input-error", "tool-output-error"):
            chunk["errorText"] = self.draw(st.text(max_size=5))
        if kind == "tool-output-available":
            chunk["output"] = self.draw(JSON_VALUES)
            _maybe(self.draw, chunk, "preliminary", st.booleans())
        if kind == "tool-approval-request":
            chunk["approvalId"] = self.pick(["ap1", "ap2"])
            _maybe(self.draw, chunk, "approvalDescriptor", JSON_VALUES)
            _maybe(self.draw, chunk, "signature", st.text(max_size=3))
            if self.draw(st.booleans()):
                chunk["inputSchemaInput"] = self.draw(JSON_VALUES)
        elif kind != "tool-output-denied":
            for key, strategy in (
                ("providerExecuted", st.booleans()),
                ("providerMetadata", PROVIDER_METADATA),
                ("toolMetadata", OBJECTS),
            ):
                _maybe(self.draw, chunk, key, strategy)
        return chunk

    def other(self) -> Chunk:
        kind = self.draw(
            st.sampled_from(
                [
                    "start-step",
                    "finish-step",
                    "start",
                    "finish",
                    "message-metadata",
                    "error",
                    "abort",
                    "source-url",
                    "source-document",
                    "file",
                    "data",
                    "data",
                    "unknown",
                ]
            )
        )
        if kind == "finish-step":
            self.open_texts = {"text": [], "reasoning": []}
        if kind == "start":
            chunk: Chunk = {"type": "start"}
            _maybe(self.draw, chunk, "messageId", st.sampled_from(["m1", "m2"]))
            _maybe(self.draw, chunk, "messageMetadata", METADATA)
            if "messageId" in chunk:
                self.open_texts = {"text": [], "reasoning": []}
                self.inputs, self.calls = {}, []
            return chunk
        if kind in ("finish", "message-metadata"):
            chunk = {"type": kind}
            _maybe(self.draw, chunk, "messageMetadata", METADATA)
            if kind == "finish":
                _maybe(self.draw, chunk, "finishReason", st.sampled_from(["stop", "tool-calls"]))
            return chunk
        return self.simple(kind)

    def simple(self, kind: str) -> Chunk:
        draw = self.draw
        if kind == "error":
            return {"type": "error", "errorText": draw(st.text(max_size=5))}
        if kind == "source-url":
            chunk: Chunk = {"type": kind, "sourceId": "s", "url": "https://e.x/"}
            _maybe(draw, chunk, "title", st.text(max_size=3))
        elif kind == "source-document":
            chunk = {"type": kind, "sourceId": "d", "mediaType": "text/plain", "title": "t"}
            _maybe(draw, chunk, "filename", st.text(max_size=3))
        elif kind == "file":
            chunk = {"type": kind, "url": "https://e.x/f.png", "mediaType": "image/png"}
        elif kind == "data":
            chunk = {"type": self.pick(DATA_TYPES), "data": draw(JSON_VALUES)}
            _maybe(draw, chunk, "id", st.sampled_from(["x", "y"]))
            _maybe(draw, chunk, "transient", st.booleans())
            return chunk
        else:
            return {"type": kind if kind != "unknown" else "custom-thing"}
        _maybe(draw, chunk, "providerMetadata", PROVIDER_METADATA)
        return chunk


@st.composite
def chunk_lists(draw: Any) -> List[Chunk]:
    """A chunk list: mostly a plausible stream, sometimes one the SDK refuses."""
    gen = _Gen(draw)
    chunks: List[Chunk] = []
    if draw(st.integers(0, 4)) > 0:
        chunks.append({"type": "start", "messageId": "m1"})
    makers = [
        lambda: gen.text("text"),
        lambda: gen.text("reasoning"),
        gen.tool_start,
        gen.tool_delta,
        gen.tool_delta,
        gen.tool_other,
        gen.other,
    ]
    for _ in range(draw(st.integers(0, 24))):
        chunks.append(draw(st.sampled_from(makers))())
    return chunks


# Tool inputs whose every prefix is streamed as one tool-input-delta: the SDK's partial JSON
# parsing (parsePartialJson / fixJson) on each cut.
JSON_TEXTS: List[str] = [
    json.dumps({"text": "X", "n": [1, -2.5e-3, 0, 10], "ok": True, "no": False, "z": None}),
    json.dumps(
        {"nested": {"a": [[], {}, [1, [2, {"b": "c"}]]]}, "e": "\u00e9\U0001f600"}, indent=2
    ),
    json.dumps({"esc": 'q"uo\\te\n\t\u0001', "u": "\ud83d\ude00"}, ensure_ascii=True),
    json.dumps([True, False, None, "true", 123456789, -0.0, 1e300]),
    '{"a": tru, "b": nul, "c": fals}',
    '{"a" : 1 , "b" :[ 1 ,2 ] }',
    '[1, "two", {"three": 3}] trailing',
    '{"k": "v"}{"second": 1}',
    '"just a string"',
    "-12.5e+3",
    '{"__proto__": 1, "a": 2}',
    '{"constructor": {"prototype": {}}, "x": 1}',
    '{"a": NaN, "b": [Infinity]}',
    '{"weird": [-, 1.e5, 0x10, .5]}',
    "[1\U0001f600, 2]",
    '{"big": [1e999, -1e999, 123456789012345678]}',
]
