"""The AI SDK's ``parsePartialJson``: the value of a JSON text that may be cut off.

While a tool call's input streams (``tool-input-delta`` chunks), the AI SDK shows
``parsePartialJson(text so far).value`` as the tool part's ``input``. This module
gives the same value for the same text, following the SDK's compiled source
(``ai`` 6.0.325, ``dist/index.mjs``: ``parsePartialJson``, ``fixJson``; and
``@ai-sdk/provider-utils`` ``secureJsonParse``):

1. parse the text as JSON; if that fails,
2. repair it with ``fixJson`` (cut it after the last complete token, close the
   open strings, objects and arrays, complete a cut ``true`` / ``false`` /
   ``null``) and parse that; if that fails too, the value is *undefined*.

A parse fails, as ``JSON.parse`` does, on what is not strict JSON (``NaN``,
``Infinity``), and, as ``secureJsonParse`` does, on an object with a
``__proto__`` key or a ``constructor`` key whose value is an object with a
``prototype`` key. ``fixJson`` walks the text in UTF-16 code units, as
JavaScript does, so text with characters outside the BMP repairs the same way.
Numbers are JavaScript's: an integer beyond 2**53 becomes the nearest float, as
the double JavaScript holds, and one too large for a double is infinite.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["UNDEFINED", "fix_json", "parse_partial_json"]


class _Undefined:
    """JavaScript's ``undefined``: the value of a key that is absent."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Any = _Undefined()

_ROOT = "ROOT"
_FINISH = "FINISH"
_OBJ_START = "INSIDE_OBJECT_START"
_OBJ_KEY = "INSIDE_OBJECT_KEY"
_OBJ_AFTER_KEY = "INSIDE_OBJECT_AFTER_KEY"
_OBJ_AFTER_COMMA = "INSIDE_OBJECT_AFTER_COMMA"
_OBJ_BEFORE_VALUE = "INSIDE_OBJECT_BEFORE_VALUE"
_OBJ_AFTER_VALUE = "INSIDE_OBJECT_AFTER_VALUE"
_ARR_START = "INSIDE_ARRAY_START"
_ARR_AFTER_VALUE = "INSIDE_ARRAY_AFTER_VALUE"
_ARR_AFTER_COMMA = "INSIDE_ARRAY_AFTER_COMMA"
_STRING = "INSIDE_STRING"
_ESCAPE = "INSIDE_STRING_ESCAPE"
_UNICODE = "INSIDE_STRING_UNICODE_ESCAPE"
_NUMBER = "INSIDE_NUMBER"
_LITERAL = "INSIDE_LITERAL"

_OBJECT_STATES = (
    _OBJ_KEY,
    _OBJ_AFTER_KEY,
    _OBJ_AFTER_COMMA,
    _OBJ_START,
    _OBJ_BEFORE_VALUE,
    _OBJ_AFTER_VALUE,
)
_ARRAY_STATES = (_ARR_START, _ARR_AFTER_COMMA, _ARR_AFTER_VALUE)
_LITERALS = ("true", "false", "null")
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
# A value starts with one of these; the state pushed for it, and whether the
# character counts as the last valid one (a lone "-" does not).
_VALUE_STARTS: Dict[str, Tuple[str, bool]] = {
    '"': (_STRING, True),
    "f": (_LITERAL, True),
    "t": (_LITERAL, True),
    "n": (_LITERAL, True),
    "-": (_NUMBER, False),
    "{": (_OBJ_START, True),
    "[": (_ARR_START, True),
}
_VALUE_STARTS.update({digit: (_NUMBER, True) for digit in _DIGITS})
_STRING_STOP = re.compile(r'["\\]')


class _Fixer:
    """One run of ``fixJson`` over a text of UTF-16 code units."""

    def __init__(self, units: str) -> None:
        self.units = units
        self.stack: List[str] = [_ROOT]
        self.last = -1
        self.literal_start = 0
        self.hex_digits = 0
        self.steps: Dict[str, Callable[[str, int], int]] = {
            _ROOT: lambda c, i: self.value_start(c, i, _FINISH),
            _OBJ_START: self.object_start,
            _OBJ_AFTER_COMMA: lambda c, i: self.expect(c, i, '"', _OBJ_KEY),
            _OBJ_KEY: lambda c, i: self.expect(c, i, '"', _OBJ_AFTER_KEY),
            _OBJ_AFTER_KEY: lambda c, i: self.expect(c, i, ":", _OBJ_BEFORE_VALUE),
            _OBJ_BEFORE_VALUE: lambda c, i: self.value_start(c, i, _OBJ_AFTER_VALUE),
            _OBJ_AFTER_VALUE: self.after_object_value,
            _STRING: self.string,
            _ARR_START: self.array_start,
            _ARR_AFTER_VALUE: self.array_after_value,
            _ARR_AFTER_COMMA: lambda c, i: self.value_start(c, i, _ARR_AFTER_VALUE),
            _ESCAPE: self.escape,
            _UNICODE: self.unicode_escape,
            _NUMBER: self.number,
            _LITERAL: self.literal,
        }

    def run(self) -> str:
        i, end = 0, len(self.units)
        while i < end:
            step = self.steps.get(self.stack[-1])
            i = step(self.units[i], i) if step is not None else i + 1
        return self.units[: self.last + 1] + self.closing()

    def replace_top(self, *states: str) -> None:
        self.stack.pop()
        self.stack.extend(states)

    def value_start(self, char: str, i: int, swap: str) -> int:
        start = _VALUE_STARTS.get(char)
        if start is not None:
            state, valid = start
            if valid:
                self.last = i
            if state == _LITERAL:
                self.literal_start = i
            self.replace_top(swap, state)
        return i + 1

    def expect(self, char: str, i: int, wanted: str, state: str) -> int:
        if char == wanted:
            self.replace_top(state)
        return i + 1

    def object_start(self, char: str, i: int) -> int:
        if char == '"':
            self.replace_top(_OBJ_KEY)
        elif char == "}":
            self.last = i
            self.stack.pop()
        return i + 1

    def after_object_value(self, char: str, i: int) -> int:
        if char == ",":
            self.replace_top(_OBJ_AFTER_COMMA)
        elif char == "}":
            self.last = i
            self.stack.pop()
        return i + 1

    def after_array_value(self, char: str, i: int) -> int:
        if char == ",":
            self.replace_top(_ARR_AFTER_COMMA)
        elif char == "]":
            self.last = i
            self.stack.pop()
        return i + 1

    def array_start(self, char: str, i: int) -> int:
        self.last = i
        if char == "]":
            self.stack.pop()
            return i + 1
        return self.value_start(char, i, _ARR_AFTER_VALUE)

    def array_after_value(self, char: str, i: int) -> int:
        if char not in ",]":
            self.last = i
        return self.after_array_value(char, i)

    def string(self, char: str, i: int) -> int:
        if char == '"':
            self.stack.pop()
            self.last = i
        elif char == "\\":
            self.stack.append(_ESCAPE)
        else:
            # Every other unit is valid: jump to the next quote or backslash.
            found = _STRING_STOP.search(self.units, i)
            stop = found.start() if found is not None else len(self.units)
            self.last = stop - 1
            return stop
        return i + 1

    def escape(self, char: str, i: int) -> int:
        self.stack.pop()
        if char == "u":
            self.hex_digits = 0
            self.stack.append(_UNICODE)
        else:
            self.last = i
        return i + 1

    def unicode_escape(self, char: str, i: int) -> int:
        if char in _HEX:
            self.hex_digits += 1
            if self.hex_digits == 4:
                self.stack.pop()
                self.last = i
        return i + 1

    def number(self, char: str, i: int) -> int:
        if char in _DIGITS:
            self.last = i
        elif char not in "eE-.":
            self.stack.pop()
            self.close_value(char, i, ",}]")
        return i + 1

    def close_value(self, char: str, i: int, closers: str) -> None:
        """A number or literal ended at ``char``: let the container see it."""
        if char not in closers:
            return
        if self.stack[-1] == _ARR_AFTER_VALUE and char in ",]":
            self.after_array_value(char, i)
        elif self.stack[-1] == _OBJ_AFTER_VALUE and char in ",}":
            self.after_object_value(char, i)

    def literal(self, char: str, i: int) -> int:
        partial = self.units[self.literal_start : i + 1]
        if any(word.startswith(partial) for word in _LITERALS):
            self.last = i
        else:
            self.stack.pop()
            self.close_value(char, i, ",}]")
        return i + 1

    def closing(self) -> str:
        out: List[str] = []
        for state in reversed(self.stack):
            if state == _STRING:
                out.append('"')
            elif state in _OBJECT_STATES:
                out.append("}")
            elif state in _ARRAY_STATES:
                out.append("]")
            elif state == _LITERAL:
                out.append(_literal_rest(self.units[self.literal_start :]))
        return "".join(out)


def _literal_rest(partial: str) -> str:
    for word in _LITERALS:
        if word.startswith(partial):
            return word[len(partial) :]
    return ""


def _to_units(text: str) -> str:
    """``text`` with each character outside the BMP split into its surrogate pair."""
    if not text or max(text) <= "\uffff":
        return text
    data = text.encode("utf-16-le", "surrogatepass")
    return "".join(chr(int.from_bytes(data[k : k + 2], "little")) for k in range(0, len(data), 2))


def _from_units(units: str) -> str:
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def fix_json(text: str) -> str:
    """The AI SDK's ``fixJson``: ``text`` cut after its last complete token and closed."""
    return _from_units(_Fixer(_to_units(text)).run())


def _js_int(digits: str) -> Any:
    """A JSON integer as JavaScript holds it: exact up to 2**53, else the nearest double."""
    if len(digits) <= 17:  # 2**53 has 16 digits; longer ones are never exact
        value = int(digits)
        if -(2**53) <= value <= 2**53:
            return value
    return float(digits)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _forbidden(value: Any) -> bool:
    """Whether ``secureJsonParse`` refuses ``value`` (a prototype-polluting key)."""
    pending: List[Any] = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if "__proto__" in node:
                return True
            ctor = node.get("constructor")
            if isinstance(ctor, dict) and "prototype" in ctor:
                return True
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def _secure_loads(text: str) -> Any:
    """``secureJsonParse(text)``, or ``UNDEFINED`` where it throws."""
    try:
        value = json.loads(text, parse_int=_js_int, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return UNDEFINED
    return UNDEFINED if _forbidden(value) else value


def parse_partial_json(text: Optional[str]) -> Any:
    """``parsePartialJson(text).value``: the parsed value, or ``UNDEFINED``."""
    if text is None:
        return UNDEFINED
    value = _secure_loads(text)
    if value is UNDEFINED:
        value = _secure_loads(fix_json(text))
    return value
