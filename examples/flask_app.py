"""A Flask (WSGI) app: a chat view that keeps the conversation in the browser session,
and views that append to a session's channels and read what came back.

One ``Client`` is shared by every request and thread: it holds a connection pool,
reads ``TRIGGER_API_URL`` / ``TRIGGER_SECRET_KEY`` once, and each view is a plain
blocking call, as legacy WSGI code expects.

``POST /chat {"text": ...}`` talks to the agent (``CHAT_AGENT``, default ``echo``)
through ``AgentChat``: each request rebuilds the chat from ``chat.state`` kept in
Flask's session cookie (set ``FLASK_SECRET_KEY``), so any worker process can serve
the next message, with no new agent run and no re-read of earlier replies.

Run it::

    pip install flask
    export TRIGGER_API_URL=...  TRIGGER_SECRET_KEY=tr_dev_...
    flask --app examples/flask_app.py run

    curl -c jar -b jar -X POST localhost:5000/chat -H 'Content-Type: application/json' \\
         -d '{"text": "hi"}'                      # -> {"reply": "echo: hi", "chat_id": ...}
    curl -X POST localhost:5000/sessions/chat-1/messages -H 'Content-Type: application/json' \\
         -d '{"kind": "message", "payload": {"trigger": "submit-message", "message":
              {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}}}'
                                                  # -> 202 {"ok": true, "seq": 0, ...}
    curl 'localhost:5000/sessions/chat-1/replies?after=-1'   # -> {"records": [...]}

(A chat agent reads such ``ChatInputChunk`` records on ``.in`` and streams its reply
to ``.out`` as AI SDK chunks: ``start``, ``text-delta``..., ``finish``.)
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, Optional, Tuple

from flask import Flask, jsonify, request
from flask import session as browser_session
from werkzeug.wrappers import Response

from sessions_client import (
    AgentChat,
    AuthenticationError,
    Client,
    NotFoundError,
    PermissionDeniedError,
    RecordTooLargeError,
    SessionClosedError,
    SessionsError,
)

View = Tuple[Response, int]


def create_app(client: Optional[Client] = None, agent: Optional[str] = None) -> Flask:
    """Build the app; ``client`` defaults to ``Client()`` made at the first request,
    ``agent`` to ``$CHAT_AGENT`` or ``echo``."""
    app = Flask(__name__)
    app.secret_key = os.environ.get("FLASK_SECRET_KEY") or os.urandom(32)
    agent_task = agent or os.environ.get("CHAT_AGENT", "echo")
    lock = threading.Lock()
    shared: Dict[str, Client] = {}
    if client is not None:
        shared["client"] = client

    def get_client() -> Client:
        with lock:
            if "client" not in shared:
                shared["client"] = Client()
            return shared["client"]

    @app.post("/chat")
    def chat() -> View:
        text = (request.get_json(silent=True) or {}).get("text")
        if not isinstance(text, str) or not text.strip():
            return jsonify({"error": 'send {"text": "..."}'}), 400
        # The cookie is signed, not encrypted: the browser can read the state, whose
        # token is scoped to this one conversation (what a browser chat client holds).
        saved = browser_session.get("chat")
        conversation = AgentChat(agent_task, state=saved, client=get_client())
        reply = conversation.send_message(text).text()
        browser_session["chat"] = conversation.state
        return jsonify({"reply": reply, "chat_id": conversation.chat_id}), 200

    @app.post("/sessions/<session_id>/messages")
    def post_message(session_id: str) -> View:
        record: Any = request.get_json(silent=True)
        if record is None:
            record = request.get_data(as_text=True)
        result = get_client().session(session_id).append_in(record)
        return jsonify(result), 202

    @app.get("/sessions/<session_id>/replies")
    def get_replies(session_id: str) -> View:
        after = request.args.get("after", type=int)
        session = get_client().session(session_id)
        records = session.drain_out(after=None if after is None or after < 0 else after)
        return jsonify({"records": records}), 200

    @app.errorhandler(SessionsError)
    def sessions_error(exc: SessionsError) -> View:
        status = 502  # e.g. an AgentError: the agent failed the turn, its message says why
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, RecordTooLargeError):
            status = 413
        elif isinstance(exc, SessionClosedError):
            status = 409
        elif isinstance(exc, (AuthenticationError, PermissionDeniedError)):
            status = 500  # our own credentials are wrong: not the caller's fault
        return jsonify({"error": exc.message}), status

    return app


if __name__ == "__main__":
    create_app().run(port=5000)
