"""Public access tokens, signed locally as the official SDK's ``auth.createPublicToken``.

A public access token is a JWT signed HS256 with the environment's secret key, with
the claims ``iss: "https://id.trigger.dev"``, ``aud: "https://api.trigger.dev"``,
``sub`` and ``pub`` (from ``POST /api/v1/auth/jwt/claims``), ``scopes``, ``iat`` and
``exp`` (docs/protocol.md, "Addressing and tokens"). Standard library only;
:meth:`Client.create_public_token` is the public entry point.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Dict, List, Mapping

from .errors import ConfigurationError

__all__ = ["ISSUER", "AUDIENCE", "flatten_scopes", "sign_jwt"]

ISSUER = "https://id.trigger.dev"
AUDIENCE = "https://api.trigger.dev"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(secret_key: str, claims: Mapping[str, Any]) -> str:
    """An HS256 JWT of ``claims`` signed with ``secret_key`` (its UTF-8 bytes)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    signature = hmac.new(secret_key.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def flatten_scopes(scopes: Mapping[str, Any]) -> List[str]:
    """Scope strings from the SDK's permission shape, as ``auth.createPublicToken``.

    ``{"read": {"sessions": "chat-1"}, "write": {"sessions": ["a", "b"]}}`` gives
    ``["read:sessions:chat-1", "write:sessions:a", "write:sessions:b"]``; a value of
    ``True`` gives the type-level scope (``{"read": {"sessions": True}}`` →
    ``read:sessions``), and an action mapped to ``True`` the bare action
    (``{"admin": True}`` → ``admin``). Anything else is a :class:`ConfigurationError`.
    """
    if not isinstance(scopes, Mapping):
        raise ConfigurationError('scopes must be a dict like {"read": {"sessions": "chat-1"}}')
    flat: List[str] = []
    for action, properties in scopes.items():
        if not isinstance(action, str) or not action:
            raise ConfigurationError("every scope action must be a non-empty string")
        if properties is True:
            flat.append(action)
        elif isinstance(properties, Mapping):
            for kind, value in properties.items():
                flat.extend(_scope_strings(action, kind, value))
        else:
            raise ConfigurationError(f"scopes[{action!r}] must be a dict or True")
    return flat


def _scope_strings(action: str, kind: Any, value: Any) -> List[str]:
    if not isinstance(kind, str) or not kind:
        raise ConfigurationError(f"the resource types of scopes[{action!r}] must be strings")
    if value is True:
        return [f"{action}:{kind}"]
    ids = [value] if isinstance(value, str) else value
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) and i for i in ids):
        raise ConfigurationError(
            f"scopes[{action!r}][{kind!r}] must be an id, a list of ids or True"
        )
    return [f"{action}:{kind}:{i}" for i in ids]


def public_token_claims(
    claims: Mapping[str, Any], scopes: List[str], now: int, expires_in: int
) -> Dict[str, Any]:
    """The payload of a public token: the server's ``claims`` plus scopes and times."""
    payload: Dict[str, Any] = dict(claims)
    payload.update(
        {"scopes": scopes, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + expires_in}
    )
    return payload
