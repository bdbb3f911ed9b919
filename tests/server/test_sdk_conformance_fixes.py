"""Server fixes found by the conformance suite (tests/conformance/DISCREPANCIES.md).

Raw HTTP only, so they run without node; the SDK-driven versions live in
tests/conformance/test_conformance.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sessions_client.testing import LocalServer

from ._support import SECRET, bearer, create


def _list_all(srv: LocalServer) -> requests.Response:
    return requests.get(f"{srv.url}/api/v1/sessions", headers=bearer(SECRET), timeout=10)


@pytest.mark.parametrize(
    "expires_at",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00.000+00:01"],
)
def test_d3_iso_expiry_outside_years_1_to_9999_in_utc_is_refused(
    server: LocalServer, expires_at: Any
) -> None:
    answer = create(server, "d3", expect=400, expiresAt=expires_at)
    assert "expiresAt" in answer["error"]
    listed = _list_all(server)
    assert listed.status_code == 200 and listed.json()["data"] == []


def test_d5_early_and_late_years_are_written_with_four_digits(server: LocalServer) -> None:
    first = create(server, "d3-first", expiresAt="0001-01-01T00:00:00Z")
    assert first["expiresAt"] == "0001-01-01T00:00:00.000Z"
    last = create(server, "d3-last", expiresAt="9999-12-31T23:59:59.999+00:00")
    assert last["expiresAt"] == "9999-12-31T23:59:59.999Z"
    early = create(server, "d5-early", expiresAt="0999-06-30T12:00:00.5Z")
    assert early["expiresAt"] == "0999-06-30T12:00:00.500Z"
    before_1970 = create(server, "d5-ms", expiresAt=-30_000_000_000_000)
    assert before_1970["expiresAt"] == "1019-05-04T18:40:00.000Z"  # as JS toISOString()
    assert _list_all(server).status_code == 200


def test_d5_iso_formats_like_javascript() -> None:
    from sessions_client.testing.management import iso

    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(-1) == "1969-12-31T23:59:59.999Z"
    assert iso(1712150400123) == "2024-04-03T13:20:00.123Z"
    assert iso(-62135596800000) == "0001-01-01T00:00:00.000Z"
    assert iso(253402300799999) == "9999-12-31T23:59:59.999Z"


@pytest.mark.parametrize(
    "fragment",
    [
        '"externalId": "lone-\\ud800"',
        '"metadata": {"k": "\\udc00"}',
        '"metadata": {"\\ud800": 1}',
        '"tags": ["\\ud800"]',
        '"type": "t\\udfff"',
    ],
)
def test_d4_lone_surrogates_are_a_400_not_a_dropped_connection(
    server: LocalServer, fragment: str
) -> None:
    body = (
        '{"type": "t", "taskIdentifier": "x", "triggerConfig": {"basePayload": {}}, '
        + fragment
        + "}"
    )
    response = requests.post(
        f"{server.url}/api/v1/sessions",
        data=body.encode("ascii"),
        headers={**bearer(SECRET), "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "surrogate" in response.json()["error"]
    assert _list_all(server).json()["data"] == []


def test_d4_lone_surrogates_in_update_and_close(server: LocalServer) -> None:
    sid = create(server, "d4")["id"]
    for method, path, body in [
        ("PATCH", f"/api/v1/sessions/{sid}", '{"metadata": {"k": "\\ud800"}}'),
        ("POST", f"/api/v1/sessions/{sid}/close", '{"reason": "\\ud800"}'),
    ]:
        response = requests.request(
            method, server.url + path, data=body, headers=bearer(SECRET), timeout=10
        )
        assert response.status_code == 400, (path, response.text)
    retrieved = requests.get(f"{server.url}/api/v1/sessions/{sid}", headers=bearer(SECRET))
    assert retrieved.json()["closedAt"] is None and retrieved.json()["metadata"] is None


def test_d4_escaped_but_valid_unicode_is_still_accepted(server: LocalServer) -> None:
    body = (
        '{"type": "t", "taskIdentifier": "x", "triggerConfig": {"basePayload": {}},'
        ' "externalId": "pair-\\ud83d\\ude00", "metadata": {"e": "\\u00e9"}}'
    )
    response = requests.post(
        f"{server.url}/api/v1/sessions", data=body, headers=bearer(SECRET), timeout=10
    )
    assert response.status_code == 201
    assert response.json()["externalId"] == "pair-\U0001f600"


@pytest.mark.parametrize("after", ["9" * 25, str(2**63 - 1), str(2**63)])
def test_d6_drain_after_a_huge_seq_is_empty_not_a_dropped_connection(
    server: LocalServer, after: str
) -> None:
    create(server, "d6")
    appended = requests.post(
        f"{server.url}/realtime/v1/sessions/d6/out/append", data="x", headers=bearer(SECRET)
    )
    assert appended.status_code == 200
    response = requests.get(
        f"{server.url}/realtime/v1/sessions/d6/out/records",
        params={"afterEventId": after},
        headers=bearer(SECRET),
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == {"records": []}


def _nested(depth: int) -> str:
    return '{"k":' * depth + '"leaf"' + "}" * depth


@pytest.mark.parametrize("depth", [100, 980, 1500])
def test_d7_too_deep_json_is_refused_and_never_stored(server: LocalServer, depth: int) -> None:
    body = (
        '{"type": "t", "taskIdentifier": "x", "triggerConfig": {"basePayload": {}},'
        f' "metadata": {_nested(depth)}}}'
    )
    response = requests.post(
        f"{server.url}/api/v1/sessions", data=body, headers=bearer(SECRET), timeout=10
    )
    assert response.status_code in (400, 422), response.text[:200]
    listed = _list_all(server)
    assert listed.status_code == 200 and listed.json()["data"] == []


def test_d7_nesting_up_to_the_limit_round_trips(server: LocalServer) -> None:
    # The body object is level 1 and metadata level 2, so metadata may nest 99 objects.
    body = (
        '{"type": "t", "taskIdentifier": "x", "triggerConfig": {"basePayload": {}},'
        f' "metadata": {_nested(99)}}}'
    )
    response = requests.post(
        f"{server.url}/api/v1/sessions", data=body, headers=bearer(SECRET), timeout=10
    )
    assert response.status_code == 201, response.text[:200]
    assert _list_all(server).status_code == 200
    sid = response.json()["id"]
    patched = requests.patch(
        f"{server.url}/api/v1/sessions/{sid}",
        data='{"metadata": ' + _nested(200) + "}",
        headers=bearer(SECRET),
        timeout=10,
    )
    assert patched.status_code == 400
