"""Appends whose first attempt committed: production answers the retry without ``seq``.

The client looks the seq up (PROTOCOL.md §2, issue 12), so ``append_*``, ``ask`` and
the CLI still know which record they made.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, List

import pytest
import requests

from sessions_client import Session
from sessions_client._http import RetryPolicy
from sessions_client.testing import LocalServer, chat_message, reply_text

from .conftest import unique

QUICK = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.02, jitter=0.0)


@pytest.fixture(scope="module")
def echo() -> Iterator[LocalServer]:
    with LocalServer(echo_agent=True) as srv:
        yield srv


def _session(srv: LocalServer, ext: str, token: str = "") -> Session:
    return Session(ext, token or srv.secret_key, srv.url, append_retry=QUICK)


def _queries(session: Session) -> List[requests.PreparedRequest]:
    sent: List[requests.PreparedRequest] = []
    session.transport.http_session.hooks["response"].append(
        lambda r, *a, **k: sent.append(r.request)
    )
    return sent


def test_a_retried_append_still_returns_its_seq(echo: LocalServer) -> None:
    ext = unique()
    echo.create_session(ext)
    echo.append(ext, "in", "someone else's record")
    with _session(echo, ext) as session:
        echo.faults.drop_next(1, route="append", process=True)
        answer = session.append_in({"text": "hi"}, part_id="p-1")
    records = echo.records(ext, "in")
    assert len(records) == 2  # stored once, though sent twice
    assert answer == {"ok": True, "seq": 1, "part_id": "p-1"}


def test_the_lookup_starts_after_the_highest_seq_this_session_knows(echo: LocalServer) -> None:
    ext = unique()
    echo.create_session(ext)
    with _session(echo, ext) as session:
        assert session.append_out("a")["seq"] == 0
        assert session.append_out("b")["seq"] == 1
        sent = _queries(session)
        echo.faults.drop_next(1, route="append", process=True)
        assert session.append_out("c", part_id="p-c")["seq"] == 2
    drains = [r for r in sent if r.method == "GET"]
    assert len(drains) == 1 and drains[0].url.endswith("/out/records?afterEventId=1")


def test_the_seq_is_none_when_the_token_may_not_read(echo: LocalServer) -> None:
    ext = unique()
    echo.create_session(ext)
    write_only = echo.mint_token(ext, read=False)
    with _session(echo, ext, write_only) as session:
        echo.faults.drop_next(1, route="append", process=True)
        answer = session.append_in("x", part_id="p-w")
    assert answer == {"ok": True, "seq": None, "part_id": "p-w"}
    assert len(echo.records(ext, "in")) == 1


def test_a_replay_seen_by_a_fresh_session_finds_the_original(echo: LocalServer) -> None:
    ext = unique()
    echo.create_session(ext)
    for i in range(3):
        echo.append(ext, "in", f"m{i}", part_id=f"p{i}")
    with _session(echo, ext) as session:
        assert session.append_in("m1 again", part_id="p1")["seq"] == 1


def test_ask_through_a_retry_whose_first_attempt_committed(echo: LocalServer) -> None:
    ext = unique()
    echo.create_session(ext)
    with _session(echo, ext) as session:
        first = session.ask(chat_message("one"), timeout=10)
        echo.faults.drop_next(1, route="append", process=True)
        second = session.ask(chat_message("two"), timeout=10)
    assert first["in_seq"] == 0 and second["in_seq"] == 1
    assert reply_text(second["records"]) == "echo: two"
    assert len(echo.records(ext, "in")) == 2


def test_cli_append_prints_the_seq_after_a_retry(
    echo: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from sessions_client import cli

    ext = unique()
    echo.create_session(ext)
    echo.append(ext, "in", "first")
    monkeypatch.setenv("TRIGGER_API_URL", echo.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", echo.secret_key)
    echo.faults.drop_next(1, route="append", process=True)
    assert cli.main(["append", ext, "--part-id", "p-cli", "hello"]) == 0
    printed: Dict[str, Any] = json.loads(capsys.readouterr().out.splitlines()[0])
    assert printed == {"ok": True, "seq": 1, "part_id": "p-cli"}


def test_concurrent_appends_find_their_own_seq_after_a_replay(echo: LocalServer) -> None:
    """Seqs this session learns while a retried append is in flight (other threads'
    later appends) must not hide that append's record from the lookup."""
    ext = unique()
    echo.create_session(ext)
    in_backoff, proceed = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:  # the retry's backoff: hold it until told
        in_backoff.set()
        proceed.wait(10)

    answers: Dict[str, Any] = {}
    with Session(ext, echo.secret_key, echo.url, append_retry=QUICK, sleep=sleep) as session:
        assert session.append_in("first")["seq"] == 0
        echo.faults.drop_next(1, route="append", process=True)  # "slow" commits, answer lost
        thread = threading.Thread(
            target=lambda: answers.update(slow=session.append_in("slow", part_id="p-slow"))
        )
        thread.start()
        assert in_backoff.wait(10)
        later = [session.append_in(f"later {i}")["seq"] for i in range(3)]
        proceed.set()
        thread.join(10)
    assert later == [2, 3, 4]
    assert answers["slow"] == {"ok": True, "seq": 1, "part_id": "p-slow"}
