"""Assemble the assistant ``UIMessage`` from AI SDK ``UIMessageChunk`` dicts.

:func:`assemble_message` gives, for a list of chunks, the message the AI SDK's
``readUIMessageStream`` emits last for the same chunks as a stream, as plain
JSON-like dicts: a key the SDK leaves ``undefined`` is absent, ``null`` is
``None``. The reference is npm ``ai`` 6.0.325 (``@trigger.dev/sdk`` 4.8.3
accepts ``ai`` 5, 6 or 7 and is developed against 6); the rules follow its
compiled ``processUIMessageStream``, and ``tests/uimessage`` compares the
result with the real ``readUIMessageStream`` on many lists. In short:

- ``text-*`` / ``reasoning-*`` chunks build ``text`` / ``reasoning`` parts,
  ``state`` ``"streaming"`` until their ``*-end`` (then ``"done"``); a chunk's
  ``providerMetadata`` replaces the part's when present.
- ``tool-*`` chunks build ``tool-<name>`` parts (``dynamic-tool`` with a
  ``toolName`` when the chunk says ``dynamic``), found by ``toolCallId`` in the
  current step, through the states ``input-streaming`` (``input`` is the
  partial JSON parsed as the SDK's ``parsePartialJson`` does, ``rawInput`` the
  text so far), ``input-available``, ``approval-requested`` (with
  ``approval``), ``output-available`` (with ``preliminary``), ``output-error``
  (also from ``tool-input-error``) and ``output-denied``; ``title``,
  ``toolMetadata``, ``providerExecuted`` and the provider metadata
  (``callProviderMetadata`` / ``resultProviderMetadata``) are kept as the SDK
  keeps them. (``approval-responded`` is set by the client, never by a chunk.)
- ``source-url``, ``source-document`` and ``file`` chunks each add a part;
  ``start-step`` adds a ``step-start`` part; ``finish-step`` closes the step's
  open text and reasoning parts to further deltas.
- ``data-*`` chunks are kept as parts, the chunk as it is; one with the ``id``
  of an earlier part of the same type replaces that part's ``data``;
  ``transient`` ones are not kept.
- ``start`` sets the message ``id`` (a different id starts a new, empty
  message: the SDK's reader resets then); ``messageMetadata`` on ``start``,
  ``message-metadata`` and ``finish`` is merged into ``metadata`` (objects
  deeply, as the SDK's ``mergeObjects``).
- ``error``, ``abort``, ``finish`` (its ``finishReason`` is not part of the
  message) and chunks of unknown types add no part.

"Emits last" matters: the SDK emits a copy of the message after each chunk
that changes it, except ``start-step``, so a trailing ``step-start`` part with
nothing after it is not in the result. Before any emitted change (an empty
list, or only ``start`` without ``messageId``, ``start-step``, ``finish``,
``error``...) the result is the SDK's starting message
``{"id": "", "role": "assistant", "parts": []}``, where the SDK's reader emits
nothing at all. Without a ``start`` chunk the ``id`` stays ``""``.

Invalid sequences raise :class:`~sessions_client.errors.ProtocolError` where
the SDK's processing throws (``readUIMessageStream`` then stops and passes the
error to ``onError``, or throws with ``terminateOnError``): a ``text-delta`` /
``text-end`` (or reasoning) for an id with no open part, a
``tool-input-delta`` before its ``tool-input-start``, a tool output, approval
request or denial for an unknown ``toolCallId``, and metadata with keys merged
into earlier metadata that is a string, number or boolean (a ``TypeError`` in
the SDK). Where the SDK would go on with a malformed chunk, this raises
``ProtocolError`` too: a chunk that is not an object with a string ``type``,
or whose id, delta or tool name is missing or not a string (the SDK's
``UIMessageChunk`` schema requires them).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ._partial_json import UNDEFINED, parse_partial_json
from .errors import ProtocolError

__all__ = ["assemble_message"]

Chunk = Dict[str, Any]
Part = Dict[str, Any]

_RESULT_STATES = ("output-available", "output-error")
# String fields the SDK's schema requires and this module uses as keys or text.
_REQUIRED_STRINGS: Dict[str, Tuple[str, ...]] = {
    "text-start": ("id",),
    "text-delta": ("id", "delta"),
    "text-end": ("id",),
    "reasoning-start": ("id",),
    "reasoning-delta": ("id", "delta"),
    "reasoning-end": ("id",),
    "tool-input-start": ("toolCallId", "toolName"),
    "tool-input-delta": ("toolCallId", "inputTextDelta"),
    "tool-input-available": ("toolCallId", "toolName"),
    "tool-input-error": ("toolCallId", "toolName"),
    "tool-approval-request": ("toolCallId",),
    "tool-output-available": ("toolCallId",),
    "tool-output-error": ("toolCallId",),
    "tool-output-denied": ("toolCallId",),
}


# --- JavaScript value semantics -------------------------------------------


def _get(obj: Dict[str, Any], key: str) -> Any:
    return obj.get(key, UNDEFINED)


def _nullish(value: Any) -> bool:
    return value is None or value is UNDEFINED


def _coalesce(value: Any, fallback: Any) -> Any:
    """JavaScript ``value ?? fallback``."""
    return fallback if _nullish(value) else value


def _put(obj: Dict[str, Any], key: str, value: Any) -> None:
    """``obj[key] = value``, where assigning ``UNDEFINED`` drops the key."""
    if value is UNDEFINED:
        obj.pop(key, None)
    else:
        obj[key] = value


def _defined(**fields: Any) -> Dict[str, Any]:
    """An object literal: the fields that are not ``UNDEFINED``."""
    return {key: value for key, value in fields.items() if value is not UNDEFINED}


def _truthy(value: Any) -> bool:
    """JavaScript truthiness (``[]`` and ``{}`` are true)."""
    if _nullish(value) or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == value and value != 0
    return True


def _same(left: Any, right: Any) -> bool:
    """JavaScript ``===`` for JSON values."""
    if isinstance(left, (dict, list)) or isinstance(right, (dict, list)):
        return left is right
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    return type(left) is type(right) and bool(left == right)


# --- state -----------------------------------------------------------------


class _OpenText:
    """A text or reasoning part still taking deltas (joined once, not per delta)."""

    __slots__ = ("part", "pieces")

    def __init__(self, part: Part) -> None:
        self.part = part
        self.pieces: List[str] = []

    def flush(self) -> None:
        if self.pieces:
            self.part["text"] = self.part["text"] + "".join(self.pieces)
            self.pieces = []


class _PartialCall:
    """A tool call whose input is streaming (the SDK's ``partialToolCalls`` entry)."""

    __slots__ = ("pieces", "encoding", "tool_name", "dynamic", "title", "tool_metadata")

    def __init__(self, chunk: Chunk) -> None:
        self.pieces: List[str] = []
        self.encoding: Any = _get(chunk, "inputEncoding")
        self.tool_name: str = chunk["toolName"]
        self.dynamic = _truthy(_get(chunk, "dynamic"))
        self.title: Any = _get(chunk, "title")
        self.tool_metadata: Any = _get(chunk, "toolMetadata")


class _PendingInput:
    """A tool part's ``input`` / ``rawInput`` as of one delta, parsed only if still shown.

    The SDK parses the partial JSON after every delta; only the last parse of a
    part can survive, so the text is kept and parsed when the message is built.
    """

    __slots__ = ("call", "count", "encoding")

    def __init__(self, call: _PartialCall) -> None:
        self.call = call
        self.count = len(call.pieces)
        self.encoding = call.encoding

    def raw(self) -> str:
        return "".join(self.call.pieces[: self.count])

    def value(self) -> Any:
        return self.raw() if self.encoding == "text" else parse_partial_json(self.raw())


class _State:
    """The SDK's streaming message state, plus how many parts were last emitted."""

    def __init__(self) -> None:
        self.reset("")

    def reset(self, message_id: Any) -> None:
        """Start a new, empty message (the SDK's reader does on a new ``messageId``)."""
        self.message: Dict[str, Any] = {"id": message_id, "role": "assistant", "parts": []}
        self.texts: Dict[str, _OpenText] = {}
        self.reasonings: Dict[str, _OpenText] = {}
        self.calls: Dict[str, _PartialCall] = {}
        self.emitted = 0

    @property
    def parts(self) -> List[Part]:
        parts: List[Part] = self.message["parts"]
        return parts

    def close_open_texts(self) -> None:
        for open_text in itertools.chain(self.texts.values(), self.reasonings.values()):
            open_text.flush()
        self.texts = {}
        self.reasonings = {}

    def result(self) -> Dict[str, Any]:
        self.close_open_texts()
        message = dict(self.message)
        message["parts"] = [_resolve_inputs(part) for part in self.parts[: self.emitted]]
        return copy.deepcopy(message)


def _resolve_inputs(part: Part) -> Part:
    pending_input, pending_raw = _get(part, "input"), _get(part, "rawInput")
    if not isinstance(pending_input, _PendingInput) and not isinstance(pending_raw, _PendingInput):
        return part
    part = dict(part)
    if isinstance(pending_input, _PendingInput):
        _put(part, "input", pending_input.value())
    if isinstance(pending_raw, _PendingInput):
        part["rawInput"] = pending_raw.raw()
    return part


# --- text, reasoning, sources, files ----------------------------------------


def _open_text(state: _State, chunk: Chunk, kind: str) -> bool:
    opened = state.texts if kind == "text" else state.reasonings
    part: Part = {"type": kind}
    if kind == "reasoning":
        _put(part, "id", chunk["id"])
    part.update(_defined(text="", providerMetadata=_get(chunk, "providerMetadata")))
    part["state"] = "streaming"
    previous = opened.get(chunk["id"])
    if previous is not None:
        previous.flush()
    opened[chunk["id"]] = _OpenText(part)
    state.parts.append(part)
    return True


def _find_open(state: _State, chunk: Chunk, kind: str) -> _OpenText:
    opened = state.texts if kind == "text" else state.reasonings
    found = opened.get(chunk["id"])
    if found is None:
        start = f"{kind}-start"
        raise ProtocolError(
            f'Received {chunk["type"]} for missing {kind} part with ID "{chunk["id"]}". '
            f'Ensure a "{start}" chunk is sent before any "{chunk["type"]}" chunks.'
        )
    return found


def _text_delta(state: _State, chunk: Chunk, kind: str) -> bool:
    open_text = _find_open(state, chunk, kind)
    open_text.pieces.append(chunk["delta"])
    metadata = _coalesce(_get(chunk, "providerMetadata"), _get(open_text.part, "providerMetadata"))
    _put(open_text.part, "providerMetadata", metadata)
    return True


def _text_end(state: _State, chunk: Chunk, kind: str) -> bool:
    open_text = _find_open(state, chunk, kind)
    open_text.flush()
    open_text.part["state"] = "done"
    metadata = _coalesce(_get(chunk, "providerMetadata"), _get(open_text.part, "providerMetadata"))
    _put(open_text.part, "providerMetadata", metadata)
    opened = state.texts if kind == "text" else state.reasonings
    del opened[chunk["id"]]
    return True


def _file(state: _State, chunk: Chunk) -> bool:
    part = _defined(type="file", mediaType=_get(chunk, "mediaType"), url=_get(chunk, "url"))
    if not _nullish(_get(chunk, "providerMetadata")):
        part["providerMetadata"] = chunk["providerMetadata"]
    state.parts.append(part)
    return True


def _source(state: _State, chunk: Chunk, keys: Tuple[str, ...]) -> bool:
    part: Part = {"type": chunk["type"]}
    part.update((key, chunk[key]) for key in keys if key in chunk)
    state.parts.append(part)
    return True


def _data(state: _State, chunk: Chunk) -> bool:
    if _truthy(_get(chunk, "transient")):
        return False
    data_id = _get(chunk, "id")
    if not _nullish(data_id):
        for part in state.parts:
            if part["type"] == chunk["type"] and _same(_get(part, "id"), data_id):
                _put(part, "data", _get(chunk, "data"))
                return True
    state.parts.append(dict(chunk))
    return True


# --- tools -------------------------------------------------------------------


def _is_tool(part: Part) -> bool:
    kind: str = part["type"]
    return kind.startswith("tool-") or kind == "dynamic-tool"


def _current_step(state: _State) -> List[Part]:
    parts = state.parts
    index = len(parts) - 1
    while index >= 0 and parts[index]["type"] != "step-start":
        index -= 1
    return parts[index + 1 :]


def _step_tool(state: _State, call_id: str, dynamic: Optional[bool]) -> Optional[Part]:
    """The current step's first tool part for ``call_id`` (of the kind, if given)."""
    for part in _current_step(state):
        if not _is_tool(part) or _get(part, "toolCallId") != call_id:
            continue
        if dynamic is None or (part["type"] == "dynamic-tool") == dynamic:
            return part
    return None


def _invocation(state: _State, call_id: str) -> Part:
    """The SDK's ``getToolInvocation``: this step's part, else the latest one."""
    part = _step_tool(state, call_id, None)
    if part is None:
        for candidate in reversed(state.parts):
            if _is_tool(candidate) and _get(candidate, "toolCallId") == call_id:
                return candidate
        raise ProtocolError(f'No tool invocation found for tool call ID "{call_id}".')
    return part


def _new_tool_part(options: Dict[str, Any], dynamic: bool) -> Part:
    encoding = _get(options, "inputEncoding")
    encoding = UNDEFINED if encoding is None else encoding
    common = ("input", "output", "errorText", "preliminary", "providerExecuted")
    if dynamic:
        head: Part = {"type": "dynamic-tool", "toolName": _get(options, "toolName")}
        keys: Tuple[str, ...] = ("toolCallId", "state", *common, "title", "toolMetadata")
    else:
        head = {"type": f"tool-{options['toolName']}"}
        keys = ("toolCallId", "state", "title", "toolMetadata", *common, "rawInput")
    part = _defined(**head, inputEncoding=encoding)
    part.update((key, options[key]) for key in keys if key in options)
    _attach_provider_metadata(part, options)
    return part


def _attach_provider_metadata(part: Part, options: Dict[str, Any]) -> None:
    metadata = _get(options, "providerMetadata")
    if _nullish(metadata):
        return
    key = "resultProviderMetadata" if options["state"] in _RESULT_STATES else "callProviderMetadata"
    part[key] = metadata


def _update_existing(part: Part, options: Dict[str, Any], dynamic: bool) -> None:
    part["state"] = options["state"]
    if dynamic:
        _put(part, "toolName", _get(options, "toolName"))
    else:
        part["type"] = f"tool-{options['toolName']}"
    for key in ("input", "output", "errorText", "rawInput", "preliminary"):
        _put(part, key, _get(options, key))
    encoding = _get(options, "inputEncoding")
    _put(part, "inputEncoding", UNDEFINED if encoding is None else encoding)
    for key in ("title", "toolMetadata"):
        if key in options:
            part[key] = options[key]
    executed = _coalesce(_get(options, "providerExecuted"), _get(part, "providerExecuted"))
    _put(part, "providerExecuted", executed)
    _attach_provider_metadata(part, options)


def _update_tool(
    state: _State, options: Dict[str, Any], dynamic: bool, existing: Optional[Part] = None
) -> None:
    """The SDK's ``updateToolPart`` / ``updateDynamicToolPart``."""
    part = existing if existing is not None else _step_tool(state, options["toolCallId"], dynamic)
    if part is None:
        state.parts.append(_new_tool_part(options, dynamic))
    else:
        _update_existing(part, options, dynamic)


def _chunk_fields(chunk: Chunk, *keys: str) -> Dict[str, Any]:
    return {key: chunk[key] for key in keys if key in chunk}


def _tool_input_start(state: _State, chunk: Chunk) -> bool:
    call = _PartialCall(chunk)
    state.calls[chunk["toolCallId"]] = call
    options = _chunk_fields(
        chunk, "toolCallId", "toolName", "inputEncoding", "providerExecuted", "title"
    )
    options.update(_chunk_fields(chunk, "toolMetadata", "providerMetadata"))
    options["state"] = "input-streaming"
    _update_tool(state, options, call.dynamic)
    return True


def _tool_input_delta(state: _State, chunk: Chunk) -> bool:
    call_id = chunk["toolCallId"]
    call = state.calls.get(call_id)
    if call is None:
        raise ProtocolError(
            f'Received tool-input-delta for missing tool call with ID "{call_id}". '
            'Ensure a "tool-input-start" chunk is sent before any "tool-input-delta" chunks.'
        )
    call.pieces.append(chunk["inputTextDelta"])
    pending = _PendingInput(call)
    options = _defined(
        toolCallId=call_id,
        toolName=call.tool_name,
        state="input-streaming",
        inputEncoding=call.encoding,
        input=pending,
        rawInput=pending,
        title=call.title,
        toolMetadata=call.tool_metadata,
    )
    _update_tool(state, options, call.dynamic)
    return True


def _tool_input_available(state: _State, chunk: Chunk) -> bool:
    options = _chunk_fields(chunk, "toolCallId", "toolName", "input", "providerExecuted")
    options.update(_chunk_fields(chunk, "providerMetadata", "title", "toolMetadata"))
    options["state"] = "input-available"
    _update_tool(state, options, _truthy(_get(chunk, "dynamic")))
    return True


def _tool_input_error(state: _State, chunk: Chunk) -> bool:
    existing = _step_tool(state, chunk["toolCallId"], None)
    if existing is not None:
        dynamic = existing["type"] == "dynamic-tool"
    else:
        dynamic = _truthy(_get(chunk, "dynamic"))
    options = _chunk_fields(chunk, "toolCallId", "toolName", "errorText", "providerExecuted")
    options.update(_chunk_fields(chunk, "providerMetadata", "toolMetadata"))
    options["state"] = "output-error"
    if "input" in chunk:
        options["input" if dynamic else "rawInput"] = chunk["input"]
    _update_tool(state, options, dynamic)
    return True


def _tool_result(state: _State, chunk: Chunk) -> bool:
    """``tool-output-available`` and ``tool-output-error``."""
    part = _invocation(state, chunk["toolCallId"])
    dynamic = part["type"] == "dynamic-tool"
    failed = chunk["type"] == "tool-output-error"
    options = _defined(
        toolCallId=chunk["toolCallId"],
        toolName=_get(part, "toolName") if dynamic else part["type"][len("tool-") :],
        state="output-error" if failed else "output-available",
        input=_get(part, "input"),
        title=_get(part, "title"),
        toolMetadata=_coalesce(_get(chunk, "toolMetadata"), _get(part, "toolMetadata")),
        rawInput=_get(part, "rawInput") if failed and not dynamic else UNDEFINED,
    )
    keys = ("errorText",) if failed else ("output", "preliminary")
    options.update(_chunk_fields(chunk, *keys, "providerExecuted", "providerMetadata"))
    _update_tool(state, options, dynamic, part)
    return True


def _tool_approval_request(state: _State, chunk: Chunk) -> bool:
    part = _invocation(state, chunk["toolCallId"])
    part["state"] = "approval-requested"
    approval = _defined(id=_get(chunk, "approvalId"))
    if not _nullish(_get(chunk, "approvalDescriptor")):
        approval["descriptor"] = chunk["approvalDescriptor"]
    if "inputSchemaInput" in chunk:
        approval["inputSchemaInput"] = chunk["inputSchemaInput"]
    if not _nullish(_get(chunk, "signature")):
        approval["signature"] = chunk["signature"]
    part["approval"] = approval
    return True


def _tool_output_denied(state: _State, chunk: Chunk) -> bool:
    _invocation(state, chunk["toolCallId"])["state"] = "output-denied"
    return True


# --- message: start, metadata, steps ----------------------------------------


def _spread(value: Any) -> Dict[str, Any]:
    """JavaScript ``{...value}`` for a JSON value."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (list, str)):
        return {str(index): item for index, item in enumerate(_elements(value))}
    return {}


def _elements(value: Any) -> List[Any]:
    if isinstance(value, str):
        data = value.encode("utf-16-le", "surrogatepass")
        return [
            data[k : k + 2].decode("utf-16-le", "surrogatepass") for k in range(0, len(data), 2)
        ]
    return list(value)


def _member(base: Any, key: str) -> Any:
    """JavaScript ``key in base ? base[key] : undefined``, as far as objects go."""
    if isinstance(base, dict):
        return _get(base, key)
    if isinstance(base, list):
        index = int(key) if key.isdigit() and str(int(key)) == key else len(base)
        return base[index] if index < len(base) else UNDEFINED
    raise ProtocolError(f"cannot merge message metadata into non-object metadata {base!r}")


def _merge_objects(base: Any, overrides: Any) -> Dict[str, Any]:
    """The SDK's ``mergeObjects``: objects merge deeply, everything else replaces."""
    result = _spread(base)
    for key, value in _spread(overrides).items():
        if key in ("__proto__", "constructor", "prototype"):
            continue
        current = _member(base, key)
        if isinstance(value, dict) and isinstance(current, dict):
            result[key] = _merge_objects(current, value)
        else:
            result[key] = value
    return result


def _merge_metadata(state: _State, metadata: Any) -> bool:
    """Merge ``messageMetadata`` into the message; whether there was any."""
    if _nullish(metadata):
        return False
    current = _get(state.message, "metadata")
    merged = metadata if _nullish(current) else _merge_objects(current, metadata)
    state.message["metadata"] = merged
    return True


def _start(state: _State, chunk: Chunk) -> bool:
    message_id = _get(chunk, "messageId")
    reset = not _nullish(message_id) and not _same(message_id, state.message["id"])
    if reset:
        state.reset(message_id)
    if not _nullish(message_id):
        state.message["id"] = message_id
    has_metadata = _merge_metadata(state, _get(chunk, "messageMetadata"))
    return reset or not _nullish(message_id) or has_metadata


def _start_step(state: _State, chunk: Chunk) -> bool:
    state.parts.append({"type": "step-start"})
    return False  # the SDK emits no message for it


def _finish_step(state: _State, chunk: Chunk) -> bool:
    state.close_open_texts()
    return False


def _metadata(state: _State, chunk: Chunk) -> bool:
    """``finish`` and ``message-metadata``."""
    return _merge_metadata(state, _get(chunk, "messageMetadata"))


def _ignore(state: _State, chunk: Chunk) -> bool:
    return False


Handler = Callable[[_State, Chunk], bool]

_HANDLERS: Dict[str, Handler] = {
    "text-start": lambda s, c: _open_text(s, c, "text"),
    "text-delta": lambda s, c: _text_delta(s, c, "text"),
    "text-end": lambda s, c: _text_end(s, c, "text"),
    "reasoning-start": lambda s, c: _open_text(s, c, "reasoning"),
    "reasoning-delta": lambda s, c: _text_delta(s, c, "reasoning"),
    "reasoning-end": lambda s, c: _text_end(s, c, "reasoning"),
    "file": _file,
    "source-url": lambda s, c: _source(s, c, ("sourceId", "url", "title", "providerMetadata")),
    "source-document": lambda s, c: _source(
        s, c, ("sourceId", "mediaType", "title", "filename", "providerMetadata")
    ),
    "tool-input-start": _tool_input_start,
    "tool-input-delta": _tool_input_delta,
    "tool-input-available": _tool_input_available,
    "tool-input-error": _tool_input_error,
    "tool-approval-request": _tool_approval_request,
    "tool-output-denied": _tool_output_denied,
    "tool-output-available": _tool_result,
    "tool-output-error": _tool_result,
    "start-step": _start_step,
    "finish-step": _finish_step,
    "start": _start,
    "finish": _metadata,
    "message-metadata": _metadata,
}


def _handler(chunk: Any) -> Handler:
    """The handler for ``chunk``, after checking the fields it relies on."""
    if not isinstance(chunk, dict) or not isinstance(chunk.get("type"), str):
        raise ProtocolError("a UI message chunk must be an object with a string 'type'")
    kind: str = chunk["type"]
    for key in _REQUIRED_STRINGS.get(kind, ()):
        if not isinstance(chunk.get(key), str):
            raise ProtocolError(f"a {kind} chunk needs a string {key!r}")
    if kind.startswith("data-"):
        return _data
    return _HANDLERS.get(kind, _ignore)


def assemble_message(chunks: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """The assistant ``UIMessage`` the AI SDK's ``readUIMessageStream`` emits last.

    ``chunks`` are ``UIMessageChunk`` dicts (wire keys) in stream order; they are
    not modified, and the result shares no objects with them. See the module
    docstring for the rules and for what is returned before any change.

    Raises:
        ProtocolError: an invalid sequence (e.g. a ``text-delta`` for an id with
            no open text part) or a malformed chunk; the message names the
            chunk's position and type.
    """
    state = _State()
    for index, chunk in enumerate(chunks):
        try:
            if _handler(chunk)(state, chunk):
                state.emitted = len(state.parts)
        except ProtocolError as exc:
            raise ProtocolError(f"UI message chunk {index}: {exc.message}") from None
    return state.result()
