"""Raw-protocol helpers and fixtures for the local server's tests.

These tests talk HTTP with ``requests`` and raw sockets only (never the library's
own client), so that they judge the server and nothing else.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests

from sessions_client.testing import LocalServer

SECRET = "tr_dev_local"


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def sessions_server_options() -> Dict[str, Any]:
    """The server tests' ``sessions_server``: v2, a short ping interval."""
    return {"secret_key": SECRET, "ping_interval": 0.3}


@pytest.fixture
def server(sessions_server: LocalServer) -> LocalServer:
    return sessions_server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def create(
    srv: LocalServer,
    external_id: Optional[str] = None,
    *,
    token: str = SECRET,
    expect: int = 201,
    **extra: Any,
) -> Dict[str, Any]:
    """Create a session over HTTP and check the status."""
    body: Dict[str, Any] = {
        "type": "chat.agent",
        "taskIdentifier": "echo",
        "triggerConfig": {"basePayload": {"chatId": external_id or "x"}},
    }
    if external_id is not None:
        body["externalId"] = external_id
    body.update(extra)
    response = requests.post(
        f"{srv.url}/api/v1/sessions", json=body, headers=bearer(token), timeout=10
    )
    assert response.status_code == expect, response.text
    result: Dict[str, Any] = response.json()
    return result


def append(
    srv: LocalServer,
    session: str,
    io: str,
    body: Any,
    *,
    token: str = SECRET,
    part_id: Optional[str] = None,
) -> requests.Response:
    headers = bearer(token)
    if part_id is not None:
        headers["X-Part-Id"] = part_id
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(
        f"{srv.url}/realtime/v1/sessions/{session}/{io}/append",
        data=data,
        headers=headers,
        timeout=10,
    )


def drain(
    srv: LocalServer, session: str, io: str, *, token: str = SECRET, after: Optional[str] = None
) -> requests.Response:
    params = {"afterEventId": after} if after is not None else None
    return requests.get(
        f"{srv.url}/realtime/v1/sessions/{session}/{io}/records",
        params=params,
        headers=bearer(token),
        timeout=10,
    )


class SSE:
    """A minimal raw-socket SSE reader (chunked HTTP/1.1), for exact timing and bytes."""

    def __init__(
        self,
        srv: LocalServer,
        session: str,
        io: str,
        *,
        token: str = SECRET,
        headers: Optional[Dict[str, str]] = None,
        timeout: float = 10.0,
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
        lines = [
            f"GET /realtime/v1/sessions/{session}/{io} HTTP/1.1",
            f"Host: 127.0.0.1:{srv.port}",
            "Accept: text/event-stream",
            f"Authorization: Bearer {token}",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.file = self.sock.makefile("rb")
        status_line = self.file.readline().decode()
        self.status = int(status_line.split()[1])
        self.headers: Dict[str, str] = {}
        while True:
            line = self.file.readline().decode().rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.body = b""
        self._buffer = b""
        self.ended = False
        if "content-length" in self.headers:
            self.body = self.file.read(int(self.headers["content-length"]))
            self.ended = True

    def _chunk(self) -> bytes:
        size_line = self.file.readline()
        if not size_line:
            raise ConnectionError("stream cut before the final chunk")
        size = int(size_line.strip(), 16)
        if size == 0:
            self.file.readline()
            self.ended = True
            return b""
        data = self.file.read(size)
        if len(data) < size:
            raise ConnectionError("stream cut inside a chunk")
        self.file.readline()
        return data

    def events(self) -> Iterator[Dict[str, Any]]:
        """Parsed events: {"event", "data", "id", "at"} until the stream ends cleanly."""
        while True:
            while b"\n\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n\n", 1)
                yield self._parse(raw.decode())
            if self.ended:
                return
            self._buffer += self._chunk()

    @staticmethod
    def _parse(raw: str) -> Dict[str, Any]:
        event: Dict[str, Any] = {"event": "message", "data": None, "id": None, "comment": None}
        data: List[str] = []
        for line in raw.split("\n"):
            if line.startswith(":"):
                event["comment"] = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name in ("event", "id"):
                event[name] = value
        event["data"] = "\n".join(data) if data else None
        event["at"] = time.monotonic()
        return event

    def all(self) -> List[Dict[str, Any]]:
        return list(self.events())

    def records(self) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
        """(v2 records of every batch, every event) until the end of the stream."""
        events = self.all()
        records = [
            r for e in events if e["event"] == "batch" for r in json.loads(e["data"])["records"]
        ]
        return records, events

    def take(self, count: int) -> List[Dict[str, Any]]:
        """The first ``count`` v2 records (stops reading there)."""
        records: List[Dict[str, Any]] = []
        for event in self.events():
            if event["event"] == "batch":
                records.extend(json.loads(event["data"])["records"])
                if len(records) >= count:
                    break
        return records

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> SSE:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def envelope(record: Dict[str, Any]) -> Any:
    return json.loads(record["body"])
