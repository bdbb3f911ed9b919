"""The WSGI relay in a real browser: headless Chromium (Debian's ``chromium``) opens a
page whose ``EventSource`` reads a session through ``sessions_client.wsgi.sse_relay``.

- Every record arrives once and in order although the upstream stream is cut by the
  local server (fault injection) and each relay response ends after a second
  (``max_duration``), so the browser reconnects with ``Last-Event-ID`` several times.
- Closing the page (the browser process goes away) frees the WSGI worker and stops
  the relay's upstream reader within seconds.

Skipped where Chromium is not installed, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from sessions_client import Client
from sessions_client.testing import LocalServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the relay helpers
from _waiting import eventually  # noqa: E402
from relay._support import RelayApp, serve  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None and os.environ.get("CI") != "true":
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

RECORDS = 40

PAGE = """<!doctype html>
<meta charset="utf-8"><title>relay</title>
<script>
  const seen = [];
  const report = (what) => fetch("/report", {method: "POST", body: JSON.stringify(what)});
  const events = new EventSource("/events/tab");
  events.onmessage = (e) => {
    seen.push([Number(e.lastEventId), JSON.parse(e.data).n]);
    report({seen: seen});
  };
</script>
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Start Chromium on a URL: ``browser(url)``; it is killed at the end in any case."""
    assert CHROMIUM is not None, "CI=true: chromium must be installed (apt-get install chromium)"
    started: List[subprocess.Popen[bytes]] = []

    def open_page(url: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'profile'}",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: closing it kills every helper
        )
        started.append(proc)
        return proc

    yield open_page
    for proc in started:
        close_browser(proc)


def close_browser(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_event_source_gets_every_record_once_through_cuts_and_closing_frees_the_worker(
    browser: Any,
) -> None:
    with LocalServer() as upstream, Client(upstream.secret_key, upstream.url) as client:
        upstream.create_session("tab")
        for n in range(RECORDS // 2):
            upstream.append("tab", "out", f'{{"n": {n}}}')
        upstream.faults.cut_stream(after_records=7, count=2)  # the relay's upstream breaks
        app = RelayApp(
            client, page=PAGE, heartbeat=0.5, max_duration=1.0, retry_ms=200, upstream_window=1.0
        )
        with serve(app, workers=8) as (httpd, url):
            page = browser(url + "/")

            def seen() -> List[Any]:  # reports may arrive out of order: the longest is last
                return max((r["seen"] for r in list(app.reports)), key=len, default=[])

            eventually(lambda: len(seen()) >= RECORDS // 2, 30, seen)
            stop = threading.Event()

            def write_more() -> None:  # the rest arrives while the page is connected
                for n in range(RECORDS // 2, RECORDS):
                    upstream.append("tab", "out", f'{{"n": {n}}}')
                    stop.wait(0.05)

            writer = threading.Thread(target=write_more)
            writer.start()
            writer.join(30)
            eventually(lambda: len(seen()) >= RECORDS, 30, seen)
            assert seen() == [[n, n] for n in range(RECORDS)], "a record was lost or repeated"
            resumed = [value for value in app.last_event_ids if value is not None]
            assert resumed, "the browser never reconnected with Last-Event-ID"
            assert upstream.request_counts.get("read", 0) >= 3

            close_browser(page)  # the tab is closed while the channel is idle
            eventually(lambda: httpd.busy == 0, 10, "a worker is still held")
            eventually(lambda: all(relay.closed for relay in app.relays), 10)
