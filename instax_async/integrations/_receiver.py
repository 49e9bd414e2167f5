"""The framework-free core of every webhook receiver: bytes and a header in, a status out.

Replays: the signature carries no time, so a captured body and header verify forever. With
``max_age`` the receiver refuses events whose ``createdAt`` is older (answering 400), and the
dedupe store refuses redeliveries of events it remembers. Together they close the gap when the
store remembers each handled event at least ``max_age`` + ``MAX_CLOCK_SKEW`` (an event may be
dated up to that skew ahead of the receiver's clock): any replay is then either remembered or
too old. A store that forgets sooner (a short ``ttl``) is warned about when the receiver is
built; one that loses its memory (an in-memory store across a restart, or one evicting keys)
weakens the guarantee, which is why several instances want a shared, persistent store.
"""

from __future__ import annotations

import inspect
import logging
import reprlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import CoroutineType
from typing import Any

import attrs

from .._telemetry import telemetry
from ..dedupe import ClaimResult, DedupeStore, InMemoryDedupeStore, UnreadableEntryError
from ..errors import ValidationError, WebhookVerificationError
from ..models import WebhookEvent
from ..webhooks import (
    DEFAULT_MAX_BODY,
    MAX_CLOCK_SKEW,
    VerificationFailure,
    _max_age,
    dedupe_key,
    verify,
)

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
    # A replay (or an event the sender dated wrongly): refused, and never worth a retry soon.
    VerificationFailure.TOO_OLD: 400,
    VerificationFailure.IN_FUTURE: 400,
    VerificationFailure.NO_TIMESTAMP: 400,
}


@attrs.frozen
class Outcome:
    """What a receiver answers: an HTTP status and a small JSON body (never a secret)."""

    status: int
    body: dict[str, str]


class WebhookReceiver:
    """Verify, deduplicate and dispatch webhooks; adapters turn requests into :meth:`handle`.

    Answers: 200 once ``on_event`` returned (or for a redelivery of a handled event); 401 for a
    missing or wrong signature; 400 for a malformed body, or, with ``max_age``, an event older
    than ``max_age``, dated in the future or without ``createdAt``; 413 for a body over
    ``max_body``; 409 while another delivery of the same event is being handled; 500 when
    ``on_event`` raised (so the sender retries: the failed event is not remembered); 503 when
    the dedupe store failed or answered ``claim`` with something that is not a
    :class:`~instax_async.ClaimResult` value (the sender retries rather than the event being
    handled twice or dropped).

    ``max_age`` (seconds or a ``timedelta``; ``None``, the default, is off) is passed to
    :func:`~instax_async.webhooks.verify`. With a store that remembers handled events for at
    least ``max_age`` + :data:`~instax_async.webhooks.MAX_CLOCK_SKEW`, a captured webhook is
    never handled twice; a warning is logged here when the store's ``ttl`` is shorter.
    """

    def __init__(
        self,
        secret: str,
        on_event: EventHandler,
        *,
        dedupe: DedupeStore | bool | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_age: float | timedelta | None = None,
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
        window = _max_age(max_age)
        self._secret = secret
        self._on_event = on_event
        self._dedupe = store
        self.max_body = max_body
        #: The oldest event accepted (``None``: any age), as a ``timedelta``.
        self.max_age = window
        if window is not None and store is not None:
            _warn_if_forgotten_sooner(store, window)

    def __repr__(self) -> str:
        name = getattr(self._on_event, "__name__", "?")
        return f"<WebhookReceiver on_event={name} dedupe={self._dedupe!r}>"

    async def handle(self, body: bytes | None, signature: str | None) -> Outcome:
        """Handle one delivery. ``body`` is ``None`` when it was over ``max_body``.

        With OpenTelemetry, the delivery is a SERVER span ``instax.webhook.receive`` in which
        ``on_event`` runs, and counts in ``instax.webhooks.received`` by its answer's code.
        While that would record nothing (no OpenTelemetry SDK configured: see
        :meth:`~instax_async._telemetry.Telemetry.idle`), no telemetry call is made.
        """
        outcome = await self._answer(body, signature)
        if outcome is HANDLED or outcome is DUPLICATE:
            return Outcome(outcome.status, dict(outcome.body))  # the caller's own
        return outcome

    async def _answer(self, body: bytes | None, signature: str | None, span: Any = None) -> Outcome:
        """:meth:`handle`, answering a handled delivery with the shared :data:`HANDLED` or
        :data:`DUPLICATE` (adapters answer those with text written once). Verification, the
        dedupe store and ``on_event`` run in this one coroutine, with no coroutine per step.
        ``span``: the delivery's span, when :meth:`_traced` calls this within it.
        """
        if span is None:
            tel = telemetry()
            if tel is not None and not tel.idle():
                return await self._traced(tel, body, signature)
        event = self._verified(body, signature, span)
        if isinstance(event, Outcome):
            return event
        key = dedupe_key(event)
        store = self._dedupe
        if store is not None:
            try:
                answer = await store.claim(key)
            except UnreadableEntryError:  # logged by the store, at most once a minute per key
                return Outcome(503, {"error": "dedupe store unavailable; retry later"})
            except Exception:
                logger.exception("webhook dedupe store failed; answering 503 so it is resent")
                return Outcome(503, {"error": "dedupe store unavailable; retry later"})
            if answer is not _NEW:
                refused = _refused(answer)
                if refused is not None:
                    if refused.status < 500 and logger.isEnabledFor(logging.INFO):
                        _log_answer(event, refused)
                    return refused
        try:
            result = self._on_event(event)
            if type(result) is CoroutineType or inspect.isawaitable(result):
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
        if logger.isEnabledFor(logging.INFO):
            _log_answer(event, HANDLED)
        return HANDLED

    async def _traced(self, tel: Any, body: bytes | None, signature: str | None) -> Outcome:
        with tel.server_span("instax.webhook.receive") as span:
            outcome = await self._answer(body, signature, span)
            span.set_attribute("http.response.status_code", outcome.status)
            if outcome.status >= 500:
                tel.fail(span, str(outcome.status))
        tel.webhooks.add(1, {"http.response.status_code": outcome.status})
        return outcome

    def _verified(
        self, body: bytes | None, signature: str | None, span: Any
    ) -> WebhookEvent | Outcome:
        """The verified event, or the :class:`Outcome` that refuses the delivery."""
        if body is None:
            logger.warning("webhook refused (413): body over %d bytes", self.max_body)
            return Outcome(413, {"error": f"body over {self.max_body} bytes"})
        try:
            event = verify(
                body, signature, self._secret, max_body=self.max_body, max_age=self.max_age
            )
        except WebhookVerificationError as exc:
            status = _STATUS_FOR_FAILURE.get(exc.reason, 400)
            logger.warning("webhook refused (%s): %s", status, exc)
            return Outcome(status, {"error": str(exc)})
        if span is not None:
            span.set_attribute("instax.webhook.id", event.webhook_id)
            span.set_attribute("instax.webhook.status", str(event.status))
        return event


#: The answer to a delivery handled now (shared: adapters check for it by identity).
HANDLED = Outcome(200, {"status": "ok"})
#: The answer to a redelivery of an event handled before (shared, like :data:`HANDLED`).
DUPLICATE = Outcome(200, {"status": "duplicate"})
_NEW = ClaimResult.NEW


def _refused(answer: object) -> Outcome | None:
    """What a claim answered other than ``NEW`` means: ``None`` to go on, else the answer."""
    claim = _claim_result(answer)
    if claim is None:
        # Running on_event now could handle a redelivery twice: fail closed.
        logger.error(
            "webhook dedupe store answered claim() with %s, not one of %s; "
            "answering 503 so it is resent",
            _shown(answer),
            ", ".join(repr(member.value) for member in ClaimResult),
        )
        return Outcome(503, {"error": "dedupe store unavailable; retry later"})
    if claim is ClaimResult.DONE:
        return DUPLICATE
    if claim is ClaimResult.PROCESSING:
        return Outcome(409, {"error": "this event is being handled; retry later"})
    return None


def _log_answer(event: WebhookEvent, outcome: Outcome) -> None:
    """Log at INFO how a verified delivery was answered (below 500: handled or refused)."""
    logger.info(
        "webhook %s (%s): answered %d %s",
        event.webhook_id,
        event.status,
        outcome.status,
        outcome.body.get("status") or outcome.body.get("error", ""),
        extra={
            "instax_webhook_id": event.webhook_id,
            "instax_webhook_status": str(event.status),
            "instax_status": outcome.status,
        },
    )


def _claim_result(answer: object) -> ClaimResult | None:
    """The :class:`ClaimResult` a store answered, by value; ``None`` for anything else."""
    if isinstance(answer, ClaimResult):
        return answer
    try:
        return ClaimResult(answer)
    except Exception:  # ValueError, or whatever an odd object's __hash__ or __eq__ raises
        return None


def _shown(answer: object) -> str:
    # reprlib shortens a long answer, and stands in for a repr that raises
    return f"{type(answer).__name__} {reprlib.repr(answer)}"


def _warn_if_forgotten_sooner(store: DedupeStore, max_age: timedelta) -> None:
    try:
        ttl = getattr(store, "ttl", None)
    except Exception:  # a property that raises: a store without a readable ttl
        return
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        return  # not told how long it remembers: nothing to compare
    needed = (max_age + MAX_CLOCK_SKEW).total_seconds()
    if ttl < needed:
        logger.warning(
            "the webhook dedupe store remembers handled events for %g s, less than max_age "
            "(%g s) + %g s of clock skew: a webhook replayed after the store forgot it, but "
            "while it is still young enough, would be handled again. Give the store a ttl of "
            "at least %g s, or lower max_age.",
            ttl,
            max_age.total_seconds(),
            MAX_CLOCK_SKEW.total_seconds(),
            needed,
        )


async def _release_quietly(store: DedupeStore, key: str) -> None:
    try:
        await store.release(key)
    except Exception:
        logger.exception("could not release the claim on webhook %s", key)
