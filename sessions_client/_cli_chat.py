"""``sessions-client chat AGENT``: a terminal chat with an agent, through ``AgentChat``.

Replies stream to stdout as they arrive; prompts and notes go to stderr. Ctrl-C
during a reply stops it (``AgentChat.stop()``) and a second Ctrl-C quits; at the
prompt ``/stop`` sends a stop, ``/close`` ends the agent's loop and leaves, ``/quit``
or end of input leaves. ``--message TEXT`` sends one message, prints the reply and
exits (0; a typed error is one line on stderr and a non-zero exit code).
"""

from __future__ import annotations

import argparse
from typing import TextIO

from .chat import AgentChat, ChatStream
from .errors import AgentError

PROMPT = "> "
HELP = "/stop stops a reply, /close ends the agent's loop, /quit or Ctrl-D leaves"


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
