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
from typing import Any, Callable, Dict, Iterator, List, Optional, TextIO

from .client import Client
from .cursor import MemoryCursor
from .session import Session

Record = Dict[str, Any]

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
    if isinstance(data, dict) and data.get("type") == "text-delta":
        return f"text-delta {data.get('delta')!r}"
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        return str(data["type"])
    return json.dumps(data)


def _summary(records: List[Record]) -> str:
    """The chunk types of reply records, runs of the same type counted (``text-delta ×3``)."""
    runs: List[List[Any]] = []
    for record in records:
        data = record.get("data")
        kind = data.get("type") if isinstance(data, dict) else json.dumps(data)
        if runs and runs[-1][0] == kind:
            runs[-1][1] += 1
        else:
            runs.append([kind, 1])
    return ", ".join(kind if n == 1 else f"{kind} ×{n}" for kind, n in runs)


def _take(records: Iterator[Record], done: Callable[[List[Record]], bool]) -> List[Record]:
    """Records of a reader until ``done(taken)``, then close the reader (``break``)."""
    taken: List[Record] = []
    try:
        for record in records:
            taken.append(record)
            if done(taken):
                break
    finally:
        close: Optional[Callable[[], None]] = getattr(records, "close", None)
        if close is not None:
            close()
    return taken


def _finished(records: List[Record]) -> bool:
    """True once the reply's ``finish`` chunk is among ``records``."""
    data = records[-1].get("data") if records else None
    return isinstance(data, dict) and data.get("type") == "finish"


def _conversation(say: _Narrator, session: Session, *, timeout: float, server: Any = None) -> bool:
    """The steps after the session exists; returns True when every check held.

    ``server`` is the LocalServer (echo agent, fault injection) or None on a real server.
    """
    from .testing.agent import chat_message, reply_text

    ok = True
    say.step("Send a message and wait for the reply: ask().")
    say.code('turn = session.ask(chat_message("Hello, agent!"))')
    turn = session.ask(chat_message("Hello, agent!"), timeout=timeout)
    records = turn["records"]
    say.detail(
        f"Your message (a chat agent's ChatInputChunk) was appended to the session's .in "
        f"channel as record {turn['in_seq']}. The agent read it and streamed its answer on "
        "the .out channel, one AI SDK chunk per record:"
    )
    if records:
        say.code(f"  .out records {records[0]['seq']}-{records[-1]['seq']}:")
        say.code(f"    {_summary(records)}")
    say.code(f"  the text deltas joined: {reply_text(records)!r}")
    control = turn["control"]
    say.code(f"  .out record {control['seq']}: {_describe(control)}")
    say.detail(
        "The turn-complete control record marks the end of the agent's answer, so ask() "
        "returned the reply."
    )
    last_seen: int = control["seq"]

    say.step("Stop a reader part-way, then resume it from its cursor.")
    prompt = "one two three"
    session.append_in(chat_message(prompt))
    cursor = MemoryCursor(last_seen)
    say.detail(
        f"Sent {prompt!r} with append_in() and read the reply with iter_out(cursor=cursor). "
        f"The cursor starts at {last_seen}, the last record already seen; the reader starts "
        "after it and moves it forward as each record is handled. After four records the "
        "loop broke off, as when a notebook cell is interrupted or a cron job is killed:"
    )
    say.code("for record in session.iter_out(cursor=cursor): ...")
    first = _take(session.iter_out(cursor=cursor), lambda taken: len(taken) == 4)
    for record in first:
        say.code(f"  .out record {record['seq']}: {_describe(record)}")
    say.detail(f"The cursor now holds {cursor.get()}. A new reader with the same cursor:")
    rest = _take(session.iter_out(cursor=cursor), _finished)
    for record in rest:
        say.code(f"  .out record {record['seq']}: {_describe(record)}")
    seqs = [r["seq"] for r in first + rest]
    if server is None or (
        reply_text(first + rest) == f"echo: {prompt}" and seqs == sorted(set(seqs))
    ):
        say.detail(
            "It went on right after the last record handled: every chunk once, nothing "
            "lost, nothing repeated. (Readers pass over the agent's turn-complete and trim "
            "records unless include_control=True.) A FileCursor does the same across "
            "processes."
        )
    else:
        ok = False
        say.detail(f"UNEXPECTED: the reply was {reply_text(first + rest)!r} (seqs {seqs})")
    if server is None:
        return ok
    last_seen = rest[-1]["seq"] if rest else last_seen

    say.step("Lose the connection in the middle of a stream.")
    prompt = "four five six"
    session.append_in(chat_message(prompt))
    reads = server.request_counts.get("read", 0)
    server.faults.cut_stream(after_records=1)
    say.detail(
        f"Sent {prompt!r}, and told the server (fault injection) to cut the next stream "
        "abruptly after its first record. Reading the reply:"
    )
    replies = _take(session.iter_out(last_event_id=last_seen), _finished)
    say.code(f"  .out records {replies[0]['seq']}-{replies[-1]['seq']}:")
    say.code(f"    {_summary(replies)}")
    say.code(f"  the text deltas joined: {reply_text(replies)!r}")
    streams = server.request_counts.get("read", 0) - reads
    seqs = [r["seq"] for r in replies]
    if reply_text(replies) == f"echo: {prompt}" and seqs == sorted(set(seqs)) and streams >= 2:
        say.detail(
            "The reader noticed the broken connection and reconnected by itself "
            f"({streams} stream requests in all), asking for the records after the last "
            "one it had (Last-Event-ID). Every chunk arrived exactly once, and your loop "
            "never saw the failure."
        )
    else:
        ok = False
        say.detail(f"UNEXPECTED: the reply was {reply_text(replies)!r} ({streams} requests)")
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
            "echo chat agent: it answers a message T on a session's .in channel as a "
            'Trigger.dev chat.agent would, streaming "echo: T" to .out word by word, then '
            "a turn-complete control record."
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
