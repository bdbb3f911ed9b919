"""Fixtures of the local server's tests (see ``_support``)."""

from __future__ import annotations

from ._support import http, server, sessions_server_options

__all__ = ["http", "server", "sessions_server_options"]
