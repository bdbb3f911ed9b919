"""One chat turn through the official browser transport (``TriggerChatTransport`` from
``@trigger.dev/sdk/chat``, bundled with esbuild in ``tests/browser/chat``) in headless
Chromium, against the local server on another origin.

The page's ``startSession`` / ``accessToken`` call the page server (as an app's server
actions would), which creates the session and mints tokens with ``LocalServer``'s API.
The agent side is played by the test: it waits for the transport's ``.in`` record (a
``ChatInputChunk``), then writes a reply of ``UIMessageChunk`` records to ``.out`` and
the ``turn-complete`` that ends the turn.

Skipped without Chromium, or without ``npm ci`` in ``tests/browser/chat``, unless
``CI=true`` (see ``_support``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from sessions_client.testing import LocalServer

from ._support import Chromium, PageServer, find_chromium, unavailable

HERE = Path(__file__).resolve().parent
CHAT_DIR = HERE / "chat"
BUNDLE = CHAT_DIR / "dist" / "transport.js"
PAGE = HERE / "chat_page.html"
RESULT_TIMEOUT = 20.0
CHAT_ID = "browser-chat-transport"
TASK = "my-chat-agent"
TEXT = "hello from the browser"


def _bundle() -> Path:
    """Build ``dist/transport.js`` when missing or older than its inputs."""
    if not (CHAT_DIR / "node_modules" / "@trigger.dev" / "sdk").exists():
        unavailable("tests/browser/chat/node_modules is missing: run `npm ci` there")
    inputs = [CHAT_DIR / "entry.js", CHAT_DIR / "package-lock.json"]
    if BUNDLE.exists() and BUNDLE.stat().st_mtime >= max(p.stat().st_mtime for p in inputs):
        return BUNDLE
    npm = shutil.which("npm")
    if npm is None:
        unavailable("npm is not installed")
    proc = subprocess.run(
        [npm, "run", "-s", "build"],
        cwd=str(CHAT_DIR),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return BUNDLE


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(secret_key="tr_dev_browser_chat", ping_interval=0.5) as srv:
        yield srv


def _start(server: LocalServer, body: bytes) -> Dict[str, Any]:
    """The app's server action: create (or find) the chat's session, answer its token."""
    request = json.loads(body)
    chat_id = request["chatId"]
    info = server.create_session(
        chat_id,
        task_identifier=request["taskId"],
        trigger_config={"basePayload": {"trigger": "preload", "chatId": chat_id}},
        tags=[f"chat:{chat_id}"],
    )
    return {"publicAccessToken": info["publicAccessToken"]}


def _wait_for_input(server: LocalServer, deadline: float) -> Dict[str, Any]:
    """The first ``.in`` record (bounded wait; the session appears on ``/start``)."""
    wake = threading.Event()
    while time.monotonic() < deadline:
        if server.get_session(CHAT_ID) is not None:
            records = server.records(CHAT_ID, "in")
            if records:
                return records[0]
        wake.wait(0.02)
    raise AssertionError("the transport appended nothing to .in")


def _reply(text: str) -> List[Dict[str, Any]]:
    return [
        {"type": "start", "messageId": "assistant-1"},
        {"type": "start-step"},
        {"type": "text-start", "id": "t1"},
        {"type": "text-delta", "id": "t1", "delta": "echo: "},
        {"type": "text-delta", "id": "t1", "delta": text},
        {"type": "text-end", "id": "t1"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
    ]


def test_one_chat_turn_through_the_official_transport(server: LocalServer, tmp_path: Path) -> None:
    chromium = find_chromium()
    bundle = _bundle()
    config = {"api": server.url, "chatId": CHAT_ID, "task": TASK, "text": TEXT}
    page = PageServer(
        {
            "/": (PAGE, "text/html; charset=utf-8"),
            "/transport.js": (bundle, "text/javascript; charset=utf-8"),
        },
        config,
        {
            "/start": lambda body: _start(server, body),
            "/token": lambda body: {"token": server.mint_token(json.loads(body)["chatId"])},
        },
    )
    deadline = time.monotonic() + RESULT_TIMEOUT
    browser = Chromium(chromium, page.origin + "/", tmp_path)
    try:
        record = _wait_for_input(server, deadline)
        chunk = json.loads(json.loads(record["body"])["data"])
        reply = _reply(chunk["payload"]["message"]["parts"][0]["text"])
        for value in reply:
            server.write(CHAT_ID, "out", value)
        server.write_control(
            CHAT_ID,
            "turn-complete",
            headers=[
                ["session-in-event-id", str(record["seq"])],
                ["public-access-token", server.mint_token(CHAT_ID)],
            ],
        )
        arrived = page.arrived.wait(max(0.0, deadline - time.monotonic()))
    finally:
        browser.stop()
        page.close()
    assert arrived, f"no result from the page in {RESULT_TIMEOUT} s:\n{browser.output()}"
    result = page.result
    assert result is not None and result["ok"], result

    # what the transport sent: one ChatInputChunk with the new message only
    assert chunk["kind"] == "message"
    payload = chunk["payload"]
    assert (payload["chatId"], payload["trigger"]) == (CHAT_ID, "submit-message")
    assert payload["message"]["role"] == "user"
    assert payload["message"]["parts"] == [{"type": "text", "text": TEXT}]
    # what it yielded: the reply's chunks, in order, and the turn ended there
    assert result["chunks"] == reply
    session = server.get_session(CHAT_ID)
    assert session is not None and session["taskIdentifier"] == TASK
