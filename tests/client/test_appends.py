"""Session appends against scripted servers: encoding, limits, idempotent retries, errors."""

from __future__ import annotations

import json
import threading
from typing import List

import pytest

from sessions_client import Session
from sessions_client._config import MAX_RECORD_BYTES
from sessions_client._http import RetryPolicy
from sessions_client.errors import (
    ConfigurationError,
    PermissionDeniedError,
    ProtocolError,
    RecordTooLargeError,
    SessionClosedError,
)

from .scripted import Conn, Request, keep_alive

SECRET = "tr_dev_appendsSecret"


def ok_server(scripted, seq_start: int = 0):
    seq = [seq_start]
    lock = threading.Lock()

    def answer(conn: Conn, request: Request) -> None:
        with lock:
            current = seq[0]
            seq[0] += 1
        conn.respond_json(200, {"ok": True, "seq": current})

    return scripted(keep_alive(answer))


def test_append_returns_ok_seq_and_part_id(scripted):
    srv = ok_server(scripted, seq_start=12)
    with Session("chat-123", token=SECRET, api_url=srv.url) as session:
        result = session.append_in({"type": "text", "text": "hi"})
        out = session.append_out("plain", part_id="my-part")
    assert result["ok"] is True and result["seq"] == 12
    assert len(result["part_id"]) == 36  # a random UUID
    assert out == {"ok": True, "seq": 13, "part_id": "my-part"}
    first, second = srv.requests
    assert first.method == "POST"
    assert first.path == "/realtime/v1/sessions/chat-123/in/append"
    assert second.path == "/realtime/v1/sessions/chat-123/out/append"
    assert first.headers["x-part-id"] == result["part_id"]
    assert second.headers["x-part-id"] == "my-part"


@pytest.mark.parametrize(
    "record, body, content_type",
    [
        ("hello wörld", "hello wörld".encode(), "text/plain"),
        ('{"already": "json"}', b'{"already": "json"}', "text/plain"),
        ("héllo".encode(), "héllo".encode(), "text/plain"),
        ({"type": "text", "n": [1, 2.5, None]}, b'{"type":"text","n":[1,2.5,null]}', "json"),
        ({"k": "é"}, '{"k":"é"}'.encode(), "application/json"),
        (42, b"42", "application/json"),
        (None, b"null", "application/json"),
    ],
)
def test_record_encoding(scripted, record, body, content_type):
    srv = ok_server(scripted)
    Session("s", token=SECRET, api_url=srv.url).append_in(record)
    assert srv.requests[0].body == body
    assert content_type in srv.requests[0].headers["content-type"]


def test_two_appends_get_distinct_part_ids(scripted):
    srv = ok_server(scripted)
    session = Session("s", token=SECRET, api_url=srv.url)
    assert session.append_in("a")["part_id"] != session.append_in("a")["part_id"]


@pytest.mark.parametrize(
    "record, error",
    [
        (object(), TypeError),
        ({"when": {1, 2}}, TypeError),
        (b"\xff\xfe not utf-8", ConfigurationError),
        ("lone \ud800 surrogate", ConfigurationError),
        (float("nan"), ConfigurationError),
        ("x" * (MAX_RECORD_BYTES + 1), RecordTooLargeError),
        ('"' * (MAX_RECORD_BYTES // 2 + 10), RecordTooLargeError),  # escaping doubles it
    ],
)
def test_bad_records_fail_before_any_request(scripted, record, error):
    srv = ok_server(scripted)
    with pytest.raises(error) as info:
        Session("s", token=SECRET, api_url=srv.url).append_in(record)
    assert srv.requests == []
    if error is TypeError:
        assert type(record).__name__ in str(info.value) or "set" in str(info.value)


def test_a_record_just_under_the_limit_is_sent(scripted):
    srv = ok_server(scripted)
    Session("s", token=SECRET, api_url=srv.url).append_in("x" * (MAX_RECORD_BYTES - 100))
    assert len(srv.requests[0].body) == MAX_RECORD_BYTES - 100


@pytest.mark.parametrize("part_id, error", [("", ConfigurationError), (5, TypeError)])
def test_bad_part_ids_are_rejected(scripted, part_id, error):
    srv = ok_server(scripted)
    with pytest.raises(error):
        Session("s", token=SECRET, api_url=srv.url).append_in("x", part_id=part_id)
    assert srv.requests == []


def test_retries_reuse_the_part_id_and_body(scripted, sleeps):
    answers = iter(["503", "429", "drop", "ok"])
    seen: List[Request] = []

    def handler(conn: Conn) -> None:
        while True:
            request = conn.read_request()
            if request is None:
                return
            seen.append(request)
            what = next(answers)
            if what == "drop":
                return
            if what == "ok":
                conn.respond_json(200, {"ok": True, "seq": 3})
            else:
                conn.respond_json(int(what), {"error": "busy"}, {"Retry-After": "0"})

    srv = scripted(handler)
    session = Session("s", token=SECRET, api_url=srv.url, sleep=sleeps)
    result = session.append_in({"n": 1})
    assert result["seq"] == 3
    assert len(seen) == 4
    assert {r.headers["x-part-id"] for r in seen} == {result["part_id"]}
    assert {r.body for r in seen} == {b'{"n":1}'}
    assert len(sleeps.delays) == 3


def test_append_retry_policy_is_configurable(scripted, sleeps):
    def answer(conn: Conn, request: Request) -> None:
        conn.respond_json(503, {"error": "down"})

    srv = scripted(keep_alive(answer))
    session = Session(
        "s", token=SECRET, api_url=srv.url, sleep=sleeps, append_retry=RetryPolicy(max_attempts=2)
    )
    with pytest.raises(Exception) as info:
        session.append_in("x")
    assert getattr(info.value, "status", None) == 503
    assert len(srv.requests) == 2


def test_closed_session_and_permission_errors(scripted):
    def answer(conn: Conn, request: Request) -> None:
        if "/out/" in request.path:
            conn.respond_json(403, {"error": "Public tokens cannot write to .out"})
        else:
            conn.respond_json(400, {"ok": False, "error": "Cannot append to a closed session"})

    srv = scripted(keep_alive(answer))
    session = Session("s", token="eyJ.public.token", api_url=srv.url)
    with pytest.raises(SessionClosedError) as closed:
        session.append_in("x")
    assert closed.value.status == 400
    assert closed.value.message == "Cannot append to a closed session"
    with pytest.raises(PermissionDeniedError):
        session.append_out("x")
    assert len(srv.requests) == 2


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"<html><body>Welcome to nginx</body></html>", "text/html"),
        (b'{"ok": false}', "application/json"),
        (b"[1, 2]", "application/json"),
    ],
)
def test_unexpected_append_answers_are_protocol_errors(scripted, body, content_type):
    def answer(conn: Conn, request: Request) -> None:
        conn.respond(200, body, {"Content-Type": content_type})

    srv = scripted(keep_alive(answer))
    with pytest.raises(ProtocolError):
        Session("s", token=SECRET, api_url=srv.url).append_in("x")


def test_append_answer_without_seq_gives_none(scripted):
    def answer(conn: Conn, request: Request) -> None:
        conn.respond_json(200, {"ok": True})

    srv = scripted(keep_alive(answer))
    assert Session("s", token=SECRET, api_url=srv.url).append_in("x")["seq"] is None


@pytest.mark.parametrize(
    "session_id, encoded",
    [("../x", "..%2Fx"), ("a/b", "a%2Fb"), ("q?x#y", "q%3Fx%23y"), ("50%", "50%25")],
)
def test_ids_cannot_leave_their_route(scripted, session_id, encoded):
    srv = ok_server(scripted)
    Session(session_id, token=SECRET, api_url=srv.url).append_in("x")
    assert srv.requests[0].path == f"/realtime/v1/sessions/{encoded}/in/append"


@pytest.mark.parametrize(
    "session_id, error", [("", ConfigurationError), ("..", ConfigurationError), (7, TypeError)]
)
def test_bad_session_ids(session_id, error):
    with pytest.raises(error):
        Session(session_id, token=SECRET, api_url="http://127.0.0.1:9")


def test_token_and_url_from_the_environment(monkeypatch, scripted):
    srv = ok_server(scripted)
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    monkeypatch.setenv("TRIGGER_ACCESS_TOKEN", "eyJ.env.token")
    monkeypatch.setenv("TRIGGER_API_URL", srv.url)
    monkeypatch.setenv("TRIGGER_PREVIEW_BRANCH", "preview-1")
    Session("s").append_in("x")
    assert srv.requests[0].headers["authorization"] == "Bearer eyJ.env.token"
    assert srv.requests[0].headers["x-trigger-branch"] == "preview-1"
    monkeypatch.delenv("TRIGGER_ACCESS_TOKEN")
    with pytest.raises(ConfigurationError):
        Session("s")


def test_repr_has_no_token():
    session = Session("chat-1", token=SECRET, api_url="http://127.0.0.1:9")
    assert SECRET not in repr(session) and "chat-1" in repr(session)
    assert session.token == SECRET


def test_sixteen_threads_share_one_pool(scripted):
    srv = ok_server(scripted)
    session = Session("s", token=SECRET, api_url=srv.url, pool_maxsize=4)
    results: List[dict] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(25):
            result = session.append_in({"thread": n, "i": i})
            with lock:
                results.append(result)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 400
    assert sorted(r["seq"] for r in results) == list(range(400))
    bodies = sorted((json.loads(r.body)["thread"], json.loads(r.body)["i"]) for r in srv.requests)
    assert bodies == [(n, i) for n in range(16) for i in range(25)]
    assert srv.accepted <= 4
    session.close()


def test_closed_session_refuses_calls(scripted):
    srv = ok_server(scripted)
    session = Session("s", token=SECRET, api_url=srv.url)
    session.close()
    with pytest.raises(ConfigurationError):
        session.append_in("x")
    assert srv.requests == []


def test_a_given_transport_is_used_and_left_open(scripted):
    from sessions_client._http import Transport

    srv = ok_server(scripted)
    transport = Transport(srv.url, "eyJ.shared.token")
    with Session("s", transport=transport) as session:
        session.append_in("x")
    assert srv.requests[0].headers["authorization"] == "Bearer eyJ.shared.token"
    transport.request("GET", "/still-open")
    with pytest.raises(TypeError):
        Session("s", transport=object())  # type: ignore[arg-type]


def test_read_turn_and_ask_delegate_to_turns(monkeypatch):
    from sessions_client import _turns as turns

    calls = []
    monkeypatch.setattr(turns, "read_turn", lambda session, **kw: calls.append(("rt", kw)) or [])
    monkeypatch.setattr(turns, "ask", lambda session, record, **kw: calls.append((record, kw)))
    session = Session("s", token=SECRET, api_url="http://127.0.0.1:9")
    session.read_turn(after_in_seq=3, timeout=5)
    session.ask({"q": 1}, timeout=7)
    assert calls == [
        ("rt", {"after_in_seq": 3, "last_event_id": None, "timeout": 5, "cursor": None}),
        ({"q": 1}, {"timeout": 7, "last_event_id": None}),
    ]
