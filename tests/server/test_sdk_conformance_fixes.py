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
    answer = create(server, "d3", expect=422, expiresAt=expires_at)
    assert "expiresAt" in answer["error"]
    listed = _list_all(server)
    assert listed.status_code == 200 and listed.json()["data"] == []
