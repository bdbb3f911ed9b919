"""A Flask (WSGI) app: a chat view that keeps the conversation in the browser session,
views that append to a session's channels and read what came back, and a relay of a
session's ``.out`` to the browser as server-sent events.

One ``Client`` is shared by every request and thread: it holds a connection pool,
reads ``TRIGGER_API_URL`` / ``TRIGGER_SECRET_KEY`` once, and each view is a plain
blocking call, as legacy WSGI code expects.

``POST /chat {"text": ...}`` talks to the agent (``CHAT_AGENT``, default ``echo``)
through ``AgentChat``: each request rebuilds the chat from ``chat.state`` kept in
Flask's session cookie (set ``FLASK_SECRET_KEY``), so any worker process can serve
the next message, with no new agent run and no re-read of earlier replies.
``POST /chat/stream`` does the same but streams the reply as it is written, with
``sessions_client.wsgi.chat_relay``: each chunk a ``data:`` event, ``data: [DONE]``
at the turn's end (the AI SDK's UI message stream, which ``useChat`` reads).

Run it::

    pip install flask
    export TRIGGER_API_URL=...  TRIGGER_SECRET_KEY=tr_dev_...
    flask --app examples/flask_app.py run

    curl -c jar -b jar -X POST localhost:5000/chat -H 'Content-Type: application/json' \\
         -d '{"text": "hi"}'                      # -> {"reply": "echo: hi", "chat_id": ...}
    curl -N -c jar -b jar -X POST localhost:5000/chat/stream \\
         -H 'Content-Type: application/json' -d '{"text": "hi"}'
                                                  # data: {"type":"start"...} ... data: [DONE]
    curl -X POST localhost:5000/sessions/chat-1/messages -H 'Content-Type: application/json' \\
         -d '{"kind": "message", "payload": {"trigger": "submit-message", "message":
              {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}}}'
                                                  # -> 202 {"ok": true, "seq": 0, ...}
    curl 'localhost:5000/sessions/chat-1/replies?after=-1'   # -> {"records": [...]}
    curl -N localhost:5000/sessions/chat-1/events     # id: 0 / data: {...} as they come
    open http://localhost:5000/sessions/chat-1/page   # an EventSource page

The events view relays with ``sessions_client.wsgi.sse_relay``: the browser's
``Last-Event-ID`` header (sent by ``EventSource`` when it reconnects) is passed
in, so a reconnect resumes right after the last record the page received; a
heartbeat comment every 5 s notices a closed tab (within about 10 s: the first
write after the close still succeeds), and the server then calls the body's
``close()``, freeing the worker thread at once. Serve it with a threaded server
(``gunicorn -k gthread --threads 16 --graceful-timeout 5``): each open page holds
one thread, and a short graceful timeout loses nothing (pages resume exactly).

(A chat agent reads such ``ChatInputChunk`` records on ``.in`` and streams its reply
to ``.out`` as AI SDK chunks: ``start``, ``text-delta``..., ``finish``.)
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any, Dict, Optional, Tuple

from flask import Flask, jsonify, request
from flask import session as browser_session
from werkzeug.wrappers import Response

from sessions_client import (
    AgentChat,
    AuthenticationError,
    Client,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    RecordTooLargeError,
    SessionClosedError,
    SessionsError,
)
from sessions_client.wsgi import chat_relay, sse_headers, sse_relay

PAGE = """<!doctype html>
<meta charset="utf-8"><title>session</title><pre id="log"></pre>
<script>
  const log = document.getElementById("log");
  const events = new EventSource("events");   // reconnects by itself, with Last-Event-ID
  events.onmessage = (e) => { log.textContent += e.lastEventId + " " + e.data + "\\n"; };
</script>
"""

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

    @app.post("/chat/stream")
    def chat_stream() -> Response:
        text = (request.get_json(silent=True) or {}).get("text")
        if not isinstance(text, str) or not text.strip():
            return Response('send {"text": "..."}', status=400, mimetype="text/plain")
        conversation = AgentChat(agent_task, state=browser_session.get("chat"), client=get_client())
        reply = conversation.send_message(text)
        # Saved now: the cookie goes out with the headers, before the reply is read. The
        # next message then finds its own turn after this one (it skips this reply).
        browser_session["chat"] = conversation.state
        return Response(chat_relay(reply), headers=sse_headers(chat=True))

    @app.post("/sessions/<session_id>/messages")
    def post_message(session_id: str) -> View:
        record: Any
        if request.is_json:  # Content-Type: application/json must carry valid JSON
            try:
                record = json.loads(request.get_data(as_text=True))
            except ValueError:
                return jsonify({"error": "the body is not valid JSON"}), 400
        else:
            record = request.get_data(as_text=True)  # any other body: sent as text
        result = get_client().session(session_id).append_in(record)
        return jsonify(result), 202

    @app.get("/sessions/<session_id>/replies")
    def get_replies(session_id: str) -> View:
        text = request.args.get("after", "-1")
        if re.fullmatch(r"-?[0-9]{1,18}", text) is None:
            return jsonify({"error": f"after must be a record seq, got {text[:40]!r}"}), 400
        after = int(text)
        session = get_client().session(session_id)
        records = session.drain_out(after=None if after < 0 else after)
        return jsonify({"records": records}), 200

    @app.get("/sessions/<session_id>/events")
    def events(session_id: str) -> Response:
        session = get_client().session(session_id)
        try:
            body = sse_relay(
                session,
                last_event_id=request.headers.get("Last-Event-ID"),  # set by EventSource
                max_duration=600,  # the page reconnects every 10 min: workers rebalance
            )
        except ConfigurationError as exc:  # a Last-Event-ID that is not a seq
            return Response(exc.message, status=400, mimetype="text/plain")
        return Response(body, headers=sse_headers())

    @app.get("/sessions/<session_id>/page")
    def page(session_id: str) -> Response:
        return Response(PAGE, mimetype="text/html")

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
