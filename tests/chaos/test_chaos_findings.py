"""Minimal reproductions of chaos findings that LocalServer cannot provoke by itself.

Each test names its finding in /work/coord/chaos_findings.md (copied into the report); a
finding still open carries ``xfail(strict=True)``, removed once it is fixed.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, List

import pytest

from sessions_client.session import Session

pytestmark = pytest.mark.chaos


def _batch_event(seqs: List[int], tail: int) -> str:
    records = [
        {
            "seq_num": i,
            "timestamp": 1,
            "body": json.dumps({"data": json.dumps({"n": i}), "id": f"p{i}"}),
        }
        for i in seqs
    ]
    data = json.dumps({"records": records, "tail": {"seq_num": tail, "timestamp": 1}})
    return f"event: batch\nid: {seqs[0]},{len(seqs)},1\ndata: {data}\n\n"


class _PingFirstHandler(BaseHTTPRequestHandler):
    """A v2 stream that pings (tail = 5) before the batch holding records 0..4."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802
        body = (
            'event: ping\ndata: {"timestamp":1,"tail":{"seq_num":5,"timestamp":1}}\n\n'
            + _batch_event([0, 1, 2, 3, 4], 5)
            + "data: [DONE]\n\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("X-Stream-Version", "v2")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ping_first_url() -> Iterator[str]:
    # serve_forever polls for shutdown every 0.01 s (its default, 0.5 s, is what a
    # shutdown would wait)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PingFirstHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_non_following_reader_without_cursor_is_not_ended_by_an_early_ping(
    ping_first_url: str,
) -> None:
    """F3 (chaos_findings.md, fixed in 5eea199)."""
    with Session("chaos-f3", token="tr_dev_chaos", api_url=ping_first_url) as session:
        got = [rec["data"]["n"] for rec in session.iter_out(follow=False)]
    assert got == [0, 1, 2, 3, 4]


def test_non_following_reader_with_cursor_reads_past_an_early_ping(ping_first_url: str) -> None:
    with Session("chaos-f3", token="tr_dev_chaos", api_url=ping_first_url) as session:
        got = [rec["data"]["n"] for rec in session.iter_out(follow=False, last_event_id=1)]
    assert got == [2, 3, 4]


class _CleanCloseFirstHandler(BaseHTTPRequestHandler):
    """v1, close-delimited: the first connection ends cleanly before any event (no
    ``[DONE]``); later ones send records 0..4 and ``[DONE]``."""

    protocol_version = "HTTP/1.0"
    calls: List[Any] = []

    def do_GET(self) -> None:  # noqa: N802
        self.calls.append(self.headers.get("Last-Event-ID"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if len(self.calls) == 1:
            return
        events = "".join(
            f"id: {i}\ndata: {json.dumps({'data': json.dumps({'n': i}), 'id': i})}\n\n"
            for i in range(5)
        )
        self.wfile.write((events + "data: [DONE]\n\n").encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_non_following_reader_reconnects_after_a_clean_close_without_done() -> None:
    """F5 (chaos_findings.md, fixed in 9f33faa): only [DONE] ends a window."""
    _CleanCloseFirstHandler.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CleanCloseFirstHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with Session("chaos-f5", token="tr_dev_chaos", api_url=url) as session:
            got = [rec["data"]["n"] for rec in session.iter_out(follow=False, max_retries=3)]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert got == [0, 1, 2, 3, 4]
    assert len(_CleanCloseFirstHandler.calls) == 2
