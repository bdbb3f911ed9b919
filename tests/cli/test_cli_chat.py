"""``sessions-client chat``: one-shot and interactive, against LocalServer's echo chat agent."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest
from _cli_env import point_env_at, run

from sessions_client import cli
from sessions_client.testing import LocalServer

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tr_dev_cli_chat_secret_do_not_print"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    with LocalServer(secret_key=SECRET, echo_agent=True, agent_client_data=["userId"]) as srv:
        yield point_env_at(srv, monkeypatch)


USER = ("--client-data", '{"userId": "u1"}')


def test_one_shot_prints_the_reply(env: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "chat", "echo", "--message", "hello there", *USER)
    assert (code, out) == (0, "echo: hello there\n"), err
    assert SECRET not in out + err


def test_one_shot_continues_a_chat_by_id(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for text in ("one", "two"):
        code, out, _ = run(capsys, "chat", "echo", "--chat-id", "c-1", "--message", text, *USER)
        assert (code, out) == (0, f"echo: {text}\n")
    assert len(env.records("c-1", "in")) == 2


def test_an_agent_error_is_one_line_and_exit_1(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "chat", "echo", "--message", "hi")  # no userId
    assert code == 1
    assert err.count("\n") == 1 and "Invalid client data" in err and "Traceback" not in err


def test_a_closed_session_is_one_line_and_exit_1(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "chat", "echo", "--chat-id", "c-2", "--message", "hi", *USER)[0] == 0
    env.close_session("c-2")
    code, _, err = run(capsys, "chat", "echo", "--chat-id", "c-2", "--message", "again", *USER)
    assert code == 1 and err.count("\n") == 1 and "closed" in err


def test_bad_client_data_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["chat", "echo", "--client-data", "[1]"])
    assert exc.value.code == 2
    assert "JSON object" in capsys.readouterr().err


def test_interactive_turns_stop_and_close(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = "hi\n\n/stop\n/tool X\n/close\nnever sent\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    code, out, err = run(capsys, "chat", "echo", "--chat-id", "c-3", *USER)
    assert code == 0, err
    assert out == "echo: hi\necho: X\n"
    assert "c-3" in err and "/close" in err and "loop is closed" in err
    sent = [json.loads(json.loads(r["body"])["data"]) for r in env.records("c-3", "in")]
    assert [c.get("payload", {}).get("trigger", c["kind"]) for c in sent] == [
        "submit-message",
        "stop",
        "submit-message",
        "close",
    ]


def test_interactive_agent_errors_do_not_end_the_chat(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))
    code, out, err = run(capsys, "chat", "echo")  # no userId: every turn fails
    assert code == 0 and "agent error: Invalid client data" in err


def subprocess_env(server: LocalServer) -> Dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    environ.update(
        TRIGGER_API_URL=server.url, TRIGGER_SECRET_KEY=server.secret_key, PYTHONPATH=str(ROOT)
    )
    return environ


@pytest.fixture
def slow_server() -> Iterator[LocalServer]:
    with LocalServer(secret_key=SECRET, echo_agent=True, agent_delay=0.05) as srv:
        yield srv


def start_chat(server: LocalServer) -> subprocess.Popen:  # type: ignore[type-arg]
    return subprocess.Popen(
        [sys.executable, "-m", "sessions_client", "chat", "echo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(server),
    )


LONG = " ".join(f"w{i}" for i in range(200))


def test_ctrl_c_stops_the_reply_and_the_chat_goes_on(slow_server: LocalServer) -> None:
    proc = start_chat(slow_server)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(LONG + "\n")
        proc.stdin.flush()
        assert proc.stdout.read(5) == "echo:"  # streaming
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate("next\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "[stopping the reply" in err and "Traceback" not in err
    first, second = out.splitlines()[:2]
    assert len(first) < len(" " + LONG) and second == "echo: next"


def test_a_second_ctrl_c_quits(slow_server: LocalServer) -> None:
    proc = start_chat(slow_server)
    try:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(LONG + "\n")
        proc.stdin.flush()
        assert proc.stdout.read(5) == "echo:"
        proc.send_signal(signal.SIGINT)
        while "[stopping" not in proc.stderr.readline():
            pass
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
