from __future__ import annotations

import pytest

from sessions_client._config import is_secret_key, resolve_api_url, resolve_branch, resolve_token
from sessions_client.errors import ConfigurationError


def test_token_prefers_argument_then_secret_key_then_access_token() -> None:
    env = {"TRIGGER_SECRET_KEY": "tr_dev_a", "TRIGGER_ACCESS_TOKEN": "jwt"}
    assert resolve_token("given", env) == "given"
    assert resolve_token(None, env) == "tr_dev_a"
    assert resolve_token(None, {"TRIGGER_ACCESS_TOKEN": "jwt"}) == "jwt"


def test_missing_token_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        resolve_token(None, {})


def test_api_url_defaults_and_strips_trailing_slash() -> None:
    assert resolve_api_url(None, {}) == "https://api.trigger.dev"
    assert resolve_api_url(None, {"TRIGGER_API_URL": "http://127.0.0.1:1/"}) == "http://127.0.0.1:1"
    with pytest.raises(ConfigurationError):
        resolve_api_url("ftp://x", {})


def test_branch_and_secret_key_detection() -> None:
    assert resolve_branch(None, {"TRIGGER_PREVIEW_BRANCH": "feat"}) == "feat"
    assert resolve_branch(None, {}) is None
    assert is_secret_key("tr_prod_x")
    assert not is_secret_key("eyJhbGciOi.x.y")


def test_branch_falls_back_to_vercel_git_commit_ref_as_the_sdk() -> None:
    """@trigger.dev/core: configured, TRIGGER_PREVIEW_BRANCH, then VERCEL_GIT_COMMIT_REF."""
    vercel = {"VERCEL_GIT_COMMIT_REF": "preview-7"}
    assert resolve_branch(None, vercel) == "preview-7"
    assert resolve_branch(None, {**vercel, "TRIGGER_PREVIEW_BRANCH": "feat"}) == "feat"
    assert resolve_branch("mine", {**vercel, "TRIGGER_PREVIEW_BRANCH": "feat"}) == "mine"
    assert resolve_branch(None, {"VERCEL_GIT_COMMIT_REF": ""}) is None


def test_the_branch_header_comes_from_vercel_git_commit_ref(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sessions_client import Client

    monkeypatch.delenv("TRIGGER_PREVIEW_BRANCH", raising=False)
    monkeypatch.setenv("VERCEL_GIT_COMMIT_REF", "preview-7")
    with Client("tr_dev_x", "http://127.0.0.1:9") as client:
        assert client.branch == "preview-7"
