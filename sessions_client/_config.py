"""Defaults and environment variables, as the official SDK reads them."""

from __future__ import annotations

import os
from typing import Mapping, Optional

from .errors import ConfigurationError

DEFAULT_API_URL = "https://api.trigger.dev"
MAX_RECORD_BYTES = 1024 * 1024
SECRET_KEY_PREFIXES = ("tr_dev_", "tr_stg_", "tr_prod_", "tr_preview_")


def resolve_api_url(api_url: Optional[str], environ: Optional[Mapping[str, str]] = None) -> str:
    """Return ``api_url``, else ``TRIGGER_API_URL``, else the public API; no trailing ``/``."""
    env = os.environ if environ is None else environ
    url = api_url or env.get("TRIGGER_API_URL") or DEFAULT_API_URL
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError("api_url must start with http:// or https://")
    return url.rstrip("/")


def resolve_token(token: Optional[str], environ: Optional[Mapping[str, str]] = None) -> str:
    """Return ``token``, else ``TRIGGER_SECRET_KEY``, else ``TRIGGER_ACCESS_TOKEN``.

    Raises :class:`ConfigurationError` when none is set.
    """
    env = os.environ if environ is None else environ
    resolved = token or env.get("TRIGGER_SECRET_KEY") or env.get("TRIGGER_ACCESS_TOKEN")
    if not resolved:
        raise ConfigurationError(
            "no token: pass token=..., or set TRIGGER_SECRET_KEY or TRIGGER_ACCESS_TOKEN"
        )
    return resolved


def resolve_branch(
    branch: Optional[str], environ: Optional[Mapping[str, str]] = None
) -> Optional[str]:
    """Return ``branch``, else ``TRIGGER_PREVIEW_BRANCH``, else ``VERCEL_GIT_COMMIT_REF``
    (a Vercel preview deployment's branch), else ``None``: the official SDK's order."""
    env = os.environ if environ is None else environ
    return branch or env.get("TRIGGER_PREVIEW_BRANCH") or env.get("VERCEL_GIT_COMMIT_REF") or None


def is_secret_key(token: str) -> bool:
    """True for an environment secret key (``tr_dev_…`` and friends), False for a public token."""
    return token.startswith(SECRET_KEY_PREFIXES)
