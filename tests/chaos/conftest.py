"""Chaos suite plumbing: every chaos test reports its figures here.

A test asks for the ``chaos_figures`` fixture and calls it with a scenario name and the
figures (records, cuts, retries, lost, duplicated, elapsed, ...). The figures are

- printed at once (visible with ``pytest -s -n 0``: xdist workers do not show output),
- attached to the test report with ``record_property`` (JUnit XML, ``--junitxml``),
- printed again in a "chaos figures" section at the end of every pytest run, so that a plain
  ``python -m pytest`` shows them (docs/reliability.md quotes these lines).
  That section is built in ``tests/conftest.py`` from the reports' ``chaos_*``
  properties, which xdist workers send back to the process that prints the summary.

Figures are recorded *before* a test asserts, so a failing run still shows what was lost or
duplicated.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

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
def chaos_figures(record_property: Callable[[str, object], None]) -> FiguresRecorder:
    """Record one scenario's figures; returns the summary line it printed."""

    def record(scenario: str, **figures: Any) -> str:
        line = format_figures(scenario, figures)
        print(line)
        record_property("chaos_" + scenario, line)
        for key, value in figures.items():
            record_property(key, value)
        return line

    return record
