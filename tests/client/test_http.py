"""Transport: auth per request, redirects, retries and backoff, error mapping, encoding."""

from __future__ import annotations

import logging
import threading
import time
from email.utils import formatdate
from typing import Any, Dict, List, Tuple

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from sessions_client._http import (
    USER_AGENT,
    RetryPolicy,
    Transport,
    error_from_response,
    is_loopback_host,
    quote_segment,
)
from sessions_client.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RecordTooLargeError,
    ServerError,
    SessionClosedError,
)

from .scripted import Conn, Request, keep_alive

SECRET = "tr_dev_Sup3rSecretValue"


def statuses_then_ok(statuses: List[Tuple[int, Dict[str, str]]]):
    """A keep-alive answer: the given (status, headers) in turn, then 200 forever."""
    remaining = list(statuses)
    lock = threading.Lock()

    def answer(conn: Conn, request: Request) -> None:
        with lock:
            item = remaining.pop(0) if remaining else None
        if item is None:
            conn.respond_json(200, {"ok": True})
        else:
            status, headers = item
            conn.respond_json(status, {"error": f"status {status}"}, headers)

    return keep_alive(answer)


def test_auth_user_agent_and_branch_are_sent_per_request(scripted):
    srv = scripted(statuses_then_ok([]))
    transport = Transport(srv.url, SECRET, branch="feature-x")
    transport.request("GET", "/ping")
    headers = srv.requests[0].headers
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert headers["x-trigger-branch"] == "feature-x"
    assert headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("sessions-client/") and " python-requests/" in USER_AGENT
    assert "Authorization" not in transport.http_session.headers


def test_no_branch_header_without_branch(scripted):
    srv = scripted(statuses_then_ok([]))
    Transport(srv.url, SECRET).request("GET", "/ping")
    assert "x-trigger-branch" not in srv.requests[0].headers


def test_netrc_credentials_never_replace_the_token(scripted, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    srv = scripted(statuses_then_ok([]))
    Transport(srv.url, SECRET).request("GET", "/ping")
    assert srv.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_transports_with_different_tokens_share_one_pool(scripted):
    srv = scripted(statuses_then_ok([]))
    shared = requests.Session()
    first = Transport(srv.url, "token-one", http_session=shared)
    second = Transport(srv.url, "token-two", http_session=shared)
    first.request("GET", "/a")
    second.request("GET", "/b")
    first.request("GET", "/c")
    assert [r.headers["authorization"] for r in srv.requests] == [
        "Bearer token-one",
        "Bearer token-two",
        "Bearer token-one",
    ]
    assert srv.accepted == 1  # one pooled keep-alive connection served all three
    second.close()  # a shared session is not closed by a transport
    first.request("GET", "/d")


def test_token_property_is_replaceable_and_validated(scripted):
    srv = scripted(statuses_then_ok([]))
    transport = Transport(srv.url, "old-token")
    transport.token = "new-token"
    transport.request("GET", "/x")
    assert srv.requests[0].headers["authorization"] == "Bearer new-token"
    with pytest.raises(ConfigurationError):
        transport.token = ""
    with pytest.raises(ConfigurationError):
        transport.token = "evil\r\nX-Injected: 1"
    with pytest.raises(TypeError):
        transport.token = None  # type: ignore[assignment]


def _redirecting(target: str):
    def answer(conn: Conn, request: Request) -> None:
        conn.respond(307, b"", {"Location": target + "/landing"})

    return keep_alive(answer)


def test_redirect_to_another_host_drops_authorization(scripted):
    landing = scripted(statuses_then_ok([]), host="localhost")
    origin = scripted(_redirecting(landing.url))
    Transport(origin.url, SECRET).request("GET", "/start")
    assert origin.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert landing.requests[0].path == "/landing"
    assert "authorization" not in landing.requests[0].headers


def test_redirect_on_the_same_origin_keeps_authorization(scripted):
    def answer(conn: Conn, request: Request) -> None:
        if request.path == "/start":
            conn.respond(307, b"", {"Location": "/landing"})
        else:
            conn.respond_json(200, {"ok": True})

    srv = scripted(keep_alive(answer))
    Transport(srv.url, SECRET).request("GET", "/start")
    assert srv.requests[1].path == "/landing"
    assert srv.requests[1].headers["authorization"] == f"Bearer {SECRET}"


def test_backoff_schedule_is_capped_exponential(scripted, sleeps):
    srv = scripted(statuses_then_ok([(503, {})] * 6))
    policy = RetryPolicy(max_attempts=7, initial_delay=0.2, max_delay=1.0, jitter=0.0)
    transport = Transport(srv.url, SECRET, retry=policy, sleep=sleeps)
    response = transport.request("POST", "/append", data=b"body", headers={"X-Part-Id": "p1"})
    assert response.status_code == 200
    assert sleeps.delays == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert len(srv.requests) == 7
    assert {r.body for r in srv.requests} == {b"body"}
    assert {r.headers["x-part-id"] for r in srv.requests} == {"p1"}


def test_jitter_reduces_delays_by_at_most_half():
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0, jitter=0.5)
    assert policy.backoff(1, rng=lambda: 0.0) == 1.0
    assert policy.backoff(1, rng=lambda: 0.999) == pytest.approx(0.5005)
    assert policy.backoff(3, rng=lambda: 1.0) == 2.0
    assert policy.backoff(50, rng=lambda: 0.0) == 8.0


def test_gives_up_after_max_attempts_with_the_last_error(scripted, sleeps):
    srv = scripted(statuses_then_ok([(502, {})] * 10))
    transport = Transport(srv.url, SECRET, retry=RetryPolicy(max_attempts=3), sleep=sleeps)
    with pytest.raises(ServerError) as info:
        transport.request("GET", "/x")
    assert info.value.status == 502
    assert info.value.message == "status 502"
    assert len(srv.requests) == 3
    assert len(sleeps.delays) == 2


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(scripted, sleeps, status):
    srv = scripted(statuses_then_ok([(status, {})]))
    Transport(srv.url, SECRET, sleep=sleeps).request("GET", "/x")
    assert len(srv.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 413, 422, 501])
def test_permanent_statuses_are_not_retried(scripted, sleeps, status):
    srv = scripted(statuses_then_ok([(status, {})]))
    with pytest.raises(APIError) as info:
        Transport(srv.url, SECRET, sleep=sleeps).request("GET", "/x")
    assert info.value.status == status
    assert len(srv.requests) == 1
    assert sleeps.delays == []


def test_x_should_retry_false_wins_over_a_5xx(scripted, sleeps):
    srv = scripted(statuses_then_ok([(503, {"x-should-retry": "false"})]))
    with pytest.raises(ServerError):
        Transport(srv.url, SECRET, sleep=sleeps).request("GET", "/x")
    assert len(srv.requests) == 1


def test_x_should_retry_true_wins_over_a_4xx(scripted, sleeps):
    srv = scripted(statuses_then_ok([(400, {"x-should-retry": "true"})]))
    Transport(srv.url, SECRET, sleep=sleeps).request("GET", "/x")
    assert len(srv.requests) == 2


def test_extra_statuses_are_retried(scripted, sleeps):
    srv = scripted(statuses_then_ok([(409, {})]))
    policy = RetryPolicy(extra_statuses={409})
    Transport(srv.url, SECRET, sleep=sleeps, retry=policy).request("GET", "/x")
    assert len(srv.requests) == 2


def test_retry_after_seconds_is_honoured(scripted, sleeps):
    srv = scripted(statuses_then_ok([(429, {"Retry-After": "3"})]))
    Transport(srv.url, SECRET, sleep=sleeps).request("GET", "/x")
    assert sleeps.delays == [3.0]


def test_retry_after_http_date_is_honoured(scripted, sleeps):
    when = formatdate(time.time() + 4, usegmt=True)
    srv = scripted(statuses_then_ok([(503, {"Retry-After": when})]))
    Transport(srv.url, SECRET, sleep=sleeps).request("GET", "/x")
    assert len(sleeps.delays) == 1
    assert 2.0 <= sleeps.delays[0] <= 4.0


def test_x_ratelimit_reset_unix_ms_is_honoured(scripted, sleeps):
    reset = int((time.time() + 2.5) * 1000)
    srv = scripted(statuses_then_ok([(429, {"x-ratelimit-reset": str(reset)})]))
    Transport(srv.url, SECRET, sleep=sleeps).request("GET", "/x")
    assert len(sleeps.delays) == 1
    assert 1.5 <= sleeps.delays[0] <= 2.5


def test_no_retry_beyond_the_total_timeout(scripted, sleeps):
    srv = scripted(statuses_then_ok([(429, {"Retry-After": "30"})]))
    policy = RetryPolicy(total_timeout=10.0)
    with pytest.raises(RateLimitedError) as info:
        Transport(srv.url, SECRET, sleep=sleeps, retry=policy).request("GET", "/x")
    assert info.value.retry_after == 30.0
    assert sleeps.delays == []
    assert len(srv.requests) == 1


def test_connection_errors_are_retried_then_raise_network_error(closed_port, sleeps):
    transport = Transport(f"http://127.0.0.1:{closed_port}", SECRET, sleep=sleeps)
    with pytest.raises(NetworkError) as info:
        transport.request("POST", "/x", data=b"1")
    assert len(sleeps.delays) == RetryPolicy().max_attempts - 1
    assert SECRET not in str(info.value)


def test_dropped_connection_is_retried(scripted, sleeps):
    calls = []

    def handler(conn: Conn) -> None:
        request = conn.read_request()
        calls.append(request)
        if len(calls) == 1:
            return  # read the request, close without answering
        conn.respond_json(200, {"ok": True})

    srv = scripted(handler)
    response = Transport(srv.url, SECRET, sleep=sleeps).request("POST", "/x", data=b"1")
    assert response.json() == {"ok": True}
    assert len(calls) == 2


@pytest.mark.parametrize(
    "status, body, cls",
    [
        (400, {"error": "Cannot append to a closed session"}, SessionClosedError),
        (400, {"error": "Session has expired"}, SessionClosedError),
        (400, {"error": "Timeout-Seconds must be an integer"}, BadRequestError),
        (422, {"error": "bad tags"}, BadRequestError),
        (401, {"error": "Invalid token"}, AuthenticationError),
        (403, {"error": "Missing scope"}, PermissionDeniedError),
        (404, {"error": "Session not found"}, NotFoundError),
        (409, {"error": "Session is closed"}, SessionClosedError),
        (410, {"error": "gone"}, SessionClosedError),
        (413, {"error": "Record too large"}, RecordTooLargeError),
        (429, {"error": "Slow down"}, RateLimitedError),
        (500, {"error": "boom"}, ServerError),
        (501, {"error": "no backend"}, ServerError),
        (408, {"error": "timeout"}, ServerError),
        (418, {"error": "teapot"}, APIError),
    ],
)
def test_error_mapping(status, body, cls):
    response = requests.Response()
    response.status_code = status
    response._content = requests.compat.json.dumps(body).encode()
    error = error_from_response(response)
    assert type(error) is cls
    assert error.status == status
    assert error.message == body["error"]


def test_plain_text_and_html_error_bodies():
    response = requests.Response()
    response.status_code = 400
    response.reason = "Bad Request"
    response._content = b"Timeout-Seconds must be between 1 and 600"
    assert error_from_response(response).message == "Timeout-Seconds must be between 1 and 600"
    response._content = b"<html><body>Bad gateway</body></html>"
    response.status_code = 502
    response.reason = "Bad Gateway"
    assert error_from_response(response).message == "HTTP 502 Bad Gateway"


def test_token_never_in_errors_reprs_or_logs(scripted, caplog, sleeps):
    def answer(conn: Conn, request: Request) -> None:
        token = request.headers["authorization"].split()[1]
        conn.respond(401, f"invalid token {token} for Bearer {token}".encode())

    srv = scripted(keep_alive(answer))
    caplog.set_level(logging.DEBUG)
    transport = Transport(srv.url, SECRET, sleep=sleeps)
    with pytest.raises(AuthenticationError) as info:
        transport.request("GET", "/x")
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert SECRET not in info.value.message
    assert "[redacted]" in info.value.message
    assert SECRET not in repr(transport)
    assert SECRET not in caplog.text


def test_retry_logs_do_not_contain_the_token(scripted, caplog, sleeps):
    def answer(conn: Conn, request: Request) -> None:
        conn.respond(503, request.headers["authorization"].encode())

    srv = scripted(keep_alive(answer))
    caplog.set_level(logging.DEBUG, logger="sessions_client")
    with pytest.raises(ServerError):
        Transport(srv.url, SECRET, sleep=sleeps).request("GET", "/x")
    assert "retrying" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "value, encoded",
    [
        ("session_abc", "session_abc"),
        ("../x", "..%2Fx"),
        ("a/b", "a%2Fb"),
        ("what?x=1", "what%3Fx%3D1"),
        ("frag#1", "frag%231"),
        ("100%", "100%25"),
        ("a b", "a%20b"),
        ("é", "%C3%A9"),
        ("keep-_.!~*'()", "keep-_.!~*'()"),
    ],
)
def test_quote_segment_is_encode_uri_component(value, encoded):
    assert quote_segment(value) == encoded


def test_quote_segment_rejects_bad_ids():
    with pytest.raises(TypeError):
        quote_segment(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        quote_segment(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        quote_segment("")
    for dots in (".", ".."):
        with pytest.raises(ConfigurationError):
            quote_segment(dots)


class FakeAdapter(BaseAdapter):
    """Answers 200 without any network traffic; records what would have been sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: List[Tuple[requests.PreparedRequest, Dict[str, Any]]] = []

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        self.sent.append((request, kwargs))
        response = requests.Response()
        response.status_code = 200
        response._content = b'{"ok": true}'
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        response.request = request
        response.url = request.url
        return response

    def close(self) -> None:
        pass


def _fake_session() -> Tuple[requests.Session, FakeAdapter]:
    adapter = FakeAdapter()
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session, adapter


def test_secret_key_over_plain_http_to_a_remote_host_warns_once(caplog):
    http_session, adapter = _fake_session()
    transport = Transport("http://sessions.example.invalid", SECRET, http_session=http_session)
    with caplog.at_level(logging.WARNING, logger="sessions_client"):
        transport.request("GET", "/a")
        transport.request("GET", "/b")
    warnings = [r for r in caplog.records if "plain HTTP" in r.getMessage()]
    assert len(warnings) == 1
    assert SECRET not in caplog.text
    assert len(adapter.sent) == 2  # answered by the fake adapter, nothing left the machine


@pytest.mark.parametrize(
    "url, token",
    [
        ("https://sessions.example.invalid", SECRET),
        ("http://127.0.0.1:9", SECRET),
        ("http://localhost:9", SECRET),
        ("http://[::1]:9", SECRET),
        ("http://sessions.example.invalid", "eyJhbGciOi.public.token"),
    ],
)
def test_no_plain_http_warning_when_safe(caplog, url, token):
    http_session, _ = _fake_session()
    with caplog.at_level(logging.WARNING, logger="sessions_client"):
        Transport(url, token, http_session=http_session).request("GET", "/a")
    assert "plain HTTP" not in caplog.text


def test_is_loopback_host():
    assert is_loopback_host("127.0.0.1") and is_loopback_host("127.8.9.1")
    assert is_loopback_host("localhost") and is_loopback_host("[::1]")
    assert not is_loopback_host("example.com") and not is_loopback_host("10.0.0.1")


def test_verify_timeout_are_passed_per_request(tmp_path):
    http_session, adapter = _fake_session()
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not really a bundle")
    Transport(
        "https://sessions.example.invalid",
        SECRET,
        http_session=http_session,
        verify=str(bundle),
        timeout=(1.5, 7.0),
    ).request("GET", "/a")
    Transport("https://sessions.example.invalid", SECRET, http_session=http_session).request(
        "GET", "/b"
    )
    first, second = adapter.sent
    assert first[1]["verify"] == str(bundle)
    assert first[1]["timeout"] == (1.5, 7.0)
    assert second[1]["verify"] is True or second[1]["verify"].endswith(".crt")


def test_missing_ca_bundle_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError):
        Transport("https://x.invalid", SECRET, verify=str(tmp_path / "missing.pem"))


def test_bad_api_urls_are_rejected():
    with pytest.raises(ConfigurationError):
        Transport("ftp://x", SECRET)
    with pytest.raises(ConfigurationError):
        Transport("http://", SECRET)


def test_own_pool_has_pool_maxsize_slots_for_calls():
    from sessions_client._pool import PoolAdapter

    transport = Transport("http://127.0.0.1:9", SECRET, pool_maxsize=3)
    adapter = transport.http_session.get_adapter("http://127.0.0.1:9")
    assert isinstance(adapter, PoolAdapter) and adapter.slots == 3
    transport.close()
    with pytest.raises(ConfigurationError):
        transport.request("GET", "/x")


def test_open_stream_maps_error_statuses(scripted):
    def answer(conn: Conn, request: Request) -> None:
        conn.respond_json(404, {"error": "Session not found"})

    srv = scripted(keep_alive(answer))
    with pytest.raises(NotFoundError) as info:
        Transport(srv.url, SECRET).open_stream("/s", connect_timeout=2, read_timeout=2)
    assert info.value.message == "Session not found"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_is_verified_by_default_and_a_ca_bundle_can_be_given(scripted, self_signed, sleeps):
    cert, context = self_signed
    srv = scripted(statuses_then_ok([]), tls=context)
    with pytest.raises(NetworkError) as info:
        Transport(srv.url, SECRET, sleep=sleeps).request("GET", "/x")
    assert "certificate verification failed" in str(info.value)
    assert sleeps.delays == []  # a certificate failure is not retried
    assert srv.requests == []
    Transport(srv.url, SECRET, verify=str(cert)).request("GET", "/with-bundle")
    Transport(srv.url, SECRET, verify=False).request("GET", "/unverified")
    assert [r.path for r in srv.requests] == ["/with-bundle", "/unverified"]
    assert srv.requests[0].headers["authorization"] == f"Bearer {SECRET}"


# ------------------------------------------------------------- environment, read once

PROXY_VARIABLES = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"]


def clear_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_a_proxy_from_the_environment_is_used(scripted, monkeypatch):
    clear_proxy_environment(monkeypatch)
    proxy = scripted(statuses_then_ok([]))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    # 127.0.0.2: a loopback address nothing listens on; only the proxy can answer.
    Transport("http://127.0.0.2:9", SECRET).request("GET", "/x")
    assert proxy.paths() == ["http://127.0.0.2:9/x"]
    assert proxy.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_no_proxy_excludes_the_api_host(scripted, monkeypatch):
    clear_proxy_environment(monkeypatch)
    proxy = scripted(statuses_then_ok([]))
    server = scripted(statuses_then_ok([]))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    Transport(server.url, SECRET).request("GET", "/direct")
    assert server.paths() == ["/direct"]
    assert proxy.requests == []


def test_the_environment_is_read_when_the_transport_is_made(scripted, monkeypatch):
    """Not on every request: requests' per-request scan was a seventh of an append."""
    clear_proxy_environment(monkeypatch)
    proxy = scripted(statuses_then_ok([]))
    server = scripted(statuses_then_ok([]))
    transport = Transport(server.url, SECRET)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    transport.request("GET", "/after")
    assert server.paths() == ["/after"] and proxy.requests == []
    assert transport.http_session.trust_env is False


def test_a_given_requests_session_keeps_its_own_environment_handling(scripted, monkeypatch):
    clear_proxy_environment(monkeypatch)
    proxy = scripted(statuses_then_ok([]))
    mine = requests.Session()
    transport = Transport("http://127.0.0.2:9", SECRET, http_session=mine)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)  # requests reads it per request
    transport.request("GET", "/late")
    assert mine.trust_env is True
    assert proxy.paths() == ["http://127.0.0.2:9/late"]


def test_a_ca_bundle_from_the_environment_is_used(scripted, self_signed, monkeypatch):
    cert, context = self_signed
    srv = scripted(statuses_then_ok([]), tls=context)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    Transport(srv.url, SECRET).request("GET", "/env-bundle")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", str(cert))
    Transport(srv.url, SECRET).request("GET", "/curl-bundle")
    assert srv.paths() == ["/env-bundle", "/curl-bundle"]
    # An explicit verify wins over the environment.
    with pytest.raises(NetworkError):
        Transport(srv.url, SECRET, verify=certifi_bundle()).request("GET", "/explicit")


def certifi_bundle() -> str:
    import certifi

    return str(certifi.where())


def test_a_reader_gives_up_at_once_on_a_certificate_failure(scripted, self_signed, sleeps):
    from sessions_client import Session

    _, context = self_signed
    srv = scripted(statuses_then_ok([]), tls=context)
    session = Session("s", token=SECRET, api_url=srv.url, sleep=sleeps)
    with pytest.raises(NetworkError):
        next(session.iter_out())
    assert sleeps.delays == []
