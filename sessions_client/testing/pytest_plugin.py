"""pytest fixtures that run your code against an embedded Sessions server.

Opt in from a ``conftest.py`` (or a test module)::

    pytest_plugins = ["sessions_client.testing.pytest_plugin"]

or from the command line with ``-p sessions_client.testing.pytest_plugin``.

Fixtures (each test gets fresh ones; nothing leaves the machine):

``sessions_server``
    A running :class:`~sessions_client.testing.LocalServer` on ``127.0.0.1`` (a free
    port, an in-memory database), closed after the test. Its ``url`` and
    ``secret_key`` are what your code needs. Defaults: ``wire="v2"`` (the production
    shape), ``echo_agent=False``. Change them per test with the marker, whose keyword
    arguments are passed to ``LocalServer``::

        @pytest.mark.sessions_server(echo_agent=True, ping_interval=(0.1, 0.3))
        def test_reply(sessions_server): ...

    (``echo_agent=True`` answers ``chat.agent`` sessions with the echo chat agent;
    ``agent_delay=`` and ``agent_client_data=`` tune it, see ``LocalServer``.)

    or run one test against several configurations with an indirect parameter (a
    dict of ``LocalServer`` keyword arguments; it wins over the marker)::

        @pytest.mark.parametrize("sessions_server", [{}, {"echo_agent": True}],
                                 indirect=True)
        def test_with_and_without_the_agent(sessions_server): ...

``sessions_server_options``
    The ``LocalServer`` keyword arguments of every ``sessions_server`` in its scope
    (default: none). Override it in a ``conftest.py`` or a test module to configure a
    whole directory's servers; the marker and an indirect parameter still win::

        @pytest.fixture
        def sessions_server_options():
            return {"secret_key": "tr_dev_mine", "echo_agent": True}

``sessions_session``
    A :class:`~sessions_client.Session` on a session freshly created on
    ``sessions_server`` (type ``"chat.agent"``, task ``"echo"``), authenticated with
    the server's secret key, so it may append to ``.in`` and ``.out``. The session's
    friendly id is ``sessions_session.session_id``; the server it lives on is
    ``sessions_server``.

``sessions_env``
    Sets ``TRIGGER_API_URL`` and ``TRIGGER_SECRET_KEY`` to ``sessions_server``'s
    values (and removes ``TRIGGER_ACCESS_TOKEN`` and the branch variables
    ``TRIGGER_PREVIEW_BRANCH`` and ``VERCEL_GIT_COMMIT_REF``) for
    the duration of the test, for code that reads its configuration from the
    environment the way ``Session()`` and ``Client()`` do. Returns the server.

Example::

    def test_my_job_forwards_messages(sessions_session):
        my_job(sessions_session)
        assert [r["data"] for r in sessions_session.drain_out()] == [{"ok": True}]
"""

from __future__ import annotations

from typing import Any, Dict, Iterator

import pytest

from ..client import Client
from ..session import Session
from . import LocalServer

__all__ = ["sessions_server", "sessions_server_options", "sessions_session", "sessions_env"]

MARKER = "sessions_server"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``sessions_server`` marker so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**kwargs): keyword arguments for the LocalServer of the "
        "sessions_server fixture (wire=, echo_agent=, agent_delay=, agent_client_data=, "
        "ping_interval=, secret_key=, ...)",
    )


def _server_options(request: pytest.FixtureRequest, base: Dict[str, Any]) -> Dict[str, Any]:
    options: Dict[str, Any] = {"db": ":memory:", "port": 0}
    options.update(base)
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER} takes keyword arguments only (LocalServer options)"
            )
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, dict):
            raise pytest.UsageError(
                "an indirect parameter for sessions_server must be a dict of "
                f"LocalServer keyword arguments, got {param!r}"
            )
        options.update(param)
    return options


@pytest.fixture
def sessions_server_options() -> Dict[str, Any]:
    """LocalServer keyword arguments for ``sessions_server`` (override to configure)."""
    return {}


@pytest.fixture
def sessions_server(
    request: pytest.FixtureRequest, sessions_server_options: Dict[str, Any]
) -> Iterator[LocalServer]:
    """A running LocalServer for one test (see the module docstring for options)."""
    with LocalServer(**_server_options(request, sessions_server_options)) as server:
        yield server


@pytest.fixture
def sessions_session(sessions_server: LocalServer) -> Iterator[Session]:
    """A Session on a freshly created session of ``sessions_server`` (secret key auth)."""
    client = Client(token=sessions_server.secret_key, api_url=sessions_server.url)
    try:
        created = client.create_session("chat.agent", "echo", {"basePayload": {}})
    finally:
        client.close()
    session = Session(created["id"], token=sessions_server.secret_key, api_url=sessions_server.url)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def sessions_env(
    sessions_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalServer]:
    """Point ``TRIGGER_API_URL`` / ``TRIGGER_SECRET_KEY`` at ``sessions_server``."""
    monkeypatch.setenv("TRIGGER_API_URL", sessions_server.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", sessions_server.secret_key)
    monkeypatch.delenv("TRIGGER_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("TRIGGER_PREVIEW_BRANCH", raising=False)
    monkeypatch.delenv("VERCEL_GIT_COMMIT_REF", raising=False)
    yield sessions_server
