"""Receive InstaXchange webhooks in a Flask application.

Route the path you configured in the InstaXchange dashboard to the view::

    from flask import Flask
    from instax_async.integrations.flask import webhook_view

    def on_event(event):  # in the request's thread
        if event.is_completed:
            mark_paid(event.reference, event.data.amount_in_crypto)

    app = Flask(__name__)
    app.add_url_rule(
        "/webhooks/instax", view_func=webhook_view(secret, on_event), methods=["POST"]
    )

The view is synchronous: it serves Flask's development server and WSGI servers (gunicorn,
with ``--threads`` or not, uWSGI). Its endpoint is ``instax_webhook`` unless ``endpoint=`` is
given to ``add_url_rule``.

What a view cannot bound. The view reads at most ``max_body`` bytes of a body, refusing a
declared length over it before reading, but a client that stops sending mid-body holds the
request's thread until the server gives up on it (Werkzeug's development server never does),
and gunicorn reads the rest of a refused body before the connection's next request. Bound that
in front of Flask: a proxy that buffers bodies (nginx ``client_max_body_size 64k;``,
``client_body_timeout 10s;``) or the server's own timeouts (gunicorn ``--timeout``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import flask

from ..dedupe import SyncDedupeStore
from ..webhooks import (
    RECEIVER_BODY_TIMEOUT,
    RECEIVER_MAX_BODY,
    RECEIVER_MAX_PENDING_BYTES,
    SIGNATURE_HEADER,
)
from ._receiver import EventHandler, SyncWebhookReceiver, signatures_in

__all__ = ["webhook_view"]


def webhook_view(
    secret: str,
    on_event: EventHandler,
    *,
    dedupe: SyncDedupeStore | bool | None = None,
    max_body: int = RECEIVER_MAX_BODY,
    max_age: float | timedelta | None = None,
    body_timeout: float = RECEIVER_BODY_TIMEOUT,
    max_pending_bytes: int = RECEIVER_MAX_PENDING_BYTES,
) -> Callable[[], flask.Response]:
    """A view function that verifies, deduplicates and hands each webhook to ``on_event``.

    The answers and keywords of the Django ``webhook_view``: 200 handled or duplicate, 401 bad
    signature, 400 malformed, refused by ``max_age`` or with two signature headers, 413 over
    ``max_body``, 408 a body that took over ``body_timeout``, 409 being handled, 500
    ``on_event`` raised (the event is resent), 503 dedupe store down or ``max_pending_bytes``
    of bodies being read (with ``Retry-After``); 405 for a method other than POST.

    ``on_event(event)`` runs in the request's thread (inside the app and request contexts);
    an ``async def`` one runs on a background event loop while the thread waits. ``dedupe``: a
    :class:`~instax_async.SyncDedupeStore` (``RedisDedupeStore`` on a ``redis.Redis`` client
    when several processes receive webhooks), ``None`` for an in-memory store (one per
    process), ``False`` for none. The view's ``receiver`` attribute is its
    :class:`~instax_async.integrations._receiver.SyncWebhookReceiver`.
    """
    receiver = SyncWebhookReceiver(
        secret,
        on_event,
        dedupe=dedupe,
        max_body=max_body,
        max_age=max_age,
        body_timeout=body_timeout,
        max_pending_bytes=max_pending_bytes,
    )

    def instax_webhook() -> flask.Response:
        request = flask.request
        if request.method != "POST":
            response = flask.jsonify({"error": "use POST"})
            response.status_code = 405
            response.headers["Allow"] = "POST"
            return response
        outcome = receiver.receive(
            signatures_in(request.headers.get(SIGNATURE_HEADER)),
            request.content_length,
            request.stream.read,
        )
        response = flask.jsonify(outcome.body)
        response.status_code = outcome.status
        response.headers.update(outcome.headers)
        return response

    instax_webhook.receiver = receiver  # type: ignore[attr-defined]
    return instax_webhook
