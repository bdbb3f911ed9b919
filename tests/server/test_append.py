from __future__ import annotations

import json
import socket
import threading
import time
from typing import List

import pytest
import requests

from sessions_client.testing import LocalServer

from ._support import SECRET, append, bearer, create, drain

MIB = 1024 * 1024


def test_append_answers_seq_per_channel_from_zero(server: LocalServer) -> None:
    create(server, "c")
    assert [append(server, "c", "in", f"m{i}").json() for i in range(3)] == [
        {"ok": True, "seq": 0},
        {"ok": True, "seq": 1},
        {"ok": True, "seq": 2},
    ]
    assert append(server, "c", "out", "o").json() == {"ok": True, "seq": 0}
    create(server, "d")
    assert append(server, "d", "in", "x").json() == {"ok": True, "seq": 0}


def test_append_stores_raw_body_inside_envelope(server: LocalServer) -> None:
    create(server, "c")
    body = '{"type": "text", "text": "héllo"}'
    append(server, "c", "in", body, part_id="part-1")
    (record,) = server.records("c", "in")
    assert json.loads(record["body"]) == {"data": body, "id": "part-1"}
    assert record["body"] == json.dumps(
        {"data": body, "id": "part-1"}, separators=(",", ":"), ensure_ascii=False
    )
    assert drain(server, "c", "in").json() == {
        "records": [{"data": body, "id": "part-1", "seqNum": 0}]
    }


def test_server_picks_a_part_id_when_none_is_sent(server: LocalServer) -> None:
    create(server, "c")
    append(server, "c", "in", "a")
    append(server, "c", "in", "a")
    ids = [item["id"] for item in drain(server, "c", "in").json()["records"]]
    assert len(ids) == 2 and all(ids) and ids[0] != ids[1]


def test_replayed_part_id_appends_nothing_and_answers_without_seq(server: LocalServer) -> None:
    create(server, "c")
    append(server, "c", "in", "first", part_id="p")
    append(server, "c", "in", "second")
    replay = append(server, "c", "in", "first again", part_id="p")
    assert replay.status_code == 200 and replay.json() == {"ok": True}
    assert [r["data"] for r in drain(server, "c", "in").json()["records"]] == ["first", "second"]
    assert append(server, "c", "out", "x", part_id="p").json()["seq"] == 0


def test_part_ids_are_remembered_for_part_id_ttl_then_append_again() -> None:
    now = [1_000_000.0]
    with LocalServer(secret_key=SECRET, part_id_ttl=300, clock=lambda: now[0]) as srv:
        create(srv, "c")
        assert append(srv, "c", "in", "a", part_id="p").json() == {"ok": True, "seq": 0}
        now[0] += 299.9
        assert append(srv, "c", "in", "a", part_id="p").json() == {"ok": True}
        now[0] += 0.2  # 300.1 s after the claim: production's 5-minute window is over
        assert append(srv, "c", "in", "a", part_id="p").json() == {"ok": True, "seq": 1}
        assert append(srv, "c", "in", "a", part_id="p").json() == {"ok": True}
        assert [r["seq"] for r in srv.records("c", "in")] == [0, 1]


def test_part_id_ttl_defaults_to_five_minutes_and_must_be_positive() -> None:
    with LocalServer() as srv:
        assert srv._ctx.part_id_ttl == 300
    with pytest.raises(ValueError):
        LocalServer(part_id_ttl=0)


def test_concurrent_duplicate_part_ids_make_exactly_one_record(server: LocalServer) -> None:
    create(server, "c")
    barrier = threading.Barrier(16)
    answers: List[dict] = []

    def worker() -> None:
        barrier.wait()
        answers.append(append(server, "c", "in", "same", part_id="dup").json())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(answers) == 16 and answers.count({"ok": True, "seq": 0}) == 1
    assert answers.count({"ok": True}) == 15
    assert len(server.records("c", "in")) == 1


def test_unknown_sessions_are_404(server: LocalServer) -> None:
    for ident in ("session_missing", "missing-external"):
        response = append(server, ident, "in", "x")
        assert response.status_code == 404
        assert response.json() == {"error": "Resource not found"}
    assert server.get_session("missing-external") is None


def test_under_scoped_append_is_403_before_404(server: LocalServer) -> None:
    """Production authorises before it looks the session up: no existence leak."""
    token = server.mint_token("someone-else")
    for ident in ("session_missing", "missing-external"):
        response = append(server, ident, "in", "x", token=token)
        assert response.status_code == 403, ident
        assert response.json()["error"] == "Unauthorized"


def test_closed_session_refuses_appends_with_400(server: LocalServer) -> None:
    create(server, "c")
    server.close_session("c")
    for io in ("in", "out"):
        response = append(server, "c", io, "x")
        assert response.status_code == 400
        assert response.json() == {"ok": False, "error": "Cannot append to a closed session"}


def test_bad_io_is_400(server: LocalServer) -> None:
    create(server, "c")
    assert append(server, "c", "sideways", "x").status_code == 400


def test_invalid_utf8_body_is_400(server: LocalServer) -> None:
    create(server, "c")
    response = append(server, "c", "in", b"\xff\xfe bad")
    assert response.status_code == 400 and "UTF-8" in response.json()["error"]


def test_body_at_limit_minus_envelope_fits_and_quotes_overflow(server: LocalServer) -> None:
    create(server, "c")
    overhead = len(json.dumps({"data": "", "id": "p"}, separators=(",", ":"))) + 20
    fits = "a" * (MIB - overhead)
    assert append(server, "c", "in", fits, part_id="p").status_code == 200
    too_big = append(server, "c", "in", "a" * (MIB - overhead + 1), part_id="p")
    assert too_big.status_code == 413
    quotes = append(server, "c", "in", '"' * (MIB // 2 + 10))
    assert quotes.status_code == 413 and quotes.json()["ok"] is False
    assert len(server.records("c", "in")) == 1


def test_body_over_1_mib_is_413_without_reading_the_rest(server: LocalServer) -> None:
    create(server, "c")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        head = (
            "POST /realtime/v1/sessions/c/in/append HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {SECRET}\r\nContent-Length: {2 * MIB}\r\n\r\n"
        )
        sock.sendall(head.encode() + b"x" * 1000)
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 413")
        assert b"Connection: close" in answer
        assert time.monotonic() - started < 2
    assert server.records("c", "in") == []


def test_chunked_body_over_limit_is_413(server: LocalServer) -> None:
    create(server, "c")

    def body():  # type: ignore[no-untyped-def]
        for _ in range(3):
            yield b"x" * (MIB // 2)

    response = requests.post(
        f"{server.url}/realtime/v1/sessions/c/in/append",
        data=body(),
        headers=bearer(SECRET),
        timeout=10,
    )
    assert response.status_code == 413


def test_append_without_content_length_is_413(server: LocalServer) -> None:
    create(server, "c")

    def body():  # type: ignore[no-untyped-def]
        yield b'{"a":'
        yield b"1}"

    response = requests.post(
        f"{server.url}/realtime/v1/sessions/c/in/append",
        data=body(),
        headers=bearer(SECRET),
        timeout=10,
    )
    assert response.status_code == 413
    assert response.json() == {"error": "Request body too large"}
    assert server.records("c", "in") == []


def test_keep_alive_connection_serves_many_requests_and_survives_errors(
    server: LocalServer,
) -> None:
    create(server, "c")
    before = server.total_connections
    with requests.Session() as http:
        for i in range(20):
            ok = http.post(
                f"{server.url}/realtime/v1/sessions/c/in/append",
                data=str(i),
                headers=bearer(SECRET),
                timeout=5,
            )
            assert ok.json()["seq"] == i
            missing = http.post(
                f"{server.url}/realtime/v1/sessions/session_nope/in/append",
                data="x" * 100,
                headers=bearer(SECRET),
                timeout=5,
            )
            assert missing.status_code == 404
    assert server.total_connections - before == 1
