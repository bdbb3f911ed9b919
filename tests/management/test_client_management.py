"""Client: create / get / update / close / list against LocalServer, validation, retries."""

from __future__ import annotations

import inspect
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sessions_client import Client, Session
from sessions_client.client import DEFAULT_MANAGEMENT_RETRY
from sessions_client.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    SessionClosedError,
)
from sessions_client.testing import LocalServer

from .conftest import unique

CONFIG = {"basePayload": {"model": "echo"}}


def _create(client: Client, **kwargs: Any) -> Dict[str, Any]:
    return client.create_session("chat.agent", "echo", CONFIG, **kwargs)


def _query(request: requests.PreparedRequest) -> Dict[str, List[str]]:
    return parse_qs(urlsplit(request.url or "").query)


# -- create ------------------------------------------------------------------------------


def test_create_returns_the_session_with_token_run_and_is_cached_false(client: Client) -> None:
    ext = unique()
    created = _create(client, external_id=ext, tags=["a", "b"], metadata={"user": 7})
    assert created["id"].startswith("session_")
    assert created["externalId"] == ext
    assert created["type"] == "chat.agent"
    assert created["taskIdentifier"] == "echo"
    assert created["triggerConfig"] == CONFIG
    assert created["tags"] == ["a", "b"]
    assert created["metadata"] == {"user": 7}
    assert isinstance(created["publicAccessToken"], str) and created["publicAccessToken"]
    assert isinstance(created["runId"], str) and created["runId"]
    assert created["isCached"] is False


def test_create_with_a_live_external_id_returns_the_cached_session(client: Client) -> None:
    ext = unique()
    first = _create(client, external_id=ext)
    again = _create(client, external_id=ext)
    assert again["id"] == first["id"]
    assert again["isCached"] is True


def test_create_sends_exactly_the_given_fields(
    client: Client, sent: List[requests.PreparedRequest]
) -> None:
    _create(client)
    body = sent[-1].body
    assert sent[-1].method == "POST"
    assert sent[-1].url is not None and sent[-1].url.endswith("/api/v1/sessions")
    assert isinstance(body, bytes)

    assert json.loads(body) == {
        "type": "chat.agent",
        "taskIdentifier": "echo",
        "triggerConfig": CONFIG,
    }
    assert sent[-1].headers["x-trigger-request-idempotency-key"]


def test_create_for_a_closed_external_id_raises_session_closed_at_once(
    server: LocalServer, client: Client
) -> None:
    ext = unique()
    _create(client, external_id=ext)
    client.close_session(ext)
    before = server.request_counts.get("sessions", 0)
    started = time.monotonic()
    with pytest.raises(SessionClosedError) as info:
        _create(client, external_id=ext)
    assert info.value.status == 409
    assert "closed" in str(info.value)
    assert server.request_counts["sessions"] == before + 1, "a 409 on create is not retried"
    assert time.monotonic() - started < 1.0


def test_create_with_x_should_retry_true_would_retry_a_409(client: Client) -> None:
    from sessions_client.client import _without_409

    policy = _without_409(DEFAULT_MANAGEMENT_RETRY)
    assert not policy.should_retry(409, {})
    assert policy.should_retry(409, {"x-should-retry": "true"})
    assert DEFAULT_MANAGEMENT_RETRY.should_retry(409, {})


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"tags": [str(i) for i in range(11)]}, "10 tags"),
        ({"tags": "one-tag"}, "list of strings"),
        ({"tags": ["x" * 129]}, "128"),
        ({"external_id": "session_abc"}, "session_"),
        ({"external_id": ""}, "1-256"),
        ({"external_id": "   "}, "1-256"),
        ({"external_id": "x" * 257}, "1-256"),
        ({"external_id": 12}, "string"),
        ({"metadata": ["not", "a", "dict"]}, "metadata"),
        ({"expires_at": 1.5}, "expires_at"),
        ({"expires_at": True}, "expires_at"),
    ],
)
def test_create_validates_arguments_before_any_request(
    server: LocalServer, client: Client, kwargs: Dict[str, Any], fragment: str
) -> None:
    before = server.request_counts.get("sessions", 0)
    with pytest.raises(ConfigurationError) as info:
        _create(client, **kwargs)
    assert fragment in str(info.value)
    assert server.request_counts.get("sessions", 0) == before


def test_create_validates_type_task_and_trigger_config(client: Client) -> None:
    with pytest.raises(ConfigurationError):
        client.create_session("", "echo", CONFIG)
    with pytest.raises(ConfigurationError):
        client.create_session("chat.agent", "", CONFIG)
    with pytest.raises(ConfigurationError):
        client.create_session("chat.agent", "echo", "nope")  # type: ignore[arg-type]


def test_create_accepts_ten_tags_and_a_256_char_external_id(client: Client) -> None:
    ext = unique() + "x" * (256 - len(unique()))
    created = _create(client, external_id=ext, tags=[str(i) for i in range(10)])
    assert created["externalId"] == ext
    assert len(created["tags"]) == 10


@pytest.mark.parametrize(
    "value, expected",
    [
        (datetime(2030, 1, 2, 3, 4, 5, 678000), "2030-01-02T03:04:05.678Z"),  # naive = UTC
        (
            datetime(2030, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2030-01-02T03:04:05.000Z",
        ),
        (1893553445678, "2030-01-02T03:04:05.678Z"),
        ("2030-01-02T03:04:05.678Z", "2030-01-02T03:04:05.678Z"),
    ],
)
def test_create_sends_expires_at_as_iso_8601_utc(
    client: Client, sent: List[requests.PreparedRequest], value: Any, expected: str
) -> None:

    created = _create(client, expires_at=value)
    body = sent[-1].body
    assert isinstance(body, bytes)
    assert json.loads(body)["expiresAt"] == expected
    assert created["expiresAt"] == expected


# -- get / update / close ---------------------------------------------------------------


def test_get_by_friendly_id_and_by_external_id(client: Client) -> None:
    ext = unique()
    created = _create(client, external_id=ext)
    by_id = client.get_session(created["id"])
    by_ext = client.get_session(ext)
    assert by_id["id"] == by_ext["id"] == created["id"]
    assert "publicAccessToken" not in by_id


def test_get_unknown_session_is_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get_session("session_doesnotexist")
    assert info.value.status == 404


def test_ids_are_percent_encoded_path_segments(
    client: Client, sent: List[requests.PreparedRequest]
) -> None:
    ext = "a/b?c#d %é-" + unique()
    _create(client, external_id=ext)
    assert client.get_session(ext)["externalId"] == ext
    assert sent[-1].url is not None
    assert sent[-1].url.endswith("/api/v1/sessions/a%2Fb%3Fc%23d%20%25%C3%A9-" + ext[11:])


def test_update_sends_only_the_given_fields(
    client: Client, sent: List[requests.PreparedRequest]
) -> None:

    ext = unique()
    _create(client, external_id=ext, tags=["old"], metadata={"keep": True})
    updated = client.update_session(ext, tags=["new", "tags"])
    assert json.loads(sent[-1].body or b"") == {"tags": ["new", "tags"]}
    assert sent[-1].method == "PATCH"
    assert updated["tags"] == ["new", "tags"]
    assert updated["metadata"] == {"keep": True}, "metadata was not sent, so it is kept"

    updated = client.update_session(ext, metadata={"n": 2})
    assert json.loads(sent[-1].body or b"") == {"metadata": {"n": 2}}
    assert updated["metadata"] == {"n": 2}
    assert updated["tags"] == ["new", "tags"]


def test_update_no_longer_offers_external_id(client: Client) -> None:
    """``externalId`` is immutable in production (422): the argument is gone."""
    ext = unique()
    _create(client, external_id=ext)
    with pytest.raises(TypeError):
        client.update_session(ext, external_id="other")  # type: ignore[call-arg]
    assert "external_id" not in inspect.signature(client.update_session).parameters


def test_changing_the_external_id_on_the_wire_is_a_422(client: Client) -> None:
    ext = unique()
    _create(client, external_id=ext)
    with pytest.raises(BadRequestError) as info:
        client.transport.request("PATCH", f"/api/v1/sessions/{ext}", json={"externalId": "x"})
    assert info.value.status == 422
    assert "externalId cannot be changed after creation" in str(info.value)


def test_update_validates_before_any_request(server: LocalServer, client: Client) -> None:
    before = server.request_counts.get("sessions", 0)
    with pytest.raises(ConfigurationError):
        client.update_session("x", tags=["t"] * 11)
    assert server.request_counts.get("sessions", 0) == before


def test_close_sets_reason_and_is_idempotent(client: Client) -> None:
    ext = unique()
    _create(client, external_id=ext)
    closed = client.close_session(ext, reason="done")
    assert closed["closedAt"] is not None
    assert closed["closedReason"] == "done"
    again = client.close_session(ext, reason="other")
    assert again["closedAt"] == closed["closedAt"]
    assert again["closedReason"] == "done"


def test_update_and_close_need_a_secret_key(server: LocalServer, client: Client) -> None:
    created = _create(client, external_id=unique())
    with Client(created["publicAccessToken"], server.url) as public:
        assert public.get_session(created["externalId"])["id"] == created["id"]
        with pytest.raises(PermissionDeniedError):
            public.update_session(created["externalId"], tags=["x"])
        with pytest.raises(PermissionDeniedError):
            public.close_session(created["externalId"])


def test_a_bad_token_is_an_authentication_error(server: LocalServer) -> None:
    with Client("tr_dev_wrong", server.url) as bad, pytest.raises(AuthenticationError):
        bad.get_session("anything")


# -- list ---------------------------------------------------------------------------------


def test_list_walks_45_sessions_over_3_pages() -> None:
    with LocalServer() as srv, Client(srv.secret_key, srv.url) as client:
        ids = [
            client.create_session("chat.agent", "echo", CONFIG, external_id=f"s-{i}")["id"]
            for i in range(45)
        ]
        pages: List[Dict[str, List[str]]] = []
        client.http_session.hooks["response"].append(
            lambda r, *a, **k: pages.append(_query(r.request))
        )
        listed = list(client.list_sessions(page_size=20))
        assert [s["id"] for s in listed] == list(reversed(ids)), "all 45, newest first, no dups"
        assert len(pages) == 3
        assert [p["page[size]"] for p in pages] == [["20"]] * 3
        assert "page[after]" not in pages[0]
        assert pages[1]["page[after]"] != pages[2]["page[after]"]


def test_list_is_lazy_and_validates_at_call_time(server: LocalServer, client: Client) -> None:
    _create(client)
    before = server.request_counts.get("sessions", 0)
    with pytest.raises(ConfigurationError):
        client.list_sessions(page_size=0)
    with pytest.raises(ConfigurationError):
        client.list_sessions(page_size=101)
    with pytest.raises(ConfigurationError):
        client.list_sessions(status="OPEN")
    with pytest.raises(ConfigurationError):
        client.list_sessions(created_from="yesterday")  # type: ignore[arg-type]
    sessions = client.list_sessions()
    assert server.request_counts.get("sessions", 0) == before
    next(sessions)
    assert server.request_counts["sessions"] == before + 1


@pytest.fixture(scope="module")
def filtered() -> Any:
    """A server with sessions that differ in every filterable field."""
    with LocalServer() as srv, Client(srv.secret_key, srv.url) as client:
        made = {}
        made["a"] = client.create_session(
            "chat.agent", "echo", CONFIG, external_id="a", tags=["red", "x"]
        )
        time.sleep(0.01)
        made["b"] = client.create_session(
            "other.kind", "echo", CONFIG, external_id="b", tags=["blue"]
        )
        time.sleep(0.01)
        made["c"] = client.create_session(
            "chat.agent", "summarise", CONFIG, external_id="c", tags=["green"]
        )
        client.close_session("c")
        time.sleep(0.01)
        made["d"] = client.create_session(
            "chat.agent", "echo", CONFIG, external_id="d", expires_at=datetime(2000, 1, 1)
        )
        yield srv, made


def _names(client: Client, **filters: Any) -> List[str]:
    return sorted(s["externalId"] for s in client.list_sessions(**filters))


def test_list_filters(filtered: Any) -> None:
    srv, made = filtered
    seen: List[Dict[str, List[str]]] = []
    with Client(srv.secret_key, srv.url) as client:
        client.http_session.hooks["response"].append(
            lambda r, *a, **k: seen.append(_query(r.request))
        )
        assert _names(client) == ["a", "b", "c", "d"]
        assert _names(client, type="other.kind") == ["b"]
        assert seen[-1]["filter[type]"] == ["other.kind"]
        assert _names(client, tag="red") == ["a"]
        assert seen[-1]["filter[tags]"] == ["red"]
        assert _names(client, task_identifier="summarise") == ["c"]
        assert seen[-1]["filter[taskIdentifier]"] == ["summarise"]
        assert _names(client, external_id="b") == ["b"]
        assert seen[-1]["filter[externalId]"] == ["b"]
        assert _names(client, status="CLOSED") == ["c"]
        assert _names(client, status="EXPIRED") == ["d"]
        assert _names(client, period="1h") == ["a", "b", "c", "d"]
        assert seen[-1]["filter[createdAt][period]"] == ["1h"]

        created_ms = {
            k: int(
                datetime.strptime(v["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ")
                .replace(tzinfo=timezone.utc)
                .timestamp()
                * 1000
            )
            for k, v in made.items()
        }
        b_ms = created_ms["b"]
        assert _names(client, created_from=b_ms) == ["b", "c", "d"]
        assert seen[-1]["filter[createdAt][from]"] == [str(b_ms)]
        assert _names(client, created_to=b_ms) == ["a", "b"]
        assert seen[-1]["filter[createdAt][to]"] == [str(b_ms)]
        b_naive = datetime(1970, 1, 1) + timedelta(milliseconds=b_ms)  # naive = UTC
        assert _names(client, created_from=b_naive, created_to=b_naive) == ["b"]
        assert seen[-1]["filter[createdAt][from]"] == [str(b_ms)]
        b_aware = datetime.fromtimestamp(b_ms / 1000, tz=timezone(timedelta(hours=-5)))
        assert _names(client, created_from=b_aware, created_to=created_ms["c"]) == ["b", "c"]
        assert _names(client, type="chat.agent", tag=["red", "green"], status="ACTIVE") == ["a"]
        assert _names(client, tag="nothing-has-this") == []


# -- retries, pool, lifecycle ----------------------------------------------------------------


def test_default_retry_policy_is_the_sdks() -> None:
    policy = DEFAULT_MANAGEMENT_RETRY
    assert policy.max_attempts == 3
    assert policy.initial_delay == 1.0
    assert policy.backoff(1, rng=lambda: 0.5) == 1.0
    assert policy.backoff(2, rng=lambda: 0.5) == 2.0
    for status in (408, 409, 429, 500, 502, 503):
        assert policy.should_retry(status, {})
    for status in (400, 401, 403, 404, 422):
        assert not policy.should_retry(status, {})
    assert not policy.should_retry(503, {"x-should-retry": "false"})
    assert policy.should_retry(400, {"x-should-retry": "true"})


def test_the_default_back_off_goes_through_the_injected_sleep(server: LocalServer) -> None:
    delays: List[float] = []
    with Client(server.secret_key, server.url, sleep=delays.append) as client:
        created = _create(client, external_id=unique())
        server.faults.fail_next(2, status=503, route="sessions")
        try:
            assert client.get_session(created["id"])["id"] == created["id"]
        finally:
            server.faults.clear()
    assert len(delays) == 2 and 0 < delays[0] < delays[1] <= 5  # the SDK's 1 s then 2 s


def test_transient_failures_are_retried(server: LocalServer, fast_client: Client) -> None:
    created = _create(fast_client, external_id=unique())
    try:
        server.faults.fail_next(2, status=503, route="sessions")
        assert fast_client.get_session(created["id"])["id"] == created["id"]
        server.faults.fail_next(1, status=409, route="sessions")
        assert fast_client.get_session(created["id"])["id"] == created["id"]
        server.faults.fail_next(3, status=502, route="sessions")
        with pytest.raises(ServerError) as info:
            fast_client.get_session(created["id"])
        assert info.value.status == 502
    finally:
        server.faults.clear()


def test_a_409_fault_on_create_is_not_retried(server: LocalServer, fast_client: Client) -> None:
    try:
        server.faults.fail_next(1, status=409, route="sessions")
        with pytest.raises(SessionClosedError):
            _create(fast_client, external_id=unique())
    finally:
        server.faults.clear()


def test_sessions_share_the_client_pool_and_default_to_its_token(
    server: LocalServer, client: Client
) -> None:
    created = _create(client, external_id=unique())
    session = client.session(created["externalId"])
    assert isinstance(session, Session)
    assert session.transport.http_session is client.http_session
    assert session.token == server.secret_key
    scoped = client.session(created["externalId"], token=created["publicAccessToken"])
    assert scoped.token == created["publicAccessToken"]
    assert scoped.append_in("hello")["seq"] == 0
    scoped.close()
    assert client.get_session(created["id"])["id"] == created["id"], "pool still open"
    assert client.transport.token == server.secret_key


def test_branch_header_from_argument_and_environment(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIGGER_PREVIEW_BRANCH", "from-env")
    seen: List[requests.PreparedRequest] = []
    for branch, expected in ((None, "from-env"), ("feature-x", "feature-x")):
        with Client(server.secret_key, server.url, branch=branch) as client:
            client.http_session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
            _create(client)
            assert seen[-1].headers["x-trigger-branch"] == expected
            assert client.branch == expected
            session = client.session("x")
            assert session.transport.branch == expected


def test_defaults_come_from_the_environment(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIGGER_API_URL", server.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", server.secret_key)
    with Client() as client:
        assert client.api_url == server.url
        assert _create(client)["isCached"] is False
    monkeypatch.delenv("TRIGGER_SECRET_KEY")
    monkeypatch.delenv("TRIGGER_ACCESS_TOKEN", raising=False)
    with pytest.raises(ConfigurationError):
        Client()


def test_repr_never_shows_the_token(server: LocalServer) -> None:
    with Client(server.secret_key, server.url, branch="b1") as client:
        text = repr(client)
    assert server.secret_key not in text
    assert server.url in text and "b1" in text


def test_context_manager_closes_the_client(server: LocalServer) -> None:
    with Client(server.secret_key, server.url) as client:
        _create(client)
    with pytest.raises(ConfigurationError):
        client.get_session("x")


def test_several_filter_values_make_one_listing_each_merged_newest_first(filtered: Any) -> None:
    """Production takes one value per filter: never a comma list (PROTOCOL.md §5)."""
    srv, made = filtered
    seen: List[Dict[str, List[str]]] = []
    with Client(srv.secret_key, srv.url) as client:
        client.http_session.hooks["response"].append(
            lambda r, *a, **k: seen.append(_query(r.request))
        )
        listed = list(client.list_sessions(type=["other.kind", "chat.agent"], page_size=1))
        assert [s["externalId"] for s in listed] == ["d", "c", "b", "a"]  # newest first
        assert {q["filter[type]"][0] for q in seen} == {"other.kind", "chat.agent"}
        assert all("," not in v[0] for q in seen for k, v in q.items() if k.startswith("filter"))
        seen.clear()
        tags = list(client.list_sessions(tag=["red", "x", "blue"]))
        assert [s["externalId"] for s in tags] == ["b", "a"]  # "a" has both red and x: once
        assert sorted(q["filter[tags]"][0] for q in seen) == ["blue", "red", "x"]
        assert _names(client, status=["ACTIVE", "EXPIRED"]) == ["a", "b", "d"]
        both = _names(client, type=["chat.agent", "other.kind"], status=["CLOSED", "EXPIRED"])
        assert both == ["c", "d"]
        assert _names(client, type=["chat.agent", "chat.agent"]) == ["a", "c", "d"]


def test_too_many_filter_combinations_are_refused_before_any_request(
    server: LocalServer, client: Client
) -> None:
    before = server.request_counts.get("sessions", 0)
    with pytest.raises(ConfigurationError, match="listings"):
        client.list_sessions(type=[f"t{i}" for i in range(8)], tag=[f"g{i}" for i in range(8)])
    assert server.request_counts.get("sessions", 0) == before
