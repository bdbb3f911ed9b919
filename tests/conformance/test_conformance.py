"""The official TypeScript SDK (``@trigger.dev/core`` ApiClient) against the local server.

Each test runs ``driver.mjs`` (see its header for the ops) with node and asserts on what the
SDK returned. Every SDK call validates the server's answers with the SDK's own zod schemas, so
an ``ok`` result already means "production-shaped". When the SDK and the server disagree, the
server is wrong (see SDK_NOTES.md and DISCREPANCIES.md).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable, Dict, List, Optional

import pytest

from sessions_client.testing.agent import chat_message

pytestmark = [pytest.mark.conformance, pytest.mark.timeout(120)]

Drive = Callable[[Any, List[Dict[str, Any]]], List[Dict[str, Any]]]
Servers = Callable[..., Any]

WIRES = ["v1", "v2"]


def _uid() -> str:
    return uuid.uuid4().hex[:12]


def _create_body(
    external_id: Optional[str] = None,
    *,
    type_: str = "chat.agent",
    task: str = "conformance-agent",
    tags: Optional[List[str]] = None,
    metadata: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "type": type_,
        "taskIdentifier": task,
        "triggerConfig": {"basePayload": {"chatId": external_id or "none"}},
    }
    if external_id is not None:
        body["externalId"] = external_id
    if tags is not None:
        body["tags"] = tags
    if metadata is not None:
        body["metadata"] = metadata
    return body


def ok(result: Dict[str, Any]) -> Any:
    assert result["ok"], f"SDK call failed: {result.get('error')}"
    return result["value"]


def err(result: Dict[str, Any], status: int) -> Dict[str, Any]:
    assert not result["ok"], f"expected HTTP {status}, the SDK call succeeded: {result}"
    error: Dict[str, Any] = result["error"]
    assert error["status"] == status, error
    return error


def _new_session(drive: Drive, srv: Any, ext: Optional[str] = None) -> Dict[str, Any]:
    ext = ext or f"conf-{_uid()}"
    (created,) = drive(srv, [{"op": "create", "body": _create_body(ext)}])
    data: Dict[str, Any] = ok(created)["data"]
    return data


def _data_chunks(wire: str, chunks: List[Any]) -> List[Any]:
    """The appended values the SDK yielded, as the SDK yields them for that wire shape.

    v2: the envelope's ``data`` (the raw appended string). v1: the SDK does not unwrap the
    envelope, so each chunk is ``{"data": ..., "id": ...}``; a ``[DONE]`` event surfaces as
    the string chunk "[DONE]" (SDK_NOTES.md), which is not a record.
    """
    if wire == "v2":
        return chunks
    out = []
    for chunk in chunks:
        if chunk == "[DONE]":
            continue
        assert isinstance(chunk, dict) and "data" in chunk, chunk
        out.append(chunk["data"])
    return out


def _record_parts(wire: str, parts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [p for p in parts if not (wire == "v1" and p["chunk"] == "[DONE]")]


# --------------------------------------------------------------------------- management


def test_create_is_idempotent_on_external_id_and_validates(servers: Servers, drive: Drive) -> None:
    srv = servers("v2")
    ext = f"conf/ext id?#{_uid()}"  # needs encodeURIComponent in every path
    body = _create_body(ext, tags=["t1", "t2"], metadata={"k": "v", "n": 1})
    first, again, anonymous = drive(
        srv,
        [
            {"op": "create", "body": body},
            {"op": "create", "body": body},
            {"op": "create", "body": _create_body()},
        ],
    )
    created = ok(first)
    assert created["status"] == 201
    data = created["data"]
    assert data["id"].startswith("session_")
    assert data["externalId"] == ext
    assert data["type"] == "chat.agent"
    assert data["taskIdentifier"] == "conformance-agent"
    assert data["tags"] == ["t1", "t2"]
    assert data["metadata"] == {"k": "v", "n": 1}
    assert data["isCached"] is False
    assert data["publicAccessToken"]
    assert isinstance(data["runId"], str)
    assert data["closedAt"] is None and data["closedReason"] is None

    cached = ok(again)
    assert cached["status"] == 200
    assert cached["data"]["isCached"] is True
    assert cached["data"]["id"] == data["id"]
    assert cached["data"]["publicAccessToken"]

    anon = ok(anonymous)
    assert anon["status"] == 201
    assert anon["data"]["externalId"] is None
    assert anon["data"]["id"] != data["id"]

    # The SDK percent-encodes the externalId in every path; the token is scoped to it.
    pat = data["publicAccessToken"]
    results = drive(
        srv,
        [
            {"op": "retrieve", "session": ext, "token": pat},
            {"op": "create", "body": body, "token": pat},
            {"op": "append", "session": ext, "io": "in", "body": '{"text":"x"}', "token": pat},
            {"op": "records", "session": ext, "io": "in", "token": pat},
            {"op": "retrieve", "session": anon["data"]["id"], "token": pat},
        ],
    )
    assert ok(results[0])["data"]["id"] == data["id"]
    # write:sessions:{id} is id-scoped: production refuses create with it (write:tasks or
    # the type-level write:sessions are needed).
    assert err(results[1], 403)["error"] == "Unauthorized"
    ok(results[2])
    assert [r["data"] for r in ok(results[3])["data"]["records"]] == ['{"text":"x"}']
    err(results[4], 403)  # another session's token


def test_concurrent_creates_of_one_external_id_make_one_session(
    servers: Servers, drive: Drive
) -> None:
    srv = servers("v2")
    body = _create_body(f"conf-race-{_uid()}")
    (result,) = drive(srv, [{"op": "parallel", "ops": [{"op": "create", "body": body}] * 10}])
    created = [ok(r) for r in ok(result)["results"]]
    assert sorted(c["status"] for c in created) == [200] * 9 + [201]
    assert len({c["data"]["id"] for c in created}) == 1
    assert [c["data"]["isCached"] for c in created].count(False) == 1


def test_retrieve_update_close_and_conflict(servers: Servers, drive: Drive) -> None:
    srv = servers("v2")
    ext = f"conf-close-{_uid()}"
    session = _new_session(drive, srv, ext)
    sid, pat = session["id"], session["publicAccessToken"]
    results = drive(
        srv,
        [
            {"op": "retrieve", "session": sid},
            {"op": "retrieve", "session": ext},
            {"op": "retrieve", "session": ext, "token": pat},
            {"op": "update", "session": ext, "body": {"tags": ["u"], "metadata": {"x": 2}}},
            {"op": "close", "session": ext, "body": {"reason": "nope"}, "token": pat},
            {"op": "update", "session": ext, "body": {"tags": ["no"]}, "token": pat},
            {"op": "close", "session": sid, "body": {"reason": "done"}},
            {"op": "close", "session": ext, "body": {"reason": "again"}},
            {"op": "create", "body": _create_body(ext)},
            {"op": "retrieve", "session": ext},
            {"op": "retrieve", "session": "session_doesnotexist0000"},
            {"op": "retrieve", "session": sid, "token": "not-a-valid-token"},
        ],
    )
    by_id, by_ext, by_pat, updated = (ok(r)["data"] for r in results[:4])
    assert by_id["id"] == by_ext["id"] == by_pat["id"] == sid
    assert by_ext["externalId"] == ext
    assert updated["tags"] == ["u"] and updated["metadata"] == {"x": 2}
    err(results[4], 403)  # a public token cannot close
    err(results[5], 403)  # nor update
    closed = ok(results[6])["data"]
    assert closed["closedAt"] is not None
    assert closed["closedReason"] == "done"
    closed_again = ok(results[7])["data"]  # idempotent
    assert closed_again["closedAt"] == closed["closedAt"]
    assert closed_again["closedReason"] == "done"
    conflict = err(results[8], 409)
    assert conflict["name"] == "ConflictError"
    assert ok(results[9])["data"]["closedAt"] == closed["closedAt"]
    assert err(results[10], 404)["name"] == "NotFoundError"
    assert err(results[11], 401)["name"] == "AuthenticationError"


def test_list_pages_and_filters(servers: Servers, drive: Drive) -> None:
    srv = servers("v2")
    kind = f"conf-list-{_uid()}"
    ops: List[Dict[str, Any]] = []
    for i in range(7):
        ops.append(
            {
                "op": "create",
                "body": _create_body(
                    f"{kind}-{i}",
                    type_=kind,
                    task="task-even" if i % 2 == 0 else "task-odd",
                    tags=["tag-a"] if i < 3 else ["tag-b", "tag-c"],
                ),
            }
        )
    created = [ok(r)["data"] for r in drive(srv, ops)]
    ids = [c["id"] for c in created]
    closed_ids = set(ids[5:])
    before = int(time.time() * 1000) - 60_000
    future = int(time.time() * 1000) + 3_600_000

    results = drive(
        srv,
        [{"op": "close", "session": sid} for sid in sorted(closed_ids)]
        + [
            {"op": "list", "options": {"type": kind, "limit": 3}},
            {"op": "listAll", "options": {"type": kind, "limit": 2}},
            {"op": "listAll", "options": {"type": kind, "tag": "tag-a"}},
            {"op": "listAll", "options": {"type": kind, "tag": "tag-c"}},
            {"op": "listAll", "options": {"type": kind, "taskIdentifier": "task-odd"}},
            {"op": "listAll", "options": {"type": kind, "status": "CLOSED"}},
            {"op": "listAll", "options": {"type": kind, "status": ["ACTIVE"]}},
            {"op": "listAll", "options": {"externalId": f"{kind}-4"}},
            {"op": "listAll", "options": {"type": kind, "from": before}},
            {"op": "listAll", "options": {"type": kind, "from": future}},
            {"op": "listAll", "options": {"type": [kind, f"{kind}-other"], "to": before}},
            {"op": "listAll", "options": {"type": kind, "period": "1h"}},
        ],
    )
    for r in results[: len(closed_ids)]:
        ok(r)
    rest = results[len(closed_ids) :]
    pages = ok(rest[0])["pages"]
    assert [len(p["ids"]) for p in pages] == [3, 3, 1]
    assert all(p["next"] for p in pages[:-1]) and pages[-1]["next"] is None
    seen = [sid for p in pages for sid in p["ids"]]
    assert sorted(seen) == sorted(ids)  # every session exactly once across the pages
    for page in pages:
        for item in page["items"]:
            assert item["type"] == kind
            assert (item["closedAt"] is not None) == (item["id"] in closed_ids)

    def listed(r: Dict[str, Any]) -> List[str]:
        got: List[str] = ok(r)["ids"]
        assert len(got) == len(set(got)), "duplicates across pages"
        return sorted(got)

    assert listed(rest[1]) == sorted(ids)
    assert listed(rest[2]) == sorted(ids[:3])
    assert listed(rest[3]) == sorted(ids[3:])
    assert listed(rest[4]) == sorted(ids[1::2])
    assert listed(rest[5]) == sorted(closed_ids)
    assert listed(rest[6]) == sorted(set(ids) - closed_ids)
    assert listed(rest[7]) == [ids[4]]
    assert listed(rest[8]) == sorted(ids)
    assert listed(rest[9]) == []
    assert listed(rest[10]) == []
    assert listed(rest[11]) == sorted(ids)


def test_list_filters_are_single_values(servers: Servers, drive: Drive) -> None:
    """The SDK comma-joins an array filter; production does not split it: a comma list
    matches nothing, and is a 400 for the status enum (PROTOCOL.md §5)."""
    srv = servers("v2")
    kind = f"conf-single-{_uid()}"
    (created,) = drive(srv, [{"op": "create", "body": _create_body(None, type_=kind, tags=["a"])}])
    sid = ok(created)["data"]["id"]
    results = drive(
        srv,
        [
            {"op": "listAll", "options": {"type": kind, "tag": "a"}},
            {"op": "listAll", "options": {"type": kind, "tag": ["a", "b"]}},
            {"op": "listAll", "options": {"type": [kind, "other"]}},
            {"op": "listAll", "options": {"type": kind, "status": ["ACTIVE", "CLOSED"]}},
        ],
    )
    assert ok(results[0])["ids"] == [sid]
    assert ok(results[1])["ids"] == []
    assert ok(results[2])["ids"] == []
    err(results[3], 400)


def test_create_validation_matches_the_sdk_schema(servers: Servers, drive: Drive) -> None:
    """Bodies that break ``CreateSessionRequestBody`` are rejected (400 or 422), not stored."""
    srv = servers("v2")
    good = _create_body(f"conf-valid-{_uid()}")
    no_config = {k: v for k, v in good.items() if k != "triggerConfig"}
    bad_bodies = [
        no_config,
        {**good, "externalId": "session_reserved"},
        {**good, "externalId": "   "},
        {**good, "tags": [f"t{i}" for i in range(11)]},
        {**good, "type": ""},
        {**good, "taskIdentifier": ""},
        {**good, "triggerConfig": {"basePayload": "not an object"}},
    ]
    results = drive(srv, [{"op": "create", "body": b} for b in bad_bodies])
    for body, result in zip(bad_bodies, results):
        assert not result["ok"], f"accepted an invalid body: {body}"
        assert result["error"]["status"] in (400, 422), (body, result["error"])
    (retrieved,) = drive(srv, [{"op": "retrieve", "session": good["externalId"]}])
    err(retrieved, 404)  # nothing was created on the way


def test_trigger_config_is_validated_like_the_sdk_schema(servers: Servers, drive: Drive) -> None:
    """``triggerConfig`` is echoed in every SessionItem, where the SDK validates it with
    ``SessionTriggerConfig``; a config breaking that schema must be refused at create
    (as production's ``CreateSessionRequestBody`` does), never stored and echoed back."""
    srv = servers("v2")
    ext = f"conf-tc-{_uid()}"
    base = _create_body(ext)["triggerConfig"]
    good = {
        **base,
        "machine": "small-2x",
        "queue": "q",
        "tags": ["a"],
        "maxAttempts": 3,
        "maxDuration": 60,
        "lockToVersion": "20250101.1",
        "region": "eu",
        "idleTimeoutInSeconds": 30,
        "ttl": "10m",
        "concurrency": ["per_user"],
        "concurrencyKey": "user-1",
    }
    bad_configs = [
        {**base, "machine": "huge-gpu"},
        {**base, "queue": "q" * 129},
        {**base, "tags": [f"t{i}" for i in range(11)]},
        {**base, "maxAttempts": 11},
        {**base, "maxAttempts": 1.5},
        {**base, "maxDuration": 0},
        {**base, "idleTimeoutInSeconds": 3601},
        {**base, "ttl": -1},
        {**base, "concurrency": ["bad name!"]},
        {**base, "lockToVersion": 5},
    ]
    ops: List[Dict[str, Any]] = [
        {"op": "create", "body": {**_create_body(f"{ext}-bad{i}"), "triggerConfig": config}}
        for i, config in enumerate(bad_configs)
    ]
    ops.append({"op": "create", "body": {**_create_body(ext), "triggerConfig": good}})
    results = drive(srv, ops)
    for config, result in zip(bad_configs, results):
        assert not result["ok"], f"accepted {config}"
        assert result["error"]["status"] in (400, 422), (config, result["error"])
    created = ok(results[-1])["data"]
    assert created["triggerConfig"]["machine"] == "small-2x"
    assert created["triggerConfig"]["concurrency"] == ["per_user"]


def test_expiry_and_trimmed_external_id(servers: Servers, drive: Drive) -> None:
    srv = servers("v2")
    uid = _uid()
    past = {**_create_body(f"conf-past-{uid}"), "expiresAt": "2001-01-01T00:00:00Z"}
    future_ms = int(time.time() * 1000) + 86_400_000
    results = drive(
        srv,
        [
            {"op": "create", "body": past},
            {"op": "append", "session": past["externalId"], "io": "out", "body": '"x"'},
            {"op": "listAll", "options": {"externalId": past["externalId"], "status": "EXPIRED"}},
            {"op": "create", "body": past},
            {"op": "create", "body": {**_create_body(f"conf-fut-{uid}"), "expiresAt": future_ms}},
            {"op": "create", "body": _create_body(f"  conf-trim-{uid}  ")},
            {"op": "retrieve", "session": f"conf-trim-{uid}"},
        ],
    )
    expired = ok(results[0])["data"]
    assert expired["expiresAt"].startswith("2001-01-01T00:00:00")
    assert err(results[1], 400)["name"] == "BadRequestError"
    assert ok(results[2])["ids"] == [expired["id"]]
    err(results[3], 409)
    assert ok(results[4])["data"]["expiresAt"] is not None
    trimmed = ok(results[5])["data"]
    assert trimmed["externalId"] == f"conf-trim-{uid}"  # the SDK schema trims externalId
    assert ok(results[6])["data"]["id"] == trimmed["id"]


@pytest.mark.parametrize(
    "expires_at",
    [
        1_000_000_000_000_000,
        -1_000_000_000_000_000,
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_unrepresentable_expiry_is_refused_not_a_crash(
    expires_at: Any, servers: Servers, drive: Drive
) -> None:
    """``expiresAt`` 1e15 ms (year 33658) is a valid JS date; the local server cannot
    represent years outside 1..9999, so it must refuse them (400/422) instead of dropping
    the connection (DISCREPANCIES.md D2, D3)."""
    srv = servers("v2", name="far-future")  # a stored bad session would poison listing
    kind = f"conf-far-{_uid()}"
    body = {**_create_body(f"{kind}-1", type_=kind), "expiresAt": expires_at}
    results = drive(
        srv,
        [
            {"op": "create", "body": body},
            {"op": "listAll", "options": {"type": kind}},
            {"op": "listAll", "options": {}},
        ],
    )
    assert not results[0]["ok"]
    assert results[0]["error"]["status"] in (400, 422), results[0]["error"]
    assert ok(results[1])["ids"] == []
    ok(results[2])  # listing everything still works


def test_lone_surrogates_in_a_body_get_an_answer(servers: Servers, drive: Drive) -> None:
    """``JSON.stringify`` escapes a lone surrogate as ``\\ud800``; the server must answer
    (4xx) rather than drop the connection, and store nothing."""
    srv = servers("v2", name="surrogates")
    kind = f"conf-sur-{_uid()}"
    bodies = [
        _create_body(f"{kind}-\ud800", type_=kind),
        {**_create_body(None, type_=kind), "metadata": {"k": "\udc00"}},
        {**_create_body(None, type_=kind), "tags": ["\ud800"]},
    ]
    results = drive(
        srv,
        [{"op": "create", "body": b} for b in bodies]
        + [{"op": "listAll", "options": {"type": kind}}],
    )
    for result in results[:-1]:
        assert not result["ok"]
        assert result["error"]["status"] is not None, "connection dropped without an answer"
        assert 400 <= result["error"]["status"] < 500, result["error"]
    assert ok(results[-1])["ids"] == []


def test_early_expiry_dates_parse_in_the_sdk(servers: Servers, drive: Drive) -> None:
    """Years 1..999 must be written with four digits: ``new Date("999-01-01T…Z")`` is
    Invalid Date, so the SDK would refuse the session object (DISCREPANCIES.md D5)."""
    srv = servers("v2", name="early-dates")
    kind = f"conf-early-{_uid()}"
    results = drive(
        srv,
        [
            {
                "op": "create",
                "body": {**_create_body(f"{kind}-{i}", type_=kind), "expiresAt": when},
            }
            for i, when in enumerate(
                ("0001-01-01T00:00:00Z", "0999-06-30T12:00:00.5Z", -30_000_000_000_000)
            )
        ]
        + [{"op": "listAll", "options": {"type": kind}}],
    )
    assert ok(results[0])["data"]["expiresAt"] == "0001-01-01T00:00:00.000Z"
    assert ok(results[1])["data"]["expiresAt"] == "0999-06-30T12:00:00.500Z"
    assert ok(results[2])["data"]["expiresAt"] == "1019-05-04T18:40:00.000Z"
    assert len(ok(results[3])["ids"]) == 3


def test_deeply_nested_metadata_is_refused_not_stored(servers: Servers, drive: Drive) -> None:
    """``JSON.stringify`` nests as deep as asked; the server must answer and never store
    what it cannot serialize again (DISCREPANCIES.md D7)."""
    srv = servers("v2", name="deep-json")
    kind = f"conf-deep-{_uid()}"

    results = drive(
        srv,
        [
            {
                "op": "create",
                "body": _create_body(f"{kind}-{depth}", type_=kind),
                "deepMetadata": depth,
            }
            for depth in (40, 980, 1500)
        ]
        + [{"op": "listAll", "options": {"type": kind}}, {"op": "listAll", "options": {}}],
    )
    assert ok(results[0])["data"]["metadata"] == {"depth": 40}  # round-trips whole
    for result in results[1:3]:
        assert not result["ok"]
        assert result["error"]["status"] is not None, "connection dropped without an answer"
        assert 400 <= result["error"]["status"] < 500, result["error"]
    assert len(ok(results[3])["ids"]) == 1
    ok(results[4])


@pytest.mark.parametrize("wire", WIRES)
def test_unicode_and_reserved_characters_in_external_ids(
    wire: str, servers: Servers, drive: Drive
) -> None:
    """The SDK ``encodeURIComponent``s every path segment; each route must decode it."""
    srv = servers(wire)
    ext = f"caf\u00e9 \U0001f600 %2F+&=;,{_uid()}"
    results = drive(
        srv,
        [
            {"op": "create", "body": _create_body(ext)},
            {"op": "retrieve", "session": ext},
            {"op": "append", "session": ext, "io": "out", "body": '"u"'},
            {"op": "records", "session": ext, "io": "out"},
            {"op": "subscribe", "session": ext, "io": "out", "stopAfter": 1, "timeoutInSeconds": 2},
            {"op": "listAll", "options": {"externalId": ext}},
            {"op": "close", "session": ext},
        ],
    )
    created = ok(results[0])["data"]
    assert created["externalId"] == ext
    assert ok(results[1])["data"]["id"] == created["id"]
    ok(results[2])
    assert [r["data"] for r in ok(results[3])["data"]["records"]] == ['"u"']
    assert _data_chunks(wire, ok(results[4])["chunks"]) == ['"u"']
    assert ok(results[5])["ids"] == [created["id"]]
    assert ok(results[6])["data"]["closedAt"] is not None


def test_update_keeps_the_external_id(servers: Servers, drive: Drive) -> None:
    """``externalId`` is immutable: another value is a 422, the same one is accepted."""
    srv = servers("v2")
    ext = f"conf-upd-{_uid()}"
    session = _new_session(drive, srv, ext)
    sid = session["id"]
    results = drive(
        srv,
        [
            {"op": "retrieve", "session": sid},
            {"op": "update", "session": ext, "body": {"externalId": f"{ext}-renamed"}},
            {"op": "update", "session": sid, "body": {"externalId": None}},
            {"op": "update", "session": sid, "body": {"externalId": ext, "metadata": None}},
            {"op": "retrieve", "session": ext},
        ],
    )
    retrieved = ok(results[0])["data"]
    assert retrieved["triggerConfig"] == _create_body(ext)["triggerConfig"]
    for result in results[1:3]:
        assert err(result, 422)["name"] == "UnprocessableEntityError"
        assert "externalId cannot be changed after creation" in result["error"]["message"]
    kept = ok(results[3])["data"]
    assert kept["externalId"] == ext and kept["metadata"] is None
    assert ok(results[4])["data"]["id"] == sid


def test_list_before_cursor_and_page_size_limits(servers: Servers, drive: Drive) -> None:
    """``before`` pages backwards from ``pagination.previous``.

    (The SDK's own ``getPreviousPage()`` after ``getNextPage()`` sends both
    ``page[after]`` and ``page[before]``, which production rejects with 400: SDK_NOTES.md.)
    """
    srv = servers("v2")
    kind = f"conf-back-{_uid()}"
    created = drive(
        srv, [{"op": "create", "body": _create_body(f"{kind}-{i}", type_=kind)} for i in range(5)]
    )
    for r in created:
        ok(r)
    (listed,) = drive(srv, [{"op": "list", "options": {"type": kind, "limit": 2}}])
    pages = ok(listed)["pages"]
    assert [len(p["ids"]) for p in pages] == [2, 2, 1]
    assert pages[0]["previous"] is None
    assert pages[1]["previous"] and pages[2]["previous"]
    results = drive(
        srv,
        [
            {
                "op": "list",
                "options": {"type": kind, "limit": 2, "before": pages[2]["previous"]},
                "maxPages": 1,
            },
            {
                "op": "list",
                "options": {"type": kind, "limit": 2, "before": pages[1]["previous"]},
                "maxPages": 1,
            },
            {"op": "list", "options": {"type": kind, "limit": 101}, "maxPages": 1},
            {
                "op": "list",
                "options": {
                    "type": kind,
                    "after": pages[0]["next"],
                    "before": pages[2]["previous"],
                },
                "maxPages": 1,
            },
            {"op": "list", "options": {"type": kind, "status": "NOPE"}, "maxPages": 1},
        ],
    )
    assert ok(results[0])["pages"][0]["ids"] == pages[1]["ids"]
    assert ok(results[1])["pages"][0]["ids"] == pages[0]["ids"]
    err(results[2], 400)
    err(results[3], 400)
    err(results[4], 400)


# ------------------------------------------------------------------------------ appends


def test_append_scopes_and_drain(servers: Servers, drive: Drive) -> None:
    srv = servers("v2")
    session = _new_session(drive, srv)
    sid, ext, pat = session["id"], session["externalId"], session["publicAccessToken"]
    other = _new_session(drive, srv)
    bodies = ['{"type":"user","text":"hi"}', "plain text, not JSON", '"a JSON string"']
    results = drive(
        srv,
        [
            {"op": "appendMany", "session": ext, "io": "in", "bodies": bodies, "token": pat},
            {"op": "append", "session": sid, "io": "out", "body": '{"x":1}', "token": pat},
            {"op": "append", "session": sid, "io": "out", "body": '{"x":1}'},
            {"op": "append", "session": sid, "io": "in", "body": "from the key"},
            {"op": "append", "session": other["id"], "io": "in", "body": "x", "token": pat},
            {"op": "append", "session": sid, "io": "in", "body": "x", "token": "tr_dev_wrong"},
            {"op": "records", "session": ext, "io": "in", "token": pat},
            {"op": "records", "session": sid, "io": "in", "afterEventId": 1},
            {"op": "records", "session": sid, "io": "out"},
            {"op": "records", "session": sid, "io": "in", "afterEventId": 99},
        ],
    )
    assert all(item == {"ok": True} for item in ok(results[0])["data"])
    denied = err(results[1], 403)
    assert denied["name"] == "PermissionDeniedError"
    assert ok(results[2])["data"]["ok"] is True
    assert ok(results[3])["data"]["ok"] is True
    err(results[4], 403)  # token of another session
    err(results[5], 401)

    drained = ok(results[6])["data"]["records"]
    assert [r["seqNum"] for r in drained] == [0, 1, 2, 3]
    assert [r["data"] for r in drained] == [*bodies, "from the key"]
    part_ids = [r["id"] for r in drained]
    assert all(isinstance(p, str) and p for p in part_ids)
    assert len(set(part_ids)) == 4
    after = ok(results[7])["data"]["records"]
    assert [r["seqNum"] for r in after] == [2, 3]
    assert [r["data"] for r in after] == [bodies[2], "from the key"]
    out = ok(results[8])["data"]["records"]
    assert [r["data"] for r in out] == ['{"x":1}']
    assert ok(results[9])["data"]["records"] == []
    (huge,) = drive(srv, [{"op": "records", "session": sid, "io": "in", "afterEventId": "9" * 25}])
    assert ok(huge)["data"]["records"] == []  # DISCREPANCIES.md D6


def test_append_size_limit_and_sdk_part_ids(servers: Servers, drive: Drive) -> None:
    srv = servers("v2")
    session = _new_session(drive, srv)
    sid = session["id"]
    results = drive(
        srv,
        [
            {"op": "append", "session": sid, "io": "in", "body": "a", "repeat": 1_000_000},
            {"op": "append", "session": sid, "io": "in", "body": "b", "repeat": 1_048_577},
            {"op": "append", "session": sid, "io": "in", "body": '"', "repeat": 600_000},
            {"op": "append", "session": sid, "io": "in", "body": "small"},
            {"op": "records", "session": sid, "io": "in"},
        ],
    )
    assert ok(results[0])["data"]["ok"] is True
    assert err(results[1], 413)["name"] == "ApiError"
    err(results[2], 413)  # under 1 MiB raw, over it once escaped in the envelope
    ok(results[3])
    records = ok(results[4])["data"]["records"]
    assert [r["seqNum"] for r in records] == [0, 1]
    assert len(records[0]["data"]) == 1_000_000
    assert records[1]["data"] == "small"
    # The SDK sends one nanoid (21 chars) as X-Part-Id per append; the server keeps it.
    assert all(len(r["id"]) == 21 for r in records), [r["id"] for r in records]


def test_minted_token_scopes(servers: Servers, drive: Drive) -> None:
    """Read-only, write-only and expired public tokens, as the SDK meets them."""
    srv = servers("v2")
    session = _new_session(drive, srv)
    sid, ext = session["id"], session["externalId"]
    read_only = srv.mint_token(ext, read=True, write=False)
    write_only = srv.mint_token(sid, read=False, write=True)
    expired = srv.mint_token(sid, read=True, write=True, ttl=-60)
    results = drive(
        srv,
        [
            {"op": "append", "session": sid, "io": "in", "body": '"w"', "token": write_only},
            {"op": "append", "session": sid, "io": "in", "body": '"r"', "token": read_only},
            {"op": "records", "session": ext, "io": "in", "token": read_only},
            {"op": "records", "session": ext, "io": "in", "token": write_only},
            {"op": "retrieve", "session": sid, "token": read_only},
            {"op": "append", "session": sid, "io": "in", "body": '"x"', "token": expired},
            {
                "op": "subscribe",
                "session": sid,
                "io": "in",
                "token": read_only,
                "stopAfter": 1,
                "timeoutInSeconds": 2,
            },
            {
                "op": "subscribe",
                "session": sid,
                "io": "in",
                "token": write_only,
                "timeoutInSeconds": 1,
                "maxMs": 6000,
            },
            {
                "op": "subscribe",
                "session": sid,
                "io": "in",
                "token": expired,
                "timeoutInSeconds": 1,
                "maxMs": 6000,
            },
        ],
    )
    assert ok(results[0])["data"]["ok"] is True
    err(results[1], 403)
    assert [r["data"] for r in ok(results[2])["data"]["records"]] == ['"w"']
    err(results[3], 403)
    assert ok(results[4])["data"]["id"] == sid
    assert err(results[5], 401)["name"] == "AuthenticationError"
    assert ok(results[6])["chunks"] == ['"w"']
    no_read = ok(results[7])
    assert no_read["error"] is not None and no_read["error"]["status"] == 403
    assert no_read["chunks"] == []
    gone = ok(results[8])
    assert gone["error"] is not None and gone["error"]["status"] == 401


def test_closed_session_rejects_appends(servers: Servers, drive: Drive) -> None:
    srv = servers("v2")
    session = _new_session(drive, srv)
    sid, pat = session["id"], session["publicAccessToken"]
    results = drive(
        srv,
        [
            {"op": "close", "session": sid},
            {"op": "append", "session": sid, "io": "in", "body": "late", "token": pat},
            {"op": "append", "session": sid, "io": "out", "body": "late"},
        ],
    )
    ok(results[0])
    assert err(results[1], 400)["name"] == "BadRequestError"
    err(results[2], 400)


def test_drain_returns_control_records_with_string_ids(servers: Servers, drive: Drive) -> None:
    srv = servers("v2")
    session = _new_session(drive, srv)
    sid = session["id"]
    (appended,) = drive(srv, [{"op": "append", "session": sid, "io": "out", "body": '"d"'}])
    ok(appended)
    control_seq = srv.write_control(
        sid, "turn-complete", headers=[["session-in-event-id", "0"]], io="out"
    )
    (drained,) = drive(srv, [{"op": "records", "session": sid, "io": "out"}])
    records = ok(drained)["data"]["records"]  # zod: every record has a string id
    assert [r["seqNum"] for r in records] == [0, control_seq]
    assert records[0]["data"] == '"d"'
    assert "headers" not in records[0] or records[0]["headers"] == []
    assert ["trigger-control", "turn-complete"] in records[1]["headers"]
    assert ["session-in-event-id", "0"] in records[1]["headers"]


# ---------------------------------------------------------------------------- subscribe


@pytest.mark.parametrize("wire", WIRES)
def test_subscribe_delivers_records_in_order(wire: str, servers: Servers, drive: Drive) -> None:
    srv = servers(wire)
    session = _new_session(drive, srv)
    sid, ext, pat = session["id"], session["externalId"], session["publicAccessToken"]
    bodies = [
        '{"type":"text-delta","delta":"po"}',
        "not JSON at all",
        "h\u00e9llo \u2713 \U0001f600",
        '"quoted"',
        "42",
        '{"nested":{"list":[1,2,3],"null":null}}',
        "multi\nline\r\ntext\rend",
        "data: [DONE]\n\nid: 9\n\n",
        "\u2028line separators\u2029 and a tab\t",
    ]
    results = drive(
        srv,
        [
            {"op": "appendMany", "session": sid, "io": "out", "bodies": bodies},
            {"op": "append", "session": ext, "io": "in", "body": '{"text":"in"}', "token": pat},
            {
                "op": "subscribe",
                "session": ext,
                "io": "out",
                "timeoutInSeconds": 2,
                "stopAfter": len(bodies),
            },
            {
                "op": "subscribe",
                "session": sid,
                "io": "in",
                "timeoutInSeconds": 2,
                "stopAfter": 1,
                "token": pat,
            },
        ],
    )
    ok(results[0])
    ok(results[1])
    sub = ok(results[2])
    assert sub["error"] is None
    assert _data_chunks(wire, sub["chunks"]) == bodies
    parts = _record_parts(wire, sub["parts"])
    assert [p["id"] for p in parts] == [str(i) for i in range(len(bodies))]
    assert sub["controls"] == []
    if wire == "v2":
        record_ids = [p["recordId"] for p in parts]
        assert all(isinstance(r, str) and r for r in record_ids)
        assert len(set(record_ids)) == len(bodies)
        assert all(isinstance(p["timestamp"], int) and p["timestamp"] > 0 for p in parts)
    sub_in = ok(results[3])
    assert sub_in["error"] is None
    assert _data_chunks(wire, sub_in["chunks"]) == ['{"text":"in"}']


@pytest.mark.parametrize("wire", WIRES)
def test_resume_with_last_event_id(wire: str, servers: Servers, drive: Drive) -> None:
    srv = servers(wire)
    session = _new_session(drive, srv)
    sid = session["id"]
    bodies = [f'{{"n":{i}}}' for i in range(5)]
    results = drive(
        srv,
        [
            {"op": "appendMany", "session": sid, "io": "out", "bodies": bodies},
            {
                "op": "subscribe",
                "session": sid,
                "io": "out",
                "lastEventId": "2",
                "timeoutInSeconds": 2,
                "stopAfter": 2,
            },
            {
                "op": "subscribe",
                "session": sid,
                "io": "out",
                "lastEventId": "0",
                "timeoutInSeconds": 2,
                "stopAfter": 4,
            },
            {
                "op": "subscribe",
                "session": sid,
                "io": "out",
                "lastEventId": "4",
                "timeoutInSeconds": 1,
                "maxMs": 6000,
            },
        ],
    )
    ok(results[0])
    later = ok(results[1])
    assert _data_chunks(wire, later["chunks"]) == bodies[3:]
    assert [p["id"] for p in _record_parts(wire, later["parts"])] == ["3", "4"]
    from_zero = ok(results[2])
    assert _data_chunks(wire, from_zero["chunks"]) == bodies[1:]
    caught_up = ok(results[3])
    assert caught_up["error"] is None
    assert _data_chunks(wire, caught_up["chunks"]) == []
    assert caught_up["completed"], "the stream should end after Timeout-Seconds with nothing new"


@pytest.mark.parametrize("wire", WIRES)
def test_live_appends_reach_a_subscriber(wire: str, servers: Servers, drive: Drive) -> None:
    srv = servers(wire)
    session = _new_session(drive, srv)
    sid = session["id"]
    (sub_result,) = drive(
        srv,
        [
            {
                "op": "subscribe",
                "session": sid,
                "io": "out",
                "timeoutInSeconds": 10,
                "stopAfter": 2,
                "maxMs": 10000,
                "during": {
                    "delayMs": 50,
                    "ops": [
                        {
                            "op": "appendMany",
                            "session": sid,
                            "io": "out",
                            "bodies": ['"live-1"', '"live-2"'],
                        }
                    ],
                },
            }
        ],
    )
    sub = ok(sub_result)
    assert all(r["ok"] for r in sub["during"]), sub["during"]
    assert sub["error"] is None
    assert _data_chunks(wire, sub["chunks"]) == ['"live-1"', '"live-2"']


@pytest.mark.parametrize("wire", WIRES)
def test_subscribe_from_latest_skips_existing_records(
    wire: str, servers: Servers, drive: Drive
) -> None:
    """``from: "latest"`` sends ``X-Trigger-Stream-Start: latest``: only new records."""
    srv = servers(wire)
    session = _new_session(drive, srv)
    sid = session["id"]
    results = drive(
        srv,
        [
            {"op": "appendMany", "session": sid, "io": "out", "bodies": ['"old-1"', '"old-2"']},
            {
                "op": "subscribe",
                "session": sid,
                "io": "out",
                "from": "latest",
                "timeoutInSeconds": 10,
                "stopAfter": 1,
                "maxMs": 10000,
                "during": {
                    "delayMs": 50,
                    "ops": [{"op": "append", "session": sid, "io": "out", "body": '"new"'}],
                },
            },
        ],
    )
    ok(results[0])
    sub = ok(results[1])
    assert sub["error"] is None
    assert _data_chunks(wire, sub["chunks"]) == ['"new"']
    assert [p["id"] for p in _record_parts(wire, sub["parts"])] == ["2"]


@pytest.mark.parametrize("wire", WIRES)
def test_many_concurrent_subscribers(wire: str, servers: Servers, drive: Drive) -> None:
    """25 SDK subscriptions on one channel while records are appended: each gets them all."""
    srv = servers(wire)
    session = _new_session(drive, srv)
    sid, pat = session["id"], session["publicAccessToken"]
    bodies = [f'"fan-{i}"' for i in range(5)]
    subscribe = {
        "op": "subscribe",
        "session": sid,
        "io": "out",
        "token": pat,
        "timeoutInSeconds": 10,
        "stopAfter": len(bodies),
        "maxMs": 15000,
    }
    writer = {
        "op": "appendMany",
        "session": sid,
        "io": "out",
        "bodies": bodies,
    }
    (result,) = drive(
        srv,
        [
            {
                "op": "parallel",
                "ops": [*([subscribe] * 25), [{"op": "sleep", "ms": 300}, writer]],
            }
        ],
    )
    inner = ok(result)["results"]
    for sub_result in inner[:25]:
        sub = ok(sub_result)
        assert sub["error"] is None
        assert _data_chunks(wire, sub["chunks"]) == bodies
    assert ok(inner[-1][1])["data"] == [{"ok": True}] * len(bodies)


def test_control_records_go_to_on_control(servers: Servers, drive: Drive) -> None:
    srv = servers("v2")
    session = _new_session(drive, srv)
    sid, ext = session["id"], session["externalId"]
    (first,) = drive(
        srv, [{"op": "appendMany", "session": sid, "io": "out", "bodies": ['"a"', '"b"']}]
    )
    ok(first)
    control_seq = srv.write_control(
        sid,
        "turn-complete",
        headers=[["public-access-token", "fresh-token"], ["session-in-event-id", "7"]],
        io="out",
    )
    upgrade_seq = srv.write_control(ext, "upgrade-required", io="out")
    results = drive(
        srv,
        [
            {"op": "append", "session": sid, "io": "out", "body": '"c"'},
            {"op": "subscribe", "session": sid, "io": "out", "timeoutInSeconds": 2, "stopAfter": 3},
            {
                "op": "subscribe",
                "session": sid,
                "io": "out",
                "timeoutInSeconds": 2,
                "stopAfter": 1,
                "lastEventId": str(control_seq),
            },
        ],
    )
    ok(results[0])
    sub = ok(results[1])
    assert sub["error"] is None
    assert sub["chunks"] == ['"a"', '"b"', '"c"']  # control records are never chunks
    controls = sub["controls"]
    assert [c["subtype"] for c in controls] == ["turn-complete", "upgrade-required"]
    assert [c["seqNum"] for c in controls] == [control_seq, upgrade_seq]
    headers = controls[0]["headers"]
    assert ["trigger-control", "turn-complete"] in headers
    assert ["public-access-token", "fresh-token"] in headers
    assert ["session-in-event-id", "7"] in headers
    assert [p["id"] for p in sub["parts"]] == [
        "0",
        "1",
        str(control_seq),
        str(upgrade_seq),
        str(upgrade_seq + 1),
    ]
    resumed = ok(results[2])
    assert resumed["chunks"] == ['"c"']
    assert [c["subtype"] for c in resumed["controls"]] == ["upgrade-required"]


def test_command_records_are_skipped_after_trim(servers: Servers, drive: Drive) -> None:
    srv = servers("v2")
    session = _new_session(drive, srv)
    sid = session["id"]
    (first,) = drive(
        srv, [{"op": "appendMany", "session": sid, "io": "out", "bodies": ['"a"', '"b"', '"c"']}]
    )
    ok(first)
    srv.trim(sid, "out", 1)  # removes "a"; appends a command record ["", "trim"] at seq 3
    results = drive(
        srv,
        [
            {"op": "append", "session": sid, "io": "out", "body": '"d"'},
            {"op": "subscribe", "session": sid, "io": "out", "timeoutInSeconds": 2, "stopAfter": 3},
            {"op": "records", "session": sid, "io": "out"},
        ],
    )
    ok(results[0])
    sub = ok(results[1])
    assert sub["chunks"] == ['"b"', '"c"', '"d"']
    assert [p["id"] for p in sub["parts"]] == ["1", "2", "4"]
    assert sub["controls"] == []
    drained = ok(results[2])["data"]["records"]
    assert [r["seqNum"] for r in drained] == [1, 2, 4]


@pytest.mark.parametrize("wire", WIRES)
def test_subscribe_errors_are_terminal(wire: str, servers: Servers, drive: Drive) -> None:
    srv = servers(wire)
    session = _new_session(drive, srv)
    other = _new_session(drive, srv)
    results = drive(
        srv,
        [
            {
                "op": "subscribe",
                "session": "session_doesnotexist0000",
                "io": "out",
                "timeoutInSeconds": 1,
                "maxMs": 6000,
            },
            {
                "op": "subscribe",
                "session": session["id"],
                "io": "out",
                "token": other["publicAccessToken"],
                "timeoutInSeconds": 1,
                "maxMs": 6000,
            },
            {
                "op": "subscribe",
                "session": f"not-created-yet-{_uid()}",
                "io": "out",
                "timeoutInSeconds": 1,
                "maxMs": 6000,
            },
        ],
    )
    missing = ok(results[0])
    assert missing["error"] is not None and missing["error"]["status"] == 404
    denied = ok(results[1])
    assert denied["error"] is not None and denied["error"]["status"] == 403
    empty = ok(results[2])
    assert empty["error"] is None
    assert _data_chunks(wire, empty["chunks"]) == []
    assert empty["completed"]


ECHO_HELLO = [
    "start",
    "start-step",
    "text-start",
    "text-delta",
    "text-delta",
    "text-end",
    "finish-step",
    "finish",
]


@pytest.mark.parametrize("wire", WIRES)
def test_chat_turn_with_the_echo_agent(wire: str, servers: Servers, drive: Drive) -> None:
    """PROTOCOL.md section 6 through the SDK: append to .in, read .out to turn-complete."""
    srv = servers(wire, echo_agent=True)
    session = _new_session(drive, srv)
    sid, ext, pat = session["id"], session["externalId"], session["publicAccessToken"]
    message = json.dumps(chat_message("hello", chat_id=ext))
    results = drive(
        srv,
        [
            {"op": "append", "session": ext, "io": "in", "body": message, "token": pat},
            {
                "op": "subscribe",
                "session": ext,
                "io": "out",
                "token": pat,
                "timeoutInSeconds": 600,  # what the SDK's session stream manager sends
                "stopAfter": len(ECHO_HELLO) + (1 if wire == "v1" else 0),
                "maxMs": 10000,
            },
        ],
    )
    ok(results[0])
    sub = ok(results[1])
    assert sub["error"] is None
    if wire == "v2":
        # The agent writes chunk objects (not strings) into the envelope.
        chunks = sub["chunks"]
        # The data chunks are enqueued before the control part is read; read on to it.
        (more,) = drive(
            srv,
            [
                {
                    "op": "subscribe",
                    "session": sid,
                    "io": "out",
                    "token": pat,
                    "lastEventId": str(len(ECHO_HELLO) - 1),
                    "timeoutInSeconds": 1,
                    "maxMs": 6000,
                }
            ],
        )
        controls = ok(more)["controls"]
        assert [c["subtype"] for c in controls] == ["turn-complete"]
        assert controls[0]["seqNum"] == len(ECHO_HELLO)
        headers = dict((name, value) for name, value in controls[0]["headers"])
        assert headers["session-in-event-id"] == "0"
        fresh = headers["public-access-token"]
    else:
        # v1: no headers, so the SDK has no onControl; the legacy control data record
        # arrives as a chunk (PROTOCOL.md 3.2, "older agents").
        assert sub["controls"] == []
        *chunks, control = _data_chunks(wire, sub["chunks"])
        assert control["type"] == "trigger:turn-complete"
        fresh = control["publicAccessToken"]
    assert [c["type"] for c in chunks] == ECHO_HELLO
    assert "".join(c.get("delta", "") for c in chunks) == "echo: hello"
    assert fresh
    (again,) = drive(
        srv, [{"op": "append", "session": sid, "io": "in", "body": '"second"', "token": fresh}]
    )
    assert ok(again)["data"]["ok"] is True  # the refreshed token works


# ------------------------------------------------------------------- faults and retries


def test_sdk_append_retries_are_idempotent(servers: Servers, drive: Drive) -> None:
    """The SDK reuses its X-Part-Id across retries: a lost answer appends once."""
    srv = servers("v2")
    session = _new_session(drive, srv)
    sid = session["id"]
    srv.faults.drop_next(1, route="append", process=True)
    srv.faults.fail_next(1, status=503, route="append")
    try:
        results = drive(
            srv,
            [
                {"op": "append", "session": sid, "io": "out", "body": '"once"', "retry": 3},
                {"op": "append", "session": sid, "io": "out", "body": '"after-503"', "retry": 3},
                {"op": "records", "session": sid, "io": "out"},
            ],
        )
    finally:
        srv.faults.clear()
    assert ok(results[0])["data"]["ok"] is True
    assert ok(results[1])["data"]["ok"] is True
    records = ok(results[2])["data"]["records"]
    assert [r["data"] for r in records] == ['"once"', '"after-503"']


@pytest.mark.parametrize("wire", WIRES)
def test_sdk_resumes_after_a_cut_stream(wire: str, servers: Servers, drive: Drive) -> None:
    """A stream cut mid-way: the SDK reconnects with Last-Event-ID, nothing lost or doubled."""
    srv = servers(wire)
    session = _new_session(drive, srv)
    sid = session["id"]
    bodies = [f'"r{i}"' for i in range(6)]
    (appended,) = drive(srv, [{"op": "appendMany", "session": sid, "io": "out", "bodies": bodies}])
    ok(appended)
    reads_before = srv.request_counts.get("read", 0)
    srv.faults.cut_stream(after_records=2, count=2)
    try:
        (sub_result,) = drive(
            srv,
            [
                {
                    "op": "subscribe",
                    "session": sid,
                    "io": "out",
                    "timeoutInSeconds": 5,
                    "stopAfter": len(bodies),
                    "maxMs": 10000,
                }
            ],
        )
    finally:
        srv.faults.clear()
    sub = ok(sub_result)
    assert _data_chunks(wire, sub["chunks"]) == bodies
    assert [p["id"] for p in _record_parts(wire, sub["parts"])] == [str(i) for i in range(6)]
    # two cut responses, then a whole one
    assert srv.request_counts.get("read", 0) - reads_before >= 3


@pytest.mark.parametrize("wire", WIRES)
def test_many_records_stream_and_drain_in_pages(wire: str, servers: Servers, drive: Drive) -> None:
    """2,500 records: several v2 batches on one stream; the drain answers all at once."""
    srv = servers(wire)
    session = _new_session(drive, srv)
    sid = session["id"]
    total = 2500
    for i in range(total):
        srv.append(sid, "out", f'{{"i":{i}}}')
    results = drive(
        srv,
        [
            {
                "op": "subscribe",
                "session": sid,
                "io": "out",
                "timeoutInSeconds": 5,
                "stopAfter": total,
                "maxMs": 20000,
            },
            {"op": "records", "session": sid, "io": "out"},
        ],
    )
    sub = ok(results[0])
    assert _data_chunks(wire, sub["chunks"]) == [f'{{"i":{i}}}' for i in range(total)]
    first_page = ok(results[1])["data"]["records"]
    assert [r["seqNum"] for r in first_page] == list(range(total))  # up to the tail at once
    (after,) = drive(srv, [{"op": "records", "session": sid, "io": "out", "afterEventId": 999}])
    assert [r["seqNum"] for r in ok(after)["data"]["records"]] == list(range(1000, total))


# ------------------------------------------------------------------ production fidelity


def test_tokens_from_auth_create_public_token_are_accepted(servers: Servers, drive: Drive) -> None:
    """``auth.createPublicToken`` asks ``/api/v1/auth/jwt/claims`` and signs locally with
    the secret key; the server accepts what it signed, within its scopes."""
    srv = servers("v2")
    mine, other = _new_session(drive, srv), _new_session(drive, srv)
    ext = mine["externalId"]
    claims_before = srv.request_counts.get("claims", 0)
    made = drive(
        srv,
        [
            {
                "op": "publicToken",
                "scopes": {"read": {"sessions": ext}, "write": {"sessions": ext}},
            },
            {"op": "publicToken", "scopes": {"read": {"sessions": True}}},
            {"op": "publicToken", "scopes": {"write": {"tasks": "conformance-agent"}}},
            {"op": "publicToken", "scopes": {"read": {"sessions": ext}}, "expirationTime": 1},
        ],
    )
    scoped, reader, creator, expired = (ok(r)["token"] for r in made)
    assert srv.request_counts.get("claims", 0) - claims_before == 4
    results = drive(
        srv,
        [
            {"op": "append", "session": ext, "io": "in", "body": '"hi"', "token": scoped},
            {"op": "records", "session": ext, "io": "in", "token": scoped},
            {"op": "records", "session": other["id"], "io": "in", "token": scoped},
            {"op": "append", "session": ext, "io": "out", "body": '"x"', "token": scoped},
            {"op": "listAll", "options": {"type": "chat.agent"}, "token": reader},
            {"op": "append", "session": ext, "io": "in", "body": '"x"', "token": reader},
            {"op": "create", "body": _create_body(f"conf-tok-{_uid()}"), "token": creator},
            {"op": "records", "session": ext, "io": "in", "token": expired},
            {
                "op": "subscribe",
                "session": ext,
                "io": "in",
                "timeoutInSeconds": 1,
                "stopAfter": 1,
                "token": scoped,
            },
        ],
    )
    ok(results[0])
    assert [r["data"] for r in ok(results[1])["data"]["records"]] == ['"hi"']
    err(results[2], 403)
    err(results[3], 403)  # .out needs the secret key
    assert mine["id"] in ok(results[4])["ids"]
    err(results[5], 403)
    assert ok(results[6])["status"] == 201
    err(results[7], 401)
    assert ok(results[8])["chunks"] == ['"hi"']


def test_a_retried_append_whose_first_attempt_committed(servers: Servers, drive: Drive) -> None:
    """The SDK reuses its part id on a retry; the replay is answered ``{"ok": true}``
    (no ``seq``) and nothing is stored twice."""
    srv = servers("v2", name="replay")
    session = _new_session(drive, srv)
    sid = session["id"]
    srv.faults.drop_next(1, route="append", process=True)
    (result,) = drive(
        srv, [{"op": "append", "session": sid, "io": "in", "body": '"once"', "retry": 3}]
    )
    assert ok(result)["data"] == {"ok": True}
    assert [r["seq"] for r in srv.records(sid, "in")] == [0]


def test_error_order_and_bodies(servers: Servers, drive: Drive) -> None:
    srv = servers("v2", name="errors")
    pat = _new_session(drive, srv)["publicAccessToken"]
    before = srv.request_counts.get("sessions", 0)
    (retrieved,) = drive(srv, [{"op": "retrieve", "session": "session_missing", "retry": 3}])
    missing = err(retrieved, 404)
    assert missing["error"] == "Not found"
    assert srv.request_counts["sessions"] - before == 1  # x-should-retry: false: no retry
    results = drive(
        srv,
        [
            {"op": "append", "session": "session_missing", "io": "in", "body": "x", "token": pat},
            {"op": "append", "session": "nobody", "io": "in", "body": "x"},
            {"op": "create", "body": {**_create_body(), "tags": ["t"] * 11}},
            {"op": "close", "session": "session_missing", "body": {"reason": "x"}, "token": pat},
        ],
    )
    assert err(results[0], 403)["error"] == "Unauthorized"  # 403 before 404
    assert err(results[1], 404)["error"] == "Resource not found"
    assert err(results[2], 400)["name"] == "BadRequestError"
    err(results[3], 403)
