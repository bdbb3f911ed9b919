"""Hide tokens in records before they are printed or relayed.

A ``turn-complete`` control record may carry the agent's refreshed
``public-access-token`` (in its headers or, for legacy data-record controls, in
its data). The library adopts it itself (``Session`` / ``Client``); nothing it
prints or relays to a browser should show it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

__all__ = ["HIDDEN", "redact_tokens"]

#: What a token value is replaced with.
HIDDEN = "<hidden>"

_TOKEN_HEADERS = frozenset({"public-access-token"})


def _redact_pairs(pairs: Any) -> Any:
    if not isinstance(pairs, list):
        return pairs
    shown: List[Any] = []
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and pair[0] in _TOKEN_HEADERS:
            shown.append([pair[0], HIDDEN])
        else:
            shown.append(pair)
    return shown


def redact_tokens(record: Mapping[str, Any]) -> Dict[str, Any]:
    """Return ``record`` with every token value replaced by :data:`HIDDEN`.

    Covers the ``public-access-token`` header pair and, in a dict ``data``, its
    ``publicAccessToken`` key and ``headers`` pairs. Returns a shallow copy; the
    input is not modified.
    """
    shown = dict(record)
    shown["headers"] = _redact_pairs(record.get("headers"))
    data = record.get("data")
    if isinstance(data, dict) and ("publicAccessToken" in data or "headers" in data):
        data = dict(data)
        if "publicAccessToken" in data:
            data["publicAccessToken"] = HIDDEN
        data["headers"] = _redact_pairs(data.get("headers"))
        if data["headers"] is None:
            del data["headers"]
        shown["data"] = data
    return shown
