"""Send one message to a chat agent and print its reply: Session.ask() in a script.

Usage::

    export TRIGGER_API_URL=...  TRIGGER_SECRET_KEY=tr_dev_...
    python examples/chat_script.py "What is the weather like?"

Options: ``--session ID`` talks to an existing session (friendly id or external id);
otherwise the script creates (or reuses) the session with external id
``chat-script`` for the task ``--task`` (default ``echo``). Try it offline with the
embedded server and its echo agent::

    sessions-client serve --echo-agent --port 8030 &
    TRIGGER_API_URL=http://127.0.0.1:8030 TRIGGER_SECRET_KEY=tr_dev_local \\
        python examples/chat_script.py "hello"
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any, Dict, List, Optional

from sessions_client import Client, SessionsError


def chat_message(text: str) -> Dict[str, Any]:
    """A user message as a chat agent reads it on ``.in`` (a ``ChatInputChunk``)."""
    message = {"id": uuid.uuid4().hex, "role": "user", "parts": [{"type": "text", "text": text}]}
    return {"kind": "message", "payload": {"trigger": "submit-message", "message": message}}


def reply_text(records: List[Dict[str, Any]]) -> str:
    """The reply's text: the agent streams it as ``text-delta`` chunks on ``.out``."""
    return "".join(
        r["data"]["delta"]
        for r in records
        if isinstance(r["data"], dict) and r["data"].get("type") == "text-delta"
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Ask a Trigger.dev chat agent one question.")
    parser.add_argument("message", nargs="+", help="the message to send")
    parser.add_argument("--session", help="an existing session id or external id")
    parser.add_argument("--task", default="echo", help="the agent task (default: echo)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    args = parser.parse_args(argv)

    client = Client()  # TRIGGER_API_URL, TRIGGER_SECRET_KEY (or TRIGGER_ACCESS_TOKEN)
    try:
        session_id = args.session
        if session_id is None:
            created = client.create_session(
                "chat.agent", args.task, {"basePayload": {}}, external_id="chat-script"
            )
            session_id = created["id"]
        session = client.session(session_id)
        turn = session.ask(chat_message(" ".join(args.message)), timeout=args.timeout)
        print(reply_text(turn["records"]))
    except SessionsError as exc:
        print(f"chat_script: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
