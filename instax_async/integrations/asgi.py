"""Receive InstaXchange webhooks in any ASGI application (Starlette, FastAPI, Quart, …).

The receiver is a plain ASGI app with no dependency of its own; route the path you configured
in the InstaXchange dashboard to it::

    from fastapi import FastAPI
    from instax_async.integrations.asgi import webhook_app

    async def on_event(event):
        ...

    app = FastAPI()
    app.add_route("/webhooks/instax", webhook_app(secret, on_event), methods=["POST"])

In Starlette: ``Route("/webhooks/instax", webhook_app(secret, on_event), methods=["POST"])``.
(``app.mount`` works as well, but then the URL needs a trailing slash.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import timedelta
from typing import Any

from ..dedupe import DedupeStore
from ..webhooks import DEFAULT_MAX_BODY, SIGNATURE_HEADER
from ._receiver import EventHandler, WebhookReceiver

__all__ = ["WebhookApp", "webhook_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HEADER = SIGNATURE_HEADER.lower().encode("latin-1")


class WebhookApp:
    """An ASGI application that receives InstaXchange webhooks (see :func:`webhook_app`)."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver

    def __repr__(self) -> str:
        return f"<WebhookApp {self.receiver!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websocket scopes: nothing to do
        if scope.get("method") != "POST":
            await _respond(send, 405, {"error": "use POST"}, [(b"allow", b"POST")])
            return
        signature: str | None = None
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            lowered = name.lower()
            if lowered == _HEADER:
                signature = value.decode("latin-1")
            elif lowered == b"content-length" and value.isdigit():
                declared = int(value)
        limit = self.receiver.max_body
        body: bytes | None = None
        if declared is None or declared <= limit:
            body = await _read_body(receive, limit)
        outcome = await self.receiver._answer(body, signature)
        await _respond(send, outcome.status, outcome.body)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    body: dict[str, str],
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    content = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def webhook_app(
    secret: str,
    on_event: EventHandler,
    *,
    dedupe: DedupeStore | bool | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_age: float | timedelta | None = None,
) -> WebhookApp:
    """An ASGI app with the same contract as the aiohttp ``webhook_handler``.

    The same keywords: ``dedupe`` (a store, ``None`` for in-memory, ``False`` for none),
    ``max_body`` and ``max_age`` (refuse events older than it, by their ``createdAt``).
    """
    return WebhookApp(
        WebhookReceiver(secret, on_event, dedupe=dedupe, max_body=max_body, max_age=max_age)
    )
