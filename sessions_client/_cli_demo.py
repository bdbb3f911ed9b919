"""``sessions-client demo``: the library's main job, narrated, in a few seconds.

By default it starts the embedded :class:`~sessions_client.testing.LocalServer` with its
echo agent (SQLite database in a temporary directory, loopback only), so it runs
offline. With ``remote`` set it runs the same conversation against a real server,
whose agent task must answer each message (the fault-injection step is skipped there).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import textwrap
import time
import uuid
from typing import Any, Callable, Iterator, List, Optional, TextIO

from ._wire import Record
from .client import Client
from .cursor import MemoryCursor
from .session import Session

WIDTH = 88
INDENT = "      "


class _Narrator:
    """Prints the demo's story: numbered steps and indented details."""

    def __init__(self, out: TextIO, steps: int) -> None:
        self._out = out
        self._steps = steps
        self._step = 0

    def line(self, text: str = "") -> None:
        self._out.write(text + "\n")
        self._out.flush()

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


def _describe(record: Record) -> str:
    if record.get("control"):
        return f"(control record: {record['control']})"
    data = record.get("data")
    if isinstance(data, dict) and isinstance(data.get("text"), str):
        return repr(data["text"])
    return json.dumps(data)


def _take(records: Iterator[Record], count: int) -> List[Record]:
    """The next ``count`` records of a reader, then close the reader (``break``)."""
    taken: List[Record] = []
    try:
        for record in records:
            taken.append(record)
            if len(taken) == count:
                break
    finally:
        close: Optional[Callable[[], None]] = getattr(records, "close", None)
        if close is not None:
            close()
    return taken


def _texts(records: List[Record]) -> List[Any]:
    return [r["data"].get("text") if isinstance(r["data"], dict) else r["data"] for r in records]


def _conversation(say: _Narrator, session: Session, *, timeout: float, server: Any = None) -> bool:
    """The steps after the session exists; returns True when every check held.

    ``server`` is the LocalServer (echo agent, fault injection) or None on a real server.
    """
    ok = True
    say.step("Send a message and wait for the reply: ask().")
    say.code('turn = session.ask({"type": "text", "text": "Hello, agent!"})')
    turn = session.ask({"type": "text", "text": "Hello, agent!"}, timeout=timeout)
    say.detail(
        f"Your message was appended to the session's .in channel as record {turn['in_seq']}. "
        "The agent read it and answered on the .out channel:"
    )
    for record in turn["records"]:
        say.code(f"  .out record {record['seq']}: {_describe(record)}")
    control = turn["control"]
    say.code(f"  .out record {control['seq']}: {_describe(control)}")
    say.detail(
        "The turn-complete control record marks the end of the agent's answer, so ask() "
        "returned the reply."
    )
    last_seen: int = control["seq"]

    say.step("Stop a reader part-way, then resume it from its cursor.")
    words = ["one", "two", "three"]
    for word in words:
        session.append_in({"type": "text", "text": word})
    cursor = MemoryCursor(last_seen)
    say.detail(
        f"Sent {len(words)} more messages with append_in() ({', '.join(words)}) and read the "
        f"replies with iter_out(cursor=cursor). The cursor starts at {last_seen}, the last "
        "record already seen; the reader starts after it and moves it forward as each "
        "record is handled. After two replies the loop broke off, as when a notebook cell "
        "is interrupted or a cron job is killed:"
    )
    say.code("for record in session.iter_out(cursor=cursor): ...")
    first = _take(session.iter_out(cursor=cursor), 2)
    for record in first:
        say.code(f"  .out record {record['seq']}: {_describe(record)}")
    say.detail(f"The cursor now holds {cursor.get()}. A new reader with the same cursor:")
    rest = _take(session.iter_out(cursor=cursor), 1)
    for record in rest:
        say.code(f"  .out record {record['seq']}: {_describe(record)}")
    if server is None or _texts(first + rest) == [f"echo: {w}" for w in words]:
        say.detail(
            "It went on right after the last record handled: every reply once, nothing "
            "lost, nothing repeated. (The odd seqs in between are the agent's "
            "turn-complete records, which readers pass over unless include_control=True.) "
            "A FileCursor does the same across processes."
        )
    else:
        ok = False
        say.detail(f"UNEXPECTED: the replies were {_texts(first + rest)!r}")
    if server is None:
        return ok
    last_seen = rest[-1]["seq"] if rest else last_seen

    say.step("Lose the connection in the middle of a stream.")
    words = ["four", "five", "six"]
    for word in words:
        session.append_in({"type": "text", "text": word})
    reads = server.request_counts.get("read", 0)
    server.faults.cut_stream(after_records=1)
    say.detail(
        f"Sent {', '.join(words)}, and told the server (fault injection) to cut the next "
        "stream abruptly after its first record. Reading the replies:"
    )
    replies = _take(session.iter_out(last_event_id=last_seen), len(words))
    for record in replies:
        say.code(f"  .out record {record['seq']}: {_describe(record)}")
    streams = server.request_counts.get("read", 0) - reads
    if _texts(replies) == [f"echo: {w}" for w in words] and streams >= 2:
        say.detail(
            "The reader noticed the broken connection and reconnected by itself "
            f"({streams} stream requests in all), asking for the records after the last "
            "one it had (Last-Event-ID). Every reply arrived exactly once, and your loop "
            "never saw the failure."
        )
    else:
        ok = False
        say.detail(f"UNEXPECTED: the replies were {_texts(replies)!r} ({streams} requests)")
    return ok


def _closing_words(say: _Narrator, started: float, ok: bool, local: bool) -> None:
    say.line(
        f"\n{'Done' if ok else 'Finished with surprises'} in {time.monotonic() - started:.1f} s."
    )
    if local:
        say.line(
            "Next: `sessions-client serve --echo-agent` runs this server until Ctrl-C, so\n"
            "you can try `sessions-client append/tail` or the examples/ against it;\n"
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
        server = stack.enter_context(LocalServer(db=db, wire=wire, echo_agent=True))
        say.step(f"Start the embedded Sessions server: {server.url}")
        say.detail(
            f"It keeps its data in SQLite ({db}), speaks the {wire} wire shape and runs an "
            "echo agent: for every message on a session's .in channel it writes "
            '{"type": "text", "text": "echo: <text>"} to .out, then a turn-complete '
            "control record."
        )
        client = Client(token=server.secret_key, api_url=server.url)
        stack.callback(client.close)
        say.step("Create a session.")
        say.code("client = Client(token=..., api_url=...)")
        say.code('created = client.create_session("chat.agent", "echo", {"basePayload": {}},')
        say.code('                                external_id="demo-chat")')
        created = client.create_session(
            "chat.agent", "echo", {"basePayload": {}}, external_id="demo-chat"
        )
        say.code("session = client.session(created['id'])")
        say.detail(f"The server gave it the id {created['id']}.")
        session = client.session(created["id"])
        ok = _conversation(say, session, timeout=timeout, server=server)
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
        say.line(f"sessions-client demo against {client.api_url} with the agent task {task!r}.")
        external_id = f"sessions-client-demo-{uuid.uuid4().hex[:12]}"
        created = client.create_session(
            "chat.agent", task, {"basePayload": {}}, external_id=external_id
        )
        say.step(f"Created session {created['id']} (external id {external_id!r}).")
        session = client.session(created["id"])
        try:
            ok = _conversation(say, session, timeout=timeout)
        finally:
            client.close_session(created["id"], reason="sessions-client demo finished")
            say.line(f"\nClosed session {created['id']}.")
    _closing_words(say, started, ok, local=False)
    return 0 if ok else 1
