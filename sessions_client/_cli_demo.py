"""``sessions-client demo``: the library's main job, narrated, in a few seconds.

It leads with :class:`~sessions_client.chat.AgentChat`. By default it starts the
embedded :class:`~sessions_client.testing.LocalServer` with its echo chat agent (SQLite
database in a temporary directory, loopback only), so it runs offline. With
``run_remote`` it has the same conversation with a real server's agent task (the tool
and fault-injection steps are skipped there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import textwrap
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, TextIO

from ._cli_args import PROG, add_command
from .chat import AgentChat, ChatStream
from .client import Client

if TYPE_CHECKING:
    from ._cli_args import Commands

WIDTH = 88
INDENT = "      "


def add_demo(commands: Commands, common: argparse.ArgumentParser) -> None:
    demo = add_command(
        commands,
        "demo",
        "a short narrated tour on an embedded server (offline, seconds)",
        "Start the embedded Sessions server with its echo agent (database in a temporary "
        "directory, 127.0.0.1 only), create a session, send a message with ask() and print "
        "the reply, stop a read part-way and resume it from its cursor, and recover from a "
        "cut connection, explaining each step. Needs no network and no account.\n\n"
        "With --task and a configured server (--api-url or $TRIGGER_API_URL), the same "
        "conversation runs against that server's agent task instead, in a new session that "
        "is closed at the end.",
        "examples:\n  sessions-client demo\n"
        "  sessions-client demo --api-url https://api.trigger.dev --task my-chat-agent",
        cmd_demo,
        common,
    )
    demo.add_argument(
        "--wire", choices=["v1", "v2"], default="v2", help="wire shape of the local server"
    )
    demo.add_argument(
        "--local",
        action="store_true",
        help="use the embedded server even when a server is configured",
    )
    demo.add_argument("--task", help="agent task id on the configured server (remote demo)")
    demo.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for a reply (default 60)"
    )


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The remote demo with --task and a configured server, else the local one."""
    configured = args.api_url or os.environ.get("TRIGGER_API_URL")
    if configured and not args.local:
        if args.task:
            return run_remote(
                out,
                api_url=args.api_url,
                token=args.token,
                branch=args.branch,
                task=args.task,
                timeout=args.timeout,
            )
        err.write(
            f"{PROG}: note: a server is configured ({configured}), but the demo needs an "
            "agent there that answers; pass --task TASK_ID to run it there. "
            "Using the embedded local server instead.\n"
        )
    elif args.task and not args.local:
        err.write(
            f"{PROG}: note: --task needs a configured server (--api-url or TRIGGER_API_URL); "
            "using the embedded local server and its echo agent.\n"
        )
    return run_local(out, wire=args.wire, timeout=args.timeout)


class _Narrator:
    """Prints the demo's story: numbered steps and indented details."""

    def __init__(self, out: TextIO, steps: int) -> None:
        self._out = out
        self._steps = steps
        self._step = 0

    def write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def step(self, text: str) -> None:
        self._step += 1
        self.line(f"\n[{self._step}/{self._steps}] {text}")

    def detail(self, text: str) -> None:
        """Explanatory prose, wrapped to the terminal-friendly width."""
        self.line(
            textwrap.fill(
                text,
                width=WIDTH,
                initial_indent=INDENT,
                subsequent_indent=INDENT,
                break_on_hyphens=False,
            )
        )

    def code(self, text: str) -> None:
        """A line of code or data, printed as is."""
        self.line(f"{INDENT}{text}")


def _stream(say: _Narrator, reply: ChatStream) -> str:
    """Print a reply's text as it arrives, on one indented line; returns the text."""
    say.write(f"{INDENT}agent> ")
    for text in reply.iter_text():
        say.write(text)
    say.line()
    return reply.text()


def _conversation(
    say: _Narrator, chat: AgentChat, *, resume: Callable[[Dict[str, Any]], AgentChat]
) -> Optional[AgentChat]:
    """Chat, then continue the chat from its saved state; the resumed chat when every
    check held, else None."""
    say.step("Send a message and stream the reply.")
    say.code('reply = chat.send_message("Hello, agent!")')
    say.code('for text in reply.iter_text(): print(text, end="", flush=True)')
    reply = chat.send_message("Hello, agent!")
    text = _stream(say, reply)
    say.code(f"reply.text() == {text!r}")
    say.detail(
        "The first call started the session (the agent task runs and waits). The message "
        "went to the session's .in channel; the agent's reply arrived on .out as AI SDK "
        "chunks (start, text-delta..., finish), each printed as it came, up to the "
        "turn-complete record that ends this turn."
    )
    saved = chat.state
    say.step("Continue the conversation somewhere else: chat.state.")
    say.code("saved = chat.state                      # JSON: store it in a cookie, a row, a file")
    say.code("chat = AgentChat(agent, state=saved)    # later, in another request or process")
    resumed = resume(json.loads(json.dumps(saved)))
    second = resumed.send_message("Still there?")
    text = _stream(say, second)
    same_run = resumed.state["run_id"] == saved["run_id"]
    if not same_run or not text:
        say.detail(
            f"UNEXPECTED: run {resumed.state['run_id']} after {saved['run_id']}, reply {text!r}"
        )
        return None
    say.detail(
        f"The saved state ({len(json.dumps(saved))} bytes: chat id, cursor, session token) "
        f"carried the chat over: the same run ({saved['run_id']}) answered, and nothing of "
        "the earlier turns was read again: nothing lost, nothing repeated."
    )
    return resumed


def _local_extras(say: _Narrator, chat: AgentChat, server: Any) -> bool:
    """Tool calls and a cut connection, on the embedded server; True when they held."""
    say.step("A tool call: reply.result().")
    say.code('result = chat.send_message("/tool sunny").result()')
    result = chat.send_message("/tool sunny").result()
    for call, output in zip(result["tool_calls"], result["tool_results"]):
        say.code(f"tool call: {call['toolName']}({json.dumps(call['input'])})")
        say.code(f"  result:  {json.dumps(output['output'])}")
    say.code(f"result['text'] == {result['text']!r}")
    say.detail(
        "result() also holds the assistant message as the AI SDK's readUIMessageStream "
        "builds it (result['message'], with its text and tool parts)."
    )
    say.step("Lose the connection in the middle of a reply.")
    reads = server.request_counts.get("read", 0)
    server.faults.cut_stream(after_records=3)
    say.detail("The server (fault injection) cuts the next stream after its third record.")
    text = _stream(say, chat.send_message("one two three four five"))
    streams = server.request_counts.get("read", 0) - reads
    if text == "echo: one two three four five" and streams >= 2:
        say.detail(
            f"The reader noticed the broken connection and reconnected by itself ({streams} "
            "stream requests in all), asking for the records after the last one it had "
            "(Last-Event-ID). Every chunk arrived exactly once."
        )
        return True
    say.detail(f"UNEXPECTED: the reply was {text!r} ({streams} stream requests)")
    return False


def _closing_words(say: _Narrator, started: float, ok: bool, local: bool) -> None:
    say.line(
        f"\n{'Done' if ok else 'Finished with surprises'} in {time.monotonic() - started:.1f} s."
    )
    if local:
        say.line(
            "Next: `sessions-client serve --echo-agent` runs this server until Ctrl-C, so\n"
            "you can try `sessions-client chat echo` or the examples/ against it. Below\n"
            "AgentChat, Session.append_in() / iter_out() read and write any channel;\n"
            "`sessions-client --help` lists every command."
        )


def run_local(out: TextIO, *, wire: str = "v2", timeout: float = 30.0) -> int:
    """Run the demo against an embedded LocalServer with the echo agent; exit code."""
    from .testing import LocalServer

    started = time.monotonic()
    say = _Narrator(out, 5)
    say.line(
        "sessions-client demo: a tour of Trigger.dev Sessions that runs entirely on this "
        "machine\n(no network, no account). Each step shows the Python call it makes."
    )
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sessions-demo-"))
        db = os.path.join(tmp, "demo.db")
        server = stack.enter_context(
            LocalServer(db=db, wire=wire, echo_agent=True, agent_delay=0.02)
        )
        say.step(f"Start the embedded Sessions server: {server.url}")
        say.detail(
            f"It keeps its data in SQLite ({db}), speaks the {wire} wire shape and runs an "
            'echo chat agent: it answers a message T with "echo: T", streamed word by word '
            "as a Trigger.dev chat.agent task streams its replies."
        )
        client = Client(token=server.secret_key, api_url=server.url)
        stack.callback(client.close)
        say.code("client = Client(token=..., api_url=...)")
        say.code('chat = AgentChat("echo", client=client)')

        def resume(saved: Dict[str, Any]) -> AgentChat:
            return AgentChat("echo", state=saved, client=client, stream_timeout=timeout)

        chat = AgentChat("echo", client=client, stream_timeout=timeout)
        resumed = _conversation(say, chat, resume=resume)
        ok = resumed is not None and _local_extras(say, resumed, server)
    _closing_words(say, started, ok, local=True)
    return 0 if ok else 1


def run_remote(
    out: TextIO,
    *,
    api_url: Optional[str],
    token: Optional[str],
    branch: Optional[str],
    task: str,
    timeout: float = 60.0,
) -> int:
    """Run the same conversation on a real server with an agent task; exit code."""
    started = time.monotonic()
    say = _Narrator(out, 3)
    with Client(token=token, api_url=api_url, branch=branch) as client:
        say.line(f"sessions-client demo against {client.api_url} with the agent {task!r}.")
        chat_id = f"sessions-client-demo-{uuid.uuid4().hex[:12]}"
        chat = AgentChat(task, chat_id=chat_id, client=client, stream_timeout=timeout)
        say.step(f"Start the chat: AgentChat({task!r}).preload()")
        chat.preload()
        say.detail(f"Session {chat.session_id} (external id {chat_id!r}), run {chat.run_id}.")

        def resume(saved: Dict[str, Any]) -> AgentChat:
            return AgentChat(task, state=saved, client=client, stream_timeout=timeout)

        try:
            ok = _conversation(say, chat, resume=resume) is not None
        finally:
            client.close_session(chat_id, reason="sessions-client demo finished")
            say.line(f"\nClosed session {chat.session_id}.")
    _closing_words(say, started, ok, local=False)
    return 0 if ok else 1
