"""What the command-line tests share: an environment that points the library at one
server (every other ``TRIGGER_*`` variable removed), and running ``sessions-client``
in-process."""

from __future__ import annotations

import os
from typing import Tuple

import pytest

from sessions_client import cli
from sessions_client.testing import LocalServer


def point_env_at(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    """Set ``TRIGGER_API_URL`` / ``TRIGGER_SECRET_KEY`` to ``server``'s, with no other
    ``TRIGGER_*`` variable left for the test's duration; return ``server``."""
    for name in list(os.environ):
        if name.startswith("TRIGGER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TRIGGER_API_URL", server.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", server.secret_key)
    return server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    """``sessions-client ARGV...`` in-process: its exit code, stdout and stderr."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
