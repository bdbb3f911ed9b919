"""The management :class:`Client`: create, retrieve, update, close and list sessions.

It mirrors the official SDK's ``sessions.start / retrieve / update / close / list
/ open`` (docs/protocol.md, "Managing sessions") and hands out
:class:`~sessions_client.session.Session` objects that share its connection pool.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import requests

from ._config import is_secret_key
from ._http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    TimeoutType,
    Transport,
    quote_segment,
)
from ._tokens import flatten_scopes, public_token_claims, sign_jwt
from .errors import ConfigurationError, ProtocolError
from .session import Session

logger = logging.getLogger("sessions_client.client")

__all__ = ["Client", "DEFAULT_MANAGEMENT_RETRY", "SESSION_STATUSES"]

#: The official SDK's policy for management calls: 3 attempts, 1 s doubling (no
#: jitter), on connection errors, 408, 409, 429 and 5xx (``x-should-retry`` wins).
DEFAULT_MANAGEMENT_RETRY = RetryPolicy(
    max_attempts=3,
    initial_delay=1.0,
    max_delay=30.0,
    jitter=0.0,
    total_timeout=60.0,
    extra_statuses=(409,),
)

SESSION_STATUSES = ("ACTIVE", "CLOSED", "EXPIRED")
MAX_TAGS = 10
MAX_TAG_CHARS = 128
MAX_EXTERNAL_ID_CHARS = 256
MAX_PAGE_SIZE = 100
MAX_LISTINGS = 50
DEFAULT_PUBLIC_TOKEN_TTL = 900
_MAX_PAGES = 1_000_000

DateLike = Union[datetime, int]


def _without_409(policy: RetryPolicy) -> RetryPolicy:
    """``policy`` minus 409 as a retryable status (``x-should-retry: true`` still retries)."""
    return RetryPolicy(
        max_attempts=policy.max_attempts,
        initial_delay=policy.initial_delay,
        max_delay=policy.max_delay,
        jitter=policy.jitter,
        total_timeout=policy.total_timeout,
        extra_statuses=policy.extra_statuses - {409},
        max_server_delay=policy.max_server_delay,
    )


def _check_str(value: Any, name: str, max_chars: Optional[int] = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string")
    if max_chars is not None and len(value) > max_chars:
        raise ConfigurationError(f"{name} must be at most {max_chars} characters")
    return value


def _check_external_id(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigurationError("external_id must be a string")
    if not 1 <= len(value.strip()) <= MAX_EXTERNAL_ID_CHARS:
        raise ConfigurationError(
            f"external_id must be 1-{MAX_EXTERNAL_ID_CHARS} characters (not only spaces)"
        )
    if value.strip().startswith("session_"):
        raise ConfigurationError("external_id must not start with 'session_' (reserved prefix)")
    return value


def _check_tags(tags: Any) -> List[str]:
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Sequence):
        raise ConfigurationError("tags must be a list of strings")
    if len(tags) > MAX_TAGS:
        raise ConfigurationError(f"at most {MAX_TAGS} tags are allowed (got {len(tags)})")
    for tag in tags:
        if not isinstance(tag, str) or len(tag) > MAX_TAG_CHARS:
            raise ConfigurationError(f"each tag must be a string of at most {MAX_TAG_CHARS} chars")
    return list(tags)


def _check_mapping(value: Any, name: str) -> Dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a dict")
    return dict(value)


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _unix_ms(value: Any, name: str) -> int:
    """A datetime (naive = UTC) or an int of Unix milliseconds, as Unix milliseconds."""
    if isinstance(value, datetime):
        utc = _as_utc(value)
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        delta = utc - epoch
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigurationError(f"{name} must be a datetime or an int of Unix milliseconds")


def _iso8601(value: Any) -> str:
    """``expires_at`` on the wire: ISO 8601 UTC with milliseconds, like JS ``toISOString``."""
    if isinstance(value, str):
        return _check_str(value, "expires_at")
    if isinstance(value, (datetime, int)) and not isinstance(value, bool):
        ms = _unix_ms(value, "expires_at")
        moment = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"
    raise ConfigurationError(
        "expires_at must be a datetime, an ISO 8601 string or an int of Unix milliseconds"
    )


def _fixed_filters(
    page_size: int,
    external_id: Optional[str],
    period: Optional[str],
    created_from: Optional[DateLike],
    created_to: Optional[DateLike],
) -> Dict[str, str]:
    """The listing parameters that take one value: page size, external id, creation time."""
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise ConfigurationError("page_size must be an int")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ConfigurationError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    params = {"page[size]": str(page_size)}
    if external_id is not None:
        params["filter[externalId]"] = _check_str(external_id, "external_id")
    if period is not None:
        params["filter[createdAt][period]"] = _check_str(period, "period")
    if created_from is not None:
        params["filter[createdAt][from]"] = str(_unix_ms(created_from, "created_from"))
    if created_to is not None:
        params["filter[createdAt][to]"] = str(_unix_ms(created_to, "created_to"))
    return params


def _combinations(choices: List[Tuple[str, List[str]]]) -> List[Dict[str, str]]:
    """One parameter set per combination of the filters' values (the server takes one
    value per filter); :class:`ConfigurationError` past ``MAX_LISTINGS``."""
    names = [name for name, _ in choices]
    combos = list(itertools.product(*(values for _, values in choices)))
    if len(combos) > MAX_LISTINGS:
        raise ConfigurationError(
            f"these filters need {len(combos)} listings (one per combination of values);"
            f" at most {MAX_LISTINGS} are made: pass fewer values"
        )
    return [dict(zip(names, combo)) for combo in combos]


def _values(value: Any, name: str, allowed: Optional[Sequence[str]] = None) -> List[str]:
    """A str, or a list of str, as a list of distinct values (one listing each)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigurationError(f"{name} must be a string or a non-empty list of strings")
    for item in items:
        if not isinstance(item, str) or not item:
            raise ConfigurationError(f"{name} must be a string or a non-empty list of strings")
        if allowed is not None and item not in allowed:
            raise ConfigurationError(f"{name} must be among {', '.join(allowed)} (got {item!r})")
    return list(dict.fromkeys(items))


def _newest_first(session: Dict[str, Any]) -> str:
    created = session.get("createdAt")
    return created if isinstance(created, str) else ""


def _json_object(response: requests.Response, what: str) -> Dict[str, Any]:
    try:
        answer = json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        raise ProtocolError(f"the {what} answer is not JSON", status=response.status_code) from None
    if not isinstance(answer, dict):
        raise ProtocolError(f"the {what} answer is not a JSON object", status=response.status_code)
    return answer


class Client:
    """Manage sessions: ``create_session``, ``get_session``, ``update_session``,
    ``close_session``, ``list_sessions``, and ``session(id)`` for channel I/O.

    ``Client(token=None, api_url=None, *, branch=None, http_session=None, verify=True,
    timeout=(10, 30), retry=None, pool_maxsize=10, sleep=time.sleep)``

    - ``token`` defaults to ``TRIGGER_SECRET_KEY`` then ``TRIGGER_ACCESS_TOKEN`` (none →
      :class:`ConfigurationError`); updating and closing need a secret key.
    - ``api_url`` defaults to ``TRIGGER_API_URL`` then ``https://api.trigger.dev``;
      ``branch`` to ``TRIGGER_PREVIEW_BRANCH`` then ``VERCEL_GIT_COMMIT_REF`` (sent as
      ``x-trigger-branch``).
    - ``http_session`` shares a ``requests.Session`` (the client never closes it);
      otherwise the client owns a pool, which the sessions from :meth:`session`
      share: ordinary calls use at most ``pool_maxsize`` connections at once and
      wait at most their connect timeout for one (then :class:`PoolTimeoutError`);
      each open reader uses a connection of its own and never waits, so readers
      never starve other calls. Close the client after its sessions.
    - ``retry`` (default :data:`DEFAULT_MANAGEMENT_RETRY`, the official SDK's policy:
      3 attempts, 1 s then 2 s, on connection errors, 408, 409, 429 honouring
      ``x-ratelimit-reset``/``Retry-After``, and 5xx; ``x-should-retry`` overrides).
      ``create_session`` never retries a 409 unless the server sends
      ``x-should-retry: true``: on create it means the externalId's session is
      closed, a permanent answer, raised at once as :class:`SessionClosedError`.
    - Every management call takes ``timeout=``: the seconds the whole call may take,
      retries and waits included (default: ``retry.total_timeout``, 60 s); past it
      :class:`~sessions_client.errors.DeadlineExceededError`. Answers are read at most
      32 MiB (``max_response_bytes``); writes never follow redirects.
    - ``sleep`` waits out retry back-offs (injectable for tests, as in ``Session``).

    Bad arguments raise :class:`ConfigurationError` before any request; server errors
    raise the typed errors of :mod:`sessions_client.errors`. The token never appears in
    ``repr``, logs or errors. Thread-safe; usable as a context manager.
    """

    def __init__(
        self,
        token: Optional[str] = None,
        api_url: Optional[str] = None,
        *,
        branch: Optional[str] = None,
        http_session: Optional[requests.Session] = None,
        verify: Union[bool, str] = True,
        timeout: TimeoutType = DEFAULT_TIMEOUT,
        retry: Optional[RetryPolicy] = None,
        pool_maxsize: int = 10,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry if retry is not None else DEFAULT_MANAGEMENT_RETRY
        if not isinstance(self.retry, RetryPolicy):
            raise TypeError("retry must be a sessions_client._http.RetryPolicy")
        self._create_retry = _without_409(self.retry)
        self.transport = Transport.configured(
            token,
            api_url,
            branch=branch,
            timeout=timeout,
            verify=verify,
            http_session=http_session,
            pool_maxsize=pool_maxsize,
            retry=self.retry,
            max_response_bytes=max_response_bytes,
            sleep=sleep,
        )

    @property
    def api_url(self) -> str:
        """The base URL of the API (no trailing ``/``)."""
        return self.transport.api_url

    @property
    def branch(self) -> Optional[str]:
        """The preview branch sent as ``x-trigger-branch``, or ``None``."""
        return self.transport.branch

    @property
    def http_session(self) -> requests.Session:
        """The ``requests.Session`` (connection pool) shared with :meth:`session`."""
        return self.transport.http_session

    def __repr__(self) -> str:
        branch = f", branch={self.branch!r}" if self.branch else ""
        return f"Client(api_url={self.api_url!r}{branch})"

    # -- helpers ---------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json_body: Any = None,
        params: Optional[Mapping[str, str]] = None,
        retry: Optional[RetryPolicy] = None,
        timeout: Optional[float] = None,
    ) -> requests.Response:
        headers = None
        if method != "GET":
            # As the SDK: one key per logical call, reused by its retries.
            headers = {"x-trigger-request-idempotency-key": str(uuid.uuid4())}
        response = self.transport.request(
            method,
            path,
            json=json_body,
            params=params,
            headers=headers,
            retry=retry if retry is not None else self.retry,
            deadline=timeout,
        )
        logger.debug("%s %s → %d", method, what, response.status_code)
        return response

    @staticmethod
    def _path(session_id: str) -> str:
        return "/api/v1/sessions/" + quote_segment(session_id)

    # -- management calls ------------------------------------------------------------

    def create_session(
        self,
        type: str,
        task_identifier: str,
        trigger_config: Mapping[str, Any],
        *,
        external_id: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        expires_at: Union[datetime, str, int, None] = None,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Create a session and trigger its first run, or return the live one that
        already has ``external_id`` (``POST /api/v1/sessions``).

        ``trigger_config`` is sent as given (the server wants a ``basePayload`` dict);
        ``tags`` at most 10 strings of ≤128 chars; ``external_id`` 1-256 chars, not
        starting with ``session_``; ``expires_at`` a datetime (naive = UTC), an
        ISO 8601 string or Unix ms. Returns the session dict plus ``runId``,
        ``publicAccessToken`` and ``isCached`` (always a bool: ``False`` when the
        server created the session (201), else the server's value, default ``True``).
        A closed or expired session under ``external_id`` → :class:`SessionClosedError`
        at once (the server's 409 is not retried here).
        """
        body: Dict[str, Any] = {
            "type": _check_str(type, "type", 64),
            "taskIdentifier": _check_str(task_identifier, "task_identifier", 128),
            "triggerConfig": _check_mapping(trigger_config, "trigger_config"),
        }
        if external_id is not None:
            body["externalId"] = _check_external_id(external_id)
        if tags is not None:
            body["tags"] = _check_tags(tags)
        if metadata is not None:
            body["metadata"] = _check_mapping(metadata, "metadata")
        if expires_at is not None:
            body["expiresAt"] = _iso8601(expires_at)
        response = self._send(
            "POST",
            "/api/v1/sessions",
            "create",
            json_body=body,
            retry=self._create_retry,
            timeout=timeout,
        )
        answer = _json_object(response, "create session")
        if response.status_code == 201:
            answer["isCached"] = False
        else:
            answer["isCached"] = bool(answer.get("isCached", True))
        return answer

    def get_session(self, session_id: str, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The session object of ``session_id`` (friendly id or external id);
        unknown → :class:`NotFoundError`."""
        response = self._send("GET", self._path(session_id), "retrieve", timeout=timeout)
        return _json_object(response, "retrieve session")

    def update_session(
        self,
        session_id: str,
        *,
        tags: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Change a session's ``tags`` (replaced) and/or ``metadata`` (replaced); only
        the arguments given are sent. Needs a secret key or a token with the ``admin``
        scope on the session. Returns the updated session object. A session's
        ``externalId`` cannot change after creation (the server answers 422): close it
        and create a new one instead.
        """
        body: Dict[str, Any] = {}
        if tags is not None:
            body["tags"] = _check_tags(tags)
        if metadata is not None:
            body["metadata"] = _check_mapping(metadata, "metadata")
        response = self._send(
            "PATCH", self._path(session_id), "update", json_body=body, timeout=timeout
        )
        return _json_object(response, "update session")

    def close_session(
        self, session_id: str, *, reason: Optional[str] = None, timeout: Optional[float] = None
    ) -> Dict[str, Any]:
        """Close a session (idempotent; needs a secret key) and return its object.

        ``reason`` (≤256 chars) is stored as ``closedReason``.
        """
        body: Dict[str, Any] = {}
        if reason is not None:
            body["reason"] = _check_str(reason, "reason", 256)
        path = self._path(session_id) + "/close"
        response = self._send("POST", path, "close", json_body=body, timeout=timeout)
        return _json_object(response, "close session")

    def list_sessions(
        self,
        *,
        type: Union[str, Sequence[str], None] = None,
        tag: Union[str, Sequence[str], None] = None,
        task_identifier: Union[str, Sequence[str], None] = None,
        external_id: Optional[str] = None,
        status: Union[str, Sequence[str], None] = None,
        period: Optional[str] = None,
        created_from: Optional[DateLike] = None,
        created_to: Optional[DateLike] = None,
        page_size: int = 20,
        timeout: Optional[float] = None,
    ) -> Iterator[Dict[str, Any]]:
        """Iterate over every matching session (newest first), across all pages.

        ``type``, ``tag``, ``task_identifier`` and ``status`` (``ACTIVE``, ``CLOSED``,
        ``EXPIRED``) take a string or a list of strings (any of them matches);
        ``external_id`` is exact; ``period`` is like ``"30m"``, ``"2h"``, ``"7d"``;
        ``created_from`` / ``created_to`` are datetimes (naive = UTC) or Unix ms,
        inclusive; ``page_size`` (1-100) is the number fetched per request.

        The server takes one value per filter (docs/protocol.md, "Managing sessions"),
        so several values
        make one listing per combination of values, merged newest first without
        duplicates (at most ``MAX_LISTINGS`` = 50 listings, else
        :class:`ConfigurationError`). Arguments are checked at once; pages are
        fetched lazily, following ``pagination.next``; ``timeout`` bounds the
        fetch of each page.
        """
        params = _fixed_filters(page_size, external_id, period, created_from, created_to)
        choices: List[Tuple[str, List[str]]] = []
        if type is not None:
            choices.append(("filter[type]", _values(type, "type")))
        if tag is not None:
            choices.append(("filter[tags]", _values(tag, "tag")))
        if task_identifier is not None:
            choices.append(("filter[taskIdentifier]", _values(task_identifier, "task_identifier")))
        if status is not None:
            choices.append(("filter[status]", _values(status, "status", SESSION_STATUSES)))
        listings = [
            self._iter_pages({**params, **combination}, timeout)
            for combination in _combinations(choices)
        ]
        return listings[0] if len(listings) == 1 else self._merged(listings)

    @staticmethod
    def _merged(listings: List[Iterator[Dict[str, Any]]]) -> Iterator[Dict[str, Any]]:
        """Newest-first listings merged newest first, each session once."""
        seen = set()
        for item in heapq.merge(*listings, key=_newest_first, reverse=True):
            if item.get("id") not in seen:
                seen.add(item.get("id"))
                yield item

    def _iter_pages(
        self, params: Dict[str, str], timeout: Optional[float] = None
    ) -> Iterator[Dict[str, Any]]:
        after: Optional[str] = None
        for _ in range(_MAX_PAGES):
            query = dict(params)
            if after is not None:
                query["page[after]"] = after
            response = self._send("GET", "/api/v1/sessions", "list", params=query, timeout=timeout)
            answer = _json_object(response, "list sessions")
            data = answer.get("data")
            if not isinstance(data, list):
                raise ProtocolError("the list answer has no list 'data'")
            for item in data:
                if not isinstance(item, dict):
                    raise ProtocolError("a listed session is not an object")
                yield item
            pagination = answer.get("pagination")
            following = pagination.get("next") if isinstance(pagination, dict) else None
            if not following or not isinstance(following, str):
                return
            if following == after:
                raise ProtocolError("the list answer repeats its own page cursor")
            after = following

    # -- public access tokens --------------------------------------------------------

    def create_public_token(
        self, scopes: Mapping[str, Any], *, expires_in: float = DEFAULT_PUBLIC_TOKEN_TTL
    ) -> str:
        """Mint a public access token, as the SDK's ``auth.createPublicToken``.

        ``scopes`` has the SDK's shape, e.g. ``{"read": {"sessions": "chat-1"},
        "write": {"sessions": ["a", "b"]}}`` (see
        ``sessions_client._tokens.flatten_scopes``); ``expires_in`` is the lifetime
        in seconds (default 15 minutes). The token's ``sub`` and ``pub`` come from
        ``POST /api/v1/auth/jwt/claims``; it is signed HS256 with the client's secret
        key, locally. Hand it to a browser so it can read (or write) those sessions
        directly. Needs a secret key (else :class:`ConfigurationError`).
        """
        flat = flatten_scopes(scopes)
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
            raise ConfigurationError("expires_in must be a number of seconds")
        if not expires_in > 0 or not math.isfinite(expires_in):
            raise ConfigurationError("expires_in must be positive")
        secret_key = self.transport.token
        if not is_secret_key(secret_key):
            raise ConfigurationError("create_public_token needs a secret key (tr_dev_..., ...)")
        response = self._send("POST", "/api/v1/auth/jwt/claims", "jwt claims")
        claims = _json_object(response, "jwt claims")
        now = int(time.time())
        payload = public_token_claims(claims, flat, now, math.ceil(expires_in))
        return sign_jwt(secret_key, payload)

    # -- sessions --------------------------------------------------------------------

    def session(self, session_id: str, *, token: Optional[str] = None) -> Session:
        """A :class:`Session` for ``session_id`` sharing this client's connection pool.

        ``token`` defaults to the client's token (pass a session's
        ``publicAccessToken`` to act with its scopes). The session has its own token
        (a refreshed public token never changes the client's); closing it leaves the
        shared pool open.
        """
        return Session(
            session_id,
            token=token if token is not None else self.transport.token,
            api_url=self.api_url,
            branch=self.branch,
            http_session=self.transport.http_session,
            verify=self.transport.verify,
            timeout=self.transport.timeout,
            max_response_bytes=self.transport.max_response_bytes,
        )

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool if the client created it; idempotent."""
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
