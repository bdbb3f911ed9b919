"""Send one message to a chat agent and print its reply as it streams: AgentChat in a script.

Usage::

    export TRIGGER_API_URL=...  TRIGGER_SECRET_KEY=tr_dev_...
    python examples/chat_script.py "What is the weather like?"

Options: ``--agent`` is the agent's task id (default ``echo``); ``--chat-id ID``
continues that conversation (each run otherwise starts a new one). Try it offline
with the embedded server and its echo agent::

    sessions-client serve --echo-agent --agent-delay 0.1 --port 8030 &
    TRIGGER_API_URL=http://127.0.0.1:8030 TRIGGER_SECRET_KEY=tr_dev_local \\
        python examples/chat_script.py "hello"
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from sessions_client import AgentChat, SessionsError


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Ask a Trigger.dev chat agent one question.")
    parser.add_argument("message", nargs="+", help="the message to send")
    parser.add_argument("--agent", default="echo", help="the agent's task id (default: echo)")
    parser.add_argument("--chat-id", help="continue this conversation")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    args = parser.parse_args(argv)

    try:
        # TRIGGER_API_URL and TRIGGER_SECRET_KEY (or TRIGGER_ACCESS_TOKEN) configure it.
        with AgentChat(args.agent, chat_id=args.chat_id, stream_timeout=args.timeout) as chat:
            reply = chat.send_message(" ".join(args.message))
            for text in reply.iter_text():
                print(text, end="", flush=True)  # each piece as it arrives
            print()
            reply.text()  # raises AgentError if the agent's turn failed
    except SessionsError as exc:
        print(f"chat_script: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
