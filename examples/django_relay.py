"""A Django view that relays a session's ``.out`` to the browser as server-sent events.

Copy the view into your app's ``views.py`` and route it::

    # urls.py
    from django.urls import path
    from . import views

    urlpatterns = [path("sessions/<str:session_id>/events", views.session_events)]

In the page::

    const events = new EventSource("/sessions/chat-1/events");
    events.onmessage = (e) => console.log(e.lastEventId, JSON.parse(e.data));

What happens:

- ``sse_relay`` returns an iterable of bytes with a ``close()``. Django's
  ``StreamingHttpResponse`` calls that ``close()`` when the response ends, and the
  WSGI server (gunicorn, uWSGI, mod_wsgi) ends it when a write fails: a heartbeat
  comment every ``heartbeat`` seconds makes that happen within about two
  heartbeats of the tab closing, even while the session is idle, so the worker
  thread is freed at once.
- ``EventSource`` reconnects by itself and sends ``Last-Event-ID`` (the seq of the
  last record it received); Django puts it in ``request.headers``. The relay starts
  right after it, so nothing is lost or repeated.
- Serve it with threads (``gunicorn -k gthread --threads 16 --graceful-timeout 5
  mysite.wsgi``): each open page holds one worker thread for as long as it is
  open. Open pages hold a stop for the graceful timeout; they resume exactly, so
  a short one loses nothing. ``max_duration`` makes pages reconnect now and then.
- Do not wrap the view in middleware that buffers the body (``GZipMiddleware``
  leaves streaming responses alone; some others do not).

Django is not a dependency of ``sessions_client``; this file is documentation
that the test suite only compiles.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from sessions_client import Client, ConfigurationError
from sessions_client.wsgi import sse_headers, sse_relay

client = Client()  # one per process: thread-safe, reads TRIGGER_API_URL / TRIGGER_SECRET_KEY


def session_events(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET /sessions/<session_id>/events: the session's .out as text/event-stream."""
    try:
        body = sse_relay(
            client.session(session_id),
            last_event_id=request.headers.get("Last-Event-ID"),
            heartbeat=5.0,
            max_duration=600,
        )
    except ConfigurationError as exc:  # a Last-Event-ID header that is not a seq
        return HttpResponse(exc.message, status=400, content_type="text/plain")
    response = StreamingHttpResponse(body)
    for name, value in sse_headers():  # Content-Type, Cache-Control, X-Accel-Buffering
        response[name] = value
    return response
