from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import pytest

from .scripted import Handler, ScriptedServer


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    """Factory of scripted loopback servers, all closed at teardown."""
    servers: List[ScriptedServer] = []

    def make(
        handler: Handler, host: str = "127.0.0.1", tls: Optional[ssl.SSLContext] = None
    ) -> ScriptedServer:
        server = ScriptedServer(handler, host=host, tls=tls)
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


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1/localhost and a server context using it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not available")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            # An EC key: generated at once, where an RSA key takes a random, noticeable time.
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return cert, context
