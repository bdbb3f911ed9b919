"""Drain (GET .../records) and restart durability."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from sessions_client.testing import LocalServer

from ._support import SECRET, SSE, append, create, drain


def test_drain_returns_data_and_control_records_without_commands(server: LocalServer) -> None:
    create(server, "c")
    append(server, "c", "out", '{"a":1}', part_id="p0")
    server.write("c", "out", {"type": "text"}, part_id="p1")
    server.write_control("c", "turn-complete", [["public-access-token", "t"]])
    server.trim("c", "out", 0)
    append(server, "c", "out", "plain", part_id="p4")
    assert drain(server, "c", "out").json() == {
        "records": [
            {"data": '{"a":1}', "id": "p0", "seqNum": 0},
            {"data": {"type": "text"}, "id": "p1", "seqNum": 1},
            {
                "data": "",
                "id": "",
                "seqNum": 2,
                "headers": [["trigger-control", "turn-complete"], ["public-access-token", "t"]],
            },
            {"data": "plain", "id": "p4", "seqNum": 4},
        ]
    }
    assert [r["seqNum"] for r in drain(server, "c", "out", after="2").json()["records"]] == [4]
    assert drain(server, "c", "out", after="4").json() == {"records": []}


def test_drain_answers_everything_up_to_the_tail_at_once(server: LocalServer) -> None:
    """Production answers every record after ``afterEventId`` in one response."""
    create(server, "c")
    for i in range(2300):
        server.append("c", "in", str(i))
    server.trim("c", "in", before_seq=0)  # a command record at 2300, never drained
    server.append("c", "in", "last")
    page = drain(server, "c", "in").json()["records"]
    assert [r["seqNum"] for r in page] == list(range(2300)) + [2301]
    tail = drain(server, "c", "in", after="1999").json()["records"]
    assert [r["seqNum"] for r in tail] == list(range(2000, 2300)) + [2301]
    assert drain(server, "c", "in", after="2301").json() == {"records": []}


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", " 3"])
def test_after_event_id_must_be_digits(server: LocalServer, value: str) -> None:
    create(server, "c")
    response = drain(server, "c", "in", after=value)
    assert response.status_code == 400 and response.json()["error"] == "Query Error"


def test_drain_of_unknown_external_id_is_empty_and_unknown_friendly_id_404(
    server: LocalServer,
) -> None:
    assert drain(server, "nobody-yet", "out").json() == {"records": []}
    assert drain(server, "session_nobody", "out").status_code == 404


def test_everything_survives_a_restart_on_the_same_file(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    with LocalServer(db=str(db)) as first:
        created = create(first, "chat-1")
        token = created["publicAccessToken"]
        scoped = first.mint_token(created["id"], write=False, ttl=600)
        for i in range(3):
            append(first, "chat-1", "in", f"m{i}", part_id=f"p{i}")
        first.write_control("chat-1", "turn-complete", [["session-in-event-id", "2"]])
        create(first, "closed-one")
        first.close_session("closed-one", "bye")
        port = first.port
    with LocalServer(db=db, port=port) as second:
        assert second.port == port
        again = create(second, "chat-1", expect=200)
        assert again["id"] == created["id"] and again["isCached"] is True
        replay = append(second, "chat-1", "in", "m1 again", part_id="p1", token=token)
        assert replay.json() == {"ok": True}
        assert append(second, "chat-1", "in", "m3", part_id="p3", token=token).json()["seq"] == 3
        assert [
            r["data"] for r in drain(second, "chat-1", "in", token=scoped).json()["records"]
        ] == [
            "m0",
            "m1",
            "m2",
            "m3",
        ]
        out = drain(second, "chat-1", "out").json()["records"]
        assert out[0]["headers"][1] == ["session-in-event-id", "2"]
        assert append(second, "closed-one", "in", "x").status_code == 400
        create(second, "closed-one", expect=409)
        with SSE(second, "chat-1", "in", token=token) as sse:
            assert [r["seq_num"] for r in sse.take(4)] == [0, 1, 2, 3]


def test_memory_database_starts_empty_each_time() -> None:
    with LocalServer() as first:
        create(first, "c")
    with LocalServer() as second:
        assert second.get_session("c") is None


def test_concurrent_appends_on_one_channel_get_distinct_consecutive_seqs(
    server: LocalServer,
) -> None:
    create(server, "c")
    seqs = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(20):
            seq = append(server, "c", "in", f"{n}-{i}").json()["seq"]
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(seqs) == list(range(80))
    stored = [json.loads(r["body"])["data"] for r in server.records("c", "in")]
    assert len(set(stored)) == 80
    assert SECRET not in repr(server)
