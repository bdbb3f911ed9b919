"""The 401/403 matrix of PROTOCOL.md §1 and issue 2 point 6."""

from __future__ import annotations

import base64
import json
from typing import Dict, Optional

import pytest
import requests

from sessions_client.testing import LocalServer

from ._support import SECRET, SSE, append, create, drain

CHANNEL_401 = {"error": "Invalid or Missing API key"}


@pytest.fixture
def session_ids(server: LocalServer) -> Dict[str, str]:
    created = create(server, "chat-1")
    return {"friendly": created["id"], "external": "chat-1"}


def headers_for(token: Optional[str]) -> Dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def bad_tokens(srv: LocalServer) -> Dict[str, Optional[str]]:
    good = srv.mint_token("chat-1")
    head, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scopes"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return {
        "missing": None,
        "unknown secret key": "tr_dev_other",
        "garbage": "not-a-token",
        "expired": srv.mint_token("chat-1", ttl=-10),
        "bad signature": f"{head}.{payload}.{signature[:-4]}AAAA",
        "forged claims": f"{head}.{forged}.{signature}",
        "foreign signature": _foreign_token(),
    }


def _foreign_token() -> str:
    with LocalServer(secret_key="tr_dev_someone_else") as other:
        return other.mint_token("chat-1")


def test_every_route_answers_401_without_a_valid_token(
    server: LocalServer, session_ids: Dict[str, str]
) -> None:
    base = server.url
    for label, token in bad_tokens(server).items():
        h = headers_for(token)
        checks = [
            requests.post(
                f"{base}/realtime/v1/sessions/chat-1/in/append", data="x", headers=h, timeout=5
            ),
            requests.get(f"{base}/realtime/v1/sessions/chat-1/out", headers=h, timeout=5),
            requests.get(f"{base}/realtime/v1/sessions/chat-1/out/records", headers=h, timeout=5),
        ]
        for response in checks:
            assert response.status_code == 401, (label, response.request.url)
            assert set(response.json()) == {"error"}
            if label in ("missing", "unknown secret key", "garbage"):
                assert response.json() == CHANNEL_401
        management = [
            requests.get(f"{base}/api/v1/sessions", headers=h, timeout=5),
            requests.post(f"{base}/api/v1/sessions", json={}, headers=h, timeout=5),
            requests.get(f"{base}/api/v1/sessions/chat-1", headers=h, timeout=5),
            requests.patch(f"{base}/api/v1/sessions/chat-1", json={}, headers=h, timeout=5),
            requests.post(f"{base}/api/v1/sessions/chat-1/close", json={}, headers=h, timeout=5),
        ]
        for response in management:
            assert response.status_code == 401, (label, response.request.url)
            assert set(response.json()) == {"error"}


@pytest.mark.parametrize("form", ["friendly", "external"])
@pytest.mark.parametrize("scoped_to", ["friendly", "external"])
def test_public_token_scopes_match_either_id_form(
    server: LocalServer, session_ids: Dict[str, str], form: str, scoped_to: str
) -> None:
    token = server.mint_token(session_ids[scoped_to])
    ident = session_ids[form]
    assert append(server, ident, "in", "hi", token=token).status_code == 200
    assert drain(server, ident, "out", token=token).status_code == 200
    assert drain(server, ident, "in", token=token).status_code == 200
    response = requests.get(
        f"{server.url}/api/v1/sessions/{ident}", headers=headers_for(token), timeout=5
    )
    assert response.status_code == 200
    with SSE(server, ident, "out", token=token, headers={"Timeout-Seconds": "1"}) as sse:
        assert sse.status == 200


def test_public_token_never_appends_to_out(
    server: LocalServer, session_ids: Dict[str, str]
) -> None:
    token = server.mint_token("chat-1")
    response = append(server, "chat-1", "out", "x", token=token)
    assert response.status_code == 403
    assert response.json()["ok"] is False
    assert append(server, "chat-1", "out", "x").status_code == 200


def test_public_token_cannot_update_close_or_list(
    server: LocalServer, session_ids: Dict[str, str]
) -> None:
    token = headers_for(server.mint_token("chat-1"))
    base = f"{server.url}/api/v1/sessions"
    assert (
        requests.patch(f"{base}/chat-1", json={"tags": []}, headers=token, timeout=5).status_code
        == 403
    )
    assert (
        requests.post(f"{base}/chat-1/close", json={}, headers=token, timeout=5).status_code == 403
    )
    assert requests.get(base, headers=token, timeout=5).status_code == 403
    assert requests.get(f"{base}/chat-1", headers=token, timeout=5).json()["closedAt"] is None


def test_read_only_token_cannot_append_and_write_only_cannot_read(
    server: LocalServer, session_ids: Dict[str, str]
) -> None:
    read_only = server.mint_token("chat-1", write=False)
    write_only = server.mint_token("chat-1", read=False)
    assert append(server, "chat-1", "in", "x", token=read_only).status_code == 403
    assert append(server, "chat-1", "in", "x", token=write_only).status_code == 200
    assert drain(server, "chat-1", "in", token=write_only).status_code == 403
    with SSE(server, "chat-1", "in", token=write_only) as sse:
        assert sse.status == 403
        assert json.loads(sse.body)["error"] == "Unauthorized"
    assert drain(server, "chat-1", "in", token=read_only).status_code == 200


def test_token_for_another_session_is_403(server: LocalServer, session_ids: Dict[str, str]) -> None:
    create(server, "chat-2")
    other = server.mint_token("chat-2")
    assert append(server, "chat-1", "in", "x", token=other).status_code == 403
    assert drain(server, "chat-1", "out", token=other).status_code == 403
    response = requests.get(
        f"{server.url}/api/v1/sessions/chat-1", headers=headers_for(other), timeout=5
    )
    assert response.status_code == 403
    assert response.json() == {
        "error": "Unauthorized",
        "code": "unauthorized",
        "param": "access_token",
        "type": "authorization",
    }


def test_a_session_token_cannot_create_sessions(server: LocalServer) -> None:
    """``write:sessions:{id}`` is id-scoped: it does not authorise create (PROTOCOL.md §1)."""
    token = server.mint_token("mine")
    create(server, "mine", token=token, expect=403)
    create(server, None, token=token, expect=403)


def test_create_token_is_scoped_to_external_id_and_works(server: LocalServer) -> None:
    token = create(server, "chat-9")["publicAccessToken"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["scopes"] == ["read:sessions:chat-9", "write:sessions:chat-9"]
    assert claims["exp"] > claims["iat"]
    assert append(server, "chat-9", "in", "hello", token=token).json()["ok"] is True


def test_type_level_scope_allows_listing(server: LocalServer) -> None:
    create(server, "a")
    from sessions_client.testing.auth import TokenAuthority

    authority: TokenAuthority = server._tokens  # a broad token, as the dashboard would mint
    token = authority.mint_scopes(["read:sessions"])
    response = requests.get(f"{server.url}/api/v1/sessions", headers=headers_for(token), timeout=5)
    assert response.status_code == 200 and len(response.json()["data"]) == 1


def test_secret_key_is_never_echoed_in_errors(server: LocalServer) -> None:
    response = requests.get(
        f"{server.url}/api/v1/sessions/nope", headers=headers_for(SECRET), timeout=5
    )
    assert SECRET not in response.text
