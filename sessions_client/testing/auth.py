"""Authentication of the local server, as production does it.

See docs/protocol.md, "Addressing and tokens".

- The **secret key** (``LocalServer(secret_key=...)``) may do everything.
- **Public access tokens** are JWTs signed HS256 with the secret key itself, with the
  claims ``iss: "https://id.trigger.dev"``, ``aud: "https://api.trigger.dev"``,
  ``sub`` (the environment id, :data:`ENVIRONMENT_ID`), ``pub: true``, ``scopes`` and
  ``exp``. There is no token registry: any token signed with the secret key is
  accepted (the official SDK's ``auth.createPublicToken`` signs them client-side), so
  tokens stay valid across restarts with the same key.

A missing or malformed token, a wrong key or signature, a wrong issuer, audience or
subject, or an expired token is a 401; a valid token without the needed scope is a
403 (decided by the route with :meth:`Principal.allows`).

Scopes are ``action:type[:id]`` and are read as production's ``buildJwtAbility``
reads them: bare ``admin`` allows everything; otherwise the action must match (or
be ``*``), type ``all`` matches every type, a scope without an id covers every id of
its type, and an id matches only that id (everything after the second colon).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

from .._tokens import AUDIENCE, ISSUER, public_token_claims, sign_jwt

ENVIRONMENT_ID = "env_local"
"""The ``sub`` of every token: the id of the one environment a local server serves."""

SESSION_TOKEN_TTL = 3600
"""A session's own token lives 60 minutes, as production's ``mintSessionToken``."""

UNAUTHORIZED_BODY = {
    "error": "Unauthorized",
    "code": "unauthorized",
    "param": "access_token",
    "type": "authorization",
}
"""The body of production's 403 when a token lacks the scope."""

Resource = Tuple[str, Optional[str]]
"""``(type, id)``: what a route needs access to; ``id`` None is the collection."""


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_jwt(token: str, secret_key: str, now: float) -> Optional[Dict[str, Any]]:
    """The claims of an HS256 ``token`` signed with ``secret_key`` whose ``iss``, ``aud``
    and ``exp`` are valid at ``now`` (and ``nbf``, if present); None otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_unb64(parts[0]))
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        expected = hmac.new(secret_key.encode("utf-8"), signing_input, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(parts[2])):
            return None
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeError):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return None
    if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
        return None
    audience = claims.get("aud")
    if audience != AUDIENCE and not (isinstance(audience, list) and AUDIENCE in audience):
        return None
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or exp <= now:
        return None
    if nbf is not None and (not isinstance(nbf, (int, float)) or nbf > now):
        return None
    return claims


def _parse_scope(scope: str) -> Optional[Tuple[str, Optional[str], Optional[str]]]:
    parts = scope.split(":")
    if not parts[0]:
        return None
    kind = parts[1] if len(parts) > 1 and parts[1] else None
    ident = ":".join(parts[2:]) or None
    return parts[0], kind, ident


def scope_allows(scope: str, action: str, resource: Resource) -> bool:
    """Whether one scope string grants ``action`` on ``resource`` (production's grammar)."""
    parsed = _parse_scope(scope)
    if parsed is None:
        return False
    scope_action, kind, ident = parsed
    if scope_action == "admin" and kind is None:
        return True
    if scope_action not in (action, "*"):
        return False
    if kind == "all":
        return True
    if kind != resource[0]:
        return False
    return ident is None or ident == resource[1]


class AuthError(Exception):
    """The request is not authenticated (HTTP 401); the message is safe to show."""


class Principal:
    """Who is calling: the secret key (``secret``) or a public token with scopes."""

    def __init__(self, secret: bool, scopes: Iterable[str] = ()) -> None:
        self.secret = secret
        self.scopes: FrozenSet[str] = frozenset(scopes)

    def allows(self, action: str, resources: Iterable[Resource]) -> bool:
        """True when allowed to ``action`` (``read``, ``write``, ``admin``) any of
        ``resources`` (production's ``anyResource``)."""
        if self.secret:
            return True
        wanted = list(resources)
        return any(scope_allows(s, action, r) for s in self.scopes for r in wanted)

    def can(self, action: str, ids: Iterable[str]) -> bool:
        """True when allowed to ``action`` the session known by any of ``ids`` (the URL
        form, the friendly id, the externalId)."""
        return self.allows(action, [("sessions", i) for i in ids])

    def __repr__(self) -> str:
        return "Principal(secret)" if self.secret else f"Principal(scopes={sorted(self.scopes)})"


class TokenAuthority:
    """Mints and verifies public access tokens with the secret key.

    ``clock`` (Unix seconds, default :func:`time.time`) is injectable for tests of
    expiry.
    """

    def __init__(self, secret_key: str, *, clock: Callable[[], float] = time.time) -> None:
        self._secret_key = secret_key
        self._clock = clock

    def claims(self) -> Dict[str, Any]:
        """What ``POST /api/v1/auth/jwt/claims`` answers: ``{"sub", "pub"}``."""
        return {"sub": ENVIRONMENT_ID, "pub": True}

    def mint(
        self, session: str, *, read: bool = True, write: bool = True, ttl: float = SESSION_TOKEN_TTL
    ) -> str:
        """A public token scoped to ``session`` (either id form), valid ``ttl`` seconds."""
        scopes: List[str] = []
        if read:
            scopes.append(f"read:sessions:{session}")
        if write:
            scopes.append(f"write:sessions:{session}")
        return self.mint_scopes(scopes, ttl=ttl)

    def mint_scopes(self, scopes: Iterable[str], *, ttl: float = SESSION_TOKEN_TTL) -> str:
        """A public token carrying exactly ``scopes``, valid ``ttl`` seconds."""
        now = self._clock()
        lifetime = math.ceil(now + ttl) - int(now)  # never shorter than asked (whole seconds)
        payload = public_token_claims(self.claims(), list(scopes), int(now), lifetime)
        return sign_jwt(self._secret_key, payload)

    def authenticate(self, authorization: Optional[str]) -> Principal:
        """The principal behind an ``Authorization`` header; raises :class:`AuthError`."""
        token = _bearer(authorization)
        if hmac.compare_digest(token.encode(), self._secret_key.encode()):
            return Principal(secret=True)
        if not _looks_public(token):
            raise AuthError("Invalid or Missing API key")
        claims = verify_jwt(token, self._secret_key, self._clock())
        if claims is None or claims.get("pub") is not True:
            raise AuthError("Public Access Token is invalid")
        if claims.get("sub") != ENVIRONMENT_ID:
            raise AuthError("Invalid Public Access Token, environment not found.")
        scopes = claims.get("scopes")
        names = [s for s in scopes if isinstance(s, str)] if isinstance(scopes, list) else []
        return Principal(secret=False, scopes=names)

    def authenticate_secret(self, authorization: Optional[str]) -> None:
        """Accept only the secret key (routes that take no public token); raises
        :class:`AuthError`."""
        token = _bearer(authorization)
        if not hmac.compare_digest(token.encode(), self._secret_key.encode()):
            raise AuthError("Invalid or Missing API key")


def _looks_public(token: str) -> bool:
    """Whether ``token`` claims to be a public JWT (``pub: true``), unverified: as
    production, anything else is looked up as an API key (and is then unknown)."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        payload = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeError):
        return False
    return isinstance(payload, dict) and payload.get("pub") is True


def _bearer(authorization: Optional[str]) -> str:
    if not authorization:
        raise AuthError("Invalid or Missing API key")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("Invalid or Missing API key")
    return token
