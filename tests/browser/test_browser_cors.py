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

Skipped without Chromium unless ``CI=true`` (see ``_support``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from sessions_client.testing import LocalServer

from ._support import Chromium, PageServer, find_chromium

PAGE = Path(__file__).resolve().parent / "page.html"
RESULT_TIMEOUT = 20.0
SESSION = "browser-chat"
INPUTS = ["hello", "wörld ✓", 'quote " and \\ backslash']
OUT_VALUES: List[Any] = [{"type": "text", "n": n} for n in range(7)]
FIRST = 3  # values written before the page connects (then a turn-complete)
CUT_AFTER = FIRST + 2  # records: the first values, the control, one more value


@pytest.fixture
def chromium() -> str:
    return find_chromium()


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
    config = {
        "api": server.url,
        "session": SESSION,
        "token": token,
        "inputs": INPUTS,
        "outCount": len(OUT_VALUES),
        "progressAt": FIRST,
    }
    page = PageServer({"/": (PAGE, "text/html; charset=utf-8")}, config)
    deadline = time.monotonic() + RESULT_TIMEOUT
    browser = Chromium(chromium, page.origin + "/", tmp_path)
    try:
        if page.progressed.wait(RESULT_TIMEOUT):
            for value in OUT_VALUES[FIRST:]:
                server.write(SESSION, "out", value)
        arrived = page.arrived.wait(max(0.0, deadline - time.monotonic()))
    finally:
        browser.stop()
        page.close()
    assert arrived, f"no result from the page in {RESULT_TIMEOUT} s:\n{browser.output()}"
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
