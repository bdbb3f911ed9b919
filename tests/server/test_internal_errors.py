from __future__ import annotations

from typing import Any

import requests

from sessions_client.testing import LocalServer


def _explode(request: Any, ctx: Any) -> None:
    raise RuntimeError("a bug in a route")


def test_a_failing_route_answers_500_and_keeps_serving() -> None:
    with LocalServer() as srv:
        srv._ctx.routes["sessions"] = _explode
        answer = requests.get(
            srv.url + "/api/v1/sessions/x",
            headers={"Authorization": f"Bearer {srv.secret_key}"},
            timeout=5,
        )
        assert answer.status_code == 500
        assert answer.json() == {"error": "Internal server error"}
        assert "a bug in a route" not in answer.text
        drained = requests.get(
            srv.url + "/realtime/v1/sessions/x/out/records",
            headers={"Authorization": f"Bearer {srv.secret_key}"},
            timeout=5,
        )
        assert drained.status_code == 200
