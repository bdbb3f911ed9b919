"""Fixtures for the conformance suite: the official TypeScript SDK drives the local server.

Skipping policy
---------------
The suite needs ``node`` (18 or newer) and ``tests/conformance/node_modules`` (``npm ci`` in
this directory installs the pinned ``@trigger.dev/core``, ``@trigger.dev/sdk`` and ``ai``
from ``package-lock.json``).
When either is missing the tests are *skipped* with the reason, unless
``SESSIONS_CLIENT_REQUIRE_CONFORMANCE=1`` is set (``.ci/run`` sets it after its ``npm ci``):
then they *fail*.

Tests never reach the network on their own: ``npm ci`` is not run automatically. Set
``SESSIONS_CLIENT_CONFORMANCE_INSTALL=1`` to let the suite run ``npm ci`` here once per
pytest session when ``node_modules`` is missing.

``SESSIONS_CONFORMANCE_SERVER=<module>`` runs the suite against another implementation of
the ``LocalServer`` API (default ``sessions_client.testing``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import queue
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NoReturn, Optional, Tuple

import pytest

CONFORMANCE_DIR = Path(__file__).resolve().parent
DRIVER = CONFORMANCE_DIR / "driver.mjs"
CHAT_DRIVER = CONFORMANCE_DIR / "chat_driver.mjs"
SDK_PACKAGE = CONFORMANCE_DIR / "node_modules" / "@trigger.dev" / "core" / "package.json"
CHAT_PACKAGES = [
    CONFORMANCE_DIR / "node_modules" / "@trigger.dev" / "sdk" / "package.json",
    CONFORMANCE_DIR / "node_modules" / "ai" / "package.json",
]
DRIVER_TIMEOUT = 45.0
SECRET_KEY = "tr_dev_conformance"

Ops = List[Dict[str, Any]]
Results = List[Dict[str, Any]]


def _required() -> bool:
    return os.environ.get("SESSIONS_CLIENT_REQUIRE_CONFORMANCE") == "1"


def _unavailable(reason: str) -> NoReturn:
    if _required():
        pytest.fail(f"conformance suite required (SESSIONS_CLIENT_REQUIRE_CONFORMANCE=1): {reason}")
    pytest.skip(reason)


def _node_major(node: str) -> Optional[int]:
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.strip())
    return int(match.group(1)) if match else None


def _npm_ci() -> Optional[str]:
    """Run ``npm ci`` in this directory; return an error text, or None on success."""
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found"
    try:
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=str(CONFORMANCE_DIR),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"npm ci failed: {exc}"
    if proc.returncode != 0:
        return f"npm ci failed: {proc.stderr.strip()[-500:]}"
    return None


@pytest.fixture(scope="session")
def node_bin() -> str:
    """Path of a usable ``node`` with the pinned SDK installed (else skip or fail)."""
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed (needed to run the official TypeScript SDK)")
    major = _node_major(node)
    if major is None or major < 18:
        _unavailable(f"node 18 or newer is needed, found {major}")
    if not SDK_PACKAGE.exists() and os.environ.get("SESSIONS_CLIENT_CONFORMANCE_INSTALL") == "1":
        error = _npm_ci()
        if error is not None:
            _unavailable(error)
    if not SDK_PACKAGE.exists():
        _unavailable(
            "tests/conformance/node_modules is missing: run `npm ci` in tests/conformance "
            "(or set SESSIONS_CLIENT_CONFORMANCE_INSTALL=1)"
        )
    return node


def _server_class() -> Any:
    module_name = os.environ.get("SESSIONS_CONFORMANCE_SERVER", "sessions_client.testing")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        _unavailable(f"cannot import the local server ({module_name}): {exc}")
    server_class = getattr(module, "LocalServer", None)
    if server_class is None:
        _unavailable(f"{module_name} has no LocalServer yet")
    return server_class


@pytest.fixture(scope="module")
def servers(node_bin: str) -> Iterator[Callable[..., Any]]:
    """``servers(wire, echo_agent=False, name="", **options)`` -> a running LocalServer,
    shared by the module's tests that ask for the same arguments (a distinct ``name``
    isolates a test; ``options`` are more LocalServer arguments, e.g. ``agent_delay``)."""
    cls = _server_class()
    running: Dict[Tuple[Any, ...], Any] = {}

    def get(wire: str, echo_agent: bool = False, name: str = "", **options: Any) -> Any:
        key = (wire, echo_agent, name, json.dumps(options, sort_keys=True))
        if key not in running:
            srv = cls(
                secret_key=SECRET_KEY,
                db=":memory:",
                wire=wire,
                port=0,
                echo_agent=echo_agent,
                **options,
            )
            srv.__enter__()
            running[key] = srv
        return running[key]

    try:
        yield get
    finally:
        for srv in running.values():
            srv.close()


class _DriverProcess:
    """One long-lived ``node driver.mjs --serve``: a program per line in, a result line out."""

    def __init__(self, node: str, script: Path = DRIVER) -> None:
        self._node = node
        self._script = script
        self._proc: Optional[subprocess.Popen[str]] = None
        self._lines: queue.Queue[Optional[str]] = queue.Queue()
        self._stderr: List[str] = []

    def _start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [self._node, str(self._script), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            cwd=str(CONFORMANCE_DIR),
        )
        lines: queue.Queue[Optional[str]] = queue.Queue()
        self._lines = lines
        self._stderr = []
        stdout, stderr = proc.stdout, proc.stderr
        assert stdout is not None and stderr is not None

        def pump_out() -> None:
            for line in stdout:
                lines.put(line)
            lines.put(None)

        def pump_err() -> None:
            for line in stderr:
                self._stderr.append(line)
                del self._stderr[:-50]

        threading.Thread(target=pump_out, daemon=True).start()
        threading.Thread(target=pump_err, daemon=True).start()
        self._proc = proc
        return proc

    def run(self, program: Dict[str, Any]) -> Dict[str, Any]:
        proc = self._proc if self._proc is not None and self._proc.poll() is None else None
        if proc is None:
            proc = self._start()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(program) + "\n")
            proc.stdin.flush()
            line = self._lines.get(timeout=DRIVER_TIMEOUT)
        except (OSError, queue.Empty) as exc:
            self.close()
            pytest.fail(f"node driver did not answer within {DRIVER_TIMEOUT} s ({exc!r})")
        if line is None:
            self.close()
            pytest.fail(f"node driver exited: {''.join(self._stderr)[-2000:]}")
        out: Dict[str, Any] = json.loads(line)
        if "fatal" in out:
            pytest.fail(f"node driver failed: {out['fatal']}")
        return out

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def _driver_process(node_bin: str) -> Iterator[_DriverProcess]:
    driver = _DriverProcess(node_bin)
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture(scope="module")
def drive(_driver_process: _DriverProcess) -> Callable[[Any, Ops], Results]:
    """``drive(srv, ops)`` runs the ops through the SDK and returns one result per op."""

    def run(srv: Any, ops: Ops) -> Results:
        out = _driver_process.run({"url": srv.url, "key": srv.secret_key, "ops": ops})
        results: Results = out["results"]
        assert len(results) == len(ops)
        return results

    return run


@pytest.fixture(scope="session")
def _chat_driver_process(node_bin: str) -> Iterator[_DriverProcess]:
    missing = [str(p.parent.relative_to(CONFORMANCE_DIR)) for p in CHAT_PACKAGES if not p.exists()]
    if missing:
        _unavailable(f"{', '.join(missing)} missing: run `npm ci` in tests/conformance")
    driver = _DriverProcess(node_bin, CHAT_DRIVER)
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture(scope="module")
def chat_drive(_chat_driver_process: _DriverProcess) -> Callable[[Any, Ops], Results]:
    """``chat_drive(srv, steps)`` runs the steps with the official AgentChat (see
    ``chat_driver.mjs``) and returns one result per step."""

    def run(srv: Any, steps: Ops) -> Results:
        out = _chat_driver_process.run({"url": srv.url, "key": srv.secret_key, "steps": steps})
        results: Results = out["results"]
        assert len(results) == len(steps)
        return results

    return run
