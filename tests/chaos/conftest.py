"""Chaos suite plumbing: every chaos test reports its figures here.

A test asks for the ``chaos_figures`` fixture and calls it with a scenario name and the
figures (records, cuts, retries, lost, duplicated, elapsed, ...). The figures are

- printed at once (visible with ``pytest -s``),
- attached to the test report with ``record_property`` (JUnit XML, ``--junitxml``),
- printed again in a "chaos figures" section at the end of every pytest run, so that a plain
  ``python -m pytest`` shows them (the README's Reliability section quotes these lines).

Figures are recorded *before* a test asserts, so a failing run still shows what was lost or
duplicated.
"""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

import pytest

_FIGURES = pytest.StashKey[List[Tuple[str, str]]]()

FiguresRecorder = Callable[..., str]


def format_figures(scenario: str, figures: dict[str, Any]) -> str:
    """One line, ``chaos: scenario=... key=value ...``; floats get two decimals."""
    parts = [f"scenario={scenario}"]
    for key, value in figures.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.2f}")
        elif isinstance(value, dict):
            inner = ",".join(f"{k}:{v}" for k, v in value.items())
            parts.append(f"{key}={{{inner}}}")
        else:
            parts.append(f"{key}={value}")
    return "chaos: " + " ".join(parts)


@pytest.fixture
def chaos_figures(
    request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> FiguresRecorder:
    """Record one scenario's figures; returns the summary line it printed."""

    def record(scenario: str, **figures: Any) -> str:
        line = format_figures(scenario, figures)
        print(line)
        record_property("chaos_" + scenario, line)
        for key, value in figures.items():
            record_property(key, value)
        request.config.stash.setdefault(_FIGURES, []).append((request.node.nodeid, line))
        return line

    return record


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_FIGURES, [])
    if not lines:
        return
    terminalreporter.section("chaos figures")
    for _nodeid, line in lines:
        terminalreporter.write_line(line)
