"""The opt-in pytest plugin: fixtures as a user's test suite sees them (run with pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

OPT_IN = 'pytest_plugins = ["sessions_client.testing.pytest_plugin"]\n'


@pytest.fixture(autouse=True)
def _only_the_plugins_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # The inner runs load no installed plugins (hypothesis, cov, ...): faster, and
    # proof that the fixtures need nothing but the opt-in line.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeconftest(OPT_IN)
    pytester.makepyfile(test_user=source)
    return pytester.runpytest("-p", "no:cacheprovider", "-q", *args)


def test_fixtures_are_absent_without_opting_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_x(sessions_server):\n    pass\n")
    result = pytester.runpytest("-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'sessions_server' not found*"])


def test_sessions_session_appends_and_drains_on_a_fresh_server(pytester: pytest.Pytester) -> None:
    source = """
from sessions_client import Session
from sessions_client.testing import LocalServer

def test_roundtrip(sessions_server, sessions_session):
    assert isinstance(sessions_server, LocalServer)
    assert isinstance(sessions_session, Session)
    assert sessions_session.session_id.startswith("session_")
    assert sessions_session.api_url == sessions_server.url
    assert sessions_session.append_out({"n": 1})["seq"] == 0
    assert [r["data"] for r in sessions_session.drain_out()] == [{"n": 1}]
    assert sessions_server.wire == "v2"

def test_each_test_gets_a_new_server(sessions_session):
    assert sessions_session.drain_out() == []
"""
    _run(pytester, source).assert_outcomes(passed=2)


def test_sessions_server_options_configures_every_server_in_its_scope(
    pytester: pytest.Pytester,
) -> None:
    source = """
import pytest

@pytest.fixture
def sessions_server_options():
    return {"wire": "v1", "secret_key": "tr_dev_from_options"}

def test_options(sessions_server):
    assert sessions_server.wire == "v1"
    assert sessions_server.secret_key == "tr_dev_from_options"

@pytest.mark.sessions_server(wire="v2")
def test_the_marker_wins(sessions_server):
    assert sessions_server.wire == "v2"
    assert sessions_server.secret_key == "tr_dev_from_options"
"""
    _run(pytester, source).assert_outcomes(passed=2)


def test_marker_configures_the_server(pytester: pytest.Pytester) -> None:
    source = """
import pytest

@pytest.mark.sessions_server(wire="v1", echo_agent=True)
def test_echo(sessions_server, sessions_session):
    from sessions_client.testing import chat_message, reply_text

    assert sessions_server.wire == "v1"
    turn = sessions_session.ask(chat_message("hi"), timeout=20)
    assert reply_text(turn["records"]) == "echo: hi"
"""
    _run(pytester, source, "--strict-markers").assert_outcomes(passed=1)


def test_indirect_parameter_runs_both_wire_shapes(pytester: pytest.Pytester) -> None:
    source = """
import pytest

@pytest.mark.sessions_server(wire="v2", secret_key="tr_dev_marker")
@pytest.mark.parametrize("sessions_server", [{"wire": "v1"}, {"wire": "v2"}], indirect=True)
def test_shapes(sessions_server, sessions_session):
    assert sessions_server.secret_key == "tr_dev_marker"
    sessions_session.append_in("hello")
    records = list(sessions_session.iter_in(follow=False))
    assert [r["data"] for r in records] == ["hello"]
    print("WIRE", sessions_server.wire)
"""
    result = _run(pytester, source, "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*WIRE v1*", "*WIRE v2*"])


def test_sessions_env_points_library_defaults_at_the_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERCEL_GIT_COMMIT_REF", "feature-x")
    source = """
import os
from sessions_client import Session

SEEN = []

def test_env(sessions_env):
    assert os.environ["TRIGGER_API_URL"] == sessions_env.url
    SEEN.append(sessions_env.url)
    assert "TRIGGER_ACCESS_TOKEN" not in os.environ
    assert "VERCEL_GIT_COMMIT_REF" not in os.environ  # no preview branch header
    sessions_env.create_session("chat-1")
    with Session("chat-1") as session:
        assert session.append_in("x")["seq"] == 0

def test_env_restored():
    assert os.environ.get("TRIGGER_API_URL") != SEEN[0]
"""
    _run(pytester, source).assert_outcomes(passed=2)


def test_bad_marker_and_parameter_are_usage_errors(pytester: pytest.Pytester) -> None:
    source = """
import pytest

@pytest.mark.sessions_server("v1")
def test_positional(sessions_server):
    pass

@pytest.mark.parametrize("sessions_server", ["v1"], indirect=True)
def test_not_a_dict(sessions_server):
    pass
"""
    result = _run(pytester, source)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*keyword arguments only*", "*must be a dict*"])


def test_servers_are_closed_after_each_test(pytester: pytest.Pytester) -> None:
    source = """
import socket
import pytest

PORTS = []

def test_first(sessions_server):
    PORTS.append(sessions_server.port)

def test_port_is_free_again():
    with socket.socket() as s:
        s.bind(("127.0.0.1", PORTS[0]))
"""
    _run(pytester, source).assert_outcomes(passed=2)
