from __future__ import annotations

import time
from typing import Any, Dict, List

import requests

from sessions_client.testing import LocalServer

from ._support import SECRET, bearer, create

ISO_FIELDS = ("createdAt", "updatedAt")


def api(srv: LocalServer, path: str = "") -> str:
    return f"{srv.url}/api/v1/sessions{path}"


def test_create_returns_201_with_session_object_run_and_token(server: LocalServer) -> None:
    created = create(server, "chat-1", tags=["a"], metadata={"k": 1})
    assert created["id"].startswith("session_")
    assert created["externalId"] == "chat-1"
    assert created["type"] == "chat.agent" and created["taskIdentifier"] == "echo"
    assert created["triggerConfig"] == {"basePayload": {"chatId": "chat-1"}}
    assert created["tags"] == ["a"] and created["metadata"] == {"k": 1}
    assert created["closedAt"] is None and created["closedReason"] is None
    assert created["expiresAt"] is None
    assert created["runId"].startswith("run_") and created["currentRunId"] == created["runId"]
    assert created["isCached"] is False
    assert created["publicAccessToken"].count(".") == 2
    for name in ISO_FIELDS:
        assert created[name].endswith("Z") and "T" in created[name]


def test_create_again_with_same_external_id_is_cached_200(server: LocalServer) -> None:
    first = create(server, "chat-1")
    again = create(server, "chat-1", expect=200)
    assert again["id"] == first["id"] and again["isCached"] is True


def test_create_without_external_id_always_makes_a_new_session(server: LocalServer) -> None:
    assert create(server)["id"] != create(server)["id"]


def test_create_on_closed_external_id_is_409(server: LocalServer) -> None:
    create(server, "chat-1")
    requests.post(api(server, "/chat-1/close"), json={}, headers=bearer(SECRET), timeout=5)
    body = create(server, "chat-1", expect=409)
    assert "closed" in body["error"]


def test_create_validation_is_400(server: LocalServer) -> None:
    """Production validates bodies with zod in the route builder: 400, not 422."""
    create(server, "session_reserved", expect=400)
    create(server, "x" * 257, expect=400)
    create(server, "", expect=400)
    create(server, "ok", tags=[str(i) for i in range(11)], expect=400)
    create(server, "ok", triggerConfig={}, expect=400)
    create(server, "ok", type="", expect=400)
    response = requests.post(api(server), data="not json", headers=bearer(SECRET), timeout=5)
    assert response.status_code == 400 and response.json() == {"error": "Invalid JSON"}
    empty = requests.post(api(server), data=b"", headers=bearer(SECRET), timeout=5)
    assert empty.status_code == 400 and empty.json() == {"error": "Request body is empty"}


def test_management_writes_without_content_length_are_413(server: LocalServer) -> None:
    create(server, "c")

    def body():  # type: ignore[no-untyped-def]
        yield b"{}"

    for method, path in (("POST", ""), ("PATCH", "/c"), ("POST", "/c/close")):
        response = requests.request(
            method, api(server, path), data=body(), headers=bearer(SECRET), timeout=5
        )
        assert response.status_code == 413, (method, path)
        assert response.json() == {"error": "Request body too large"}
    too_big = requests.post(
        api(server, "/c/close"), json={"reason": "x" * 2000}, headers=bearer(SECRET), timeout=5
    )
    assert too_big.status_code == 413


def test_create_trims_external_id_and_accepts_256_chars(server: LocalServer) -> None:
    assert create(server, "  padded  ")["externalId"] == "padded"
    assert create(server, "y" * 256)["externalId"] == "y" * 256


def test_create_with_expires_at_iso_or_ms(server: LocalServer) -> None:
    iso = create(server, "a", expiresAt="2030-01-02T03:04:05.678Z")
    assert iso["expiresAt"] == "2030-01-02T03:04:05.678Z"
    ms = create(server, "b", expiresAt=1893553445678)
    assert ms["expiresAt"] == "2030-01-02T03:04:05.678Z"


def test_retrieve_by_friendly_id_and_external_id(server: LocalServer) -> None:
    created = create(server, "chat/1 ?#")
    for ident in (created["id"], "chat%2F1%20%3F%23"):
        response = requests.get(api(server, f"/{ident}"), headers=bearer(SECRET), timeout=5)
        assert response.status_code == 200
        assert response.json()["id"] == created["id"]
        assert "publicAccessToken" not in response.json()


def test_retrieve_unknown_is_404(server: LocalServer) -> None:
    for ident in ("session_nope", "nope"):
        response = requests.get(api(server, f"/{ident}"), headers=bearer(SECRET), timeout=5)
        assert response.status_code == 404
        assert response.json() == {"error": "Not found"}
        assert response.headers["x-should-retry"] == "false"


def test_update_tags_and_metadata(server: LocalServer) -> None:
    created = create(server, "old")
    time.sleep(0.01)
    response = requests.patch(
        api(server, "/old"),
        json={"tags": ["x", "y"], "metadata": {"m": True}, "externalId": "old"},
        headers=bearer(SECRET),
        timeout=5,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["tags"] == ["x", "y"] and body["metadata"] == {"m": True}
    assert body["externalId"] == "old" and body["updatedAt"] > created["updatedAt"]


def test_external_id_cannot_change_after_creation(server: LocalServer) -> None:
    created = create(server, "one")
    bare = create(server)
    for path, value in (("/one", "other"), ("/one", None), (f"/{bare['id']}", "late")):
        response = requests.patch(
            api(server, path), json={"externalId": value}, headers=bearer(SECRET), timeout=5
        )
        assert response.status_code == 422, (path, value)
        assert response.json()["error"].startswith("externalId cannot be changed after creation")
    same = requests.patch(
        api(server, f"/{created['id']}"), json={"externalId": "one"}, headers=bearer(SECRET)
    )
    assert same.status_code == 200 and same.json()["externalId"] == "one"
    kept = requests.patch(
        api(server, f"/{bare['id']}"), json={"externalId": None}, headers=bearer(SECRET)
    )
    assert kept.status_code == 200 and kept.json()["externalId"] is None
    bad = requests.patch(
        api(server, "/one"), json={"externalId": "session_x"}, headers=bearer(SECRET), timeout=5
    )
    assert bad.status_code == 400


def test_close_is_idempotent_and_keeps_first_reason(server: LocalServer) -> None:
    create(server, "c")
    first = requests.post(
        api(server, "/c/close"), json={"reason": "done"}, headers=bearer(SECRET), timeout=5
    )
    assert first.status_code == 200
    assert first.json()["closedReason"] == "done" and first.json()["closedAt"]
    again = requests.post(
        api(server, "/c/close"), json={"reason": "other"}, headers=bearer(SECRET), timeout=5
    )
    assert again.status_code == 200 and again.json() == first.json()
    empty = requests.post(api(server, "/c/close"), data=b"", headers=bearer(SECRET), timeout=5)
    assert empty.status_code == 400 and empty.json() == {"error": "Request body is empty"}


def list_sessions(srv: LocalServer, **params: Any) -> Dict[str, Any]:
    response = requests.get(api(srv), params=params, headers=bearer(SECRET), timeout=5)
    assert response.status_code == 200, response.text
    result: Dict[str, Any] = response.json()
    return result


def test_list_pages_forward_and_backward_newest_first(server: LocalServer) -> None:
    ids = [create(server, f"s{i}")["id"] for i in range(7)]
    newest_first = list(reversed(ids))
    seen: List[str] = []
    page = list_sessions(server, **{"page[size]": 3})
    pages = [page]
    assert "previous" not in page["pagination"]
    while "next" in page["pagination"]:
        page = list_sessions(server, **{"page[size]": 3, "page[after]": page["pagination"]["next"]})
        pages.append(page)
    for p in pages:
        seen.extend(s["id"] for s in p["data"])
    assert seen == newest_first
    assert [len(p["data"]) for p in pages] == [3, 3, 1]
    assert "previous" in pages[1]["pagination"]
    back = list_sessions(
        server, **{"page[size]": 3, "page[before]": pages[1]["pagination"]["previous"]}
    )
    assert [s["id"] for s in back["data"]] == newest_first[:3]


def test_list_default_page_size_is_20_and_limits_are_checked(server: LocalServer) -> None:
    for i in range(22):
        create(server, f"s{i}")
    assert len(list_sessions(server)["data"]) == 20
    for size in ("0", "101", "x"):
        response = requests.get(
            api(server), params={"page[size]": size}, headers=bearer(SECRET), timeout=5
        )
        assert response.status_code == 400


def test_list_filters(server: LocalServer) -> None:
    a = create(server, "a", type="chat", tags=["red", "blue"])
    b = create(server, "b", type="other", taskIdentifier="task-b", tags=["green"])
    c = create(server, "c", type="chat", expiresAt=int(time.time() * 1000) - 1000)
    requests.post(api(server, "/b/close"), json={}, headers=bearer(SECRET), timeout=5)

    def ids(**params: Any) -> List[str]:
        return sorted(s["id"] for s in list_sessions(server, **params)["data"])

    assert ids(**{"filter[type]": "chat"}) == sorted([a["id"], c["id"]])
    assert ids(**{"filter[tags]": "green"}) == [b["id"]]
    assert ids(**{"filter[taskIdentifier]": "task-b"}) == [b["id"]]
    assert ids(**{"filter[externalId]": "c"}) == [c["id"]]
    assert ids(**{"filter[status]": "ACTIVE"}) == [a["id"]]
    assert ids(**{"filter[status]": "EXPIRED"}) == [c["id"]]
    assert ids(**{"filter[createdAt][period]": "1h"}) == sorted([a["id"], b["id"], c["id"]])
    now = int(time.time() * 1000)
    assert ids(**{"filter[createdAt][from]": now + 60_000}) == []
    assert len(ids(**{"filter[createdAt][to]": now + 60_000})) == 3

    assert ids(**{"filter[createdAt][to]": now - 3_600_000}) == []
    bad = requests.get(
        api(server), params={"filter[status]": "NOPE"}, headers=bearer(SECRET), timeout=5
    )
    assert bad.status_code == 400


def test_list_filters_are_single_values_as_production(server: LocalServer) -> None:
    """Production does not split commas: a comma list matches nothing, or is a 400 for
    the status enum; a repeated parameter counts once (the last value)."""
    a = create(server, "a", type="chat", tags=["red", "blue"])
    create(server, "b", type="other", tags=["green"])
    assert list_sessions(server, **{"filter[type]": "chat,other"})["data"] == []
    assert list_sessions(server, **{"filter[tags]": "blue,green"})["data"] == []
    tagged = requests.get(
        api(server) + "?filter[tags]=green&filter[tags]=red", headers=bearer(SECRET), timeout=5
    )
    assert [s["id"] for s in tagged.json()["data"]] == [a["id"]]
    for status in ("ACTIVE,CLOSED", "active", ""):
        response = requests.get(
            api(server), params={"filter[status]": status}, headers=bearer(SECRET), timeout=5
        )
        assert response.status_code == 400, status


def test_status_of_expired_session_is_expired_and_append_is_refused(server: LocalServer) -> None:
    create(server, "old", expiresAt=int(time.time() * 1000) - 1)
    response = requests.post(
        f"{server.url}/realtime/v1/sessions/old/in/append",
        data="x",
        headers=bearer(SECRET),
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error": "Cannot append to an expired session"}
    create(server, "old", expect=409)


def test_unknown_routes_and_methods(server: LocalServer) -> None:
    assert requests.get(f"{server.url}/nope", timeout=5).status_code == 404
    response = requests.delete(api(server, "/x"), headers=bearer(SECRET), timeout=5)
    assert response.status_code in (404, 405)
    response = requests.get(
        f"{server.url}/realtime/v1/sessions/x/in/append", headers=bearer(SECRET), timeout=5
    )
    assert response.status_code == 405


def test_trigger_config_is_validated_like_the_sdk_schema(server: LocalServer) -> None:
    bad = [
        {"basePayload": {}, "machine": "huge-gpu"},
        {"basePayload": {}, "queue": "q" * 129},
        {"basePayload": {}, "concurrency": ["a", "b", "c"]},
        {"basePayload": {}, "concurrency": ["bad name"]},
        {"basePayload": {}, "maxAttempts": 11},
        {"basePayload": {}, "maxAttempts": 1.5},
        {"basePayload": {}, "maxDuration": 0},
        {"basePayload": {}, "idleTimeoutInSeconds": 3601},
        {"basePayload": {}, "ttl": -1},
        {"basePayload": {}, "tags": ["t"] * 11},
        {"basePayload": {}, "externalDeploymentId": "d" * 129},
        {"basePayload": {}, "concurrencyKey": {"no": 1}},
        {"basePayload": []},
    ]
    for config in bad:
        create(server, "x", triggerConfig=config, expect=400)
    assert server.get_session("x") is None
    good = {
        "basePayload": {"chatId": "x"},
        "machine": "small-1x",
        "concurrency": ["per-user"],
        "concurrencyKey": 7,
        "maxAttempts": 3.0,
        "ttl": "10m",
        "externalDeploymentId": "  ",
        "unknownField": True,
    }
    created = create(server, "x", triggerConfig=good)
    assert created["triggerConfig"] == {
        "basePayload": {"chatId": "x"},
        "machine": "small-1x",
        "concurrency": ["per-user"],
        "concurrencyKey": "7",
        "maxAttempts": 3,
        "ttl": "10m",
    }


def test_out_of_range_or_non_json_dates_are_refused(server: LocalServer) -> None:
    create(server, "far", expiresAt=1e15, expect=400)
    create(server, "far", expiresAt="10000-01-01T00:00:00Z", expect=400)
    response = requests.post(
        api(server),
        data='{"type":"t","taskIdentifier":"t","triggerConfig":{"basePayload":{}},"expiresAt":NaN}',
        headers=bearer(SECRET),
        timeout=5,
    )
    assert response.status_code == 400
    assert list_sessions(server)["data"] == []
