"""Start/stop, threads, port reuse, the echo agent, the direct API and the CLI."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Set

import pytest
import requests
from _waiting import eventually

from sessions_client.cli import build_parser, main
from sessions_client.testing import LocalServer

from ._support import SSE, append, create


def server_threads() -> Set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("sessions-")}


def test_close_stops_every_thread_including_open_streams_and_frees_the_port() -> None:
    before = server_threads()
    srv = LocalServer(ping_interval=30, echo_agent=True)
    port = srv.port
    create(srv, "c")
    streams = [SSE(srv, "c", "out", headers={"Timeout-Seconds": "600"}) for _ in range(5)]
    idle = requests.Session()
    idle.get(f"{srv.url}/nope", timeout=5)
    eventually(lambda: srv.open_connections >= 6)
    assert srv.open_connections == 6
    assert len(server_threads() - before) >= 7  # the server thread and 6 connections
    started = time.monotonic()
    srv.close()
    assert time.monotonic() - started < 2
    assert server_threads() - before == set()
    for sse in streams:
        with pytest.raises((ConnectionError, OSError)):
            sse.all()
        sse.close()
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with socket.socket() as probe:  # nobody listens: a new listener can bind it at once
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
    srv.close()


def test_restart_on_the_same_port_right_away() -> None:
    with LocalServer() as first:
        port = first.port
        create(first, "c")
        append(first, "c", "in", "x")
    with LocalServer(port=port) as second:
        assert second.url == f"http://127.0.0.1:{port}"
        assert requests.get(f"{second.url}/nope", timeout=5).status_code == 404


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        LocalServer(wire="v3")
    with pytest.raises(ValueError):
        LocalServer(ping_interval=0)


def test_direct_api_create_get_close_and_unknown_sessions() -> None:
    with LocalServer() as srv:
        info = srv.create_session("direct", tags=["t"])
        assert info["isCached"] is False and info["publicAccessToken"]
        assert srv.create_session("direct")["isCached"] is True
        assert srv.get_session(info["id"])["externalId"] == "direct"  # type: ignore[index]
        assert srv.append("direct", "in", "a", part_id="p") == 0
        assert srv.append("direct", "in", "a", part_id="p") == 0
        assert srv.write("direct", "in", {"v": 1}) == 1
        assert srv.write_control("direct", "turn-complete") == 0
        assert srv.close_session("direct", "done")["closedReason"] == "done"
        with pytest.raises(KeyError):
            srv.append("nope", "in", "x")
        with pytest.raises(ValueError):
            srv.append("direct", "sideways", "x")
        assert "closed" not in repr(srv)
    assert "closed" in repr(srv)


def test_cli_parser_has_the_serve_subcommand() -> None:
    args = build_parser().parse_args(
        ["serve", "--port", "0", "--db", ":memory:", "--wire", "v1", "--echo-agent"]
    )
    assert (args.port, args.db, args.wire, args.secret_key, args.echo_agent, args.host) == (
        0,
        ":memory:",
        "v1",
        "tr_dev_local",
        True,
        "127.0.0.1",
    )
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.port, defaults.db, defaults.wire) == (8030, "sessions.db", "v2")
    assert (defaults.agent_delay, defaults.agent_client_data) == (0.0, None)
    agent = build_parser().parse_args(
        ["serve", "--echo-agent", "--agent-delay", "0.1"]
        + ["--agent-client-data", "userId", "--agent-client-data", "org"]
    )
    assert (agent.agent_delay, agent.agent_client_data) == (0.1, ["userId", "org"])
    for bad in ("-1", "soon", "inf", "nan"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["serve", "--agent-delay", bad])


def test_cli_without_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().out


def test_cli_serve_runs_until_ctrl_c(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sessions_client",
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "cli.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        response = requests.get(
            f"http://127.0.0.1:{port}/api/v1/sessions",
            headers={"Authorization": "Bearer tr_dev_local"},
            timeout=5,
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
