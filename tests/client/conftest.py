from __future__ import annotations

import socket
from typing import Callable, Iterator, List

import pytest

from .scripted import Handler, ScriptedServer


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    """Factory of scripted loopback servers, all closed at teardown."""
    servers: List[ScriptedServer] = []

    def make(handler: Handler, host: str = "127.0.0.1") -> ScriptedServer:
        server = ScriptedServer(handler, host=host)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class Sleeps:
    """An injectable sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: List[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
