"""CORS of the local server, as production answers it.

Production's session routes are built with ``corsStrategy: "all"``: their route
builder answers an ``OPTIONS`` preflight with remix-utils ``cors`` (status 200, body
``{}``) and passes every other answer (errors included) through the same function.
With the options production uses, that means:

- ``Access-Control-Allow-Origin`` reflects the request's ``Origin`` (with
  ``Vary: Origin``); a request without ``Origin`` gets none.
- A preflight also gets ``Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE``,
  ``Access-Control-Allow-Headers`` reflecting ``Access-Control-Request-Headers`` (with
  ``Vary: Access-Control-Request-Headers``) and ``Access-Control-Max-Age: 300``.
- Answers expose ``x-trigger-jwt,x-trigger-jwt-claims``; an SSE stream exposes ``*``
  as well (every header: ``X-Stream-Version``, ``X-Session-Settled``, ...).

One deliberate addition: non-stream answers also expose ``Retry-After``, which the
local server's fault injection sends on 429/503 answers.

:class:`CorsPolicy` narrows the allowed origins: with a list, only a listed ``Origin``
is reflected (the others get no ``Access-Control-Allow-Origin``, so the browser
refuses the answer).
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

from ..errors import ConfigurationError

Header = Tuple[str, str]

ALLOW_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE"
MAX_AGE_SECONDS = 300
EXPOSED = "x-trigger-jwt,x-trigger-jwt-claims,retry-after"
EXPOSED_ON_STREAMS = "*, x-trigger-jwt,x-trigger-jwt-claims"


def _check_origin(origin: str) -> str:
    if origin == "*":
        return origin
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or origin.endswith("/"):
        raise ConfigurationError(
            f"a CORS origin is scheme://host[:port] (no path), like "
            f"http://localhost:3000, not {origin!r}"
        )
    if parts.path or parts.query or parts.fragment:
        raise ConfigurationError(f"a CORS origin has no path, query or fragment: {origin!r}")
    return origin


class CorsPolicy:
    """Which origins may read the server's answers.

    ``origins=None`` (the default, as production) allows every origin; a list allows
    exactly those origins (``"*"`` in the list allows every origin; an empty list
    allows none). Raises :class:`ConfigurationError` for an origin that is not
    ``scheme://host[:port]``.
    """

    def __init__(self, origins: Optional[Iterable[str]] = None) -> None:
        if origins is None:
            self.origins: Optional[Tuple[str, ...]] = None
        elif isinstance(origins, str):
            raise ConfigurationError("cors_origins is a list of origins, not one string")
        else:
            checked = tuple(_check_origin(o) for o in origins)
            self.origins = None if "*" in checked else checked

    def allows(self, origin: str) -> bool:
        """Whether answers to ``origin`` carry ``Access-Control-Allow-Origin``."""
        return self.origins is None or origin in self.origins

    def headers(self, origin: Optional[str], *, stream: bool = False) -> List[Header]:
        """The CORS headers of every answer to a request from ``origin`` (None: the
        request had no ``Origin`` header, so nothing is allowed, as production)."""
        out: List[Header] = []
        if origin is not None:
            if self.allows(origin):
                out.append(("Access-Control-Allow-Origin", origin))
            out.append(("Vary", "Origin"))
        out.append(("Access-Control-Expose-Headers", EXPOSED_ON_STREAMS if stream else EXPOSED))
        return out

    @staticmethod
    def preflight(requested_headers: Optional[str]) -> List[Header]:
        """The headers a preflight answer adds (methods, request headers, max-age)."""
        out: List[Header] = [("Access-Control-Allow-Methods", ALLOW_METHODS)]
        if requested_headers:
            out.append(("Access-Control-Allow-Headers", requested_headers))
        out.append(("Vary", "Access-Control-Request-Headers"))
        out.append(("Access-Control-Max-Age", str(MAX_AGE_SECONDS)))
        return out
