"""A real browser (headless Chromium) uses the local server from another origin.

The page (``page.html``) is served by a tiny stdlib HTTP server on one port; the
``LocalServer`` listens on another, so every request of the page is cross-origin and
goes through the browser's CORS checks (preflights included: the page sends
``Authorization``). With a public token the page appends to ``.in``, reads ``.out`` as a
stream through a server-side cut (resuming with ``Last-Event-ID``), drains ``.in``, and
POSTs what it saw back to the page server.

The cut comes after the page has read the first records (it says so on ``/progress``;
only then does the test write the rest of ``.out``): the record sent just before a cut
may be lost by the browser (an errored body stream drops what the page has not read
yet), but those before it are not, so the page must resume with ``Last-Event-ID``.

Skipping policy: without a Chromium binary (``chromium``, from Debian's ``chromium``
package, installed by ``.ci/run`` when it can) the test is skipped, unless ``CI=true``:
then it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from sessions_client.testing import LocalServer

PAGE = Path(__file__).resolve().parent / "page.html"
RESULT_TIMEOUT = 20.0
SESSION = "browser-chat"
INPUTS = ["hello", "wörld ✓", 'quote " and \\ backslash']
OUT_VALUES: List[Any] = [{"type": "text", "n": n} for n in range(7)]
FIRST = 3  # values written before the page connects (then a turn-complete)
CUT_AFTER = FIRST + 2  # records: the first values, the control, one more value


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    reason = "chromium is not installed (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true requires the browser test: {reason}")
    pytest.skip(reason)


class _PageServer:
    """Serves the page and its config; keeps the result the page POSTs back."""

    def __init__(self, config: Dict[str, Any]) -> None:
        self.result: Optional[Dict[str, Any]] = None
        self.arrived = threading.Event()
        self.progressed = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/":
                    self._answer(PAGE.read_bytes(), "text/html; charset=utf-8")
                elif self.path == "/config":
                    self._answer(json.dumps(config).encode(), "application/json")
                else:
                    self._answer(b"not found", "text/plain", 404)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/progress":
                    owner.progressed.set()
                else:
                    owner.result = json.loads(body)
                    owner.arrived.set()
                self._answer(b"{}", "application/json")

            def _answer(self, body: bytes, content_type: str, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _launch(chromium: str, url: str, profile: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [
        chromium,
        "--headless",
        "--no-sandbox",  # root in containers; the page is the test's own
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        f"--user-data-dir={profile}",
        url,
    ]
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the Chromium we started: its own process group, by id."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def chromium() -> str:
    return _chromium()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(secret_key="tr_dev_browser", ping_interval=0.5) as srv:
        srv.create_session(SESSION)
        for value in OUT_VALUES[:FIRST]:
            srv.write(SESSION, "out", value)
        srv.write_control(SESSION, "turn-complete")
        yield srv


def test_a_page_on_another_origin_appends_streams_and_drains(
    chromium: str, server: LocalServer, tmp_path: Path
) -> None:
    token = server.mint_token(SESSION, read=True, write=True, ttl=600)
    server.faults.cut_stream(after_records=CUT_AFTER)
    page = _PageServer(
        {
            "api": server.url,
            "session": SESSION,
            "token": token,
            "inputs": INPUTS,
            "outCount": len(OUT_VALUES),
            "progressAt": FIRST,
        }
    )
    log = tmp_path / "chromium.log"
    deadline = time.monotonic() + RESULT_TIMEOUT
    proc = _launch(chromium, page.url, tmp_path / "profile", log)
    try:
        if page.progressed.wait(RESULT_TIMEOUT):
            for value in OUT_VALUES[FIRST:]:
                server.write(SESSION, "out", value)
        arrived = page.arrived.wait(max(0.0, deadline - time.monotonic()))
    finally:
        _stop(proc)
        page.close()
    assert arrived, (
        f"no result from the page in {RESULT_TIMEOUT} s; chromium said:\n"
        + (log.read_text(errors="replace")[-3000:])
    )
    result = page.result
    assert result is not None and result["ok"], result
    assert result["origin"] != server.url  # cross-origin indeed

    # .out: every record once, in order, across the cut
    out = result["out"]
    assert out["values"] == OUT_VALUES
    first, second = out["connections"][:2]
    assert first["end"].startswith("cut") and first["records"] in (CUT_AFTER - 1, CUT_AFTER)
    assert second["lastEventId"] == str(first["records"] - 1)
    assert {c["version"] for c in out["connections"]} == {"v2"}  # exposed to the page

    # .in: each append stored once; the drain returns each once, in order
    assert [json.loads(r["data"]) for r in result["drained"]] == [{"text": t} for t in INPUTS]
    assert [r["seqNum"] for r in result["drained"]] == list(range(len(INPUTS)))
    assert len(server.records(SESSION, "in")) == len(INPUTS)
