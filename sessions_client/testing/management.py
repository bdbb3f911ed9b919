"""Management routes of the local server: ``/api/v1/sessions`` (PROTOCOL.md §5).

Answers as the official SDK's schemas expect (``SessionItem``,
``CreatedSessionResponseBody``, ``ListSessionsResponseBody``); errors are
``{"error": "..."}``. Validation: a body that is not a JSON object → 400; a field
that breaks the schema (``type`` 1-64 chars, ``taskIdentifier`` 1-128,
``triggerConfig.basePayload`` an object, ``externalId`` 1-256 chars after trimming
and not starting with ``session_``, at most 10 tags of at most 128 chars,
``metadata`` an object, ``expiresAt`` an ISO date or Unix ms) → 422.

Listing is newest first; ``page[after]`` / ``page[before]`` take the opaque
cursors of ``pagination.next`` / ``pagination.previous``. Filters:
``filter[type]``, ``filter[tags]`` (any of), ``filter[taskIdentifier]``,
``filter[status]`` (comma lists), ``filter[externalId]`` (exact),
``filter[createdAt][period]`` (``<n>s|m|h|d|w``), ``filter[createdAt][from]`` /
``[to]`` (Unix ms, inclusive).
"""

from __future__ import annotations

import base64
import json
import math
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Tuple, Union

from .auth import Principal
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
    """The session object of PROTOCOL.md §5."""
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


def _json_body(request: Request, *, optional: bool = False) -> Dict[str, Any]:
    raw = request.body(MAX_MANAGEMENT_BODY_BYTES)
    if optional and not raw.strip():
        return {}
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Invalid(400, "Invalid JSON body") from None
    if not isinstance(value, dict):
        raise _Invalid(400, "The body must be a JSON object")
    if _nesting(value) > MAX_JSON_DEPTH:  # deeper could not be serialized again (recursion)
        raise _Invalid(422, f"The body nests JSON deeper than {MAX_JSON_DEPTH} levels")
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
        raise _Invalid(422, f"{name} must be a string of {low} to {high} characters")
    return value


def _external_id(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(422, "externalId must be a string")
    text = str(value).strip()
    if not 1 <= len(text) <= 256:
        raise _Invalid(422, "externalId must be 1 to 256 characters")
    if text.startswith("session_"):
        raise _Invalid(
            422,
            "externalId cannot start with 'session_' (reserved prefix for internal friendlyIds)",
        )
    return text


def _tags(value: Any) -> List[str]:
    if (
        not isinstance(value, list)
        or len(value) > 10
        or not all(isinstance(t, str) and len(t) <= 128 for t in value)
    ):
        raise _Invalid(422, "tags must be a list of at most 10 strings of at most 128 characters")
    return list(value)


def _metadata(value: Any, *, nullable: bool) -> Optional[Dict[str, Any]]:
    if value is None and nullable:
        return None
    if not isinstance(value, dict):
        raise _Invalid(422, "metadata must be an object")
    return value


MIN_MS = -62135596800000  # 0001-01-01T00:00:00.000Z
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


def _timestamp(value: Any) -> int:
    if isinstance(value, bool):
        raise _Invalid(422, "expiresAt must be a date")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or not MIN_MS <= value <= MAX_MS:
            raise _Invalid(422, "expiresAt must be a date between the years 1 and 9999")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _Invalid(422, "expiresAt must be a date") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        ms = int(moment.timestamp() * 1000)
        if not MIN_MS <= ms <= MAX_MS:  # e.g. year 1 at +01:00 is still year 0 in UTC
            raise _Invalid(422, "expiresAt must be a date between the years 1 and 9999")
        return ms
    raise _Invalid(422, "expiresAt must be a date")


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
        raise _Invalid(422, f"triggerConfig.{name} must be an integer from {low}{top}")
    config[name] = number


def _trigger_config(value: Any) -> Dict[str, Any]:
    """Validate ``triggerConfig`` as the SDK's ``SessionTriggerConfig``; unknown keys are
    dropped (as schema parsing does), ``externalDeploymentId`` null/blank is dropped."""
    if not isinstance(value, dict) or not isinstance(value.get("basePayload"), dict):
        raise _Invalid(422, "triggerConfig must be an object with a basePayload object")
    known = [
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
    ]
    config = {k: v for k, v in value.items() if k in known and v is not None}
    if "machine" in config and config["machine"] not in MACHINES:
        raise _Invalid(422, f"triggerConfig.machine must be one of {', '.join(MACHINES)}")
    for name in ("queue", "lockToVersion", "region"):
        if name in config and not isinstance(config[name], str):
            raise _Invalid(422, f"triggerConfig.{name} must be a string")
    if len(config.get("queue", "")) > 128:
        raise _Invalid(422, "triggerConfig.queue must be at most 128 characters")
    if "concurrency" in config:
        names = config["concurrency"]
        if (
            not isinstance(names, list)
            or len(names) > 2
            or not all(isinstance(n, str) and _CONCURRENCY_NAME.match(n) for n in names)
        ):
            raise _Invalid(
                422,
                "triggerConfig.concurrency must be at most 2 names of 1-122 letters, digits,"
                " underscores or hyphens",
            )
    if "concurrencyKey" in config:
        key = config["concurrencyKey"]
        number = _integer(key)
        if isinstance(key, str):
            pass
        elif number is not None:
            config["concurrencyKey"] = str(number)
        elif isinstance(key, float) and math.isfinite(key):
            config["concurrencyKey"] = repr(key)
        else:
            raise _Invalid(422, "triggerConfig.concurrencyKey must be a string or a number")
    if "tags" in config:
        config["tags"] = _tags(config["tags"])
    if "maxAttempts" in config:
        _bounded(config, "maxAttempts", 1, 10)
    if "maxDuration" in config:
        _bounded(config, "maxDuration", 1, None)
    if "idleTimeoutInSeconds" in config:
        _bounded(config, "idleTimeoutInSeconds", 1, 3600)
    if "ttl" in config and not isinstance(config["ttl"], str):
        _bounded(config, "ttl", 0, None)
    if "externalDeploymentId" in config:
        deployment = config["externalDeploymentId"]
        if not isinstance(deployment, str) or len(deployment.strip()) > 128:
            raise _Invalid(422, "triggerConfig.externalDeploymentId must be at most 128 characters")
        if deployment.strip():
            config["externalDeploymentId"] = deployment.strip()
        else:
            del config["externalDeploymentId"]
    return config


def handle(request: Request, ctx: ServerContext) -> Response:
    """Dispatch one ``/api/v1/sessions…`` request."""
    principal = request.authenticate()
    segments, method = request.segments, request.method
    try:
        if len(segments) == 3:
            if method == "GET":
                return _list(request, ctx, principal)
            if method == "POST":
                return _create(request, ctx, principal)
            return _not_allowed("GET, POST")
        session = ctx.store.get_session(segments[3])
        if session is None:
            return _error(404, "Session not found")
        if len(segments) == 5:
            if method != "POST":
                return _not_allowed("POST")
            return _close(request, ctx, principal, session)
        if method == "GET":
            if not principal.can("read", {segments[3], *session.ids()}):
                return _error(403, "Unauthorized")
            return json_response(200, serialize(session))
        if method == "PATCH":
            return _update(request, ctx, principal, session)
        return _not_allowed("GET, PATCH")
    except _Invalid as exc:
        return _error(exc.status, str(exc))


def _not_allowed(allow: str) -> Response:
    return json_response(405, {"error": "Method not allowed"}, [("Allow", allow)])


def _create(request: Request, ctx: ServerContext, principal: Principal) -> Response:
    body = _json_body(request)
    type_ = _string(body, "type", 1, 64)
    task = _string(body, "taskIdentifier", 1, 128)
    trigger_config = _trigger_config(body.get("triggerConfig"))
    external_id = _external_id(body["externalId"]) if body.get("externalId") is not None else None
    tags = _tags(body["tags"]) if body.get("tags") is not None else []
    metadata = _metadata(body["metadata"], nullable=False) if "metadata" in body else None
    expires_at = _timestamp(body["expiresAt"]) if body.get("expiresAt") is not None else None
    if not principal.secret:
        existing = ctx.store.get_session(external_id) if external_id else None
        ids = ([external_id] if external_id else []) + (existing.ids() if existing else [])
        if not ids or not principal.can("write", ids):
            return _error(403, "Unauthorized")
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


def _update(
    request: Request, ctx: ServerContext, principal: Principal, session: SessionRecord
) -> Response:
    if not principal.secret:
        return _error(403, "Updating a session requires secret key authentication")
    body = _json_body(request)
    changes: Dict[str, Any] = {}
    if body.get("tags") is not None:
        changes["tags"] = _tags(body["tags"])
    if "metadata" in body:
        changes["metadata"] = _metadata(body["metadata"], nullable=True)
    if "externalId" in body:
        value = body["externalId"]
        changes["external_id"] = None if value is None else _external_id(value)
    try:
        updated = ctx.store.update_session(session.id, changes)
    except sqlite3.IntegrityError:
        return _error(409, "externalId is already used by another session")
    return json_response(200, serialize(updated))


def _close(
    request: Request, ctx: ServerContext, principal: Principal, session: SessionRecord
) -> Response:
    if not principal.secret:
        return _error(403, "Closing a session requires secret key authentication")
    body = _json_body(request, optional=True)
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 256):
        raise _Invalid(422, "reason must be a string of at most 256 characters")
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


def _csv(request: Request, name: str) -> Optional[List[str]]:
    values = request.query.get(name)
    if not values:
        return None
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    return items or None


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
    types = _csv(request, "filter[type]")
    if types:
        checks.append(lambda s: s.type in types)
    tags = _csv(request, "filter[tags]")
    if tags:
        checks.append(lambda s: any(t in s.tags for t in tags))
    tasks = _csv(request, "filter[taskIdentifier]")
    if tasks:
        checks.append(lambda s: s.task_identifier in tasks)
    external = request.param("filter[externalId]")
    if external:
        checks.append(lambda s: s.external_id == external)
    statuses = _csv(request, "filter[status]")
    if statuses:
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise _Invalid(400, f"filter[status] must be among {', '.join(STATUSES)}")
        now = now_ms()
        checks.append(lambda s: s.status(now) in statuses)
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


def _list(request: Request, ctx: ServerContext, principal: Principal) -> Response:
    if not principal.can_list():
        return _error(403, "Unauthorized")
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
    sessions = [s for s in ctx.store.list_sessions() if all(check(s) for check in checks)]
    chunk, next_cursor, previous = _page(sessions, size, after, before)
    pagination: Dict[str, Union[str, None]] = {}
    if next_cursor:
        pagination["next"] = next_cursor
    if previous:
        pagination["previous"] = previous
    return json_response(200, {"data": [serialize(s) for s in chunk], "pagination": pagination})
