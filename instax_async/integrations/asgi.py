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
from ..webhooks import (
    RECEIVER_BODY_TIMEOUT,
    RECEIVER_MAX_BODY,
    RECEIVER_MAX_PENDING_BYTES,
    SIGNATURE_HEADER,
)
from ._receiver import EventHandler, Outcome, WebhookReceiver

__all__ = ["WebhookApp", "webhook_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HEADER = SIGNATURE_HEADER.lower().encode("latin-1")
_CLOSE = (b"connection", b"close")


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
        signatures: list[str] = []
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            lowered = name.lower()
            if lowered == _HEADER:
                signatures.append(value.decode("latin-1"))
            elif lowered == b"content-length" and value.isdigit():
                declared = int(value)
        body = _Body(receive)
        outcome = await self.receiver.receive(signatures, declared, body.read)
        await _respond_with(send, outcome, close=not body.complete)


class _Body:
    """Reads a request's body from ASGI ``receive``, and remembers whether it read it all."""

    __slots__ = ("_receive", "complete")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        #: The whole body was read (or the client is gone): the connection may be kept.
        self.complete = False

    async def read(self, limit: int) -> bytes | None:
        """The body, or ``None`` as soon as it is over ``limit`` bytes."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.complete = True
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                self.complete = True
                return b"".join(chunks)


async def _respond_with(send: Send, outcome: Outcome, close: bool) -> None:
    """Send ``outcome``; ``close``: ask the server to close the connection after it (ASGI
    servers do on ``Connection: close``), as the rest of the body was not read."""
    extra = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in outcome.headers.items()
    ]
    if close:
        extra.append(_CLOSE)
    await _respond(send, outcome.status, outcome.body, extra)


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
    max_body: int = RECEIVER_MAX_BODY,
    max_age: float | timedelta | None = None,
    body_timeout: float = RECEIVER_BODY_TIMEOUT,
    max_pending_bytes: int = RECEIVER_MAX_PENDING_BYTES,
) -> WebhookApp:
    """An ASGI app with the same contract as the aiohttp ``webhook_handler``.

    The same keywords: ``dedupe`` (a store, ``None`` for in-memory, ``False`` for none),
    ``max_age`` (refuse events older than it, by their ``createdAt``), and the limits against
    floods: ``max_body`` (default 64 KiB; 413), ``body_timeout`` (default 10 s; 408) and
    ``max_pending_bytes`` (default 16 MiB of bodies received at once; 503 with
    ``Retry-After``). An answer given before the body was read to its end carries
    ``Connection: close``, on which ASGI servers close the connection. The server buffers
    some of each request before the app runs: see the server settings in the production
    guide.
    """
    return WebhookApp(
        WebhookReceiver(
            secret,
            on_event,
            dedupe=dedupe,
            max_body=max_body,
            max_age=max_age,
            body_timeout=body_timeout,
            max_pending_bytes=max_pending_bytes,
        )
    )
