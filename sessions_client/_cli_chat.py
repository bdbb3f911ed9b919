"""``sessions-client chat AGENT``: a terminal chat with an agent, through ``AgentChat``;
and ``sessions-client ask SESSION RECORD``: one turn on a session's channels.

Replies stream to stdout as they arrive; prompts and notes go to stderr. Ctrl-C
during a reply stops it (``AgentChat.stop()``) and a second Ctrl-C quits; at the
prompt ``/stop`` sends a stop, ``/close`` ends the agent's loop and leaves, ``/quit``
or end of input leaves. ``--message TEXT`` sends one message, prints the reply and
exits (0; a typed error is one line on stderr and a non-zero exit code).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TextIO

from ._cli_args import add_command, json_object, session_argument
from ._cli_errors import EXIT_OK
from ._cli_io import json_line, open_session, parse_json
from .chat import AgentChat, ChatStream
from .errors import AgentError

if TYPE_CHECKING:
    from ._cli_args import Commands

PROMPT = "> "
HELP = "/stop stops a reply, /close ends the agent's loop, /quit or Ctrl-D leaves"


def add_chat(commands: Commands, common: argparse.ArgumentParser) -> None:
    chat = add_command(
        commands,
        "chat",
        "chat with an agent in the terminal (or send one message with --message)",
        "Talk to a chat agent (a chat.agent task) through AgentChat: the session is "
        "started on first use (external id = the chat id), each line you type is a "
        "message, and the reply streams to stdout as it arrives. Ctrl-C during a reply "
        "stops it; a second Ctrl-C quits. At the prompt: /stop sends a stop, /close ends "
        "the agent's loop and leaves, /quit or Ctrl-D leaves. The chat id is printed on "
        "stderr: --chat-id ID continues that conversation.\n\n"
        "With --message the reply to that one message is printed and the command exits: "
        "0 on success; an agent error, an empty reply or a closed session is one line on "
        "stderr and exit code 1.",
        "examples:\n"
        "  sessions-client serve --echo-agent --agent-delay 0.1 &\n"
        "  export TRIGGER_API_URL=http://127.0.0.1:8030 TRIGGER_SECRET_KEY=tr_dev_local\n"
        "  sessions-client chat echo\n"
        '  sessions-client chat echo --message "hello" --chat-id chat-1\n'
        '  sessions-client chat my-agent --client-data \'{"userId": "u1"}\'',
        cmd_chat,
        common,
    )
    chat.add_argument("agent", metavar="AGENT", help="the agent's task identifier")
    chat.add_argument("--chat-id", metavar="ID", help="continue this chat (default: a new one)")
    chat.add_argument("--message", metavar="TEXT", help="send TEXT, print the reply and exit")
    chat.add_argument(
        "--client-data",
        type=json_object,
        metavar="JSON",
        help="the agent's client data (a JSON object), sent with every message",
    )
    chat.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="seconds a reply may take (default 120)",
    )


def cmd_chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return run(args, out, err, sys.stdin)


def run(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    """Run the command; returns the exit code (errors other than a turn's propagate)."""
    chat = AgentChat(
        args.agent,
        chat_id=args.chat_id,
        client_data=args.client_data,
        token=args.token,
        api_url=args.api_url,
        branch=args.branch,
        stream_timeout=args.timeout,
    )
    try:
        if args.message is not None:
            stopped = show_reply(chat, chat.send_message(args.message), out, err)
            return 130 if stopped else 0
        return _converse(chat, out, err, stdin)
    finally:
        chat.disconnect()


def show_reply(chat: AgentChat, reply: ChatStream, out: TextIO, err: TextIO) -> bool:
    """Print the reply's text as it arrives, then check the turn (typed errors raise).
    A first Ctrl-C stops the reply and reads on to the turn's end; returns True then."""
    stopped = False
    try:
        for text in reply.iter_text():
            out.write(text)
            out.flush()
    except KeyboardInterrupt:
        stopped = True
        err.write("\n[stopping the reply; Ctrl-C again quits]\n")
        err.flush()
        chat.stop()
    finally:
        out.write("\n")
        out.flush()
    reply.text()  # the rest of the turn; raises AgentError & co.
    return stopped


def _converse(chat: AgentChat, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    err.write(f"chat {chat.chat_id} with {chat.agent} ({HELP})\n")
    while True:
        err.write(PROMPT)
        err.flush()
        line = stdin.readline()
        if not line:
            return 0
        text = line.strip()
        if not text:
            continue
        if text == "/quit":
            return 0
        if text == "/stop":
            chat.stop()
            continue
        if text == "/close":
            closed = chat.close()
            err.write("the agent's loop is closed\n" if closed else "nothing to close\n")
            return 0
        try:
            show_reply(chat, chat.send_message(text), out, err)
        except AgentError as exc:
            err.write(f"agent error: {' '.join(str(exc).split())}\n")


# -------------------------------------------------------------------- ask


def add_ask(commands: Commands, common: argparse.ArgumentParser) -> None:
    ask = add_command(
        commands,
        "ask",
        "send a message and print the agent's reply (one chat turn)",
        "Append RECORD to .in, then print the .out records of the agent's answer as JSON "
        "lines, up to the turn-complete control record for that message.",
        "examples:\n  # a chat agent reads ChatInputChunks and streams AI SDK chunks\n"
        '  sessions-client ask chat-1 --json \'{"kind": "message", "payload": '
        '{"trigger": "submit-message", "message": {"id": "m1", "role": "user", '
        '"parts": [{"type": "text", "text": "hi"}]}}}\' | jq -j ".data.delta // empty"',
        cmd_ask,
        common,
    )
    session_argument(ask)
    ask.add_argument("record", metavar="RECORD", help="the message (text; see append)")
    ask.add_argument("--json", action="store_true", help="RECORD must be valid JSON")
    ask.add_argument("--controls", action="store_true", help="also print the turn-complete")
    ask.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the reply (default 60)"
    )


def cmd_ask(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = open_session(args)
    record: Any = parse_json(args.record, "the record") if args.json else args.record
    try:
        turn = session.ask(record, timeout=args.timeout)
    finally:
        session.close()
    for reply in turn["records"]:
        json_line(out, reply)
    if args.controls:
        json_line(out, turn["control"])
    return EXIT_OK
