"""The ``sessions-client`` command line, run in-process through ``main(argv)`` against a
LocalServer, plus a few subprocess runs for what only a real process shows (Ctrl-C,
``python -m sessions_client``, line-by-line flushing)."""

from __future__ import annotations

import functools
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from _cli_env import point_env_at, run
from _waiting import eventually

from sessions_client import _cli_records, cli
from sessions_client import client as client_module
from sessions_client.testing import LocalServer, chat_message, reply_text

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tr_dev_cli_secret_do_not_print"


@pytest.fixture
def sessions_server_options() -> Dict[str, Any]:
    return {"secret_key": SECRET, "echo_agent": True}


@pytest.fixture
def server(sessions_server: LocalServer) -> LocalServer:
    return sessions_server


@pytest.fixture
def env(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    return point_env_at(server, monkeypatch)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRIGGER_"):
            monkeypatch.delenv(name)


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """The CLI's Client records its retry back-offs instead of waiting them out."""
    delays: List[float] = []
    real = client_module.Client
    monkeypatch.setattr(client_module, "Client", functools.partial(real, sleep=delays.append))
    return delays


def lines(text: str) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def subprocess_env(server: LocalServer) -> Dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    environ.update(
        TRIGGER_API_URL=server.url, TRIGGER_SECRET_KEY=server.secret_key, PYTHONPATH=str(ROOT)
    )
    return environ


# ------------------------------------------------------------------------ help


def test_help_lists_every_command_environment_and_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ["demo", "serve", "append", "tail", "drain", "ask", "create", "get"]:
        assert f"    {command} " in out, command
    for command in ["update", "close", "list"]:
        assert f"    {command} " in out, command
    assert "TRIGGER_SECRET_KEY" in out and "exit codes:" in out and "130" in out


@pytest.mark.parametrize(
    "command",
    ["demo", "serve", "append", "tail", "drain", "ask", "create", "get", "update", "close", "list"],
)
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert f"sessions-client {command}" in out
    assert "--api-url" in out  # connection options are accepted after the command too


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 2 and err == ""
    assert "commands:" in out and "usage: sessions-client" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from sessions_client import __version__

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"sessions-client {__version__}"


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sessions_client", "append", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0
    assert "usage: sessions-client append" in result.stdout


# ------------------------------------------------------------- errors / exits


def test_missing_token_is_a_usage_error(no_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "get", "chat-1", "--api-url", "http://127.0.0.1:1")
    assert code == cli.EXIT_USAGE == 2
    assert err.startswith("sessions-client: error: no token")
    assert len(err.splitlines()) == 1 and out == ""


def test_bad_arguments_exit_2(env: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["tail", "chat-1", "--from", "-3"])
    assert exc.value.code == 2
    assert "sequence numbers are >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["tail", "chat-1", "--from", "1", "--after", "2"])
    assert exc.value.code == 2
    code, _, err = run(capsys, "append", "chat-1", "--json", "{not json")
    assert code == 2 and "record 1 is not valid JSON" in err
    code, _, err = run(capsys, "create", "--task", "echo", "--payload", "[1,")
    assert code == 2 and "--payload is not valid JSON" in err
    for argv in (["tail", "chat-1", "--from", "x"], ["list", "--page-size", "0"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "not a sequence number: 'x'" in err and "must be at least 1" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["append", "chat-1", "text", "--bogus"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_unexpected_errors_are_one_line_and_ctrl_c_is_130(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(args: Any) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(_cli_records, "open_session", boom)
    code, _, err = run(capsys, "tail", "chat-1")
    assert code == 1
    expected = "RuntimeError: boom second line (run with --debug for the traceback)"
    assert err == f"sessions-client: error: {expected}\n"

    def interrupted(args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli_records, "open_session", interrupted)
    code, _, err = run(capsys, "drain", "chat-1")
    assert code == cli.EXIT_INTERRUPTED == 130
    assert err.strip() == "sessions-client: interrupted"


def test_wrong_token_exits_3_and_never_prints_a_token(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.create_session("chat-1")
    code, out, err = run(capsys, "get", "chat-1", "--token", "tr_dev_wrong_key_xyz", "--debug")
    assert code == cli.EXIT_AUTH == 3
    assert "check --token" in err.splitlines()[-1]
    assert "tr_dev_wrong_key_xyz" not in out + err
    assert SECRET not in out + err


def test_public_token_appending_to_out_exits_3(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.create_session("chat-1")
    token = env.mint_token("chat-1")
    code, out, err = run(capsys, "append", "chat-1", "--out", "x", "--token", token)
    assert code == 3
    assert token not in out + err


def test_unknown_session_exits_4(env: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "get", "session_doesnotexist")
    assert code == cli.EXIT_NOT_FOUND == 4
    assert err.startswith("sessions-client: error: ") and "Traceback" not in err


def test_unreachable_server_exits_5(
    no_env: None, capsys: pytest.CaptureFixture[str], backoffs: List[float]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    code, out, err = run(capsys, "list", "--api-url", url, "--token", SECRET)
    assert code == cli.EXIT_NETWORK == 5
    assert len(err.splitlines()) == 1 and SECRET not in err
    assert len(backoffs) == 2  # the SDK's 3 attempts, not waited out


def test_closed_session_exits_1(env: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    env.create_session("chat-1")
    env.close_session("chat-1")
    code, _, err = run(capsys, "append", "chat-1", "hello")
    assert code == cli.EXIT_ERROR == 1
    assert "closed" in err


def test_debug_shows_the_traceback(env: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--debug", "get", "session_doesnotexist")
    assert code == 4
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("sessions-client: error: ")


def test_connection_options_work_before_and_after_the_command(
    no_env: None, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.create_session("chat-1")
    before = ["--api-url", server.url, "--token", SECRET, "get", "chat-1"]
    after = ["get", "chat-1", "--api-url", server.url, "--token", SECRET]
    for argv in (before, after):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert json.loads(out)["externalId"] == "chat-1"


# ---------------------------------------------------------------------- append


def test_append_one_record_prints_the_result(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.create_session("chat-1")
    code, out, _ = run(capsys, "append", "chat-1", '{"type": "text", "text": "hi"}')
    assert code == 0
    (result,) = lines(out)
    assert result["ok"] is True and result["seq"] == 0 and result["part_id"]
    code, out, _ = run(capsys, "append", "chat-1", "--out", "--part-id", "p-1", "plain")
    assert lines(out)[0]["part_id"] == "p-1"
    bodies = [json.loads(r["body"])["data"] for r in env.records("chat-1", "in")]
    assert bodies == ['{"type": "text", "text": "hi"}']  # sent as its exact text


def test_append_from_stdin_one_record_per_line_idempotent_with_part_id(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.create_session("chat-1")
    for _ in range(2):  # the second run replays the same part ids: nothing new is stored
        monkeypatch.setattr(sys, "stdin", io.StringIO('{"n": 1}\n\nsecond line\r\n42\n'))
        code, out, _ = run(capsys, "append", "chat-1", "--part-id", "batch", "-")
        assert code == 0
        assert [r["part_id"] for r in lines(out)] == ["batch-1", "batch-2", "batch-3"]
    code, out, _ = run(capsys, "drain", "chat-1", "--in")
    assert [r["data"] for r in lines(out)] == [{"n": 1}, "second line", 42]


def test_append_from_a_terminal_says_it_reads_stdin(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.create_session("chat-1")
    monkeypatch.setattr(sys, "stdin", _Terminal("typed\n"))
    code, out, err = run(capsys, "append", "chat-1")
    assert code == 0 and lines(out)[0]["seq"] == 0
    assert "reading records from standard input, one per line (Ctrl-D ends)" in err


def test_append_json_sends_application_json(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.create_session("chat-1")
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"a": [1, 2]}\n"quoted"\n'))
    code, out, err = run(capsys, "append", "chat-1", "--json")  # RECORD defaults to -
    assert code == 0, err
    code, out, _ = run(capsys, "drain", "chat-1", "--in")
    assert [r["data"] for r in lines(out)] == [{"a": [1, 2]}, "quoted"]


def test_append_json_stops_at_the_first_bad_line(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.create_session("chat-1")
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"ok": 1}\nnot json\n{"never": 1}\n'))
    code, out, err = run(capsys, "append", "chat-1", "--json", "-")
    assert code == 2
    assert [r["seq"] for r in lines(out)] == [0]
    assert err.startswith("sessions-client: error: line 2 of standard input is not valid JSON")
    assert len(env.records("chat-1", "in")) == 1


# ------------------------------------------------------------------ tail/drain


def _seed(server: LocalServer, session: str = "chat-1") -> None:
    server.create_session(session)
    for n in range(4):
        server.append(session, "out", json.dumps({"n": n}))
    server.write_control(session, "turn-complete", headers=[["session-in-event-id", "0"]])


def test_tail_no_follow_prints_json_lines_and_stops(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(env)
    code, out, _ = run(capsys, "tail", "chat-1", "--no-follow")
    assert code == 0
    records = lines(out)
    assert [r["data"] for r in records] == [{"n": n} for n in range(4)]
    assert set(records[0]) == {"seq", "data", "part_id", "timestamp", "headers", "control"}


def test_tail_from_is_inclusive_after_is_exclusive(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(env)
    _, out, _ = run(capsys, "tail", "chat-1", "--no-follow", "--from", "2")
    assert [r["seq"] for r in lines(out)] == [2, 3]
    _, out, _ = run(capsys, "tail", "chat-1", "--no-follow", "--after", "2")
    assert [r["seq"] for r in lines(out)] == [3]


def test_tail_controls_and_limit(env: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(env)
    _, out, _ = run(capsys, "tail", "chat-1", "--no-follow", "--controls", "--from", "3")
    assert [r["control"] for r in lines(out)] == [None, "turn-complete"]
    _, out, _ = run(capsys, "tail", "chat-1", "--limit", "2")  # follows, but stops at 2
    assert [r["seq"] for r in lines(out)] == [0, 1]
    code, out, _ = run(capsys, "tail", "chat-1", "--limit", "0")
    assert code == 0 and out == ""


def test_tail_in_channel_and_cursor_file_resume(
    env: LocalServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env.create_session("chat-1")
    for word in ["a", "b"]:
        env.append("chat-1", "in", word)
    cursor = str(tmp_path / "in.cursor")
    _, out, _ = run(capsys, "tail", "chat-1", "--in", "--no-follow", "--cursor", cursor)
    assert [r["data"] for r in lines(out)] == ["a", "b"]
    env.append("chat-1", "in", "c")
    _, out, _ = run(capsys, "tail", "chat-1", "--in", "--no-follow", "--cursor", cursor)
    assert [r["data"] for r in lines(out)] == ["c"]
    assert Path(cursor).read_text().strip() == "2"


def test_drain_prints_every_page(env: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    env.create_session("big")
    for n in range(1205):  # more than one page of 1,000
        env.append("big", "out", str(n))
    code, out, err = run(capsys, "drain", "big")
    assert code == 0
    assert [r["data"] for r in lines(out)] == list(range(1205))
    assert err == ""  # no progress: stderr is not a terminal


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_drain_shows_progress_on_a_terminal(
    env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.create_session("big")
    for n in range(450):
        env.append("big", "out", str(n))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code = cli.main(["drain", "big", "--after", "9"])
    assert code == 0
    assert len(capsys.readouterr().out.splitlines()) == 440
    shown = terminal.getvalue()
    assert "\rdrained .out: 200 records (last seq 209)" in shown
    assert shown.endswith("drained .out: 440 records, done.\n")


def test_drain_controls_and_cursor(
    env: LocalServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _seed(env)
    cursor = str(tmp_path / "c")
    _, out, _ = run(capsys, "drain", "chat-1", "--controls", "--cursor", cursor)
    assert [r["control"] for r in lines(out)][-1] == "turn-complete"
    assert Path(cursor).read_text().strip() == "4"
    _, out, _ = run(capsys, "drain", "chat-1", "--cursor", cursor)
    assert out == ""


# ---------------------------------------------------------------- management


def test_create_get_update_close_list(env: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "create",
        "--task",
        "echo",
        "--external-id",
        "chat-9",
        "--tag",
        "a",
        "--tag",
        "b",
        "--metadata",
        '{"plan": "pro"}',
    )
    assert code == 0
    created = json.loads(out)
    assert created["externalId"] == "chat-9" and created["tags"] == ["a", "b"]
    assert created["publicAccessToken"].startswith("<hidden")
    code, out, _ = run(
        capsys, "create", "--task", "echo", "--external-id", "chat-9", "--show-token"
    )
    again = json.loads(out)
    assert again["isCached"] is True and again["id"] == created["id"]
    assert not again["publicAccessToken"].startswith("<hidden")

    _, out, _ = run(capsys, "get", "chat-9")
    assert json.loads(out)["metadata"] == {"plan": "pro"}
    _, out, _ = run(capsys, "update", "chat-9", "--tag", "c")
    assert json.loads(out)["tags"] == ["c"]
    _, out, _ = run(capsys, "update", "chat-9", "--metadata", '{"plan": "max"}')
    assert json.loads(out)["metadata"] == {"plan": "max"}
    code, _, err = run(capsys, "update", "chat-9")
    assert code == 2 and "nothing to update" in err

    run(capsys, "create", "--task", "other", "--external-id", "chat-10")
    _, out, _ = run(capsys, "list", "--task", "echo")
    assert [s["externalId"] for s in lines(out)] == ["chat-9"]
    _, out, _ = run(capsys, "list", "--page-size", "1", "--limit", "5")
    assert sorted(s["externalId"] for s in lines(out)) == ["chat-10", "chat-9"]
    _, out, _ = run(capsys, "list", "--page-size", "1", "--limit", "1")
    assert len(lines(out)) == 1
    config = '{"basePayload": {"model": "small"}, "machine": "micro"}'
    argv = ["create", "--task", "echo", "--external-id", "chat-11", "--trigger-config", config]
    _, out, _ = run(capsys, *argv)
    assert json.loads(out)["triggerConfig"]["basePayload"] == {"model": "small"}
    _, out, _ = run(capsys, "update", "chat-11", "--tag", "vip")
    assert json.loads(out)["tags"] == ["vip"] and json.loads(out)["externalId"] == "chat-11"
    with pytest.raises(SystemExit):  # externalId is immutable: the option is gone
        run(capsys, "update", "chat-11", "--external-id", "chat-12")

    _, out, _ = run(capsys, "close", "chat-9", "--reason", "done")
    assert json.loads(out)["closedReason"] == "done"
    _, out, _ = run(capsys, "list", "--status", "CLOSED")
    assert [s["externalId"] for s in lines(out)] == ["chat-9"]


def test_list_time_filters_take_iso_8601_or_unix_ms(
    env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.create_session("chat-1")
    _, out, _ = run(capsys, "list", "--from", "2000-01-01T00:00:00Z")
    assert [s["externalId"] for s in lines(out)] == ["chat-1"]
    _, out, _ = run(capsys, "list", "--to", "946684800000")  # 2000-01-01 in Unix ms
    assert out == ""
    with pytest.raises(SystemExit) as exc:
        cli.main(["list", "--from", "yesterday"])
    assert exc.value.code == 2
    assert "not a time: 'yesterday'" in capsys.readouterr().err


def test_ask_prints_the_reply(env: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    env.create_session("chat-1")
    message = json.dumps(chat_message("hi"))
    code, out, _ = run(capsys, "ask", "chat-1", message, "--json", "--controls")
    assert code == 0
    records = lines(out)
    assert records[0]["data"]["type"] == "start"
    assert reply_text(records) == "echo: hi"
    assert records[-1]["control"] == "turn-complete"


# ----------------------------------------------------------------------- serve


def test_serve_prints_its_url_and_the_export_line(
    no_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sessions_client.testing as testing

    seen: List[str] = []

    def serve_once(*args: Any, on_ready: Any, **kwargs: Any) -> None:
        port, db, wire, secret_key, echo_agent = args
        with LocalServer(secret_key=secret_key, db=db, wire=wire, port=port) as srv:
            seen.append(srv.url)
            on_ready(srv)  # the real serve() then waits for Ctrl-C

    monkeypatch.setattr(testing, "serve", serve_once)
    code, out, _ = run(capsys, "serve", "--port", "0", "--db", ":memory:", "--wire", "v1")
    assert code == 0
    first, second = out.splitlines()
    assert first.startswith(f"sessions-client: local Sessions server on {seen[0]} (wire v1")
    assert second == f"  export TRIGGER_API_URL={seen[0]} TRIGGER_SECRET_KEY=tr_dev_local"
    code, out, _ = run(capsys, "serve", "--port", "0", "--db", ":memory:", "--secret-key", SECRET)
    assert SECRET not in out and "<your secret key>" in out


def test_serve_beyond_loopback_without_a_chosen_key_is_refused(
    no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "serve", "--host", "0.0.0.0", "--port", "0", "--db", ":memory:")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("sessions-client: error: refusing to listen on 0.0.0.0 (not loopback)")
    assert "--secret-key" in err and "TRIGGER_SECRET_KEY" in err


def test_serve_beyond_loopback_with_a_key_from_the_environment(
    no_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sessions_client.testing as testing

    seen: List[Tuple[str, Any]] = []

    def serve_once(*args: Any, on_ready: Any, host: str, cors_origins: Any, **_: Any) -> None:
        port, db, wire, secret_key, echo_agent = args
        with LocalServer(secret_key=secret_key, db=db, port=port, host=host) as srv:
            seen.append((srv.secret_key, cors_origins))
            on_ready(srv)

    monkeypatch.setattr(testing, "serve", serve_once)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", SECRET)
    argv = ["serve", "--host", "0.0.0.0", "--port", "0", "--db", ":memory:"]
    code, out, _ = run(capsys, *argv, "--cors-origin", "http://localhost:3000")
    assert code == 0
    assert seen == [(SECRET, ["http://localhost:3000"])]
    assert SECRET not in out


def test_serve_on_a_busy_port_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, _, err = run(capsys, "serve", "--port", str(port), "--db", ":memory:")
    assert code == 1
    assert err.startswith(f"sessions-client: error: cannot serve on 127.0.0.1:{port}: ")


# -------------------------------------------------------------------- demo


def test_demo_runs_offline_and_explains_itself(
    no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "demo")
    assert code == 0, out + err
    for step in ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]:
        assert step in out
    prose = " ".join(out.split())  # the explanations are wrapped to 88 columns
    assert "'echo: Hello, agent!'" in out
    assert "nothing lost, nothing repeated" in prose
    assert "arrived exactly once" in prose and "UNEXPECTED" not in out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert any(line.startswith("Done in ") for line in out.splitlines())


def test_demo_with_a_configured_server_but_no_task_stays_local(
    no_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIGGER_API_URL", f"http://127.0.0.1:{closed_port()}")
    code, out, err = run(capsys, "demo", "--wire", "v1")
    assert code == 0
    assert "pass --task" in err
    assert "speaks the v1 wire shape" in " ".join(out.split())


def test_demo_against_a_configured_server_with_its_agent(
    no_env: None, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--api-url", server.url, "--token", SECRET, "--task", "echo"]
    code, out, err = run(capsys, *argv)
    assert code == 0, out + err
    assert server.url in out and "[3/3]" in out
    match = re.search(r"Closed session (session_\w+)", out)
    assert match, out
    closed = server.get_session(match.group(1))
    assert closed is not None and closed["closedAt"] is not None


# ------------------------------------------------------------- real processes


def test_tail_follows_flushes_each_line_and_ctrl_c_exits_130(env: LocalServer) -> None:
    env.create_session("chat-1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessions_client", "tail", "chat-1", "--in"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(env),
    )
    try:
        eventually(lambda: env.open_connections, 30)
        env.append("chat-1", "in", "first")
        assert proc.stdout is not None
        line = proc.stdout.readline()  # arrives while the process keeps running
        assert json.loads(line)["data"] == "first"
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err


def test_a_closed_pipe_ends_quietly(env: LocalServer) -> None:
    env.create_session("big")
    for n in range(1500):
        env.append("big", "out", str(n) * 50)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessions_client", "drain", "big"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(env),
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["seq"] == 0
    proc.stdout.close()  # like `| head -1`
    try:
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert err == ""


def test_main_module_is_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    monkeypatch.setattr(sys, "argv", ["sessions-client", "--version"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("sessions_client", run_name="__main__")
    assert exc.value.code == 0


def test_readme_first_command_runs_the_demo_in_a_subprocess(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    environ["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "sessions_client", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
        env=environ,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[5/5]" in result.stdout
    assert list(tmp_path.iterdir()) == []  # the demo's database lived in a temp dir
