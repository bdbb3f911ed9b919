"""A shared Client under load: 50 open readers never starve ordinary calls, and a call
that finds every pooled connection busy fails within its connect timeout, naming why."""

from __future__ import annotations

import threading
import time
from typing import List

import pytest
from _waiting import eventually

from sessions_client import Client, PoolTimeoutError
from sessions_client.testing import LocalServer

READERS = 50
RECORDS = 10


@pytest.fixture
def srv(sessions_server: LocalServer) -> LocalServer:
    return sessions_server


def test_fifty_open_readers_leave_ordinary_calls_free(srv: LocalServer) -> None:
    srv.create_session("busy")
    received: List[List[int]] = [[] for _ in range(READERS)]
    errors: List[BaseException] = []

    with Client(srv.secret_key, srv.url) as client:  # the default pool: 10 connections

        def read(index: int) -> None:
            try:
                for record in client.session("busy").iter_out(timeout_seconds=30):
                    received[index].append(record["seq"])
                    if len(received[index]) == RECORDS:
                        return
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(READERS)]
        for thread in readers:
            thread.start()
        eventually(lambda: srv.request_counts.get("read", 0) >= READERS, 30)

        timings: List[float] = []

        def calls() -> None:
            session = client.session("busy")
            for n in range(RECORDS):
                started = time.monotonic()
                session.append_out({"n": n})
                client.get_session("busy")
                timings.append(time.monotonic() - started)

        caller = threading.Thread(target=calls, daemon=True)
        caller.start()
        caller.join(30)
        assert not caller.is_alive(), "ordinary calls are waiting behind the open readers"
        assert len(timings) == RECORDS and max(timings) < 5, timings
        for thread in readers:
            thread.join(30)
        assert errors == []
        assert all(seqs == list(range(RECORDS)) for seqs in received)


def test_a_call_that_finds_every_connection_busy_fails_within_its_connect_timeout(
    srv: LocalServer,
) -> None:
    srv.create_session("slow")
    with Client(srv.secret_key, srv.url, pool_maxsize=2, timeout=(0.3, 10)) as client:
        srv.faults.set_latency(1.5, route="sessions")
        busy = [threading.Thread(target=client.get_session, args=("slow",)) for _ in range(2)]
        for thread in busy:
            thread.start()
        eventually(lambda: srv.request_counts.get("sessions", 0) >= 2, 5)
        started = time.monotonic()
        with pytest.raises(PoolTimeoutError) as info:
            client.get_session("slow")
        waited = time.monotonic() - started
        assert 0.25 <= waited < 1.2, waited
        assert "all 2 connections of the pool are busy" in str(info.value)
        assert isinstance(info.value, TimeoutError)
        for thread in busy:
            thread.join(10)
        srv.faults.set_latency(0, route="sessions")
        assert client.get_session("slow")["externalId"] == "slow"  # free again
