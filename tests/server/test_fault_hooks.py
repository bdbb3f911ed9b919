"""``srv.faults.on_request`` (arm a fault as each request arrives) and
``LocalServer.append_many`` (a bulk preload stored as single appends are)."""

from __future__ import annotations

import json
from typing import List

import pytest
import requests

from sessions_client.testing import LocalServer


def _append(srv: LocalServer, body: str) -> int:
    answer = requests.post(
        f"{srv.url}/realtime/v1/sessions/hooks/in/append",
        data=body.encode(),
        headers={"Authorization": f"Bearer {srv.secret_key}"},
        timeout=5,
    )
    return answer.status_code


def test_on_request_arms_each_request_before_it_takes_its_faults() -> None:
    with LocalServer() as srv:
        srv.create_session("hooks")
        calls: List[int] = []

        def arm() -> None:
            calls.append(srv.request_counts["append"])  # already counted
            if len(calls) % 2:
                srv.faults.fail_next(1, status=503)  # odd requests fail

        srv.faults.on_request("append", arm)
        statuses = [_append(srv, f'"{n}"') for n in range(4)]
        srv.faults.on_request("append", None)
        after = _append(srv, '"last"')
    assert statuses == [503, 200, 503, 200]
    assert calls == [1, 2, 3, 4]
    assert after == 200


def test_on_request_hooks_are_per_route_and_survive_clear() -> None:
    with LocalServer() as srv:
        srv.create_session("hooks")
        routes: List[str] = []
        srv.faults.on_request("read", lambda: routes.append("read"))
        srv.faults.on_request("*", lambda: routes.append("*"))
        srv.faults.clear()
        assert _append(srv, '"x"') == 200
    assert routes == ["*"]


def test_on_request_rejects_an_unknown_route() -> None:
    with LocalServer() as srv, pytest.raises(ValueError, match="unknown route"):
        srv.faults.on_request("nope", lambda: None)


def test_append_many_stores_what_single_appends_store() -> None:
    bodies = ['{"n":0}', "plain text \u00e9\U0001f642", '"quoted\\"', ""]
    with LocalServer() as srv:
        srv.create_session("bulk")
        srv.append("bulk", "out", "first")
        seqs = srv.append_many("bulk", "out", bodies)
        srv.append("bulk", "out", "last")
        assert srv.append_many("bulk", "out", []) == []
        stored = srv.records("bulk", "out")
        for body in bodies:
            srv.append("bulk", "in", body)
        single = srv.records("bulk", "in")
    assert seqs == [1, 2, 3, 4]
    assert [r["seq"] for r in stored] == [0, 1, 2, 3, 4, 5]
    assert [json.loads(r["body"])["data"] for r in stored[1:5]] == bodies

    def shape(record: dict) -> object:  # the part id is random, the rest must match
        envelope = json.loads(record["body"])
        return (record["headers"], list(envelope), envelope["data"], len(envelope["id"]))

    assert [shape(r) for r in stored[1:5]] == [shape(r) for r in single]


def test_a_failing_hook_is_logged_and_the_request_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("bug in a test's hook")

    with LocalServer() as srv:
        srv.create_session("hooks")
        srv.faults.on_request("append", broken)
        assert _append(srv, '"x"') == 200
    assert "fault injection hook on 'append' failed" in caplog.text
