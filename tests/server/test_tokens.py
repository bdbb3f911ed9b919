"""Public access tokens as production makes and checks them (PROTOCOL.md §1, issue 12).

Every token here is signed by hand (HS256 over the secret key, standard library only),
not by the server: whoever holds the secret key can mint a token the server accepts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Dict, List, Optional

import pytest
import requests

from sessions_client.testing import LocalServer

from ._support import SECRET, SSE, append, bearer, create, drain

NOW = 1_900_000_000.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims: Dict[str, Any], key: str = SECRET, alg: str = "HS256") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"


def claims(scopes: Optional[List[str]] = None, **override: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {
        "iss": "https://id.trigger.dev",
        "aud": "https://api.trigger.dev",
        "sub": "env_local",
        "pub": True,
        "scopes": ["read:sessions", "write:sessions"] if scopes is None else scopes,
        "iat": int(NOW),
        "exp": int(NOW) + 900,
    }
    base.update(override)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def clocked() -> Any:
    now = [NOW]
    with LocalServer(secret_key=SECRET, clock=lambda: now[0]) as srv:
        srv.now = now  # type: ignore[attr-defined]
        yield srv


def status(srv: LocalServer, token: str) -> int:
    return append(srv, "chat-1", "in", "x", token=token).status_code


def test_a_hand_signed_token_is_accepted(clocked: LocalServer) -> None:
    create(clocked, "chat-1")
    token = sign(claims())
    assert status(clocked, token) == 200
    assert drain(clocked, "chat-1", "in", token=token).status_code == 200


@pytest.mark.parametrize(
    "label, token",
    [
        ("wrong key", sign(claims(), key="tr_dev_not_the_key")),
        ("wrong issuer", sign(claims(iss="https://evil.example"))),
        ("wrong audience", sign(claims(aud="https://other.example"))),
        ("no audience", sign(claims(aud=None))),
        ("other environment", sign(claims(sub="env_other"))),
        ("no exp", sign(claims(exp=None))),
        ("not before", sign(claims(nbf=int(NOW) + 60))),
        ("other alg", sign(claims(), alg="none")),
    ],
)
def test_refused_tokens_are_401(clocked: LocalServer, label: str, token: str) -> None:
    create(clocked, "chat-1")
    response = append(clocked, "chat-1", "in", "x", token=token)
    assert response.status_code == 401, label
    assert set(response.json()) == {"error"}


def test_a_bad_signature_is_401(clocked: LocalServer) -> None:
    create(clocked, "chat-1")
    head, body, mac = sign(claims()).split(".")
    tampered = _b64(json.dumps(claims(scopes=["admin"])).encode())
    assert status(clocked, f"{head}.{tampered}.{mac}") == 401
    assert status(clocked, f"{head}.{body}.{mac[:-2]}xx") == 401


def test_a_token_without_pub_is_looked_up_as_an_api_key(clocked: LocalServer) -> None:
    create(clocked, "chat-1")
    response = append(clocked, "chat-1", "in", "x", token=sign(claims(pub=None)))
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or Missing API key"}


def test_expiry_follows_the_clock(clocked: LocalServer) -> None:
    create(clocked, "chat-1")
    token = sign(claims(exp=int(NOW) + 10))
    assert status(clocked, token) == 200
    clocked.now[0] = NOW + 10  # type: ignore[attr-defined]
    assert status(clocked, token) == 401


def test_tokens_survive_a_restart_with_the_same_key(tmp_path: Any) -> None:
    db = str(tmp_path / "s.db")
    with LocalServer(secret_key=SECRET, db=db) as first:
        token = create(first, "chat-1")["publicAccessToken"]
    with LocalServer(secret_key=SECRET, db=db) as second:
        assert status(second, token) == 200
    with LocalServer(secret_key="tr_dev_rotated", db=db) as rotated:
        assert status(rotated, token) == 401


def test_minted_tokens_carry_production_claims(server: LocalServer) -> None:
    token = create(server, "chat-9")["publicAccessToken"]
    payload = token.split(".")[1]
    minted = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert minted["iss"] == "https://id.trigger.dev"
    assert minted["aud"] == "https://api.trigger.dev"
    assert minted["sub"] == "env_local" and minted["pub"] is True
    assert minted["scopes"] == ["read:sessions:chat-9", "write:sessions:chat-9"]
    assert 3590 <= minted["exp"] - time.time() <= 3610  # a session token lives 60 minutes
    assert token.split(".")[0] == _b64(b'{"alg":"HS256","typ":"JWT"}')
    assert hmac.compare_digest(
        token.split(".")[2],
        _b64(hmac.new(SECRET.encode(), token.rsplit(".", 1)[0].encode(), "sha256").digest()),
    )


# ---------------------------------------------------------------- claims route


def test_claims_route_answers_sub_and_pub_for_the_secret_key(server: LocalServer) -> None:
    url = f"{server.url}/api/v1/auth/jwt/claims"
    response = requests.post(url, headers=bearer(SECRET), timeout=5)
    assert response.status_code == 200 and response.json() == {"sub": "env_local", "pub": True}
    public = server.mint_token("chat-1")
    assert requests.post(url, headers=bearer(public), timeout=5).status_code == 401
    assert requests.post(url, timeout=5).status_code == 401
    assert requests.get(url, headers=bearer(SECRET), timeout=5).status_code == 405


# ---------------------------------------------------------------------- scopes


def _create(srv: LocalServer, token: str, task: str = "echo", ext: Optional[str] = None) -> int:
    body: Dict[str, Any] = {"type": "chat.agent", "taskIdentifier": task}
    body["triggerConfig"] = {"basePayload": {}}
    if ext:
        body["externalId"] = ext
    url = f"{srv.url}/api/v1/sessions"
    return requests.post(url, json=body, headers=bearer(token), timeout=5).status_code


@pytest.mark.parametrize(
    "scopes, allowed",
    [
        (["write:tasks:echo"], True),
        (["write:tasks"], True),
        (["write:sessions"], True),
        (["write:all"], True),
        (["*:all"], True),
        (["*:tasks:echo"], True),
        (["admin"], True),
        (["write:tasks:other"], False),
        (["write:sessions:new-chat"], False),  # id-scoped: never authorises create
        (["read:sessions", "read:tasks:echo"], False),
        (["admin:sessions"], False),  # admin:<type> is the admin action only
    ],
)
def test_create_scopes(clocked: LocalServer, scopes: List[str], allowed: bool) -> None:
    code = _create(clocked, sign(claims(scopes)), ext="new-chat")
    assert code == (201 if allowed else 403), scopes


def _manage(srv: LocalServer, token: str, path: str) -> List[int]:
    url = f"{srv.url}/api/v1/sessions/{path}"
    patch = requests.patch(url, json={"tags": ["t"]}, headers=bearer(token), timeout=5)
    close = requests.post(url + "/close", json={}, headers=bearer(token), timeout=5)
    return [patch.status_code, close.status_code]


@pytest.mark.parametrize(
    "scopes, allowed",
    [
        (["admin"], True),
        (["admin:sessions"], True),
        (["admin:sessions:chat-1"], True),
        (["admin:all"], True),
        (["*:sessions:chat-1"], True),
        (["write:sessions", "read:sessions"], False),
        (["write:all"], False),
        (["admin:sessions:chat-2"], False),
        (["admin:tasks"], False),
    ],
)
def test_update_and_close_need_the_admin_action(
    clocked: LocalServer, scopes: List[str], allowed: bool
) -> None:
    create(clocked, "chat-1")
    codes = _manage(clocked, sign(claims(scopes)), "chat-1")
    assert codes == ([200, 200] if allowed else [403, 403]), scopes


def test_admin_scope_is_checked_on_the_url_form(clocked: LocalServer) -> None:
    """Production authorises update/close on the id of the URL only."""
    friendly = create(clocked, "chat-1")["id"]
    assert _manage(clocked, sign(claims(["admin:sessions:chat-1"])), friendly) == [403, 403]


def test_an_under_scoped_update_of_a_missing_session_is_403(clocked: LocalServer) -> None:
    token = sign(claims(["read:sessions"]))
    assert _manage(clocked, token, "missing") == [403, 403]
    assert _manage(clocked, SECRET, "missing") == [404, 404]


def _list(srv: LocalServer, token: str, **params: str) -> int:
    url = f"{srv.url}/api/v1/sessions"
    return requests.get(url, params=params, headers=bearer(token), timeout=5).status_code


@pytest.mark.parametrize(
    "scopes, task_filter, allowed",
    [
        (["read:sessions"], None, True),
        (["read:tasks"], None, True),
        (["read:all"], None, True),
        (["*:all"], None, True),
        (["admin"], None, True),
        (["read:tasks:echo"], "echo", True),
        (["read:tasks:echo"], None, False),
        (["read:tasks:echo"], "other", False),
        (["read:sessions:chat-1"], None, False),
        (["write:sessions"], None, False),
    ],
)
def test_list_scopes(
    clocked: LocalServer, scopes: List[str], task_filter: Optional[str], allowed: bool
) -> None:
    create(clocked, "chat-1")
    params = {"filter[taskIdentifier]": task_filter} if task_filter else {}
    assert _list(clocked, sign(claims(scopes)), **params) == (200 if allowed else 403)


@pytest.mark.parametrize(
    "scopes, can_read, can_write",
    [
        (["*:sessions:chat-1"], True, True),
        (["*:sessions"], True, True),
        (["*:all"], True, True),
        (["read:all"], True, False),
        (["write:sessions:chat-1"], False, True),
        (["read:sessions:chat-"], False, False),
        (["read:session:chat-1"], False, False),
    ],
)
def test_channel_scopes_and_wildcards(
    clocked: LocalServer, scopes: List[str], can_read: bool, can_write: bool
) -> None:
    create(clocked, "chat-1")
    token = sign(claims(scopes))
    assert (drain(clocked, "chat-1", "in", token=token).status_code == 200) is can_read
    with SSE(clocked, "chat-1", "in", token=token, headers={"Timeout-Seconds": "1"}) as sse:
        assert (sse.status == 200) is can_read
    assert (status(clocked, token) == 200) is can_write


def test_scope_ids_may_contain_colons(clocked: LocalServer) -> None:
    create(clocked, "team:chat")
    token = sign(claims(["read:sessions:team:chat"]))
    assert drain(clocked, "team:chat", "in", token=token).status_code == 200
