"""AgentChat against a raw server that answers appends as production answers a replayed
part id: the first attempt commits the record but fails (503), the retry gets
``{"ok": true}`` without ``seq``. Its agent answers every message after a stale
``turn-complete``, so a reply can only be told apart by the ``.in`` seq."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlparse

import pytest

from sessions_client import AgentChat

SECRET = "tr_dev_raw"


class RawState:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.inputs: List[Tuple[str, str]] = []  # (part id, body)
        self.out: List[Dict[str, Any]] = []  # v2 records
        self.failed: set = set()

    def write(
        self, chunk: Optional[Dict[str, Any]], headers: Optional[List[List[str]]] = None
    ) -> None:
        record: Dict[str, Any] = {"seq_num": len(self.out), "timestamp": 0}
        if chunk is not None:
            record["body"] = json.dumps({"data": chunk, "id": f"o{len(self.out)}"})
        if headers:
            record["headers"] = headers
        self.out.append(record)

    def answer(self, seq: int, body: str) -> None:
        """The agent: a stale turn-complete, then "reply to <seq>"."""
        if seq > 0:
            self.write(
                None, [["trigger-control", "turn-complete"], ["session-in-event-id", str(seq - 1)]]
            )
        self.write({"type": "text-start", "id": "t"})
        self.write({"type": "text-delta", "id": "t", "delta": f"reply to {seq}"})
        self.write({"type": "text-end", "id": "t"})
        self.write(None, [["trigger-control", "turn-complete"], ["session-in-event-id", str(seq)]])
        self.cond.notify_all()


def make_handler(state: RawState) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            if self.path == "/api/v1/sessions":
                self._json(201, {"id": "session_raw", "runId": "run_1", "publicAccessToken": "p"})
                return
            part_id = self.headers["X-Part-Id"]
            with state.cond:
                if part_id not in state.failed:  # commit, then lose the answer
                    state.failed.add(part_id)
                    state.inputs.append((part_id, body))
                    chunk = json.loads(body)
                    if chunk.get("kind") == "message":
                        state.answer(len(state.inputs) - 1, body)
                    self._json(503, {"ok": False, "error": "try again"})
                    return
            self._json(200, {"ok": True})  # a replayed part id: no seq

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path.endswith("/in/records"):
                after = int(parse_qs(url.query).get("afterEventId", ["-1"])[0])
                with state.cond:
                    items = [
                        {"data": body, "id": pid, "seqNum": seq}
                        for seq, (pid, body) in enumerate(state.inputs)
                        if seq > after
                    ]
                self._json(200, {"records": items})
                return
            start = int(self.headers.get("Last-Event-ID", "-1")) + 1
            with state.cond:
                state.cond.wait_for(lambda: len(state.out) > start, timeout=2)
                records = state.out[start:]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("X-Stream-Version", "v2")
            self.send_header("Connection", "close")
            self.end_headers()
            if records:
                batch = json.dumps({"records": records})
                self.wfile.write(f"event: batch\ndata: {batch}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True

    return Handler


@pytest.fixture
def raw() -> Iterator[Tuple[str, RawState]]:
    state = RawState()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_replayed_appends_without_seq_find_their_turns(raw: Tuple[str, RawState]) -> None:
    url, state = raw
    chat = AgentChat("agent", chat_id="c-raw", token=SECRET, api_url=url, stream_timeout=10)
    for n in range(3):
        reply = chat.send_message(f"message {n}")
        chunks = list(reply)
        assert [c["type"] for c in chunks] == ["text-start", "text-delta", "text-end"]
        assert reply.text() == f"reply to {n}"
    assert chat.state["sent_in_seq"] == chat.state["in_seq"] == 2
    assert len(state.inputs) == 3  # each message stored once
    chat.disconnect()
