"""Fixtures for the management, chat-turn and cursor tests: LocalServers and Clients."""

from __future__ import annotations

import uuid
from typing import Iterator, List

import pytest
import requests

from sessions_client._http import RetryPolicy
from sessions_client.client import Client
from sessions_client.testing import LocalServer

#: The SDK policy with tiny delays, so retry tests stay fast.
FAST_RETRY = RetryPolicy(
    max_attempts=3, initial_delay=0.01, max_delay=0.05, jitter=0.0, extra_statuses=(409,)
)


def unique(prefix: str = "ext") -> str:
    """A fresh external id, so tests sharing a server never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """One v2 server (no echo agent) shared by a module's tests."""
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def client(server: LocalServer) -> Iterator[Client]:
    """A Client with the server's secret key and the default (SDK) retry policy."""
    with Client(server.secret_key, server.url) as c:
        yield c


@pytest.fixture
def fast_client(server: LocalServer) -> Iterator[Client]:
    """A Client whose retries wait milliseconds instead of seconds."""
    with Client(server.secret_key, server.url, retry=FAST_RETRY) as c:
        yield c


@pytest.fixture
def sent(client: Client) -> List[requests.PreparedRequest]:
    """Every request the ``client`` fixture sends, as prepared by requests."""
    seen: List[requests.PreparedRequest] = []

    def hook(response: requests.Response, *args: object, **kwargs: object) -> None:
        seen.append(response.request)

    client.http_session.hooks["response"].append(hook)
    return seen
