"""A Flask (WSGI) app whose views append to a session and read what came back.

One ``Client`` is shared by every request and thread: it holds a connection pool,
reads ``TRIGGER_API_URL`` / ``TRIGGER_SECRET_KEY`` once, and each view is a plain
blocking call, as legacy WSGI code expects.

Run it::

    pip install flask
    export TRIGGER_API_URL=...  TRIGGER_SECRET_KEY=tr_dev_...
    flask --app examples/flask_app.py run

    curl -X POST localhost:5000/sessions/chat-1/messages -H 'Content-Type: application/json' \\
         -d '{"kind": "message", "payload": {"trigger": "submit-message", "message":
              {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}}}'
                                                  # -> 202 {"ok": true, "seq": 0, ...}
    curl 'localhost:5000/sessions/chat-1/replies?after=-1'   # -> {"records": [...]}

(A chat agent reads such ``ChatInputChunk`` records on ``.in`` and streams its reply
to ``.out`` as AI SDK chunks: ``start``, ``text-delta``..., ``finish``.)
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional, Tuple

from flask import Flask, jsonify, request
from werkzeug.wrappers import Response

from sessions_client import (
    AuthenticationError,
    Client,
    NotFoundError,
    PermissionDeniedError,
    RecordTooLargeError,
    SessionClosedError,
    SessionsError,
)

View = Tuple[Response, int]


def create_app(client: Optional[Client] = None) -> Flask:
    """Build the app; ``client`` defaults to ``Client()`` made at the first request."""
    app = Flask(__name__)
    lock = threading.Lock()
    shared: Dict[str, Client] = {}
    if client is not None:
        shared["client"] = client

    def get_client() -> Client:
        with lock:
            if "client" not in shared:
                shared["client"] = Client()
            return shared["client"]

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
        status = 502
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
