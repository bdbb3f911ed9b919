"""Helpers of the browser tests: find Chromium, serve a page, run and stop the browser.

Skipping policy: without a Chromium binary (``chromium``, from Debian's ``chromium``
package, installed by ``.ci/run`` when it can) a browser test is skipped, unless
``CI=true``: then it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, NoReturn, Optional, Tuple

import pytest

PostHandler = Callable[[bytes], Any]


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``CI=true`` (CI must run the browser tests)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true requires the browser tests: {reason}")
    pytest.skip(reason)


def find_chromium() -> str:
    """The Chromium binary (else skip or fail, see :func:`unavailable`)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    unavailable("chromium is not installed (apt-get install chromium)")


class PageServer:
    """A page origin: ``GET`` serves ``files`` (path -> (file, content type)) and
    ``/config`` (the JSON ``config``); ``POST /result`` keeps the page's JSON result,
    ``POST /progress`` sets :attr:`progressed`, and each other ``POST`` path in ``posts``
    answers the JSON its handler returns for the request body."""

    def __init__(
        self,
        files: Dict[str, Tuple[Path, str]],
        config: Dict[str, Any],
        posts: Optional[Dict[str, PostHandler]] = None,
    ) -> None:
        self.result: Optional[Dict[str, Any]] = None
        self.arrived = threading.Event()
        self.progressed = threading.Event()
        handlers = dict(posts or {})
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/config":
                    self._answer(json.dumps(config).encode(), "application/json")
                elif self.path in files:
                    path, content_type = files[self.path]
                    self._answer(path.read_bytes(), content_type)
                else:
                    self._answer(b"not found", "text/plain", 404)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/progress":
                    owner.progressed.set()
                    answer: Any = {}
                elif self.path == "/result":
                    owner.result = json.loads(body)
                    owner.arrived.set()
                    answer = {}
                elif self.path in handlers:
                    answer = handlers[self.path](body)
                else:
                    self._answer(b"not found", "text/plain", 404)
                    return
                self._answer(json.dumps(answer).encode(), "application/json")

            def _answer(self, body: bytes, content_type: str, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class Chromium:
    """Headless Chromium showing ``url`` until :meth:`stop` (a fresh profile in
    ``workdir``; its output goes to ``workdir/chromium.log``)."""

    def __init__(self, binary: str, url: str, workdir: Path) -> None:
        self.log = workdir / "chromium.log"
        argv = [
            binary,
            "--headless",
            "--no-sandbox",  # root in containers; the page is the test's own
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--no-proxy-server",
            f"--user-data-dir={workdir / 'profile'}",
            url,
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        """The end of what Chromium printed (for failure messages)."""
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """End the Chromium we started: its own process group, by id."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                return
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                continue
