"""Suite-wide set-up: SIGINT handling and the order tests are handed to xdist workers."""

from __future__ import annotations

import signal
import sys
from typing import Any, List, Tuple

import pytest

# Bytecode caches on, whatever PYTHONDONTWRITEBYTECODE says (container images often set
# it): pytest then keeps each test module it rewrote for its asserts, and this package's
# modules, in __pycache__ (git-ignored). Without them every xdist worker re-rewrites all
# test modules on every run, and every Python subprocess a test starts recompiles
# sessions_client. Python reads existing caches even when told not to write them, so
# the subprocesses use them too.
sys.dont_write_bytecode = False

#: The project's own pytest plugin: ``sessions_server`` is the one LocalServer fixture;
#: a directory configures it by overriding ``sessions_server_options``.
pytest_plugins = ["sessions_client.testing.pytest_plugin"]

#: Test files whose tests take seconds each (measured with ``--durations``), listed
#: slowest first. They run first: with ``--maxschedchunk 1`` (pyproject.toml) a free
#: xdist worker takes the next test, so long tests started early overlap the many short
#: ones instead of leaving one worker running alone at the end.
SLOW_FIRST = (
    "tests/client/test_ping_gaps.py",  # 21 s of real waiting, no CPU: overlaps everything
    "tests/chaos/",
    "tests/uimessage/",
    "tests/unit/test_wire_properties.py",
    "tests/unit/test_wire_records.py",
    "tests/test_packaging.py",
    "tests/conformance/test_cors_sdk_fetch.py",
    "tests/browser/",
    "tests/hostile/",
    "tests/management/test_resume_after_kill.py",
    "tests/conformance/",
    "tests/examples/",
    "tests/docs/",
    "tests/cli/",
)


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background of a non-interactive shell (`cmd &`) inherits
    # SIGINT ignored (POSIX), and so would the processes it starts: the Ctrl-C tests would
    # hang or fail. Python's own handler is what an interactive run has.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


#: (test id, line) of every chaos scenario reported in this run (tests/chaos/conftest.py).
_CHAOS_FIGURES: List[Tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the chaos figures lines; under xdist, from the workers' reports (this
    file, unlike tests/chaos/conftest.py, is loaded by the process that reports)."""
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key.startswith("chaos_") and isinstance(value, str):
            _CHAOS_FIGURES.append((report.nodeid, value))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _CHAOS_FIGURES:
        return
    terminalreporter.section("chaos figures")
    for _nodeid, line in sorted(_CHAOS_FIGURES):
        terminalreporter.write_line(line)


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    for rank, prefix in enumerate(SLOW_FIRST):
        if path.startswith(prefix):
            return rank
    return len(SLOW_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Slow files first; the order inside a file is kept."""
    items.sort(key=_rank)
