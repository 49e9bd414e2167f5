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
from functools import partial

from aiohttp import web

from ..dedupe import DedupeStore
from ..webhooks import (
    RECEIVER_BODY_TIMEOUT,
    RECEIVER_MAX_BODY,
    RECEIVER_MAX_PENDING_BYTES,
    SIGNATURE_HEADER,
)
from ._receiver import DUPLICATE, HANDLED, EventHandler, WebhookReceiver

__all__ = ["webhook_handler"]

# The two answers of a handled delivery, written once (as json_response writes them).
_HANDLED_TEXT = json.dumps(HANDLED.body)
_DUPLICATE_TEXT = json.dumps(DUPLICATE.body)


async def read_bounded(request: web.BaseRequest, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it exceeds ``limit`` bytes (a declared length
    over it is refused before this is called)."""
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


async def _answer_and_close(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Send ``response`` with ``Connection: close`` and close the connection after it, without
    reading the rest of the body (aiohttp would otherwise read and drop it for up to 10 s,
    buffering up to a few hundred KiB of it per connection at a time)."""
    response.force_close()
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        pass  # the client is gone already: there is no one to answer
    request.protocol.force_close()  # the transport sends what was written, then closes


def webhook_handler(
    secret: str,
    on_event: EventHandler,
    *,
    dedupe: DedupeStore | bool | None = None,
    max_body: int = RECEIVER_MAX_BODY,
    max_age: float | timedelta | None = None,
    body_timeout: float = RECEIVER_BODY_TIMEOUT,
    max_pending_bytes: int = RECEIVER_MAX_PENDING_BYTES,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A request handler that verifies, deduplicates and hands each webhook to ``on_event``.

    ``on_event(event)`` may be sync or async; answer codes are those of
    :class:`~instax_async.integrations._receiver.WebhookReceiver` (200 handled or duplicate,
    401 bad signature, 400 malformed, refused by ``max_age`` or with two signature headers,
    413 too large, 408 too slow, 409 being handled, 500 handler failed, 503 dedupe store down
    or too many bodies at once). ``dedupe=None`` keeps an in-memory store; pass a shared
    :class:`~instax_async.DedupeStore` when several instances receive webhooks, or ``False``
    to turn deduplication off.

    Against floods from anyone who can reach the URL: ``max_body`` (default 64 KiB; 413 above
    it, before the body is read when its length is declared), ``body_timeout`` (default 10 s
    from the headers to the body's end; 408 after it) and ``max_pending_bytes`` (default
    16 MiB of bodies received at once; 503 with ``Retry-After`` above it, before the
    body is read). A body over 4 KiB is verified on a worker thread. An answer given before the
    body was read to its end closes the connection, so the rest of the body is never read.
    aiohttp buffers some of each request before the handler runs: see the server settings in
    the production guide.

    ``max_age`` (seconds or a ``timedelta``) refuses events whose ``createdAt`` is older, or
    more than 5 minutes in the future, so that a captured webhook cannot be replayed later;
    keep it at most the store's ttl minus 5 minutes (a warning is logged otherwise), and a
    captured webhook is never handled twice. ``None`` (the default) accepts any age.
    """
    receiver = WebhookReceiver(
        secret,
        on_event,
        dedupe=dedupe,
        max_body=max_body,
        max_age=max_age,
        body_timeout=body_timeout,
        max_pending_bytes=max_pending_bytes,
    )

    async def handle(request: web.Request) -> web.Response:
        try:
            outcome = await receiver.receive(
                request.headers.getall(SIGNATURE_HEADER, ()),
                request.content_length,
                partial(read_bounded, request),
                arrived=request.content.is_eof(),
            )
        except ConnectionError:
            # The client hung up before its body arrived: nothing was handled, and there is no
            # one to answer (aiohttp would log the error with its traceback, once per client).
            return web.Response(status=400)
        if outcome is HANDLED:
            return web.Response(text=_HANDLED_TEXT, content_type="application/json")
        if outcome is DUPLICATE:
            return web.Response(text=_DUPLICATE_TEXT, content_type="application/json")
        response = web.json_response(outcome.body, status=outcome.status, headers=outcome.headers)
        if not request.content.is_eof():
            await _answer_and_close(request, response)
        return response

    handle.receiver = receiver  # type: ignore[attr-defined]
    return handle
