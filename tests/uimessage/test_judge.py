"""``assemble_message`` against the AI SDK's own ``readUIMessageStream`` (the judge).

``judge.mjs`` runs ``readUIMessageStream`` from the ``ai`` package pinned in this folder's
``package-lock.json`` on chunk lists and prints, for each, the last message it emitted and
the error its processing threw, if any. ``assemble_message`` must return that message, or
raise ``ProtocolError`` where the SDK throws. (Where the SDK emits no message at all,
``assemble_message`` returns the SDK's starting message, as its docstring says.)

One node process serves the whole session (one JSON line of chunk lists in, one line of
results out): the hand-written lists and all their prefixes go in one batch, each
hypothesis example in one line.

Skipping policy, as in ``tests/conformance``: without ``node`` (18+) or
``tests/uimessage/node_modules`` (``npm ci`` here) the tests are skipped, unless
``SESSIONS_CLIENT_REQUIRE_CONFORMANCE=1`` (``.ci/run`` sets it after its ``npm ci``): then
they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List, NoReturn, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from uimessage_cases import HAND_WRITTEN, INVALID, JSON_TEXTS, chunk_lists

from sessions_client import _ui_message
from sessions_client._ui_message import assemble_message
from sessions_client.errors import ProtocolError

JUDGE_DIR = Path(__file__).resolve().parent
JUDGE = JUDGE_DIR / "judge.mjs"
AI_PACKAGE = JUDGE_DIR / "node_modules" / "ai" / "package.json"
EMPTY = {"id": "", "role": "assistant", "parts": []}

Chunks = List[Dict[str, Any]]
Verdict = Dict[str, Any]

pytestmark = [pytest.mark.conformance, pytest.mark.timeout(120)]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("SESSIONS_CLIENT_REQUIRE_CONFORMANCE") == "1":
        pytest.fail(
            f"the uimessage judge is required (SESSIONS_CLIENT_REQUIRE_CONFORMANCE=1): {reason}"
        )
    pytest.skip(reason)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed (needed to run the AI SDK's readUIMessageStream)")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20).stdout
    match = re.match(r"v(\d+)\.", out.strip())
    if match is None or int(match.group(1)) < 18:
        _unavailable(f"node 18 or newer is needed, found {out.strip()!r}")
    if not AI_PACKAGE.exists():
        _unavailable("tests/uimessage/node_modules is missing: run `npm ci` in tests/uimessage")
    return node


def _js_int(digits: str) -> Any:
    """An integer as JavaScript holds it: beyond 2**53, the nearest double.

    JavaScript prints a large double with its shortest digits (``66423585056314290`` for
    ``6.642358505631429e16``); read back as a float it equals the Python value again.
    """
    value = int(digits)
    return float(value) if abs(value) > 2**53 else value


def _non_finite(obj: Dict[str, Any]) -> Any:
    """judge.mjs writes Infinity, -Infinity and NaN as ``{"$nonFinite": "..."}``."""
    if list(obj) == ["$nonFinite"]:
        return float(obj["$nonFinite"].replace("Infinity", "inf"))
    return obj


class _Judge:
    """One ``node judge.mjs`` for the session: a line of chunk lists in, a line of verdicts out."""

    def __init__(self, node: str) -> None:
        self.proc = subprocess.Popen(
            [node, str(JUDGE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            cwd=str(JUDGE_DIR),
        )

    def __call__(self, lists: List[Chunks]) -> List[Verdict]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(lists) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail(f"judge.mjs exited with {self.proc.wait(timeout=10)}")
        verdicts: List[Verdict] = json.loads(line, parse_int=_js_int, object_hook=_non_finite)
        assert len(verdicts) == len(lists)
        return verdicts

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def judge() -> Iterator[_Judge]:
    process = _Judge(_node())
    try:
        yield process
    finally:
        process.close()


def _ours(chunks: Chunks) -> Tuple[Optional[Dict[str, Any]], Optional[ProtocolError]]:
    try:
        return assemble_message(chunks), None
    except ProtocolError as exc:
        return None, exc


def _disagreement(chunks: Chunks, verdict: Verdict) -> Optional[str]:
    """Why ``assemble_message(chunks)`` disagrees with the judge's verdict, or None."""
    message, error = _ours(chunks)
    if "error" in verdict:
        expected = verdict["error"]
        if error is None:
            return f"the SDK threw {expected}, assemble_message returned {message}"
        if expected["name"] == "AI_UIMessageStreamError" and expected["message"] not in str(error):
            return f"the SDK threw {expected['message']!r}, assemble_message raised {error}"
        return None
    if error is not None:
        return f"assemble_message raised {error}; the SDK emitted {verdict['message']}"
    expected_message = verdict["message"] if verdict["message"] is not None else EMPTY
    if message != expected_message:
        return f"\n  ours: {json.dumps(message)}\n  SDK:  {json.dumps(expected_message)}"
    return None


def _prefixes(lists: Dict[str, Chunks]) -> List[Tuple[str, Chunks]]:
    return [
        (f"{name}[:{n}]", chunks[:n])
        for name, chunks in lists.items()
        for n in range(len(chunks) + 1)
    ]


def test_hand_written_lists_and_every_prefix(judge: _Judge) -> None:
    cases = _prefixes(HAND_WRITTEN)
    verdicts = judge([chunks for _, chunks in cases])
    failures = []
    for (name, chunks), verdict in zip(cases, verdicts):
        why = _disagreement(chunks, verdict)
        if why is not None:
            failures.append(f"{name}: {why}")
    assert not failures, "\n".join(failures[:10])
    # The full lists are not all errors: the comparison covered real messages.
    assert all("error" not in v for v in judge(list(HAND_WRITTEN.values())))


def test_the_documented_reference_is_the_pinned_version(judge: _Judge) -> None:
    pinned = json.loads(AI_PACKAGE.read_text(encoding="utf-8"))["version"]
    declared = json.loads((JUDGE_DIR / "package.json").read_text(encoding="utf-8"))
    assert declared["dependencies"]["ai"] == pinned
    assert f"``ai`` {pinned}" in (_ui_message.__doc__ or "")


def test_invalid_sequences_are_refused_by_both(judge: _Judge) -> None:
    verdicts = judge(list(INVALID.values()))
    for (name, chunks), verdict in zip(INVALID.items(), verdicts):
        assert "error" in verdict, f"{name}: the SDK accepted it: {verdict}"
        assert _disagreement(chunks, verdict) is None, name


def test_partial_json_inputs_at_every_cut(judge: _Judge) -> None:
    lists = []
    for text in JSON_TEXTS:
        for cut in range(1, len(text) + 1):
            for dynamic in (False, True):
                start = {"type": "tool-input-start", "toolCallId": "c", "toolName": "t"}
                delta = {
                    "type": "tool-input-delta",
                    "toolCallId": "c",
                    "inputTextDelta": text[:cut],
                }
                lists.append([{**start, "dynamic": dynamic}, delta])
    verdicts = judge(lists)
    failures = [why for chunks, v in zip(lists, verdicts) if (why := _disagreement(chunks, v))]
    assert not failures, "\n".join(failures[:5])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(chunks=chunk_lists())
def test_generated_lists(judge: _Judge, chunks: Chunks) -> None:
    why = _disagreement(chunks, judge([chunks])[0])
    assert why is None, f"{json.dumps(chunks)}\n{why}"
