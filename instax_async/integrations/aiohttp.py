"""Receive InstaXchange webhooks in an ``aiohttp.web`` application.

>>> from aiohttp import web
>>> async def on_event(event):
...     print(event.reference, event.status)
>>> app = web.Application()
>>> app.router.add_post("/webhooks/instax", webhook_handler("s3cret", on_event))
... # doctest: +ELLIPSIS
<ResourceRoute ...>
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web

from ..dedupe import DedupeStore
from ..webhooks import DEFAULT_MAX_BODY, SIGNATURE_HEADER
from ._receiver import DUPLICATE, HANDLED, EventHandler, WebhookReceiver

__all__ = ["webhook_handler"]

# The two answers of a handled delivery, written once (as json_response writes them).
_HANDLED_TEXT = json.dumps(HANDLED.body)
_DUPLICATE_TEXT = json.dumps(DUPLICATE.body)


async def read_bounded(request: web.BaseRequest, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it is known to exceed ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        return None
    content = request.content
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def webhook_handler(
    secret: str,
    on_event: EventHandler,
    *,
    dedupe: DedupeStore | bool | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_age: float | timedelta | None = None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A request handler that verifies, deduplicates and hands each webhook to ``on_event``.

    ``on_event(event)`` may be sync or async; answer codes are those of
    :class:`~instax_async.integrations._receiver.WebhookReceiver` (200 handled or duplicate,
    401 bad signature, 400 malformed or refused by ``max_age``, 413 too large, 409 being
    handled, 500 handler failed, 503 dedupe store down). ``dedupe=None`` keeps an in-memory
    store; pass a shared :class:`~instax_async.DedupeStore` when several instances receive
    webhooks, or ``False`` to turn deduplication off.

    ``max_age`` (seconds or a ``timedelta``) refuses events whose ``createdAt`` is older, or
    more than 5 minutes in the future, so that a captured webhook cannot be replayed later;
    keep it at most the store's ttl minus 5 minutes (a warning is logged otherwise), and a
    captured webhook is never handled twice. ``None`` (the default) accepts any age.
    """
    receiver = WebhookReceiver(secret, on_event, dedupe=dedupe, max_body=max_body, max_age=max_age)

    async def handle(request: web.Request) -> web.Response:
        body = await read_bounded(request, receiver.max_body)
        outcome = await receiver._answer(body, request.headers.get(SIGNATURE_HEADER))
        if outcome is HANDLED:
            return web.Response(text=_HANDLED_TEXT, content_type="application/json")
        if outcome is DUPLICATE:
            return web.Response(text=_DUPLICATE_TEXT, content_type="application/json")
        return web.json_response(outcome.body, status=outcome.status)

    handle.receiver = receiver  # type: ignore[attr-defined]
    return handle
