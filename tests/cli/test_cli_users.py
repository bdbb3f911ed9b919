"""CLI polish for the places users live: line numbers and bounded lines for
``append -``, tokens hidden from ``--controls``, one readable line for network
errors, and a note when ``tail`` is given an external id no session has."""

from __future__ import annotations

import functools
import io
import json
import os
import socket
import sys
from typing import Any, Dict, List

import pytest
from _cli_env import point_env_at, run

from sessions_client import cli
from sessions_client import client as client_module
from sessions_client._config import MAX_RECORD_BYTES
from sessions_client.testing import LocalServer

TOKEN = "pat_refreshed_token_never_printed"


@pytest.fixture
def server(sessions_server: LocalServer) -> LocalServer:
    return sessions_server


@pytest.fixture
def env(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    return point_env_at(server, monkeypatch)


def lines(text: str) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_append_json_reports_the_line_number_counting_blank_lines(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.create_session("chat-1")
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"ok": 1}\n\n\n{"ok": 2}\nnot json\n'))
    code, out, err = run(capsys, "append", "chat-1", "--json", "-", "--part-id", "imp")
    assert code == cli.EXIT_USAGE
    assert err.startswith("sessions-client: error: line 5 of standard input is not valid JSON")
    assert [r["part_id"] for r in lines(out)] == ["imp-1", "imp-2"]  # still per record


class _Endless(io.TextIOBase):
    """A stdin with one endless line; counts what was read from it."""

    def __init__(self) -> None:
        self.read_chars = 0

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def readline(self, size: Any = -1) -> str:
        assert size is not None and 0 < size <= MAX_RECORD_BYTES + 16, "an unbounded readline"
        self.read_chars += size
        return "x" * size


def test_append_refuses_an_over_long_line_without_reading_it_whole(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.create_session("chat-1")
    endless = _Endless()
    monkeypatch.setattr(sys, "stdin", endless)
    code, out, err = run(capsys, "append", "chat-1", "-")
    assert code == cli.EXIT_USAGE
    assert "line 1 of standard input is longer than a record may be" in err
    assert endless.read_chars <= MAX_RECORD_BYTES + 16
    assert out == "" and env.records("chat-1", "in") == []


def test_append_accepts_a_line_close_to_the_largest_record(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.create_session("chat-1")
    big = "y" * (MAX_RECORD_BYTES - 1000)  # the stored envelope adds a few bytes
    monkeypatch.setattr(sys, "stdin", io.StringIO(big + "\r\nsmall\n"))
    code, out, err = run(capsys, "append", "chat-1", "-")
    assert code == 0, err
    assert len(lines(out)) == 2


def _seed_control(server: LocalServer) -> None:
    server.create_session("chat-1")
    server.append("chat-1", "out", '{"type": "text"}')
    server.write_control(
        "chat-1", "turn-complete", [["public-access-token", TOKEN], ["session-in-event-id", "0"]]
    )


@pytest.mark.parametrize("command", [["drain"], ["tail", "--no-follow"]])
def test_controls_are_printed_without_the_refreshed_token(
    env: LocalServer, capsys: pytest.CaptureFixture[str], command: List[str]
) -> None:
    _seed_control(env)
    code, out, err = run(capsys, command[0], "chat-1", *command[1:], "--controls")
    assert code == 0, err
    control = lines(out)[-1]
    assert control["control"] == "turn-complete"
    assert ["public-access-token", "<hidden>"] in control["headers"]
    assert TOKEN not in out + err


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """The CLI's Client records its retry back-offs instead of waiting them out."""
    delays: List[float] = []
    real = client_module.Client
    monkeypatch.setattr(client_module, "Client", functools.partial(real, sleep=delays.append))
    return delays


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_network_error_is_one_short_readable_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, backoffs: List[float]
) -> None:
    for name in list(os.environ):
        if name.startswith("TRIGGER_"):
            monkeypatch.delenv(name)
    port = _dead_port()
    code, out, err = run(
        capsys, "get", "chat-1", "--api-url", f"http://127.0.0.1:{port}", "--token", "tr_dev_x"
    )
    assert code == cli.EXIT_NETWORK
    assert err == (
        f"sessions-client: error: GET /api/v1/sessions/chat-1 failed: connection refused "
        f"(127.0.0.1:{port})\n"
    )
    assert len(backoffs) == 2  # the SDK's 3 attempts, not waited out


def test_network_line_keeps_unknown_text_but_bounds_it() -> None:
    from sessions_client._cli_errors import network_line
    from sessions_client.errors import NetworkError

    assert network_line(NetworkError("GET /x failed: something odd")) == (
        "GET /x failed: something odd"
    )
    assert len(network_line(NetworkError("y" * 1000))) == 200


def test_tail_says_so_when_no_session_has_the_external_id(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "tail", "mistyped-id", "--no-follow")
    assert code == 0
    assert out == ""
    assert "no session has the external id 'mistyped-id'" in err
    env.create_session("known-id")
    code, out, err = run(capsys, "tail", "known-id", "--no-follow")
    assert code == 0 and err == ""
