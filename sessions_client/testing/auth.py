"""Authentication of the local server: the secret key and session public tokens.

- The **secret key** (``LocalServer(secret_key=...)``) may do everything.
- **Session public tokens** are JWTs signed HS256 with a per-database key
  (:meth:`Store.signing_key`), so they stay valid across a restart on the same file.
  Claims: ``sub``, ``pub: true``, ``scopes`` (``read:sessions:{id}`` /
  ``write:sessions:{id}``; the type-level ``read:sessions``, ``write:sessions``,
  ``read:all``, ``write:all`` and ``admin`` are honoured too), ``iat``, ``exp`` and
  ``jti`` (remembered by the store: a well-signed token this database never minted
  is unknown).

A missing, malformed, unknown or expired token is a 401; a valid token without the
needed scope is a 403 (decided by the route with :meth:`Principal.can`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from typing import Any, Dict, FrozenSet, Iterable, List, Optional

from .store import Store

SUBJECT = "env_local"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AuthError(Exception):
    """The request is not authenticated (HTTP 401); the message is safe to show."""


class Principal:
    """Who is calling: the secret key (``secret``) or a public token with scopes."""

    def __init__(self, secret: bool, scopes: Iterable[str] = ()) -> None:
        self.secret = secret
        self.scopes: FrozenSet[str] = frozenset(scopes)

    def can(self, action: str, ids: Iterable[str]) -> bool:
        """True when allowed to ``action`` (``read`` / ``write``) a session known by any
        of ``ids`` (the URL form, the friendly id, the externalId)."""
        if self.secret:
            return True
        if {"admin", f"{action}:all", f"{action}:sessions"} & self.scopes:
            return True
        return any(f"{action}:sessions:{i}" in self.scopes for i in ids)

    def can_list(self) -> bool:
        """True when allowed to list sessions (needs a type-level read scope)."""
        return self.secret or bool({"admin", "read:all", "read:sessions"} & self.scopes)

    def __repr__(self) -> str:
        return "Principal(secret)" if self.secret else f"Principal(scopes={sorted(self.scopes)})"


class TokenAuthority:
    """Mints and verifies tokens; knows the secret key."""

    def __init__(self, store: Store, secret_key: str) -> None:
        self._store = store
        self._secret_key = secret_key
        self._signing_key = store.signing_key()

    def mint(
        self, session: str, *, read: bool = True, write: bool = True, ttl: float = 3600
    ) -> str:
        """A public token scoped to ``session`` (either id form), valid ``ttl`` seconds."""
        scopes: List[str] = []
        if read:
            scopes.append(f"read:sessions:{session}")
        if write:
            scopes.append(f"write:sessions:{session}")
        return self.mint_scopes(scopes, ttl=ttl)

    def mint_scopes(self, scopes: Iterable[str], *, ttl: float = 3600) -> str:
        """A public token carrying exactly ``scopes``."""
        now = time.time()
        jti = secrets.token_hex(12)
        exp = math.ceil(now + ttl)  # never shorter than asked (JWT exp is whole seconds)
        payload: Dict[str, Any] = {
            "sub": SUBJECT,
            "pub": True,
            "scopes": list(scopes),
            "iat": int(now),
            "exp": exp,
            "jti": jti,
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signing_input = f"{header}.{body}".encode("ascii")
        signature = _b64(hmac.new(self._signing_key, signing_input, hashlib.sha256).digest())
        self._store.save_token(jti, SUBJECT, exp)
        return f"{header}.{body}.{signature}"

    def authenticate(self, authorization: Optional[str]) -> Principal:
        """The principal behind an ``Authorization`` header; raises :class:`AuthError`."""
        if not authorization:
            raise AuthError("Invalid or Missing API key")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("Invalid or Missing API key")
        if hmac.compare_digest(token.encode(), self._secret_key.encode()):
            return Principal(secret=True)
        claims = self._verify(token)
        if claims is None:
            raise AuthError("Invalid or Missing API key")
        scopes = claims.get("scopes")
        if not isinstance(scopes, list):
            raise AuthError("Invalid or Missing API key")
        return Principal(secret=False, scopes=[s for s in scopes if isinstance(s, str)])

    def _verify(self, token: str) -> Optional[Dict[str, Any]]:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
            expected = hmac.new(self._signing_key, signing_input, hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(parts[2])):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeError):
            return None
        if not isinstance(claims, dict):
            return None
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= time.time():
            return None
        jti = claims.get("jti")
        if not isinstance(jti, str) or not self._store.token_known(jti):
            return None
        return claims
