"""Fixtures of the local server's tests (see ``_support``)."""

from __future__ import annotations

from ._support import http, server

__all__ = ["http", "server"]
