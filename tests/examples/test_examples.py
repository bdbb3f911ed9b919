"""Every file in examples/ runs as documented, against a LocalServer with the echo agent.

The scripts run as subprocesses with only ``TRIGGER_API_URL`` / ``TRIGGER_SECRET_KEY``
set, as a user would run them; the notebook's code cells run in order with ``exec``;
the Flask app is driven through Flask's test client (skipped when Flask is missing).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List

import pytest

from sessions_client import Client
from sessions_client.testing import LocalServer, chat_message, reply_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def sessions_server_options() -> Dict[str, Any]:
    return {"echo_agent": True}


@pytest.fixture
def server(sessions_server: LocalServer) -> LocalServer:
    return sessions_server


def _env(server: LocalServer) -> Dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRIGGER_") and k not in ("PYTHONPATH",)
    }
    env["TRIGGER_API_URL"] = server.url
    env["TRIGGER_SECRET_KEY"] = server.secret_key
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run(
    script: str, args: List[str], env: Dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=env,
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chat_script_prints_the_agents_reply(server: LocalServer, tmp_path: Path) -> None:
    result = _run("chat_script.py", ["Hello", "there"], _env(server), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["echo: Hello there"]


def test_chat_script_reports_a_closed_session_in_one_line(
    server: LocalServer, tmp_path: Path
) -> None:
    server.create_session("closed-chat")
    server.close_session("closed-chat")
    result = _run("chat_script.py", ["hi", "--chat-id", "closed-chat"], _env(server), tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("chat_script: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_cron_ask_stores_answers_and_keeps_the_conversation(
    server: LocalServer, tmp_path: Path
) -> None:
    env = _env(server)
    for question in ("first?", "second?"):
        result = _run("cron_ask.py", ["--question", question], env, tmp_path)
        assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert [(a["question"], a["answer"]) for a in answers] == [
        ("first?", "echo: first?"),
        ("second?", "echo: second?"),
    ]
    state = json.loads((tmp_path / "agent-chat.json").read_text())
    session = server.get_session(state["chat_id"])
    assert session is not None and session["currentRunId"] == state["run_id"]
    assert len(server.records(state["chat_id"], "in")) == 2  # one conversation


def test_cron_ask_reports_a_failed_turn_and_stores_nothing(tmp_path: Path) -> None:
    with LocalServer(echo_agent=True, agent_client_data=["userId"]) as srv:
        result = _run("cron_ask.py", ["--question", "hi"], _env(srv), tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("cron_ask: ") and "Invalid client data" in result.stderr
    assert not (tmp_path / "answers.jsonl").exists()


def test_cron_drain_resumes_where_the_last_run_stopped(server: LocalServer, tmp_path: Path) -> None:
    server.create_session("job-1")
    for text in ["a", "b", "c"]:
        server.append("job-1", "out", json.dumps({"n": text}))
    env = _env(server)
    cursor_file = tmp_path / "job.cursor"
    args = ["job-1", "--cursor-file", str(cursor_file)]

    first = _run("cron_drain.py", args, env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert [json.loads(line)["data"] for line in first.stdout.splitlines()] == [
        {"n": "a"},
        {"n": "b"},
        {"n": "c"},
    ]
    assert cursor_file.read_text().strip() == "2"

    second = _run("cron_drain.py", args, env, tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""
    assert second.stderr == "", "a run with nothing to report is silent (cron mails output)"

    verbose = _run("cron_drain.py", [*args, "--verbose"], env, tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stderr.strip() == "cron_drain: 0 new record(s); cursor at 2"

    server.append("job-1", "out", json.dumps({"n": "d"}))
    third = _run("cron_drain.py", args, env, tmp_path)
    assert [json.loads(line) for line in third.stdout.splitlines()] == [
        {"seq": 3, "data": {"n": "d"}}
    ]


def test_cron_drain_default_cursor_file_is_named_after_the_session(
    server: LocalServer, tmp_path: Path
) -> None:
    server.create_session("job-2")
    server.append("job-2", "out", "plain text")
    result = _run("cron_drain.py", ["job-2"], _env(server), tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"seq": 0, "data": "plain text"}
    assert (tmp_path / "job-2.out.cursor").read_text().strip() == "0"


@pytest.fixture
def flask_app(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    pytest.importorskip("flask", reason="flask is a test extra: pip install -e '.[test]'")
    monkeypatch.setenv("TRIGGER_API_URL", server.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", server.secret_key)
    monkeypatch.delenv("TRIGGER_ACCESS_TOKEN", raising=False)
    app = _load("flask_app").create_app()
    app.config["TESTING"] = True
    return app


def test_flask_view_appends_to_in_and_returns_the_seq(flask_app: Any, server: LocalServer) -> None:
    server.create_session("chat-7")
    web = flask_app.test_client()
    answer = web.post("/sessions/chat-7/messages", json={"type": "text", "text": "hi"})
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["ok"] is True and body["seq"] == 0 and body["part_id"]

    plain = web.post("/sessions/chat-7/messages", data="plain words")
    assert plain.status_code == 202 and plain.get_json()["seq"] == 1

    client = Client(token=server.secret_key, api_url=server.url)
    try:
        stored = client.session("chat-7").drain_in()
    finally:
        client.close()
    assert [r["data"] for r in stored] == [{"type": "text", "text": "hi"}, "plain words"]


def test_flask_view_lists_the_agents_replies(flask_app: Any, server: LocalServer) -> None:
    server.create_session("chat-8")
    web = flask_app.test_client()
    client = Client(token=server.secret_key, api_url=server.url)
    try:
        client.session("chat-8").ask(chat_message("ping"), timeout=30)
    finally:
        client.close()
    replies = web.get("/sessions/chat-8/replies").get_json()["records"]
    assert replies[0]["data"]["type"] == "start" and replies[-1]["data"]["type"] == "finish"
    assert reply_text(replies) == "echo: ping"
    after = web.get(f"/sessions/chat-8/replies?after={replies[-1]['seq']}").get_json()
    assert after["records"] == []


def test_flask_chat_view_keeps_the_conversation_in_the_browser_session(
    flask_app: Any, server: LocalServer
) -> None:
    web = flask_app.test_client()
    first = web.post("/chat", json={"text": "hi"}).get_json()
    second = web.post("/chat", json={"text": "still there?"}).get_json()
    assert (first["reply"], second["reply"]) == ("echo: hi", "echo: still there?")
    assert first["chat_id"] == second["chat_id"]
    assert len(server.records(first["chat_id"], "in")) == 2
    other = flask_app.test_client().post("/chat", json={"text": "hello"}).get_json()
    assert other["chat_id"] != first["chat_id"]  # another browser, another conversation
    assert web.post("/chat", json={}).status_code == 400


def test_flask_chat_stream_view_streams_the_reply_as_sse(
    flask_app: Any, server: LocalServer
) -> None:
    web = flask_app.test_client()

    def ask(text: str) -> List[Any]:
        answer = web.post("/chat/stream", json={"text": text}, buffered=True)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        assert answer.headers["x-vercel-ai-ui-message-stream"] == "v1"
        lines = answer.get_data(as_text=True).split("\n")
        data = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        return [json.loads(item) for item in data[:-1]]

    first = ask("hi")
    assert first[0]["type"] == "start" and first[-1]["type"] == "finish"
    assert "".join(c["delta"] for c in first if c["type"] == "text-delta") == "echo: hi"
    second = ask("more")  # the same conversation, from the cookie; only its own reply
    assert "".join(c["delta"] for c in second if c["type"] == "text-delta") == "echo: more"
    with web.session_transaction() as cookie:
        chat_id = cookie["chat"]["chat_id"]
    assert len(server.records(chat_id, "in")) == 2  # one conversation
    assert web.post("/chat/stream", json={}).status_code == 400


def test_flask_maps_library_errors_to_http_statuses(flask_app: Any) -> None:
    web = flask_app.test_client()
    missing = web.post("/sessions/session_doesnotexist/messages", json={"a": 1})
    assert missing.status_code == 404
    assert "error" in missing.get_json()
    too_big = web.post("/sessions/chat-9/messages", data="x" * (1024 * 1024 + 1))
    assert too_big.status_code == 413


def _notebook() -> Dict[str, Any]:
    with open(EXAMPLES / "notebook.ipynb", encoding="utf-8") as f:
        notebook: Dict[str, Any] = json.load(f)
    return notebook


def test_notebook_is_nbformat_4_with_outputs_cleared() -> None:
    notebook = _notebook()
    assert notebook["nbformat"] == 4 and notebook["nbformat_minor"] >= 4
    assert notebook["metadata"]["kernelspec"]["language"] == "python"
    assert {c["cell_type"] for c in notebook["cells"]} == {"markdown", "code"}
    for cell in notebook["cells"]:
        assert isinstance(cell["source"], list)
        assert isinstance(cell.get("id"), str)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def _run_notebook() -> Dict[str, Any]:
    namespace: Dict[str, Any] = {"__name__": "__main__"}
    try:
        for number, cell in enumerate(_notebook()["cells"]):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                exec(compile(source, f"notebook.ipynb cell {number}", "exec"), namespace)
    finally:
        for name in ("client", "local_server"):
            if namespace.get(name) is not None:
                namespace[name].close()
    return namespace


def test_notebook_cells_run_in_order_against_the_configured_server(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRIGGER_API_URL", server.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", server.secret_key)
    namespace = _run_notebook()
    printed = capsys.readouterr().out
    assert "echo: Hello from a notebook" in printed
    assert "live: " in printed and "echo: one more" in printed
    assert namespace["local_server"] is None  # a configured server is used, none started
    closed = server.get_session(namespace["chat"].chat_id)
    assert closed is not None and closed["closedAt"] is not None


def test_notebook_runs_offline_on_its_own_embedded_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first cell sets os.environ; give it a private copy without TRIGGER_* variables.
    private = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    monkeypatch.setattr(os, "environ", private)
    namespace = _run_notebook()
    assert namespace["local_server"] is not None
    assert private["TRIGGER_API_URL"] == namespace["local_server"].url
    assert "echo: Hello from a notebook" in capsys.readouterr().out


def test_cron_drain_skips_at_once_while_another_run_holds_the_cursor(
    server: LocalServer, tmp_path: Path
) -> None:
    from sessions_client import FileCursor

    server.create_session("job-3")
    server.append("job-3", "out", "x")
    cursor_file = tmp_path / "job.cursor"
    with FileCursor(cursor_file, lock=True):  # "the previous run", still going
        result = _run(
            "cron_drain.py", ["job-3", "--cursor-file", str(cursor_file)], _env(server), tmp_path
        )
    assert result.returncode == 75
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("cron_drain: skipped, another run holds the lock")
    assert f"pid {os.getpid()}" in result.stderr
    assert not cursor_file.exists(), "the skipped run read and stored nothing"


def test_cron_drain_missing_token_is_one_line(server: LocalServer, tmp_path: Path) -> None:
    env = _env(server)
    del env["TRIGGER_SECRET_KEY"]
    result = _run("cron_drain.py", ["job-4"], env, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("cron_drain: ")
    assert "TRIGGER_SECRET_KEY" in result.stderr


def test_cron_drain_unwritable_cursor_path_is_one_line(server: LocalServer, tmp_path: Path) -> None:
    server.create_session("job-5")
    missing = tmp_path / "no-such-dir" / "job.cursor"
    result = _run("cron_drain.py", ["job-5", "--cursor-file", str(missing)], _env(server), tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert str(missing) in result.stderr


def test_flask_events_view_relays_records_and_closes_the_relay(
    flask_app: Any, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessions_client.wsgi import SSERelay

    closed: List[SSERelay] = []
    real_close = SSERelay.close

    def close(relay: SSERelay) -> None:
        closed.append(relay)
        real_close(relay)

    monkeypatch.setattr(SSERelay, "close", close)
    server.create_session("chat-11")
    for n in range(3):
        server.append("chat-11", "out", json.dumps({"n": n}))
    web = flask_app.test_client()
    response = web.get("/sessions/chat-11/events", headers={"Last-Event-ID": "0"}, buffered=False)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    received = b""
    chunks = iter(response.response)
    while b"id: 2\n" not in received:
        received += next(chunks)
    assert b"id: 0\n" not in received  # Last-Event-ID: 0 resumes after record 0
    assert b'id: 1\ndata: {"n":1}\n\n' in received
    response.close()  # what the WSGI server does when the page goes away
    assert len(closed) == 1, "Flask did not pass close() on to the relay"


def test_flask_events_view_answers_400_to_a_bad_last_event_id(flask_app: Any) -> None:
    web = flask_app.test_client()
    answer = web.get("/sessions/chat-12/events", headers={"Last-Event-ID": "abc"})
    assert answer.status_code == 400
    page = web.get("/sessions/chat-12/page")
    assert page.status_code == 200 and b"new EventSource" in page.data


def test_django_example_compiles() -> None:
    """Django is not a test dependency: the example is checked for syntax only."""
    source = (EXAMPLES / "django_relay.py").read_text(encoding="utf-8")
    compile(source, "django_relay.py", "exec")
    assert "StreamingHttpResponse(body)" in source and "Last-Event-ID" in source


def test_flask_rejects_a_bad_after_and_invalid_json_with_400(
    flask_app: Any, server: LocalServer
) -> None:
    server.create_session("chat-13")
    server.append("chat-13", "out", "r0")
    web = flask_app.test_client()
    for bad in ["abc", "1.5", "", "1_0"]:
        answer = web.get(f"/sessions/chat-13/replies?after={bad}")
        assert answer.status_code == 400, bad
        assert "after must be a record seq" in answer.get_json()["error"]
    assert len(web.get("/sessions/chat-13/replies?after=-1").get_json()["records"]) == 1
    invalid = web.post(
        "/sessions/chat-13/messages", data="{not json", content_type="application/json"
    )
    assert invalid.status_code == 400
    assert invalid.get_json() == {"error": "the body is not valid JSON"}
    assert server.records("chat-13", "in") == [], "nothing was stored"
