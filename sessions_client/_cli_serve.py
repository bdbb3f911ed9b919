"""``sessions-client serve``: the embedded local Sessions server until Ctrl-C."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, TextIO

from ._cli_args import PROG, add_command, non_negative_float
from ._cli_errors import EXIT_ERROR, EXIT_OK

if TYPE_CHECKING:
    from ._cli_args import Commands
    from .testing import LocalServer


def add_serve(commands: Commands, common: argparse.ArgumentParser) -> None:
    serve = add_command(
        commands,
        "serve",
        "run the embedded local Sessions server until Ctrl-C",
        "Run the embedded local Sessions server (SQLite storage, standard library only) "
        "until Ctrl-C. It speaks the same protocol as Trigger.dev: point TRIGGER_API_URL at "
        "it and use its secret key. With --echo-agent, every chat.agent session has an echo "
        "chat agent that the official AgentChat cannot tell from a real one: a message T "
        'is answered "echo: T", streamed word by word, then a turn-complete; "/tool X" calls '
        "a tool first. Fault injection is available from Python "
        "(sessions_client.testing.LocalServer().faults).",
        "examples:\n"
        "  sessions-client serve --echo-agent\n"
        "  sessions-client serve --echo-agent --agent-delay 0.1   # watch replies stream\n"
        "  sessions-client serve --port 0 --db :memory:\n"
        "  sessions-client serve --db /tmp/sessions.db   # survives restarts\n"
        "  sessions-client serve --cors-origin http://localhost:3000   # one page origin\n"
        "  export TRIGGER_SECRET_KEY=tr_dev_$(openssl rand -hex 16)   # then, for other machines:\n"
        "  sessions-client serve --host 0.0.0.0",
        cmd_serve,
        common,
    )
    _server_options(serve)
    _agent_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")


def _server_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--port", type=int, default=8030, help="TCP port (default 8030; 0 = any)")
    serve.add_argument(
        "--db", default="sessions.db", help="SQLite file, or :memory: (default sessions.db)"
    )
    serve.add_argument(
        "--wire", choices=("v1", "v2"), default="v2", help="SSE wire shape (default v2)"
    )
    serve.add_argument(
        "--secret-key",
        default=os.environ.get("TRIGGER_SECRET_KEY") or "tr_dev_local",
        help="the secret key (default: $TRIGGER_SECRET_KEY, else tr_dev_local, which is "
        "refused with a --host other than loopback)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="a browser origin allowed to read answers, e.g. http://localhost:3000 "
        "(repeatable; default: every origin, as production)",
    )


def _agent_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--echo-agent",
        action="store_true",
        help="answer chat.agent sessions with the echo chat agent",
    )
    serve.add_argument(
        "--agent-delay",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="with --echo-agent: wait this long before each streamed delta (default 0)",
    )
    serve.add_argument(
        "--agent-client-data",
        action="append",
        metavar="KEY",
        help="with --echo-agent: a message whose metadata lacks KEY fails its turn (repeatable)",
    )


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the local server until Ctrl-C; print where it listens.

    The secret key is ``--secret-key``, else ``$TRIGGER_SECRET_KEY``, else the public
    ``tr_dev_local``, which is refused on a non-loopback ``--host`` (exit 2)."""
    from .testing import serve

    secret_key = args.secret_key or "tr_dev_local"

    def ready(server: LocalServer) -> None:
        out.write(
            f"{PROG}: local Sessions server on {server.url} "
            f"(wire {server.wire}, db {server.db}"
            f"{', echo agent' if args.echo_agent else ''}); Ctrl-C to stop\n"
        )
        key = "tr_dev_local" if secret_key == "tr_dev_local" else "<your secret key>"
        out.write(f"  export TRIGGER_API_URL={server.url} TRIGGER_SECRET_KEY={key}\n")
        out.flush()

    try:
        serve(
            args.port,
            args.db,
            args.wire,
            secret_key,
            args.echo_agent,
            host=args.host,
            on_ready=ready,
            cors_origins=args.cors_origin,
            agent_delay=args.agent_delay,
            agent_client_data=args.agent_client_data or (),
        )
    except OSError as exc:
        err.write(f"{PROG}: error: cannot serve on {args.host}:{args.port}: {exc}\n")
        return EXIT_ERROR
    return EXIT_OK
