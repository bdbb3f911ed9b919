"""The HTTP transport: a thin wrapper around a ``requests.Session``.

It knows nothing of sessions. It adds the ``Authorization`` header *per request*
(never to ``requests.Session.headers``, so several transports with different
tokens can share one connection pool, and ``requests`` drops the header on a
redirect to another host), the user agent, the preview-branch header, timeouts,
TLS verification, retries with capped jittered exponential backoff
(:class:`RetryPolicy`) and the mapping of error statuses to the typed errors of
:mod:`sessions_client.errors`.

Every non-streaming call is bounded: one deadline covers connecting, the answer's
headers and body, each retry and each wait (:mod:`sessions_client._deadline` cuts a
connection that outlives it), the answer is read at most ``max_response_bytes``
before and after decompression (error answers at most :data:`MAX_ERROR_BODY`), a
server's ``Retry-After`` is obeyed up to :attr:`RetryPolicy.max_server_delay`, and
only ``GET``/``HEAD`` follow redirects.
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import json as jsonlib
import logging
import os
import random
import re
import threading
import time
import zlib
from typing import (
    Any,
    Callable,
    Collection,
    ContextManager,
    Dict,
    FrozenSet,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)
from urllib.parse import quote, urlsplit

import requests
import requests.auth
import urllib3.exceptions

from ._config import is_secret_key, resolve_api_url, resolve_branch, resolve_token
from ._deadline import CallGuard
from ._pool import PoolAdapter
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DeadlineExceededError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    RecordTooLargeError,
    RedirectError,
    ResponseTooLargeError,
    ServerError,
    SessionClosedError,
    SessionsError,
)

logger = logging.getLogger("sessions_client._http")

TimeoutType = Union[float, Tuple[float, Optional[float]]]
DEFAULT_TIMEOUT: Tuple[float, float] = (10.0, 30.0)
USER_AGENT = f"sessions-client/{__version__} python-requests/{requests.__version__}"
MAX_ERROR_BODY = 64 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""The largest answer body a non-streaming call reads, before and after decompression."""
MAX_SERVER_DELAY = 60.0
"""The longest ``Retry-After`` / ``x-ratelimit-reset`` wait obeyed by default (seconds)."""
_READ_CHUNK = 64 * 1024
_ACCEPT_ENCODING = "gzip, deflate"
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
    HTTP date) or ``x-ratelimit-reset`` (Unix ms) replaces it, up to
    ``max_server_delay`` seconds: a longer wait raises :class:`RateLimitedError` at
    once, its ``retry_after`` the server's value. At most ``max_attempts`` attempts
    are made (each wait is one retry), and ``total_timeout`` is the default deadline
    of a call: connecting, answers, retries and waits all end within it.

    The defaults (5 attempts, 0.2 s doubling to 5 s, 50 % jitter, 60 s in total,
    server waits up to 60 s) are the ones used for appends.
    """

    __slots__ = (
        "max_attempts",
        "initial_delay",
        "max_delay",
        "jitter",
        "total_timeout",
        "extra_statuses",
        "max_server_delay",
    )

    def __init__(
        self,
        max_attempts: int = 5,
        initial_delay: float = 0.2,
        max_delay: float = 5.0,
        jitter: float = 0.5,
        total_timeout: float = 60.0,
        extra_statuses: Collection[int] = (),
        max_server_delay: float = MAX_SERVER_DELAY,
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise TypeError("max_attempts must be an int")
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        if min(initial_delay, max_delay, total_timeout, max_server_delay) < 0:
            raise ConfigurationError("retry delays and total_timeout must not be negative")
        if not 0.0 <= jitter <= 1.0:
            raise ConfigurationError("jitter must be between 0 and 1")
        self.max_attempts = max_attempts
        self.initial_delay = float(initial_delay)
        self.max_delay = float(max_delay)
        self.jitter = float(jitter)
        self.total_timeout = float(total_timeout)
        self.extra_statuses: FrozenSet[int] = frozenset(extra_statuses)
        self.max_server_delay = float(max_server_delay)

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_attempts={self.max_attempts}, initial_delay={self.initial_delay}, "
            f"max_delay={self.max_delay}, jitter={self.jitter}, "
            f"total_timeout={self.total_timeout}, max_server_delay={self.max_server_delay})"
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
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
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


class _ReadBody:
    """An answer body already read, standing in for ``response.raw`` so that
    ``response.content`` and ``response.json()`` work as usual (handed over whole,
    so ``requests`` makes no copy of it)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._unread = True

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        if self._unread:
            self._unread = False
            return self.body
        return b""

    def close(self) -> None:
        self._unread = False


class _BodyBroken(Exception):
    """The connection failed while an answer body was read."""


def _decoder(encoding: Optional[str]) -> Any:
    """A zlib decompressor for a ``Content-Encoding``, None for identity."""
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return zlib.decompressobj(32 + zlib.MAX_WBITS)
    raise ProtocolError(f"unsupported Content-Encoding {name!r} in an answer")


def _read_pieces(raw: Any, decoder: Any, limit: int) -> Tuple[List[bytes], bool]:
    """The body's pieces, decompressed by ``decoder`` (None: identity), and whether it
    went past ``limit`` bytes on the wire or decompressed (reading stops there; no
    decompression step makes more than :data:`_READ_CHUNK` bytes at once)."""
    pieces: List[bytes] = []
    wire = size = 0
    while wire <= limit and size <= limit:
        data = raw.read(_READ_CHUNK, decode_content=False)
        if not data:
            if decoder is not None:
                pieces.append(decoder.flush())
                size += len(pieces[-1])
            break
        wire += len(data)
        if decoder is None:
            pieces.append(data)
            size += len(data)
        while decoder is not None and data and size <= limit:
            pieces.append(decoder.decompress(data, _READ_CHUNK))
            size += len(pieces[-1])
            data = decoder.unconsumed_tail
    return pieces, wire > limit or size > limit


def read_body(response: requests.Response, limit: int, *, truncate: bool = False) -> bytes:
    """Read the body of a ``stream=True`` answer, decompressed, reading and keeping at
    most ``limit`` bytes both on the wire and decompressed (a gzip bomb stops at the
    cap); afterwards ``response.content`` is that body.

    Past the cap the connection is closed and, with ``truncate``, the first ``limit``
    bytes are returned, else :class:`ResponseTooLargeError` is raised. A broken
    connection raises ``_BodyBroken``, a corrupt compressed body :class:`ProtocolError`.
    """
    raw = response.raw
    if isinstance(raw, _ReadBody):
        return raw.body
    if raw is None:  # an adapter that answered with the body already read
        body = response.content or b""
        if len(body) > limit and not truncate:
            raise ResponseTooLargeError(
                f"the answer is larger than {limit} bytes (max_response_bytes)",
                status=response.status_code,
            )
        return body[:limit]
    decoder = _decoder(response.headers.get("Content-Encoding"))
    try:
        chunks, over = _read_pieces(raw, decoder, limit)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        response.close()
        raise _BodyBroken(f"{type(exc).__name__}: {exc}") from exc
    except zlib.error as exc:
        response.close()
        raise ProtocolError(f"a compressed answer could not be decompressed: {exc}") from None
    if over:
        response.close()
        if not truncate:
            raise ResponseTooLargeError(
                f"the answer is larger than {limit} bytes (max_response_bytes)",
                status=response.status_code,
            )
        body = b"".join(chunks)[:limit]
    else:
        raw.release_conn()
        body = b"".join(chunks)
    del chunks
    response.raw = _ReadBody(body)
    return body


def _bound_redirect_body(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A ``requests`` response hook: a redirect's body is read bounded (``requests``
    would read it whole before following the redirect)."""
    if response.is_redirect:
        read_body(response, MAX_ERROR_BODY, truncate=True)


def _attempt_timeout(timeout: TimeoutType, left: float) -> Tuple[float, float]:
    """The ``(connect, read)`` timeouts of one attempt, none longer than ``left``."""
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    return min(connect, left), left if read is None else min(read, left)


class _Failure(NamedTuple):
    """A failed attempt: the error it raises unless retried."""

    error: SessionsError
    cause: Optional[BaseException]
    retryable: bool
    server_delay: Optional[float]


def _wait_refused(failure: _Failure, policy: RetryPolicy) -> RateLimitedError:
    delay = failure.server_delay or 0.0
    return RateLimitedError(
        f"{failure.error.message}; the server asks to wait {delay:.0f} s before a retry, "
        f"more than max_server_delay ({policy.max_server_delay:g} s)",
        status=failure.error.status,
        retry_after=delay,
    )


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
    transport then leaves its adapters alone and never closes it (and a deadline
    cannot cut a server that trickles bytes: see :mod:`sessions_client._deadline`).
    Otherwise the transport makes its own session whose pool holds at most
    ``pool_maxsize`` connections (callers beyond that wait for a free connection), and
    reads the proxy and CA-bundle environment variables once, when it is made.
    ``retry`` is the default :class:`RetryPolicy` of :meth:`request`;
    ``max_response_bytes`` (32 MiB) caps the answer bodies of :meth:`request`;
    ``sleep`` is injectable for tests.
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
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
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int):
            raise TypeError("max_response_bytes must be an int")
        if max_response_bytes < 1:
            raise ConfigurationError("max_response_bytes must be at least 1")
        self.max_response_bytes = max_response_bytes
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
        environment, as the official SDK reads it (see :mod:`sessions_client._config`)."""
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
        deadline: Optional[float] = None,
    ) -> requests.Response:
        """Send a request, retrying per ``retry`` (default: the transport's policy).

        ``deadline`` is the seconds the whole call may take: connecting, the answer's
        headers and body, every retry and every wait (default: the policy's
        ``total_timeout``); past it :class:`DeadlineExceededError`. ``timeout``
        replaces the transport's ``(connect, read)`` socket timeouts, which bound each
        wait for bytes within the deadline. Every attempt sends the same body and
        headers (so an ``X-Part-Id`` is reused). Returns the 2xx response with its body
        read (at most ``max_response_bytes``, else :class:`ResponseTooLargeError`);
        raises the typed error of the last answer (:func:`error_from_response`),
        :class:`RedirectError` for a 3xx to anything but ``GET``/``HEAD``, or
        :class:`NetworkError` once retries are exhausted.
        """
        self._check_open()
        policy = retry if retry is not None else self.retry
        budget = policy.total_timeout if deadline is None else float(deadline)
        if not budget > 0:
            raise ConfigurationError("a call's timeout must be positive")
        all_headers, auth = self._prepare(headers)
        if not any(name.lower() == "accept-encoding" for name in all_headers):
            all_headers["Accept-Encoding"] = _ACCEPT_ENCODING
        send: Dict[str, Any] = {
            "json": json,
            "data": data,
            "headers": all_headers,
            "auth": auth,
            "params": params,
            "verify": self.verify,
        }
        ends = time.monotonic() + budget
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(method, path, send, policy, ends, timeout or self.timeout)
            if isinstance(outcome, requests.Response):
                return outcome
            delay = self._retry_delay(outcome, policy, attempt, ends)
            logger.info(
                "%s %s: attempt %d failed (%s); retrying in %.2f s",
                method,
                path,
                attempt,
                outcome.error,
                delay,
            )
            self._sleep(delay)

    def _attempt(
        self,
        method: str,
        path: str,
        send: Dict[str, Any],
        policy: RetryPolicy,
        ends: float,
        timeout: TimeoutType,
    ) -> Union[requests.Response, _Failure]:
        """One attempt, guarded by the call's deadline: the 2xx response or a failure."""
        left = ends - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError(f"{method} {path} did not complete before its deadline")
        redirects = method in ("GET", "HEAD")
        guard = CallGuard(ends)
        try:
            with self._call_slot(timeout, left), guard:
                response = self.http_session.request(
                    method,
                    self.url(path),
                    stream=True,
                    allow_redirects=redirects,
                    hooks=self._redirect_hooks() if redirects else None,
                    timeout=_attempt_timeout(timeout, left),
                    **send,
                )
                outcome = self._outcome(method, path, response, policy)
        except _PERMANENT_REQUEST_ERRORS as exc:
            raise _network_error(method, path, exc) from exc
        except (requests.RequestException, _BodyBroken) as exc:
            if guard.fired or time.monotonic() >= ends:
                raise DeadlineExceededError(
                    f"{method} {path} did not complete before its deadline"
                ) from exc
            return _Failure(
                _network_error(method, path, exc), exc, not is_certificate_error(exc), None
            )
        finally:
            guard.finish()
        if guard.fired:
            raise DeadlineExceededError(f"{method} {path} did not complete before its deadline")
        return outcome

    def _call_slot(self, timeout: TimeoutType, left: float) -> ContextManager[None]:
        """A slot of the transport's own pool held for one attempt, the answer's body
        included (waited for at most the connect timeout); nothing for a session the
        caller gave."""
        adapter = self.http_session.get_adapter(self.api_url) if self._owns_session else None
        if not isinstance(adapter, PoolAdapter):
            return contextlib.nullcontext()
        return adapter.call_slot(_attempt_timeout(timeout, left)[0])

    def _redirect_hooks(self) -> Dict[str, List[Callable[..., Any]]]:
        """The session's response hooks, after one that bounds a redirect's body (given
        per request, these replace the session's list, hence the copy)."""
        return {"response": [_bound_redirect_body, *self.http_session.hooks.get("response", [])]}

    def _outcome(
        self, method: str, path: str, response: requests.Response, policy: RetryPolicy
    ) -> Union[requests.Response, _Failure]:
        """Read the answer (bounded): the 2xx response, or the failure it means."""
        status = response.status_code
        if 200 <= status < 300:
            read_body(response, self.max_response_bytes)
            return response
        body = read_body(response, MAX_ERROR_BODY, truncate=True)
        if 300 <= status < 400:
            location = response.headers.get("Location")
            raise RedirectError(
                _redact(
                    f"{method} {path} was answered with a redirect to {location or '(none)'}; "
                    f"{method} requests never follow redirects (is api_url right?)"
                ),
                status=status,
                location=location,
            )
        return _Failure(
            error_from_response(response, body),
            None,
            policy.should_retry(status, response.headers),
            RetryPolicy.server_delay(response.headers),
        )

    @staticmethod
    def _retry_delay(failure: _Failure, policy: RetryPolicy, attempt: int, ends: float) -> float:
        """The wait before the next attempt; raises the failure's error when there is none."""
        if not failure.retryable or attempt >= policy.max_attempts:
            raise failure.error from failure.cause
        server_delay = failure.server_delay
        if server_delay is not None and server_delay > policy.max_server_delay:
            raise _wait_refused(failure, policy) from failure.cause
        delay = server_delay if server_delay is not None else policy.backoff(attempt)
        if time.monotonic() + delay >= ends:
            raise failure.error from failure.cause
        return delay

    def open_stream(
        self,
        path: str,
        *,
        headers: Optional[Mapping[str, str]] = None,
        connect_timeout: float,
        read_timeout: Optional[float],
        params: Optional[Mapping[str, Any]] = None,
        deadline: Optional[float] = None,
    ) -> requests.Response:
        """Open a streaming ``GET`` once (no retries); the caller must close the response.

        ``read_timeout`` bounds every wait for bytes (``None``: wait forever);
        ``deadline`` (a ``time.monotonic()`` instant) is when the connection is shut
        down, whether the headers or the body are still arriving (a reader's total
        timeout). Raises :class:`DeadlineExceededError` when the deadline passes
        before the answer's headers, :class:`NetworkError` when the server cannot be
        reached and the typed error of :func:`error_from_response` (its body read
        at most :data:`MAX_ERROR_BODY`) for a non-2xx answer.
        """
        self._check_open()
        extra: Dict[str, str] = {"Accept-Encoding": "identity"}
        extra.update(headers or {})
        all_headers, auth = self._prepare(extra)
        guard = CallGuard(deadline) if deadline is not None else None
        try:
            with guard if guard is not None else contextlib.nullcontext():
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
            if guard is not None and guard.fired:
                raise DeadlineExceededError(f"GET {path}: no answer before the deadline") from exc
            raise _network_error("GET", path, exc) from exc
        if 200 <= response.status_code < 300:
            return response
        if guard is not None:
            guard.finish()
        try:
            body = read_body(response, MAX_ERROR_BODY, truncate=True)
        except Exception:  # noqa: BLE001 - any failure reading an error body is irrelevant
            body = b""
        finally:
            response.close()
        raise error_from_response(response, body=body)

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
