"""The official SDK's requests, preflighted and CORS-checked as a browser page would
(``cors_browser_fetch.mjs``), answered as production answers them: remix-utils ``cors``
behind ``corsStrategy: "all"`` (status 200, body ``{}``, the origin reflected, methods
``GET,HEAD,PUT,PATCH,POST,DELETE``, the requested headers reflected, max-age 300)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from sessions_client.testing import LocalServer

pytestmark = [pytest.mark.conformance, pytest.mark.timeout(120)]

CONFORMANCE_DIR = Path(__file__).resolve().parent
ORIGIN = "http://page.test:5173"
SCRIPT = CONFORMANCE_DIR / "cors_browser_fetch.mjs"


def _run(node: str, origins: Optional[List[str]] = None) -> Dict[str, Any]:
    with LocalServer(secret_key="tr_dev_cors", cors_origins=origins) as srv:
        info = srv.create_session("chat-cors")
        srv.write("chat-cors", "out", {"type": "text", "text": "a"})
        srv.write("chat-cors", "out", {"type": "text", "text": "b"})
        argv = [node, str(SCRIPT), srv.url, info["publicAccessToken"], "chat-cors", ORIGIN]
        proc = subprocess.run(
            [*argv, "preview-branch", "8000" if origins is None else "1500"],
            capture_output=True,
            text=True,
            cwd=str(CONFORMANCE_DIR),
            timeout=60,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: Dict[str, Any] = json.loads(proc.stdout)
    return result


def test_sdk_requests_pass_the_browser_cors_checks_as_in_production(node_bin: str) -> None:
    result = _run(node_bin)
    ops = result["ops"]
    assert ops["append"] == {"ok": True, "value": {"ok": True}}
    assert [r["data"] for r in ops["records"]["value"]["records"]] == ['{"text":"hi"}']
    # the v2 stream parses only when X-Stream-Version is readable (exposed)
    assert ops["subscribe"]["value"] == [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]

    paths = {(p["method"], p["path"].rsplit("/", 1)[-1]) for p in result["preflights"]}
    assert paths == {("POST", "append"), ("GET", "records"), ("GET", "out")}
    for preflight in result["preflights"]:
        headers = preflight["headers"]
        assert preflight["status"] == 200 and preflight["body"] == "{}"
        assert headers["access-control-allow-origin"] == ORIGIN
        assert headers["access-control-allow-methods"] == "GET,HEAD,PUT,PATCH,POST,DELETE"
        assert headers["access-control-allow-headers"] == ",".join(preflight["requested"])
        assert headers["access-control-max-age"] == "300"
        assert {"origin", "access-control-request-headers"} <= {
            v.strip().lower() for v in headers["vary"].split(",")
        }
        assert {"authorization", "x-trigger-branch"} <= set(preflight["requested"])


def test_an_origin_left_out_is_refused_by_the_browser_checks(node_bin: str) -> None:
    result = _run(node_bin, origins=["http://localhost:3000"])
    # the SDK reports a fetch TypeError (what a browser raises) as a connection error;
    # the subscription keeps retrying until it is aborted, having read nothing
    ops = result["ops"]
    assert not ops["append"]["ok"] and not ops["records"]["ok"]
    assert "Connection error" in ops["append"]["error"]
    assert ops["subscribe"] == {"ok": True, "value": []}
    assert all(
        p["headers"].get("access-control-allow-origin") is None for p in result["preflights"]
    )
