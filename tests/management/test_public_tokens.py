"""``Client.create_public_token``: the SDK's ``auth.createPublicToken`` in Python."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Dict

import pytest
import requests

from sessions_client import Client, Session
from sessions_client._tokens import flatten_scopes
from sessions_client.errors import ConfigurationError, PermissionDeniedError
from sessions_client.testing import LocalServer

from .conftest import unique


def _claims(token: str) -> Dict[str, Any]:
    payload = token.split(".")[1]
    decoded: Dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


def test_the_token_is_hs256_over_the_secret_key_with_production_claims(
    server: LocalServer, client: Client, sent: Any
) -> None:
    before = time.time()
    token = client.create_public_token({"read": {"sessions": "chat-1"}})
    claims = _claims(token)
    assert claims["iss"] == "https://id.trigger.dev" and claims["aud"] == "https://api.trigger.dev"
    assert claims["sub"] == "env_local" and claims["pub"] is True  # from the claims route
    assert claims["scopes"] == ["read:sessions:chat-1"]
    assert claims["exp"] - claims["iat"] == 900 and claims["iat"] >= int(before)
    signing_input, signature = token.rsplit(".", 1)
    mac = hmac.new(server.secret_key.encode(), signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(mac).rstrip(b"=").decode() == signature
    assert [r.path_url for r in sent] == ["/api/v1/auth/jwt/claims"]
    assert sent[0].method == "POST"


def test_expires_in(client: Client) -> None:
    claims = _claims(client.create_public_token({"read": {"sessions": True}}, expires_in=60.5))
    assert claims["exp"] - claims["iat"] == 61
    for bad in (0, -1, float("inf"), "15m", True):
        with pytest.raises(ConfigurationError):
            client.create_public_token({}, expires_in=bad)  # type: ignore[arg-type]


def test_the_server_accepts_the_token_within_its_scopes(
    server: LocalServer, client: Client
) -> None:
    mine, other = unique(), unique()
    for ext in (mine, other):
        client.create_session("chat.agent", "echo", {"basePayload": {}}, external_id=ext)
    token = client.create_public_token({"read": {"sessions": mine}, "write": {"sessions": [mine]}})
    with Session(mine, token, server.url) as browser:
        assert browser.append_in("hi")["seq"] == 0
        assert [r["data"] for r in browser.drain_in()] == ["hi"]
    with Session(other, token, server.url) as elsewhere, pytest.raises(PermissionDeniedError):
        elsewhere.drain_in()


def test_flatten_scopes_as_the_sdk() -> None:
    scopes = {
        "read": {"sessions": "chat-1", "runs": True},
        "write": {"sessions": ["a", "b"]},
        "admin": True,
    }
    assert flatten_scopes(scopes) == [
        "read:sessions:chat-1",
        "read:runs",
        "write:sessions:a",
        "write:sessions:b",
        "admin",
    ]
    assert flatten_scopes({}) == []
    for bad in ("read:sessions", {"read": "sessions"}, {"read": {"sessions": 3}}, {"": True}):
        with pytest.raises(ConfigurationError):
            flatten_scopes(bad)  # type: ignore[arg-type]


def test_bad_scopes_and_public_tokens_are_refused_before_any_request(
    server: LocalServer, client: Client
) -> None:
    before = server.request_counts.get("claims", 0)
    with pytest.raises(ConfigurationError):
        client.create_public_token({"read": {"sessions": 1}})
    public = server.mint_token("chat-1")
    with Client(public, server.url) as browser, pytest.raises(ConfigurationError):
        browser.create_public_token({"read": {"sessions": "chat-1"}})
    assert server.request_counts.get("claims", 0) == before
    assert public not in repr(client)


def test_the_flask_example_of_the_readme_shape(server: LocalServer, client: Client) -> None:
    """What a WSGI view hands its page: a token that reads one session directly."""
    ext = unique()
    client.create_session("chat.agent", "echo", {"basePayload": {}}, external_id=ext)
    token = client.create_public_token({"read": {"sessions": ext}}, expires_in=300)
    response = requests.get(
        f"{server.url}/realtime/v1/sessions/{ext}/out/records",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 200 and response.json() == {"records": []}


def test_a_failing_claims_route_is_retried_then_raises(server: LocalServer) -> None:
    from sessions_client.errors import ServerError

    from .conftest import FAST_RETRY

    with Client(server.secret_key, server.url, retry=FAST_RETRY) as client:
        server.faults.fail_next(1, status=503, route="claims")
        assert _claims(client.create_public_token({"read": {"sessions": True}}))["pub"] is True
        server.faults.fail_next(3, status=503, route="claims")
        with pytest.raises(ServerError):
            client.create_public_token({"read": {"sessions": True}})
