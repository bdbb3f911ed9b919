"""Every Python example in the documentation runs.

Each fenced ``python`` block of ``docs/*.md`` and ``README.md`` runs on its own, in a fresh
namespace, against a fresh ``LocalServer`` with the echo agent (the plugin's
``sessions_env`` fixture: ``TRIGGER_API_URL`` / ``TRIGGER_SECRET_KEY`` point at
it), on which the session ``chat-1`` exists, in an empty working directory.
An HTML comment on the line before a block changes that:

- ``<!-- docs-test: skip REASON -->``: not run (e.g. it needs production);
- ``<!-- docs-test: requires MODULE -->``: skipped while MODULE cannot be imported;
- ``<!-- docs-test: pytest -->``: the block is a test module; it runs under
  pytest with the plugin enabled and every test in it must pass.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

import pytest

from sessions_client.testing import LocalServer

pytest_plugins = ["pytester", "sessions_client.testing.pytest_plugin"]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python[ \t]*$")
DIRECTIVE = re.compile(r"^<!--\s*docs-test:\s*(?P<verb>\w+)\s*(?P<arg>.*?)\s*-->\s*$")


class Snippet(NamedTuple):
    path: Path
    line: int  # 1-based line of the first line of code
    code: str
    verb: Optional[str]  # "skip", "requires", "pytest" or None
    arg: str


def extract(path: Path) -> List[Snippet]:
    """The ``python`` blocks of one Markdown file, with their directives."""
    lines = path.read_text(encoding="utf-8").splitlines()
    snippets: List[Snippet] = []
    index = 0
    while index < len(lines):
        if not FENCE.match(lines[index]):
            index += 1
            continue
        directive = DIRECTIVE.match(lines[index - 1]) if index > 0 else None
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{path.name}:{index + 1}: unclosed code block")
        snippets.append(
            Snippet(
                path=path,
                line=index + 2,
                code="\n".join(lines[index + 1 : end]) + "\n",
                verb=directive.group("verb") if directive else None,
                arg=directive.group("arg") if directive else "",
            )
        )
        index = end + 1
    return snippets


PAGES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]
SNIPPETS = [snippet for path in PAGES for snippet in extract(path)]


def _id(snippet: Snippet) -> str:
    return f"{snippet.path.name}:{snippet.line}"


def test_the_docs_have_examples() -> None:
    assert len(SNIPPETS) >= 20
    verbs = {snippet.verb for snippet in SNIPPETS}
    assert verbs <= {None, "skip", "requires", "pytest"}, verbs


def test_extract_reads_directives(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n<!-- docs-test: skip needs production -->\n"
        "```python\ny = 2\n\nz = 3\n```\n```bash\nls\n```\n",
        encoding="utf-8",
    )
    first, second = extract(page)
    assert (first.line, first.code, first.verb) == (3, "x = 1\n", None)
    assert (second.line, second.code, second.verb, second.arg) == (
        7,
        "y = 2\n\nz = 3\n",
        "skip",
        "needs production",
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sessions_server", [{"echo_agent": True}], indirect=True, ids=[""])
@pytest.mark.parametrize("snippet", SNIPPETS, ids=_id)
def test_snippet_runs(
    snippet: Snippet,
    sessions_env: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pytester: pytest.Pytester,
) -> None:
    if snippet.verb == "skip":
        pytest.skip(snippet.arg or "marked not runnable")
    if snippet.verb == "requires" and importlib.util.find_spec(snippet.arg) is None:
        pytest.skip(f"needs {snippet.arg}")
    if snippet.verb == "pytest":
        _run_as_test_module(snippet, pytester)
        return
    sessions_env.create_session("chat-1")
    monkeypatch.chdir(tmp_path)
    # Padding keeps the line numbers of a traceback those of the Markdown file.
    source = "\n" * (snippet.line - 1) + snippet.code
    namespace: Dict[str, Any] = {"__name__": "__docs__"}
    exec(compile(source, str(snippet.path), "exec"), namespace)


def _run_as_test_module(snippet: Snippet, pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["sessions_client.testing.pytest_plugin"]\n')
    pytester.makepyfile(test_docs_example=snippet.code)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1 and not outcomes.get("failed"), result.stdout.str()
