"""The management commands: ``create``, ``get``, ``update``, ``close`` and ``list``
(sessions as JSON), each parser beside the function that runs it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Dict, TextIO

from ._cli_args import add_command, positive_int, seq, session_argument, when
from ._cli_errors import EXIT_OK, CLIUsageError
from ._cli_io import close_iterator, hide_tokens, json_document, json_line, open_client, parse_json

if TYPE_CHECKING:
    from ._cli_args import Commands

# ----------------------------------------------------------------- create


def add_create(commands: Commands, common: argparse.ArgumentParser) -> None:
    create = add_command(
        commands,
        "create",
        "create a session (or get the existing one with that external id)",
        "Create a session for an agent task and print it as JSON. With an --external-id "
        'that already exists, the existing session is returned ("isCached": true). The '
        "session's publicAccessToken is hidden unless --show-token is given.",
        "examples:\n"
        "  sessions-client create --task my-agent --external-id chat-1 --tag user:42\n"
        '  sessions-client create --task my-agent --payload \'{"model": "small"}\'',
        cmd_create,
        common,
    )
    create.add_argument("--task", required=True, help="the task identifier that serves it")
    create.add_argument("--type", default="chat.agent", help="session type (default chat.agent)")
    create.add_argument("--external-id", metavar="ID", help="your own id for the session")
    create.add_argument(
        "--payload", default="{}", metavar="JSON", help="triggerConfig.basePayload (default {})"
    )
    create.add_argument(
        "--trigger-config", metavar="JSON", help="the whole triggerConfig (overrides --payload)"
    )
    create.add_argument(
        "--tag", action="append", metavar="TAG", help="a tag (repeat for more, at most 10)"
    )
    create.add_argument("--metadata", metavar="JSON", help="metadata object")
    create.add_argument("--expires-at", metavar="ISO8601", help="expiry time")
    create.add_argument(
        "--show-token", action="store_true", help="print the session's publicAccessToken"
    )


def cmd_create(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.trigger_config is not None:
        trigger_config = parse_json(args.trigger_config, "--trigger-config")
    else:
        trigger_config = {"basePayload": parse_json(args.payload, "--payload")}
    metadata = None if args.metadata is None else parse_json(args.metadata, "--metadata")
    with open_client(args) as client:
        created = client.create_session(
            args.type,
            args.task,
            trigger_config,
            external_id=args.external_id,
            tags=args.tag or None,
            metadata=metadata,
            expires_at=args.expires_at,
        )
    json_document(out, hide_tokens(created, args.show_token))
    return EXIT_OK


# -------------------------------------------------------------------- get


def add_get(commands: Commands, common: argparse.ArgumentParser) -> None:
    get = add_command(
        commands,
        "get",
        "print a session as JSON",
        "Retrieve a session by id or external id and print it as JSON.",
        "examples:\n  sessions-client get chat-1 | jq .closedAt",
        cmd_get,
        common,
    )
    session_argument(get)


def cmd_get(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with open_client(args) as client:
        json_document(out, hide_tokens(client.get_session(args.session), False))
    return EXIT_OK


# ----------------------------------------------------------------- update


def add_update(commands: Commands, common: argparse.ArgumentParser) -> None:
    update = add_command(
        commands,
        "update",
        "change a session's tags or metadata",
        "Update a session (needs a secret key) and print it as JSON.",
        "examples:\n  sessions-client update chat-1 --tag vip --tag user:42\n"
        '  sessions-client update chat-1 --metadata \'{"plan": "pro"}\'',
        cmd_update,
        common,
    )
    session_argument(update)
    update.add_argument(
        "--tag", action="append", metavar="TAG", help="replace the tags (repeat for more)"
    )
    update.add_argument("--metadata", metavar="JSON", help="replace the metadata")


def cmd_update(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    changes: Dict[str, Any] = {}
    if args.tag is not None:
        changes["tags"] = args.tag
    if args.metadata is not None:
        changes["metadata"] = parse_json(args.metadata, "--metadata")
    if not changes:
        raise CLIUsageError("nothing to update: give --tag or --metadata")
    with open_client(args) as client:
        json_document(out, hide_tokens(client.update_session(args.session, **changes), False))
    return EXIT_OK


# ------------------------------------------------------------------ close


def add_close(commands: Commands, common: argparse.ArgumentParser) -> None:
    close = add_command(
        commands,
        "close",
        "close a session (idempotent)",
        "Close a session (needs a secret key) and print it as JSON. Appends to a closed "
        "session fail; reads still work.",
        "examples:\n  sessions-client close chat-1 --reason 'user left'",
        cmd_close,
        common,
    )
    session_argument(close)
    close.add_argument("--reason", help="why, stored with the session")


def cmd_close(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with open_client(args) as client:
        closed = client.close_session(args.session, reason=args.reason)
    json_document(out, hide_tokens(closed, False))
    return EXIT_OK


# ------------------------------------------------------------------- list


def add_list(commands: Commands, common: argparse.ArgumentParser) -> None:
    listing = add_command(
        commands,
        "list",
        "list sessions as JSON lines (every page)",
        "List sessions, newest first, one JSON object per line, following every page.",
        "examples:\n"
        "  sessions-client list --status ACTIVE --tag user:42\n"
        "  sessions-client list --period 7d | jq -r .id\n"
        "  sessions-client list --from 2026-01-01T00:00:00Z --limit 5",
        cmd_list,
        common,
    )
    listing.add_argument("--type", help="only this session type")
    listing.add_argument("--tag", help="only sessions with this tag")
    listing.add_argument("--task", help="only this task identifier")
    listing.add_argument("--external-id", metavar="ID", help="only this external id")
    listing.add_argument(
        "--status",
        help="ACTIVE, CLOSED or EXPIRED (comma-separated for several: one listing each, merged)",
    )
    listing.add_argument("--period", help="created within this period, e.g. 1h, 7d")
    listing.add_argument(
        "--from",
        dest="created_from",
        type=when,
        metavar="WHEN",
        help="created at or after WHEN (ISO 8601, UTC unless it has an offset, or Unix ms)",
    )
    listing.add_argument(
        "--to", dest="created_to", type=when, metavar="WHEN", help="created at or before WHEN"
    )
    listing.add_argument("--limit", type=seq, metavar="N", help="print at most N sessions")
    listing.add_argument(
        "--page-size", type=positive_int, default=20, metavar="N", help="per request (20)"
    )


def cmd_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    filters: Dict[str, Any] = {
        "type": args.type,
        "tag": args.tag,
        "task_identifier": args.task,
        "external_id": args.external_id,
        "status": None if args.status is None else [s.strip() for s in args.status.split(",")],
        "period": args.period,
        "created_from": args.created_from,
        "created_to": args.created_to,
    }
    count = 0
    with open_client(args) as client:
        sessions = client.list_sessions(
            page_size=args.page_size, **{k: v for k, v in filters.items() if v is not None}
        )
        try:
            for found in sessions:
                if args.limit is not None and count >= args.limit:
                    break
                json_line(out, hide_tokens(found, False))
                count += 1
        finally:
            close_iterator(sessions)
    return EXIT_OK
