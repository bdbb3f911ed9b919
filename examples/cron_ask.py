"""A cron job that asks a chat agent a question and stores the answer.

Each run sends ``--question`` to the agent and appends ``{"at", "question",
"answer"}`` as one JSON line to ``--answers`` (default ``answers.jsonl``). The
conversation lives on between runs: its ``AgentChat.state`` is kept in ``--state``
(default ``agent-chat.json``), so the next run continues the same chat (same
session, same agent run while it is alive) without reading earlier replies again.

Crontab::

    TRIGGER_API_URL=https://api.trigger.dev
    TRIGGER_SECRET_KEY=tr_prod_...
    0 7 * * *  cd /srv/reports && python cron_ask.py --agent my-agent \\
                   --question "Summarise yesterday's support tickets"

A failed turn (the agent's error, an empty reply, a closed session...) prints one
line on stderr and exits 1; nothing is stored then.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from sessions_client import AgentChat, SessionsError


def load_state(path: str) -> Optional[Dict[str, Any]]:
    """The saved conversation, or None on the first run."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        state: Dict[str, Any] = json.load(f)
    return state


def save_state(path: str, state: Dict[str, Any]) -> None:
    """Write the state atomically (it holds a session token: keep the file private)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".agent-chat-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Ask a chat agent; store the answer.")
    parser.add_argument("--agent", default="echo", help="the agent's task id (default: echo)")
    parser.add_argument("--question", required=True, help="what to ask")
    parser.add_argument("--answers", default="answers.jsonl", help="JSON lines to append to")
    parser.add_argument("--state", default="agent-chat.json", help="the conversation's state")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the reply")
    args = parser.parse_args(argv)

    try:
        state = load_state(args.state)
        with AgentChat(args.agent, state=state, stream_timeout=args.timeout) as chat:
            answer = chat.send_message(args.question).text()
            save_state(args.state, chat.state)
    except SessionsError as exc:
        print(f"cron_ask: {exc}", file=sys.stderr)
        return 1
    line = {"at": datetime.now(timezone.utc).isoformat(), "question": args.question}
    line["answer"] = answer
    with open(args.answers, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
