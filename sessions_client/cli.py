"""The ``sessions-client`` command (also ``python -m sessions_client``).

Subcommands are argparse subparsers built in :func:`build_parser`; each one has a
``cmd_<name>(args) -> int`` function set as its ``func`` default.

- ``serve``: run the embedded local Sessions server until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sessions-client",
        description="Synchronous client tools for Trigger.dev Sessions.",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = subcommands.add_parser(
        "serve",
        help="run the embedded local Sessions server until Ctrl-C",
        description="Run the embedded local Sessions server (SQLite storage) until Ctrl-C.",
    )
    serve.add_argument("--port", type=int, default=8030, help="TCP port (default 8030; 0 = any)")
    serve.add_argument(
        "--db", default="sessions.db", help="SQLite file, or :memory: (default sessions.db)"
    )
    serve.add_argument(
        "--wire", choices=("v1", "v2"), default="v2", help="SSE wire shape (default v2)"
    )
    serve.add_argument(
        "--secret-key", default="tr_dev_local", help="the secret key (default tr_dev_local)"
    )
    serve.add_argument(
        "--echo-agent",
        action="store_true",
        help="echo every .in record to .out, then turn-complete",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.set_defaults(func=cmd_serve)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the local server until Ctrl-C; print where it listens."""
    from .testing import LocalServer, serve

    def ready(server: LocalServer) -> None:
        print(
            f"sessions-client: local Sessions server on {server.url} "
            f"(wire {server.wire}, db {server.db}"
            f"{', echo agent' if args.echo_agent else ''}); Ctrl-C to stop",
            flush=True,
        )

    try:
        serve(
            args.port,
            args.db,
            args.wire,
            args.secret_key,
            args.echo_agent,
            host=args.host,
            on_ready=ready,
        )
    except OSError as exc:
        print(f"sessions-client serve: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``sessions-client`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result: int = func(args)
    return result
