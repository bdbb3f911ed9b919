"""Management routes of the local server: ``/api/v1/sessions``.

See docs/protocol.md, "Managing sessions".

Answers as the official SDK's schemas expect (``SessionItem``,
``CreatedSessionResponseBody``, ``ListSessionsResponseBody``); errors are
``{"error": "..."}``. The checks come in production's order: 401 (token), 413 (a
create/update/close without ``Content-Length`` or over its limit), 400 (an empty
body, not JSON, not an object, or a field that breaks the schema: ``type`` 1-64
chars, ``taskIdentifier`` 1-128, ``triggerConfig.basePayload`` an object,
``externalId`` 1-256 chars after trimming and not starting with ``session_``, at
most 10 tags of at most 128 chars, ``metadata`` an object, ``expiresAt`` an ISO date
or Unix ms), 403 (scope), 404. A retrieve of an unknown session is
``{"error": "Not found"}`` with ``x-should-retry: false``, checked before the scope.
Changing a session's ``externalId`` is 422.

Scopes (docs/protocol.md, "Addressing and tokens"): create needs
``write:tasks:{taskIdentifier}`` or a
type-level ``write:sessions``; retrieve ``read`` on the friendly id or externalId;
update and close the ``admin`` action on the id of the URL; list ``read`` on
``sessions`` or ``tasks`` (an id-scoped ``read:tasks:{id}`` only with
``filter[taskIdentifier]={id}``).

Listing is newest first; ``page[after]`` / ``page[before]`` take the opaque
cursors of ``pagination.next`` / ``pagination.previous``. Every filter is one raw
value (a repeated parameter: the last one; commas are not split, as production):
``filter[type]``, ``filter[tags]`` (sessions carrying that tag),
``filter[taskIdentifier]``, ``filter[status]`` (one of ``ACTIVE``, ``CLOSED``,
``EXPIRED``, else 400), ``filter[externalId]`` (exact),
``filter[createdAt][period]`` (``<n>s|m|h|d|w``), ``filter[createdAt][from]`` /
``[to]`` (Unix ms, inclusive).
"""

from __future__ import annotations

import base64
import json
import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Tuple, Union

from .auth import UNAUTHORIZED_BODY, Principal
from .handler import MAX_MANAGEMENT_BODY_BYTES, Request, Response, ServerContext, json_response
from .store import SessionRecord, now_ms

STATUSES = ("ACTIVE", "CLOSED", "EXPIRED")
_PERIOD = re.compile(r"^(\d+)([smhdw])$")
_PERIOD_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class _Invalid(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso(ms: Optional[int]) -> Optional[str]:
    """Unix ms as an ISO 8601 UTC string with milliseconds (``…T12:00:00.000Z``)."""
    if ms is None:
        return None
    moment = _EPOCH + timedelta(seconds=ms // 1000)  # also before 1970 on every platform
    # Four-digit year always (strftime's %Y gives "999"), as JavaScript's Date parses it.
    return f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def serialize(session: SessionRecord) -> Dict[str, Any]:
    """The session object of docs/protocol.md, "Managing sessions"."""
    return {
        "id": session.id,
        "externalId": session.external_id,
        "type": session.type,
        "taskIdentifier": session.task_identifier,
        "triggerConfig": session.trigger_config,
        "currentRunId": session.current_run_id,
        "tags": session.tags,
        "metadata": session.metadata,
        "closedAt": iso(session.closed_at),
        "closedReason": session.closed_reason,
        "expiresAt": iso(session.expires_at),
        "createdAt": iso(session.created_at),
        "updatedAt": iso(session.updated_at),
    }


MAX_CLOSE_BODY_BYTES = 1024


def _check_length(request: Request, limit: int) -> None:
    """413 unless the request declares a ``Content-Length`` of at most ``limit``."""
    declared = (request.header("Content-Length") or "").strip()
    if not declared.isdigit() or int(declared) > limit:
        raise _Invalid(413, "Request body too large")


def _json_body(request: Request, limit: int = MAX_MANAGEMENT_BODY_BYTES) -> Dict[str, Any]:
    raw = request.body(limit)
    if not raw:
        raise _Invalid(400, "Request body is empty")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Invalid(400, "Invalid JSON") from None
    if not isinstance(value, dict):
        raise _Invalid(400, "The body must be a JSON object")
    if _nesting(value) > MAX_JSON_DEPTH:  # deeper could not be serialized again (recursion)
        raise _Invalid(400, f"The body nests JSON deeper than {MAX_JSON_DEPTH} levels")
    try:  # "\ud800" is valid JSON but no text: SQLite (UTF-8) could not store it
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid(400, "Invalid JSON body: a string holds a lone surrogate") from None
    return value


MAX_JSON_DEPTH = 100


def _nesting(value: Any) -> int:
    """How many objects/arrays deep ``value`` nests (iterative: no recursion limit)."""
    deepest = 0
    stack: List[Tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _string(body: Dict[str, Any], name: str, low: int, high: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise _Invalid(400, f"{name} must be a string of {low} to {high} characters")
    return value


def _external_id(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(400, "externalId must be a string")
    text = str(value).strip()
    if not 1 <= len(text) <= 256:
        raise _Invalid(400, "externalId must be 1 to 256 characters")
    if text.startswith("session_"):
        raise _Invalid(
            400,
            "externalId cannot start with 'session_' (reserved prefix for internal friendlyIds)",
        )
    return text


def _tags(value: Any) -> List[str]:
    if (
        not isinstance(value, list)
        or len(value) > 10
        or not all(isinstance(t, str) and len(t) <= 128 for t in value)
    ):
        raise _Invalid(400, "tags must be a list of at most 10 strings of at most 128 characters")
    return list(value)


def _metadata(value: Any, *, nullable: bool) -> Optional[Dict[str, Any]]:
    if value is None and nullable:
        return None
    if not isinstance(value, dict):
        raise _Invalid(400, "metadata must be an object")
    return value


MIN_MS = -62135596800000  # 0001-01-01T00:00:00.000Z
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


def _timestamp(value: Any) -> int:
    if isinstance(value, bool):
        raise _Invalid(400, "expiresAt must be a date")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or not MIN_MS <= value <= MAX_MS:
            raise _Invalid(400, "expiresAt must be a date between the years 1 and 9999")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _Invalid(400, "expiresAt must be a date") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        ms = int(moment.timestamp() * 1000)
        if not MIN_MS <= ms <= MAX_MS:  # e.g. year 1 at +01:00 is still year 0 in UTC
            raise _Invalid(400, "expiresAt must be a date between the years 1 and 9999")
        return ms
    raise _Invalid(400, "expiresAt must be a date")


MACHINES = ("micro", "small-1x", "small-2x", "medium-1x", "medium-2x", "large-1x", "large-2x")
_CONCURRENCY_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,122}$")


def _integer(value: Any) -> Optional[int]:
    """``value`` as an int when it is a JSON integer (``3`` or ``3.0``), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _bounded(config: Dict[str, Any], name: str, low: int, high: Optional[int]) -> None:
    number = _integer(config[name])
    if number is None or number < low or (high is not None and number > high):
        top = f" to {high}" if high is not None else " or more"
        raise _Invalid(400, f"triggerConfig.{name} must be an integer from {low}{top}")
    config[name] = number


#: The keys of the SDK's ``SessionTriggerConfig``; others are dropped, as schema parsing does.
_TRIGGER_CONFIG_KEYS = frozenset(
    {
        "basePayload",
        "machine",
        "queue",
        "concurrency",
        "concurrencyKey",
        "tags",
        "maxAttempts",
        "maxDuration",
        "lockToVersion",
        "externalDeploymentId",
        "region",
        "idleTimeoutInSeconds",
        "ttl",
    }
)


def _trigger_config(value: Any) -> Dict[str, Any]:
    """Validate ``triggerConfig`` as the SDK's ``SessionTriggerConfig``; unknown keys are
    dropped (as schema parsing does), ``externalDeploymentId`` null/blank is dropped."""
    if not isinstance(value, dict) or not isinstance(value.get("basePayload"), dict):
        raise _Invalid(400, "triggerConfig must be an object with a basePayload object")
    config = {k: v for k, v in value.items() if k in _TRIGGER_CONFIG_KEYS and v is not None}
    if "machine" in config and config["machine"] not in MACHINES:
        raise _Invalid(400, f"triggerConfig.machine must be one of {', '.join(MACHINES)}")
    for name in ("queue", "lockToVersion", "region"):
        if name in config and not isinstance(config[name], str):
            raise _Invalid(400, f"triggerConfig.{name} must be a string")
    if len(config.get("queue", "")) > 128:
        raise _Invalid(400, "triggerConfig.queue must be at most 128 characters")
    if "concurrency" in config:
        _check_concurrency(config["concurrency"])
    if "concurrencyKey" in config:
        config["concurrencyKey"] = _concurrency_key(config["concurrencyKey"])
    if "tags" in config:
        config["tags"] = _tags(config["tags"])
    for name, low, high in (("maxAttempts", 1, 10), ("maxDuration", 1, None)):
        if name in config:
            _bounded(config, name, low, high)
    if "idleTimeoutInSeconds" in config:
        _bounded(config, "idleTimeoutInSeconds", 1, 3600)
    if "ttl" in config and not isinstance(config["ttl"], str):
        _bounded(config, "ttl", 0, None)
    if "externalDeploymentId" in config:
        _deployment_id(config)
    return config


def _check_concurrency(names: Any) -> None:
    """``concurrency``: at most two queue names."""
    if (
        not isinstance(names, list)
        or len(names) > 2
        or not all(isinstance(n, str) and _CONCURRENCY_NAME.match(n) for n in names)
    ):
        raise _Invalid(
            400,
            "triggerConfig.concurrency must be at most 2 names of 1-122 letters, digits,"
            " underscores or hyphens",
        )


def _concurrency_key(key: Any) -> str:
    """``concurrencyKey`` as the string the SDK sends: a string, or a number's text."""
    if isinstance(key, str):
        return key
    number = _integer(key)
    if number is not None:
        return str(number)
    if isinstance(key, float) and math.isfinite(key):
        return repr(key)
    raise _Invalid(400, "triggerConfig.concurrencyKey must be a string or a number")


def _deployment_id(config: Dict[str, Any]) -> None:
    """``externalDeploymentId`` trimmed, or dropped when blank."""
    deployment = config["externalDeploymentId"]
    if not isinstance(deployment, str) or len(deployment.strip()) > 128:
        raise _Invalid(400, "triggerConfig.externalDeploymentId must be at most 128 characters")
    if deployment.strip():
        config["externalDeploymentId"] = deployment.strip()
    else:
        del config["externalDeploymentId"]


def handle(request: Request, ctx: ServerContext) -> Response:
    """Dispatch one ``/api/v1/sessions…`` request."""
    segments, method = request.segments, request.method
    allowed = "GET, POST" if len(segments) == 3 else "POST" if len(segments) == 5 else "GET, PATCH"
    if method not in allowed.split(", "):
        return _not_allowed(allowed)
    principal = request.authenticate()
    try:
        if len(segments) == 3:
            if method == "GET":
                return _list(request, ctx, principal)
            return _create(request, ctx, principal)
        if len(segments) == 5:
            return _close(request, ctx, principal, segments[3])
        if method == "GET":
            return _retrieve(ctx, principal, segments[3])
        return _update(request, ctx, principal, segments[3])
    except _Invalid as exc:
        return _error(exc.status, str(exc))


def handle_claims(request: Request, ctx: ServerContext) -> Response:
    """``POST /api/v1/auth/jwt/claims``: the claims a public token of this environment
    carries (``{"sub", "pub"}``); the secret key only, as production."""
    ctx.tokens.authenticate_secret(request.header("Authorization"))
    return json_response(200, ctx.tokens.claims())


def _not_allowed(allow: str) -> Response:
    return json_response(405, {"error": "Method not allowed"}, [("Allow", allow)])


def _forbidden() -> Response:
    return json_response(403, UNAUTHORIZED_BODY)


def _retrieve(ctx: ServerContext, principal: Principal, param: str) -> Response:
    session = ctx.store.get_session(param)
    if session is None:
        return json_response(404, {"error": "Not found"}, [("x-should-retry", "false")])
    if not principal.can("read", session.ids()):
        return _forbidden()
    return json_response(200, serialize(session))


def _create(request: Request, ctx: ServerContext, principal: Principal) -> Response:
    _check_length(request, MAX_MANAGEMENT_BODY_BYTES)
    body = _json_body(request)
    type_ = _string(body, "type", 1, 64)
    task = _string(body, "taskIdentifier", 1, 128)
    trigger_config = _trigger_config(body.get("triggerConfig"))
    external_id = _external_id(body["externalId"]) if body.get("externalId") is not None else None
    tags = _tags(body["tags"]) if body.get("tags") is not None else []
    metadata = _metadata(body["metadata"], nullable=False) if "metadata" in body else None
    expires_at = _timestamp(body["expiresAt"]) if body.get("expiresAt") is not None else None
    if not principal.allows("write", [("tasks", task), ("sessions", None)]):
        return _forbidden()
    session, created = ctx.store.find_or_create_session(
        external_id=external_id,
        type=type_,
        task_identifier=task,
        trigger_config=trigger_config,
        tags=tags,
        metadata=metadata,
        expires_at=expires_at,
    )
    if not created:
        if session.closed_at is not None:
            return _error(
                409, "Session is closed; use a different externalId to create a new session"
            )
        if session.status() == "EXPIRED":
            return _error(
                409, "Session is expired; use a different externalId to create a new session"
            )
        session = ctx.store.update_session(session.id, {"trigger_config": trigger_config})
    token = ctx.tokens.mint(session.external_id or session.id, read=True, write=True)
    answer = serialize(session)
    answer.update(
        {"runId": session.current_run_id, "publicAccessToken": token, "isCached": not created}
    )
    return json_response(201 if created else 200, answer)


_ABSENT = object()
EXTERNAL_ID_IMMUTABLE = (
    "externalId cannot be changed after creation; close this session and create a new one"
    " with the desired externalId"
)


def _update(request: Request, ctx: ServerContext, principal: Principal, param: str) -> Response:
    _check_length(request, MAX_MANAGEMENT_BODY_BYTES)
    body = _json_body(request)
    changes: Dict[str, Any] = {}
    if body.get("tags") is not None:
        changes["tags"] = _tags(body["tags"])
    if "metadata" in body:
        changes["metadata"] = _metadata(body["metadata"], nullable=True)
    external_id = body.get("externalId", _ABSENT)
    if external_id is not None and external_id is not _ABSENT:
        external_id = _external_id(external_id)
    if not principal.allows("admin", [("sessions", param)]):
        return _forbidden()
    session = ctx.store.get_session(param)
    if session is None:
        return _error(404, "Session not found")
    if external_id is not _ABSENT and external_id != session.external_id:
        return _error(422, EXTERNAL_ID_IMMUTABLE)
    return json_response(200, serialize(ctx.store.update_session(session.id, changes)))


def _close(request: Request, ctx: ServerContext, principal: Principal, param: str) -> Response:
    _check_length(request, MAX_CLOSE_BODY_BYTES)
    body = _json_body(request, MAX_CLOSE_BODY_BYTES)
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 256):
        raise _Invalid(400, "reason must be a string of at most 256 characters")
    if not principal.allows("admin", [("sessions", param)]):
        return _forbidden()
    session = ctx.store.get_session(param)
    if session is None:
        return _error(404, "Session not found")
    if session.closed_at is None:
        session = ctx.store.update_session(
            session.id, {"closed_at": now_ms(), "closed_reason": reason}
        )
    return json_response(200, serialize(session))


# -------------------------------------------------------------------- list


def _cursor(session: SessionRecord) -> str:
    return base64.urlsafe_b64encode(str(session.rowid).encode()).decode().rstrip("=")


def _uncursor(text: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        raise _Invalid(400, "Invalid page cursor") from None


def _int_param(request: Request, name: str) -> Optional[int]:
    value = request.param(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _Invalid(400, f"{name} must be an integer") from None


def _filters(request: Request) -> List[Any]:
    checks: List[Any] = []
    kind = request.param("filter[type]")
    if kind:
        checks.append(lambda s: s.type == kind)
    tag = request.param("filter[tags]")
    if tag:
        checks.append(lambda s: tag in s.tags)
    task = request.param("filter[taskIdentifier]")
    if task:
        checks.append(lambda s: s.task_identifier == task)
    external = request.param("filter[externalId]")
    if external:
        checks.append(lambda s: s.external_id == external)
    status = request.param("filter[status]")
    if status is not None:
        if status not in STATUSES:
            raise _Invalid(400, f"Query Error: filter[status] must be one of {', '.join(STATUSES)}")
        now = now_ms()
        checks.append(lambda s: s.status(now) == status)
    period = request.param("filter[createdAt][period]")
    if period:
        match = _PERIOD.match(period.strip())
        if match is None:
            raise _Invalid(400, "filter[createdAt][period] must look like 30m, 2h, 7d or 1w")
        since = now_ms() - int(match.group(1)) * _PERIOD_MS[match.group(2)]
        checks.append(lambda s: s.created_at >= since)
    start = _int_param(request, "filter[createdAt][from]")
    if start is not None:
        checks.append(lambda s: s.created_at >= start)
    end = _int_param(request, "filter[createdAt][to]")
    if end is not None:
        checks.append(lambda s: s.created_at <= end)
    return checks


def _page(
    sessions: List[SessionRecord], size: int, after: Optional[int], before: Optional[int]
) -> Tuple[List[SessionRecord], Optional[str], Optional[str]]:
    if before is not None:
        newer = [s for s in reversed(sessions) if s.rowid > before]
        chunk = list(reversed(newer[:size]))
        more_newer = len(newer) > size
        older_exists = any(s.rowid < (chunk[-1].rowid if chunk else before) for s in sessions)
        next_cursor = _cursor(chunk[-1]) if chunk and older_exists else None
        previous = _cursor(chunk[0]) if chunk and more_newer else None
        return chunk, next_cursor, previous
    candidates = [s for s in sessions if after is None or s.rowid < after]
    chunk = candidates[:size]
    next_cursor = _cursor(chunk[-1]) if len(candidates) > size else None
    previous = None
    if after is not None and chunk and any(s.rowid > chunk[0].rowid for s in sessions):
        previous = _cursor(chunk[0])
    return chunk, next_cursor, previous


def _can_list(request: Request, principal: Principal) -> bool:
    broad = [("sessions", None), ("tasks", None)]
    task = request.param("filter[taskIdentifier]")
    return principal.allows("read", broad) or (
        bool(task) and principal.allows("read", [("tasks", task)])
    )


def _list(request: Request, ctx: ServerContext, principal: Principal) -> Response:
    size = _int_param(request, "page[size]")
    size = 20 if size is None else size
    if not 1 <= size <= 100:
        raise _Invalid(400, "page[size] must be between 1 and 100")
    after_raw, before_raw = request.param("page[after]"), request.param("page[before]")
    if after_raw and before_raw:
        raise _Invalid(400, "Cannot pass both page[after] and page[before] on the same request")
    after = _uncursor(after_raw) if after_raw else None
    before = _uncursor(before_raw) if before_raw else None
    checks = _filters(request)
    if not _can_list(request, principal):
        return _forbidden()
    sessions = [s for s in ctx.store.list_sessions() if all(check(s) for check in checks)]
    chunk, next_cursor, previous = _page(sessions, size, after, before)
    pagination: Dict[str, Union[str, None]] = {}
    if next_cursor:
        pagination["next"] = next_cursor
    if previous:
        pagination["previous"] = previous
    return json_response(200, {"data": [serialize(s) for s in chunk], "pagination": pagination})
