"""The HTTP transport: a thin wrapper around a ``requests.Session``.

It knows nothing of sessions. It adds the ``Authorization`` header *per request*
(never to ``requests.Session.headers``, so several transports with different
tokens can share one connection pool, and ``requests`` drops the header on a
redirect to another host), the user agent, the preview-branch header, timeouts,
TLS verification, retries with capped jittered exponential backoff
(:class:`RetryPolicy`) and the mapping of error statuses to the typed errors of
:mod:`sessions_client.errors`.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json as jsonlib
import logging
import os
import random
import re
import threading
import time
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    FrozenSet,
    Mapping,
    Optional,
    Tuple,
    Union,
)
from urllib.parse import quote, urlsplit

import requests
import requests.auth

from ._pool import PoolAdapter
from ._version import __version__
from .config import is_secret_key, resolve_api_url, resolve_branch, resolve_token
from .errors import (
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
    SessionsError,
)

logger = logging.getLogger("sessions_client.http")

TimeoutType = Union[float, Tuple[float, Optional[float]]]
DEFAULT_TIMEOUT: Tuple[float, float] = (10.0, 30.0)
USER_AGENT = f"sessions-client/{__version__} python-requests/{requests.__version__}"
MAX_ERROR_BODY = 64 * 1024
_MAX_MESSAGE_CHARS = 500

_NEVER_RETRY = frozenset({501})
_CLOSED_RE = re.compile(r"\b(closed?|expired)\b", re.IGNORECASE)
_SECRET_RE = re.compile(r"\btr_(?:dev|stg|prod|preview)_[A-Za-z0-9_\-]+")
_BEARER_RE = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)


class RetryPolicy:
    """When and how long to wait before repeating a request.

    A request is retried on connection errors, 408, 429 and 5xx except 501 (plus
    ``extra_statuses``), never on other statuses; a response header
    ``x-should-retry: true|false`` overrides that choice. The delay before retry
    ``n`` (1-based) is ``min(max_delay, initial_delay * 2 ** (n - 1))`` reduced by a
    random fraction of up to ``jitter``; a ``Retry-After`` header (seconds or an
    HTTP date) or ``x-ratelimit-reset`` (Unix ms) replaces it. At most
    ``max_attempts`` attempts are made, and no retry starts once it would end
    later than ``total_timeout`` seconds after the first attempt.

    The defaults (5 attempts, 0.2 s doubling to 5 s, 50 % jitter, 60 s in total)
    are the ones used for appends.
    """

    __slots__ = (
        "max_attempts",
        "initial_delay",
        "max_delay",
        "jitter",
        "total_timeout",
        "extra_statuses",
    )

    def __init__(
        self,
        max_attempts: int = 5,
        initial_delay: float = 0.2,
        max_delay: float = 5.0,
        jitter: float = 0.5,
        total_timeout: float = 60.0,
        extra_statuses: Collection[int] = (),
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise TypeError("max_attempts must be an int")
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        if initial_delay < 0 or max_delay < 0 or total_timeout < 0:
            raise ConfigurationError("retry delays and total_timeout must not be negative")
        if not 0.0 <= jitter <= 1.0:
            raise ConfigurationError("jitter must be between 0 and 1")
        self.max_attempts = max_attempts
        self.initial_delay = float(initial_delay)
        self.max_delay = float(max_delay)
        self.jitter = float(jitter)
        self.total_timeout = float(total_timeout)
        self.extra_statuses: FrozenSet[int] = frozenset(extra_statuses)

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_attempts={self.max_attempts}, initial_delay={self.initial_delay}, "
            f"max_delay={self.max_delay}, jitter={self.jitter}, "
            f"total_timeout={self.total_timeout})"
        )

    def backoff(self, retry_number: int, rng: Callable[[], float] = random.random) -> float:
        """The jittered delay in seconds before retry ``retry_number`` (1-based)."""
        exponent = min(max(retry_number - 1, 0), 62)
        base = min(self.max_delay, self.initial_delay * (2.0**exponent))
        return base * (1.0 - self.jitter * rng())

    def should_retry(self, status: int, headers: Mapping[str, str]) -> bool:
        """Whether an answer with this status and these headers is worth repeating."""
        override = (headers.get("x-should-retry") or "").strip().lower()
        if override == "true":
            return True
        if override == "false":
            return False
        if status in self.extra_statuses:
            return True
        if status in _NEVER_RETRY:
            return False
        return status in (408, 429) or 500 <= status <= 599

    @staticmethod
    def server_delay(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
        """Seconds the server asked us to wait (``Retry-After`` or ``x-ratelimit-reset``)."""
        current = time.time() if now is None else now
        retry_after = (headers.get("retry-after") or "").strip()
        if retry_after:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                pass
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - current)
        reset = (headers.get("x-ratelimit-reset") or "").strip()
        if reset:
            try:
                return max(0.0, float(reset) / 1000.0 - current)
            except ValueError:
                return None
        return None


NO_RETRY = RetryPolicy(max_attempts=1)


def quote_segment(value: str) -> str:
    """Percent-encode ``value`` as one URL path segment, like ``encodeURIComponent``.

    Everything except ``A-Z a-z 0-9 - _ . ! ~ * ' ( )`` is escaped (``/``, ``?``,
    ``#``, ``%``, spaces, non-ASCII as UTF-8),
    so an id can never leave its route. Raises ``TypeError`` for a non-string and
    :class:`ConfigurationError` for an empty string and for the dot segments ``.``
    and ``..`` (no escaping survives URL normalisation for those).
    """
    if not isinstance(value, str):
        raise TypeError(f"an id must be a str, not {type(value).__name__}")
    if not value:
        raise ConfigurationError("an id must not be empty")
    if value in (".", ".."):
        raise ConfigurationError(f"{value!r} is not a valid id")
    return quote(value, safe="-_.!~*'()")


def _redact(text: str, token: Optional[str] = None) -> str:
    if token:
        text = text.replace(token, "[redacted]")
    text = _BEARER_RE.sub(r"\1[redacted]", text)
    return _SECRET_RE.sub("[redacted]", text)


def _request_token(response: requests.Response) -> Optional[str]:
    request = getattr(response, "request", None)
    if request is None:
        return None
    auth = request.headers.get("Authorization") or ""
    return auth[7:] if auth.lower().startswith("bearer ") else None


def _message_from_body(body: bytes, fallback: str) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return fallback
    try:
        parsed = jsonlib.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        for key in ("error", "message", "detail"):
            value = parsed.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    if text.lstrip().startswith("<"):
        return fallback
    return text


def error_from_response(response: requests.Response, body: Optional[bytes] = None) -> SessionsError:
    """The typed error for a non-2xx ``response``; ``body`` overrides reading ``.content``.

    400 whose message says closed/expired, 409 and 410 → :class:`SessionClosedError`;
    other 400 and 422 → :class:`BadRequestError`; 401 → :class:`AuthenticationError`;
    403 → :class:`PermissionDeniedError`; 404 → :class:`NotFoundError`;
    413 → :class:`RecordTooLargeError`; 429 → :class:`RateLimitedError`;
    408 and 5xx → :class:`ServerError`; anything else → :class:`APIError`. The
    message is the server's error text (bounded, token removed); ``status`` is set.
    """
    status = response.status_code
    if body is None:
        try:
            body = response.content or b""
        except (requests.RequestException, OSError):
            body = b""
    fallback = f"HTTP {status} {response.reason or ''}".strip()
    message = _message_from_body(body[:MAX_ERROR_BODY], fallback)
    message = _redact(message, _request_token(response))
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[:_MAX_MESSAGE_CHARS] + "…"
    if status == 400:
        if _CLOSED_RE.search(message):
            return SessionClosedError(message, status=status)
        return BadRequestError(message, status=status)
    if status == 422:
        return BadRequestError(message, status=status)
    if status == 401:
        return AuthenticationError(message, status=status)
    if status == 403:
        return PermissionDeniedError(message, status=status)
    if status == 404:
        return NotFoundError(message, status=status)
    if status in (409, 410):
        return SessionClosedError(message, status=status)
    if status == 413:
        return RecordTooLargeError(message, status=status)
    if status == 429:
        delay = RetryPolicy.server_delay(response.headers)
        return RateLimitedError(message, status=status, retry_after=delay)
    if status == 408 or 500 <= status <= 599:
        return ServerError(message, status=status)
    return APIError(message, status=status)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` names and loopback IP literals; no DNS lookup is made."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_certificate_error(exc: Optional[BaseException]) -> bool:
    """True when ``exc`` is a TLS certificate verification failure (never worth a retry)."""
    if not isinstance(exc, requests.exceptions.SSLError):
        return False
    text = str(exc).lower()
    return "certificate_verify_failed" in text or "certificate verify failed" in text


def _network_error(method: str, path: str, exc: BaseException) -> NetworkError:
    if is_certificate_error(exc):
        return NetworkError(
            _redact(
                f"{method} {path} failed: TLS certificate verification failed ({exc}); "
                "pass verify=<path of a CA bundle> to trust a private CA"
            )
        )
    return NetworkError(_redact(f"{method} {path} failed: {type(exc).__name__}: {exc}"))


_PERMANENT_REQUEST_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.TooManyRedirects,
)


class _BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Bearer <token>`` on one request.

    Passed as ``auth=`` so that ``requests`` neither replaces it with ``.netrc``
    credentials nor re-applies it after a redirect to another host.
    """

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth([redacted])"


class Transport:
    """A ``requests.Session`` wrapper that authenticates, retries and maps errors.

    ``api_url`` is the base URL (no trailing ``/``); ``token`` the bearer token
    (readable and replaceable through the thread-safe :attr:`token` property);
    ``branch`` adds ``x-trigger-branch``; ``timeout`` is ``(connect, read)`` seconds
    (or one number for both); ``verify`` is ``True`` (default), ``False`` or the
    path of a CA bundle. Give ``http_session`` to share a connection pool: the
    transport then leaves its adapters alone and never closes it. Otherwise the
    transport makes its own session whose pool holds at most ``pool_maxsize``
    connections (callers beyond that wait for a free connection), and reads the proxy
    and CA-bundle environment variables once, when it is made. ``retry`` is the
    default :class:`RetryPolicy` of :meth:`request`; ``sleep`` is injectable for
    tests.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        branch: Optional[str] = None,
        timeout: TimeoutType = DEFAULT_TIMEOUT,
        verify: Union[bool, str] = True,
        http_session: Optional[requests.Session] = None,
        pool_maxsize: int = 10,
        retry: Optional[RetryPolicy] = None,
        user_agent: str = USER_AGENT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("api_url must be an http:// or https:// URL with a host")
        if isinstance(verify, str):
            if not os.path.exists(verify):
                raise ConfigurationError(f"CA bundle not found: {verify}")
        elif not isinstance(verify, bool):
            raise TypeError("verify must be a bool or the path of a CA bundle")
        if isinstance(pool_maxsize, bool) or not isinstance(pool_maxsize, int):
            raise TypeError("pool_maxsize must be an int")
        if pool_maxsize < 1:
            raise ConfigurationError("pool_maxsize must be at least 1")
        self.api_url = api_url.rstrip("/")
        self.branch = branch
        self.timeout = timeout
        self.verify = verify
        self.retry = retry if retry is not None else RetryPolicy()
        self.user_agent = user_agent
        self.pool_maxsize = pool_maxsize
        self._sleep = sleep
        self._lock = threading.Lock()
        self._token = self._checked_token(token)
        self._host = parts.hostname
        self._plain_http_remote = parts.scheme == "http" and not is_loopback_host(parts.hostname)
        self._warned_insecure = False
        self._owns_session = http_session is None
        if http_session is None:
            http_session = requests.Session()
            adapter = PoolAdapter(pool_maxsize)  # readers never starve calls; waits bounded
            http_session.mount("http://", adapter)
            http_session.mount("https://", adapter)
            self._read_environment_once(http_session)
        self.http_session = http_session
        self._closed = False

    def _read_environment_once(self, http_session: requests.Session) -> None:
        """Apply the proxy and CA-bundle variables once, and stop ``requests`` re-reading
        them (and ``~/.netrc``) on every request.

        With ``trust_env`` on, ``requests`` scans the whole environment twice per request
        for proxies: ~0.14 ms of CPU here, a seventh of an append. The transport reads the
        same variables once, for its ``api_url``, as httpx does when a client is made:
        ``HTTP(S)_PROXY``/``ALL_PROXY`` unless ``NO_PROXY`` excludes the host, and, when
        ``verify`` is ``True``, ``REQUESTS_CA_BUNDLE`` then ``CURL_CA_BUNDLE``. ``.netrc``
        never applied (the bearer token is the only credential).
        """
        http_session.trust_env = False
        http_session.proxies.update(requests.utils.get_environ_proxies(self.api_url))
        if self.verify is True:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                self.verify = bundle

    @classmethod
    def configured(
        cls,
        token: Optional[str] = None,
        api_url: Optional[str] = None,
        *,
        branch: Optional[str] = None,
        **options: Any,
    ) -> Transport:
        """A transport whose unset ``token``, ``api_url`` and ``branch`` come from the
        environment, as the official SDK reads it (see :mod:`sessions_client.config`)."""
        return cls(
            resolve_api_url(api_url),
            resolve_token(token),
            branch=resolve_branch(branch),
            **options,
        )

    @staticmethod
    def _checked_token(token: str) -> str:
        if not isinstance(token, str):
            raise TypeError(f"token must be a str, not {type(token).__name__}")
        if not token or token != token.strip() or "\n" in token or "\r" in token:
            raise ConfigurationError("token must be a non-empty string without whitespace")
        return token

    @property
    def token(self) -> str:
        """The bearer token sent with the next request (thread-safe)."""
        with self._lock:
            return self._token

    @token.setter
    def token(self, value: str) -> None:
        checked = self._checked_token(value)
        with self._lock:
            self._token = checked

    def __repr__(self) -> str:
        branch = f", branch={self.branch!r}" if self.branch else ""
        return f"Transport({self.api_url!r}{branch})"

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (which starts with ``/``)."""
        return self.api_url + path

    def _prepare(self, extra: Optional[Mapping[str, str]]) -> Tuple[Dict[str, str], _BearerAuth]:
        """The headers and the auth of one request (the same on each of its attempts)."""
        token = self.token
        if self._plain_http_remote and is_secret_key(token) and not self._warned_insecure:
            self._warned_insecure = True
            logger.warning(
                "sending a secret key over plain HTTP to %s; use https:// for remote hosts",
                self._host,
            )
        headers: Dict[str, str] = {"User-Agent": self.user_agent}
        if self.branch:
            headers["x-trigger-branch"] = self.branch
        if extra:
            headers.update(extra)
        return headers, _BearerAuth(token)

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError("this transport is closed")

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        params: Optional[Mapping[str, Any]] = None,
        retry: Optional[RetryPolicy] = None,
        timeout: Optional[TimeoutType] = None,
    ) -> requests.Response:
        """Send a request, retrying per ``retry`` (default: the transport's policy).

        Every attempt sends the same body and headers (so an ``X-Part-Id`` is
        reused). Returns the 2xx response with its body read; raises the typed
        error of the last answer (:func:`error_from_response`) or
        :class:`NetworkError` once retries are exhausted.
        """
        self._check_open()
        policy = retry if retry is not None else self.retry
        all_headers, auth = self._prepare(headers)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            server_delay: Optional[float] = None
            try:
                response = self.http_session.request(
                    method,
                    self.url(path),
                    json=json,
                    data=data,
                    headers=all_headers,
                    auth=auth,
                    params=params,
                    timeout=timeout if timeout is not None else self.timeout,
                    verify=self.verify,
                )
            except _PERMANENT_REQUEST_ERRORS as exc:
                raise _network_error(method, path, exc) from exc
            except requests.RequestException as exc:
                error: SessionsError = _network_error(method, path, exc)
                retryable = not is_certificate_error(exc)
                cause: Optional[BaseException] = exc
            else:
                if 200 <= response.status_code < 300:
                    return response
                error = error_from_response(response)
                retryable = policy.should_retry(response.status_code, response.headers)
                server_delay = RetryPolicy.server_delay(response.headers)
                cause = None
                response.close()
            if not retryable or attempt >= policy.max_attempts:
                raise error from cause
            delay = server_delay if server_delay is not None else policy.backoff(attempt)
            if time.monotonic() - started + delay > policy.total_timeout:
                raise error from cause
            logger.info(
                "%s %s: attempt %d failed (%s); retrying in %.2f s",
                method,
                path,
                attempt,
                error,
                delay,
            )
            self._sleep(delay)

    def open_stream(
        self,
        path: str,
        *,
        headers: Optional[Mapping[str, str]] = None,
        connect_timeout: float,
        read_timeout: Optional[float],
        params: Optional[Mapping[str, Any]] = None,
    ) -> requests.Response:
        """Open a streaming ``GET`` once (no retries); the caller must close the response.

        ``read_timeout`` bounds every wait for bytes (``None``: wait forever).
        Raises :class:`NetworkError` when the server cannot be reached and the typed
        error of :func:`error_from_response` for a non-2xx answer.
        """
        self._check_open()
        extra: Dict[str, str] = {"Accept-Encoding": "identity"}
        extra.update(headers or {})
        all_headers, auth = self._prepare(extra)
        try:
            response = self.http_session.get(
                self.url(path),
                headers=all_headers,
                auth=auth,
                params=params,
                stream=True,
                timeout=(connect_timeout, read_timeout),
                verify=self.verify,
            )
        except requests.RequestException as exc:
            raise _network_error("GET", path, exc) from exc
        if 200 <= response.status_code < 300:
            return response
        try:
            body = response.raw.read(MAX_ERROR_BODY)
        except Exception:  # noqa: BLE001 - any failure reading an error body is irrelevant
            body = b""
        finally:
            response.close()
        raise error_from_response(response, body=body or b"")

    def close(self) -> None:
        """Close the connection pool if this transport created it; idempotent."""
        self._closed = True
        if self._owns_session:
            self.http_session.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = [
    "DEFAULT_TIMEOUT",
    "NO_RETRY",
    "RetryPolicy",
    "Transport",
    "USER_AGENT",
    "error_from_response",
    "is_certificate_error",
    "is_loopback_host",
    "quote_segment",
]
