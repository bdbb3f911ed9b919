"""CORS as production answers it (remix-utils ``cors`` behind ``corsStrategy: "all"``),
on every route kind: preflights, appends, SSE streams, drains, management, errors, 404s."""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest
import requests

from sessions_client.errors import ConfigurationError
from sessions_client.testing import LocalServer
from sessions_client.testing.cors import CorsPolicy

from ._support import SECRET, SSE, bearer

ORIGIN = "http://page.test:5173"
REQUESTED = (
    "authorization,content-type,last-event-id,timeout-seconds,x-part-id,"
    "x-peek-settled,x-trigger-branch"
)

ROUTES: List[Tuple[str, str]] = [
    ("POST", "/realtime/v1/sessions/chat-1/in/append"),
    ("GET", "/realtime/v1/sessions/chat-1/out"),
    ("HEAD", "/realtime/v1/sessions/chat-1/out"),
    ("GET", "/realtime/v1/sessions/chat-1/in/records"),
    ("POST", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions/chat-1"),
    ("PATCH", "/api/v1/sessions/chat-1"),
    ("POST", "/api/v1/sessions/chat-1/close"),
]


@pytest.fixture
def srv() -> Iterator[LocalServer]:
    with LocalServer(secret_key=SECRET, ping_interval=0.3) as server:
        server.create_session("chat-1")
        yield server


def _allowed(response: requests.Response, origin: str = ORIGIN) -> None:
    assert response.headers.get("Access-Control-Allow-Origin") == origin
    assert "Origin" in response.headers.get("Vary", "")


@pytest.mark.parametrize("method,path", ROUTES)
def test_preflight_on_every_route(srv: LocalServer, method: str, path: str) -> None:
    before = srv.request_counts
    response = requests.options(
        srv.url + path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": REQUESTED,
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == {}
    _allowed(response)
    methods = response.headers["Access-Control-Allow-Methods"].split(",")
    assert method in methods and "OPTIONS" not in methods
    assert response.headers["Access-Control-Allow-Headers"] == REQUESTED
    assert response.headers["Access-Control-Max-Age"] == "300"
    # a preflight is answered before auth and fault injection, and is not counted
    assert srv.request_counts == before


def test_preflight_answers_before_faults_and_auth(srv: LocalServer) -> None:
    srv.faults.fail_next(1, status=503, route="append")
    url = f"{srv.url}/realtime/v1/sessions/chat-1/in/append"
    preflight = requests.options(url, headers={"Origin": ORIGIN}, timeout=10)
    assert preflight.status_code == 200
    assert "Access-Control-Allow-Headers" not in preflight.headers  # nothing was requested
    injected = requests.post(url, data="x", headers={"Origin": ORIGIN, **bearer(SECRET)})
    assert injected.status_code == 503  # the fault was still pending for the real request


def _call(srv: LocalServer, method: str, path: str, **headers: str) -> requests.Response:
    return requests.request(
        method, srv.url + path, headers={"Origin": ORIGIN, **headers}, timeout=10, data="{}"
    )


@pytest.mark.parametrize(
    "method,path,token,status",
    [
        ("POST", "/realtime/v1/sessions/chat-1/in/append", SECRET, 200),
        ("GET", "/realtime/v1/sessions/chat-1/in/records", SECRET, 200),
        ("GET", "/api/v1/sessions/chat-1", SECRET, 200),
        ("GET", "/api/v1/sessions", SECRET, 200),
        ("GET", "/api/v1/sessions/chat-1", "tr_dev_wrong", 401),
        ("POST", "/realtime/v1/sessions/chat-1/in/append", "tr_dev_wrong", 401),
        ("GET", "/api/v1/sessions/nobody", SECRET, 404),
        ("DELETE", "/realtime/v1/sessions/chat-1/in/append", SECRET, 405),
        ("GET", "/no/such/route", SECRET, 404),
        ("HEAD", "/realtime/v1/sessions/chat-1/out", SECRET, 200),
    ],
)
def test_every_answer_allows_the_origin(
    srv: LocalServer, method: str, path: str, token: str, status: int
) -> None:
    response = _call(srv, method, path, Authorization=f"Bearer {token}", **{"Timeout-Seconds": "1"})
    assert response.status_code == status
    _allowed(response)
    exposed = response.headers["Access-Control-Expose-Headers"].lower().split(",")
    assert {"x-trigger-jwt", "x-trigger-jwt-claims", "retry-after"} <= set(exposed)


def test_injected_error_exposes_retry_after(srv: LocalServer) -> None:
    srv.faults.fail_next(1, status=429, route="records", retry_after=2)
    response = _call(
        srv, "GET", "/realtime/v1/sessions/chat-1/in/records", Authorization=f"Bearer {SECRET}"
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    _allowed(response)
    assert "retry-after" in response.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("settled", [False, True])
def test_sse_stream_allows_the_origin_and_exposes_every_header(
    srv: LocalServer, settled: bool
) -> None:
    if settled:
        srv.write_control("chat-1", "turn-complete")
    headers: Dict[str, str] = {"Origin": ORIGIN, "Timeout-Seconds": "1"}
    if settled:
        headers["X-Peek-Settled"] = "1"
    stream = SSE(srv, "chat-1", "out", headers=headers)
    try:
        assert stream.status == 200
        assert stream.headers["access-control-allow-origin"] == ORIGIN
        assert stream.headers["access-control-expose-headers"].split(",")[0] == "*"
        assert stream.headers["x-stream-version"] == "v2"
        assert ("x-session-settled" in stream.headers) is settled
    finally:
        stream.close()


def test_no_origin_no_allow_origin(srv: LocalServer) -> None:
    """As remix-utils: without ``Origin`` nothing is allowed (exposed headers still sent)."""
    response = requests.get(f"{srv.url}/api/v1/sessions/chat-1", headers=bearer(SECRET))
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Expose-Headers" in response.headers


def test_narrowed_origins() -> None:
    allowed = "http://localhost:3000"
    with LocalServer(secret_key=SECRET, cors_origins=[allowed]) as srv:
        url = f"{srv.url}/api/v1/sessions"
        good = requests.options(url, headers={"Origin": allowed}, timeout=10)
        _allowed(good, allowed)
        other = requests.options(url, headers={"Origin": ORIGIN}, timeout=10)
        assert other.status_code == 200
        assert "Access-Control-Allow-Origin" not in other.headers
        answer = requests.get(url, headers={"Origin": ORIGIN, **bearer(SECRET)}, timeout=10)
        assert answer.status_code == 200
        assert "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize(
    "origins,allowed",
    [
        (None, {"http://x.test", "https://a.test"}),
        (["*"], {"http://x.test", "https://a.test"}),
        ([], set()),
        (["https://a.test", "http://b:8"], {"https://a.test", "http://b:8"}),
    ],
)
def test_policy_origins(origins: Optional[List[str]], allowed: Set[str]) -> None:
    policy = CorsPolicy(origins)
    for origin in ("http://x.test", "https://a.test", "http://b:8", "http://a.test"):
        assert policy.allows(origin) is (origin in allowed or origins in (None, ["*"]))


@pytest.mark.parametrize(
    "origin", ["localhost:3000", "http://a.test/", "http://a.test/app", "ftp://a.test", ""]
)
def test_bad_origins_refused(origin: str) -> None:
    with pytest.raises(ConfigurationError, match="origin"):
        LocalServer(cors_origins=[origin])


def test_one_string_refused() -> None:
    with pytest.raises(ConfigurationError, match="list"):
        LocalServer(cors_origins="http://a.test")


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.0.2.1", "example.test"])
@pytest.mark.parametrize("key", [None, "tr_dev_local", ""])
def test_non_loopback_bind_needs_a_chosen_key(host: str, key: Optional[str]) -> None:
    kwargs = {} if key is None else {"secret_key": key}
    with pytest.raises(ConfigurationError, match="not loopback") as info:
        LocalServer(host=host, **kwargs)  # type: ignore[arg-type]
    assert "--secret-key" in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_bind_with_the_default_key(host: str) -> None:
    try:
        server = LocalServer(host=host)
    except OSError as exc:  # e.g. no IPv6 or no 127.0.0.2 on this machine
        pytest.skip(f"cannot bind {host}: {exc}")
    with server:
        assert server.secret_key == "tr_dev_local"


def test_non_loopback_bind_with_a_chosen_key() -> None:
    with LocalServer(host="0.0.0.0", secret_key="tr_dev_chosen_7f3a") as srv:
        url = f"http://127.0.0.1:{srv.port}/api/v1/sessions/nobody"
        assert requests.get(url, headers=bearer("tr_dev_local"), timeout=10).status_code == 401
