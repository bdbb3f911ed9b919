"""The relay under a real threaded WSGI server (wsgiref + a fixed worker pool, loopback):
clients that go away free their worker and the upstream connection within seconds."""

from __future__ import annotations

import urllib.request
from typing import Iterator, List

import pytest
from _waiting import eventually

from sessions_client import Client
from sessions_client.testing import LocalServer

from ._support import RelayApp, Stream, client_connections_to, open_stream, serve


@pytest.fixture
def upstream() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        srv.create_session("tab")
        srv.append("tab", "out", '{"n": 0}')
        yield srv


@pytest.fixture
def client(upstream: LocalServer) -> Iterator[Client]:
    with Client(upstream.secret_key, upstream.url) as c:
        yield c


def test_a_client_that_goes_away_frees_its_worker_and_the_upstream_connection(
    upstream: LocalServer, client: Client
) -> None:
    app = RelayApp(client, heartbeat=0.3, upstream_window=1.0)
    with serve(app, workers=2) as (httpd, url):
        sock = open_stream(url, "/events/tab")
        assert b'id: 0\ndata: {"n":0}' in sock.read_until(b"\n\nid: 0")
        assert httpd.busy == 1
        sock.close()  # the tab is closed while the channel is idle
        eventually(lambda: httpd.busy == 0, 5), "the worker is still held"
        eventually(lambda: app.relays[0].closed, 5), "the upstream reader still runs"
        eventually(lambda: client_connections_to(upstream.port) <= 1, 5)


def test_eight_closed_clients_leave_an_eight_worker_app_serving(
    upstream: LocalServer, client: Client
) -> None:
    app = RelayApp(client, heartbeat=0.3, upstream_window=1.0)
    with serve(app, workers=8) as (httpd, url):
        tabs: List[Stream] = [open_stream(url, "/events/tab") for _ in range(8)]
        for sock in tabs:
            sock.read_until(b"id: 0")
        assert httpd.busy == 8
        for sock in tabs:
            sock.close()
        with urllib.request.urlopen(f"{url}/ping", timeout=10) as answer:  # a ninth request
            assert answer.read() == b"pong"
        eventually(lambda: httpd.busy == 0, 5)
        eventually(lambda: all(relay.closed for relay in app.relays), 5)
        # Idle pooled keep-alive connections may stay; no reader holds one.
        eventually(lambda: client_connections_to(upstream.port) <= 2, 5)


def test_a_reconnecting_client_resumes_after_its_last_event_id(
    upstream: LocalServer, client: Client
) -> None:
    for n in range(1, 4):
        upstream.append("tab", "out", f'{{"n": {n}}}')
    app = RelayApp(client, heartbeat=0.3, upstream_window=1.0)
    with serve(app, workers=2) as (_, url):
        sock = open_stream(url, "/events/tab", last_event_id="2")
        received = sock.read_until(b"id: 3")
        sock.close()
    assert b"id: 0\n" not in received and b"id: 2\n" not in received
    assert app.last_event_ids == ["2"]


def test_a_bad_last_event_id_is_answered_400(client: Client) -> None:
    app = RelayApp(client)
    with serve(app, workers=2) as (_, url):
        request = urllib.request.Request(f"{url}/events/tab", headers={"Last-Event-ID": "x1"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 400
