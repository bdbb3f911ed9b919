"""Ctrl-C (a notebook kernel's interrupt) while a reader waits: the KeyboardInterrupt
comes out unchanged with a short traceback (no frames from deep in the socket read,
no chained reconnect failure), its connection is closed, and the next call works."""

from __future__ import annotations

import signal
import socket
import threading
import time
import traceback
from typing import Callable, Iterator

import pytest

from sessions_client import AgentChat, Session
from sessions_client.testing import LocalServer

MAX_LINES = 30

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs the main thread"
)


@pytest.fixture
def srv() -> Iterator[LocalServer]:
    # Frequent pings: the server notices a closed connection at once.
    with LocalServer(echo_agent=True, ping_interval=0.1) as server:
        yield server


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _interrupt_when(condition: Callable[[], bool]) -> threading.Thread:
    """Send the main thread SIGINT (as Ctrl-C does) once ``condition`` holds."""
    main = threading.main_thread().ident
    assert main is not None

    def watch() -> None:
        if _wait_for(condition, 10):
            signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _interrupted(block: Callable[[], object], condition: Callable[[], bool]) -> str:
    """Run ``block`` until it is interrupted; the interrupt's formatted traceback."""
    watcher = _interrupt_when(condition)
    with pytest.raises(KeyboardInterrupt) as caught:
        block()
    watcher.join(5)
    text = "".join(traceback.format_exception(caught.type, caught.value, caught.tb))
    assert "During handling" not in text and "direct cause" not in text, text
    assert len(text.splitlines()) < MAX_LINES, text
    return text


def _reading(srv: LocalServer, count: int) -> Callable[[], bool]:
    return lambda: srv.request_counts.get("read", 0) >= count


def test_iter_out_waiting_on_an_idle_stream(srv: LocalServer) -> None:
    srv.create_session("idle")
    with Session("idle", srv.secret_key, srv.url) as session:
        text = _interrupted(lambda: list(session.iter_out()), _reading(srv, 1))
        assert "recv_into" not in text and "urllib3" not in text
        assert _wait_for(lambda: srv.open_connections == 0, 5), "the stream is still open"
        session.append_out({"n": 1})
        assert [r["data"] for r in session.iter_out(follow=False)] == [{"n": 1}]


def test_read_turn_waiting_for_a_reply(srv: LocalServer) -> None:
    srv.create_session("turn")
    with Session("turn", srv.secret_key, srv.url) as session:
        _interrupted(lambda: list(session.read_turn(timeout=30)), _reading(srv, 1))
        assert _wait_for(lambda: srv.open_connections == 0, 5), "the stream is still open"
        assert session.append_out({"n": 1})["seq"] == 0


def test_a_reconnect_pause_chains_no_failure() -> None:
    with socket.socket() as probe:  # a port nothing listens on: every open fails
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    paused = threading.Event()

    def pause(seconds: float) -> None:
        paused.set()
        time.sleep(10)  # interrupted here, right after a failed open

    with Session("gone", "tr_dev_x", f"http://127.0.0.1:{port}", sleep=pause) as session:
        text = _interrupted(lambda: list(session.iter_out()), paused.is_set)
    assert "NetworkError" not in text and "ConnectionRefusedError" not in text


def test_a_chat_reply_then_reads_on() -> None:
    with LocalServer(echo_agent=True, agent_delay=0.3) as slow:
        chat = AgentChat("echo", token=slow.secret_key, api_url=slow.url, stream_timeout=30)
        reply = chat.send_message("hi there")
        _interrupted(reply.text, _reading(slow, 1))
        assert reply.text() == "echo: hi there"  # the interrupt lost nothing
        assert chat.send_message("again").text() == "echo: again"
