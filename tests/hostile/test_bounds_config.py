"""The knobs of the bounds: validation, and compressed answers within the cap still
decoded (the client decompresses answers itself, step by step)."""

from __future__ import annotations

import gzip
import zlib
from typing import Callable, Iterator, List

import pytest

from sessions_client import ConfigurationError, RetryPolicy
from sessions_client._http import Transport
from sessions_client.testing import ServerLimits

from ._hostile import Conn, RawServer, head


@pytest.fixture()
def raw_server() -> Iterator[Callable[[Callable[[Conn], None]], RawServer]]:
    servers: List[RawServer] = []

    def make(handler: Callable[[Conn], None]) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    "encoding, encode",
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("identity", lambda data: data),
    ],
)
def test_compressed_answers_within_the_cap_are_decoded(
    raw_server: Callable[..., RawServer], encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    payload = b'{"records": [], "pad": "' + b"x" * 300_000 + b'"}'
    body = encode(payload)
    accepted: List[str] = []

    def handle(conn: Conn) -> None:
        _, headers, _ = conn.read_request()
        accepted.append(headers.get("accept-encoding", ""))
        conn.send(
            head("200 OK", {"Content-Encoding": encoding, "Content-Length": str(len(body))}) + body
        )

    server = raw_server(handle)
    with Transport(server.url, "tr_dev_local") as transport:
        response = transport.request("GET", "/x")
    assert response.content == payload
    assert response.json()["pad"] == "x" * 300_000
    assert accepted == ["gzip, deflate"]


def test_an_unknown_content_encoding_is_a_protocol_error(
    raw_server: Callable[..., RawServer],
) -> None:
    from sessions_client import ProtocolError

    def handle(conn: Conn) -> None:
        conn.read_request()
        conn.send(head("200 OK", {"Content-Encoding": "br", "Content-Length": "2"}) + b"{}")

    server = raw_server(handle)
    with Transport(server.url, "tr_dev_local") as transport, pytest.raises(ProtocolError):
        transport.request("GET", "/x")


def test_retry_policy_max_server_delay() -> None:
    policy = RetryPolicy(max_server_delay=5)
    assert policy.max_server_delay == 5.0
    assert "max_server_delay=5.0" in repr(policy)
    assert RetryPolicy().max_server_delay == 60.0
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_server_delay=-1)


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_body_bytes", 0),
        ("max_headers", 0),
        ("read_timeout", 0),
        ("idle_timeout", -1),
        ("max_connections", 0),
    ],
)
def test_server_limits_are_validated(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ServerLimits(**{field: value})  # type: ignore[arg-type]


def test_a_call_timeout_must_be_positive(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(lambda conn: None)
    with Transport(server.url, "tr_dev_local") as transport, pytest.raises(ConfigurationError):
        transport.request("GET", "/x", deadline=0)
