"""The framework-free core of every webhook receiver: bytes and a header in, a status out."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ..dedupe import ClaimResult, DedupeStore, InMemoryDedupeStore
from ..errors import ValidationError, WebhookVerificationError
from ..models import WebhookEvent
from ..webhooks import DEFAULT_MAX_BODY, VerificationFailure, dedupe_key, verify

__all__ = ["EventHandler", "WebhookReceiver", "Outcome"]

logger = logging.getLogger("instax_async.webhooks")

EventHandler = Callable[[WebhookEvent], "Awaitable[Any] | Any"]

_STATUS_FOR_FAILURE = {
    VerificationFailure.MISSING_SIGNATURE: 401,
    VerificationFailure.MALFORMED_SIGNATURE: 401,
    VerificationFailure.SIGNATURE_MISMATCH: 401,
    VerificationFailure.NO_SECRET: 500,
    VerificationFailure.INVALID_BODY: 400,
    VerificationFailure.TOO_LARGE: 413,
}


@attrs.frozen
class Outcome:
    """What a receiver answers: an HTTP status and a small JSON body (never a secret)."""

    status: int
    body: dict[str, str]


class WebhookReceiver:
    """Verify, deduplicate and dispatch webhooks; adapters turn requests into :meth:`handle`.

    Answers: 200 once ``on_event`` returned (or for a redelivery of a handled event); 401 for a
    missing or wrong signature; 400 for a malformed body; 413 for a body over ``max_body``;
    409 while another delivery of the same event is being handled; 500 when ``on_event`` raised
    (so the sender retries: the failed event is not remembered); 503 when the dedupe store
    failed (the sender retries rather than the event being handled twice or dropped).
    """

    def __init__(
        self,
        secret: str,
        on_event: EventHandler,
        *,
        dedupe: DedupeStore | bool | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if not isinstance(secret, str) or not secret:
            raise ValidationError(
                "secret: expected the non-empty webhook secret from your InstaXchange dashboard",
                field="secret",
            )
        if not callable(on_event):
            raise ValidationError(
                f"on_event: expected a callable taking a WebhookEvent, got {on_event!r}",
                field="on_event",
            )
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise ValidationError(
                f"max_body: expected a number of bytes >= 1, got {max_body!r}", field="max_body"
            )
        if dedupe is None or dedupe is True:
            store: DedupeStore | None = InMemoryDedupeStore()
        elif dedupe is False:
            store = None
        elif isinstance(dedupe, DedupeStore):
            store = dedupe
        else:
            raise ValidationError(
                "dedupe: expected a DedupeStore, None (in-memory) or False (off), "
                f"got {type(dedupe).__name__}",
                field="dedupe",
            )
        self._secret = secret
        self._on_event = on_event
        self._dedupe = store
        self.max_body = max_body

    def __repr__(self) -> str:
        name = getattr(self._on_event, "__name__", "?")
        return f"<WebhookReceiver on_event={name} dedupe={self._dedupe!r}>"

    async def handle(self, body: bytes | None, signature: str | None) -> Outcome:
        """Handle one delivery. ``body`` is ``None`` when it was over ``max_body``."""
        if body is None:
            return Outcome(413, {"error": f"body over {self.max_body} bytes"})
        try:
            event = verify(body, signature, self._secret, max_body=self.max_body)
        except WebhookVerificationError as exc:
            status = _STATUS_FOR_FAILURE.get(exc.reason, 400)
            logger.warning("webhook refused (%s): %s", status, exc)
            return Outcome(status, {"error": str(exc)})
        key = dedupe_key(event)
        store = self._dedupe
        if store is not None:
            try:
                claim = await store.claim(key)
            except Exception:
                logger.exception("webhook dedupe store failed; answering 503 so it is resent")
                return Outcome(503, {"error": "dedupe store unavailable; retry later"})
            if claim is ClaimResult.DONE:
                return Outcome(200, {"status": "duplicate"})
            if claim is ClaimResult.PROCESSING:
                return Outcome(409, {"error": "this event is being handled; retry later"})
        try:
            result = self._on_event(event)
            if inspect.isawaitable(result):
                await result
        except BaseException as exc:
            if store is not None:
                await _release_quietly(store, key)
            if not isinstance(exc, Exception):
                raise  # cancellation and exit requests propagate
            logger.exception("webhook handler failed for %s; answering 500 so it is resent", key)
            return Outcome(500, {"error": "the handler failed; the event will be resent"})
        if store is not None:
            try:
                await store.mark_done(key)
            except Exception:
                # Handled already: answering an error would only cause a second handling.
                logger.exception("could not record webhook %s as handled", key)
        return Outcome(200, {"status": "ok"})


async def _release_quietly(store: DedupeStore, key: str) -> None:
    try:
        await store.release(key)
    except Exception:
        logger.exception("could not release the claim on webhook %s", key)
