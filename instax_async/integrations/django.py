"""Receive InstaXchange webhooks in a Django project.

Route the path you configured in the InstaXchange dashboard to the view::

    # urls.py
    from django.urls import path
    from instax_async.integrations.django import webhook_view

    def on_event(event):  # in the request's thread: the ORM works here
        if event.is_completed:
            Order.objects.filter(reference=event.reference).update(paid=True)

    urlpatterns = [path("webhooks/instax", webhook_view(secret, on_event))]

:func:`webhook_view` is a synchronous view, for WSGI servers (``runserver``, gunicorn
``--threads``); Django also runs it under ASGI, in a thread. Under an ASGI server (uvicorn,
daphne) with an ``async def on_event``, :func:`async_webhook_view` serves it on the server's own
event loop instead. Both are CSRF-exempt (a webhook carries no CSRF token: its signature is its
proof) and answer anything but POST with 405.

What a view cannot bound. Django's WSGI handler reads a body through a stream bounded by its
``Content-Length`` (a body without one reads as empty, and is answered 400), and the view reads
at most ``max_body`` bytes of it, refusing a declared length over it before reading; but a
client that stops sending mid-body holds the request's thread until the server gives up on it,
and ``runserver`` and gunicorn read the rest of a refused body before the connection's next
request. Under ASGI, Django reads the whole body before any view runs. Bound both in front of
Django: a proxy that buffers bodies (nginx ``client_max_body_size 64k;``,
``client_body_timeout 10s;``) or the server's own timeouts (gunicorn ``--timeout``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from ..dedupe import DedupeStore, SyncDedupeStore
from ..webhooks import (
    RECEIVER_BODY_TIMEOUT,
    RECEIVER_MAX_BODY,
    RECEIVER_MAX_PENDING_BYTES,
    SIGNATURE_HEADER,
)
from ._receiver import (
    EventHandler,
    Outcome,
    SyncWebhookReceiver,
    WebhookReceiver,
    content_length,
    signatures_in,
)

__all__ = ["async_webhook_view", "webhook_view"]

View = TypeVar("View", bound=Callable[..., Any])


def webhook_view(
    secret: str,
    on_event: EventHandler,
    *,
    dedupe: SyncDedupeStore | bool | None = None,
    max_body: int = RECEIVER_MAX_BODY,
    max_age: float | timedelta | None = None,
    body_timeout: float = RECEIVER_BODY_TIMEOUT,
    max_pending_bytes: int = RECEIVER_MAX_PENDING_BYTES,
) -> Callable[[HttpRequest], HttpResponse]:
    """A view that verifies, deduplicates and hands each webhook to ``on_event``.

    The answers and keywords of the aiohttp ``webhook_handler``: 200 handled or duplicate, 401
    bad signature, 400 malformed, refused by ``max_age`` or with two signature headers, 413
    over ``max_body``, 408 a body that took over ``body_timeout``, 409 being handled, 500
    ``on_event`` raised (the event is resent), 503 dedupe store down or ``max_pending_bytes``
    of bodies being read (with ``Retry-After``).

    ``on_event(event)`` runs in the request's thread, where the ORM works; an ``async def``
    one runs on a background event loop while the thread waits (a task it starts there keeps
    running after the answer, but is lost when the process ends: see the guide on payouts).
    ``dedupe``: a :class:`~instax_async.SyncDedupeStore` (``RedisDedupeStore`` on a
    ``redis.Redis`` client when several processes or machines receive webhooks), ``None`` for
    an in-memory store (one per process: gunicorn's workers each have their own), ``False``
    for none. The view's :class:`~instax_async.integrations._receiver.SyncWebhookReceiver` is
    its ``receiver`` attribute.
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

    def instax_webhook(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return _use_post()
        try:
            outcome = receiver.receive(
                signatures_in(request.headers.get(SIGNATURE_HEADER)),
                content_length(request.META.get("CONTENT_LENGTH")),
                request.read,
            )
        except OSError:
            # The client hung up before its body arrived (Django's UnreadablePostError):
            # nothing was handled, and no one is left to read an answer or a traceback.
            return HttpResponse(status=400)
        return _response(outcome)

    return _exempt(instax_webhook, receiver)


def async_webhook_view(
    secret: str,
    on_event: EventHandler,
    *,
    dedupe: DedupeStore | bool | None = None,
    max_body: int = RECEIVER_MAX_BODY,
    max_age: float | timedelta | None = None,
    body_timeout: float = RECEIVER_BODY_TIMEOUT,
    max_pending_bytes: int = RECEIVER_MAX_PENDING_BYTES,
) -> Callable[[HttpRequest], Awaitable[HttpResponse]]:
    """:func:`webhook_view` as an async view, for Django under an ASGI server.

    The same answers and keywords. An ``async def on_event`` is awaited on the server's event
    loop; a plain one runs through ``sync_to_async``, in Django's thread for sync code, where
    the ORM works. ``dedupe``: a :class:`~instax_async.DedupeStore` (``RedisDedupeStore`` on a
    ``redis.asyncio.Redis`` client, or ``None`` for in-memory). Under WSGI, Django would run
    this view in a new event loop per request: use :func:`webhook_view` there.
    """
    handler = on_event if _is_async(on_event) else sync_to_async(on_event)
    receiver = WebhookReceiver(
        secret,
        handler,
        dedupe=dedupe,
        max_body=max_body,
        max_age=max_age,
        body_timeout=body_timeout,
        max_pending_bytes=max_pending_bytes,
    )

    async def instax_webhook(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return _use_post()

        async def read(limit: int) -> bytes | None:
            body = request.read(limit + 1)  # Django's ASGI handler has read it all already
            return None if len(body) > limit else body

        outcome = await receiver.receive(
            signatures_in(request.headers.get(SIGNATURE_HEADER)),
            content_length(request.META.get("CONTENT_LENGTH")),
            read,
            arrived=True,
        )
        return _response(outcome)

    return _exempt(instax_webhook, receiver)


def _is_async(function: object) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _exempt(view: View, receiver: object) -> View:
    # what django.views.decorators.csrf.csrf_exempt sets, without its wrapper (which made an
    # async view sync before Django 5.0)
    view.csrf_exempt = True  # type: ignore[attr-defined]
    view.receiver = receiver  # type: ignore[attr-defined]
    return view


def _use_post() -> HttpResponse:
    response = JsonResponse({"error": "use POST"}, status=405)
    response["Allow"] = "POST"
    return response


def _response(outcome: Outcome) -> HttpResponse:
    response = JsonResponse(outcome.body, status=outcome.status)
    for name, value in outcome.headers.items():
        response[name] = value
    return response
