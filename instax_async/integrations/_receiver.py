"""The framework-free core of every webhook receiver: bytes and a header in, a status out.

Replays: the signature carries no time, so a captured body and header verify forever. With
``max_age`` the receiver refuses events whose ``createdAt`` is older (answering 400), and the
dedupe store refuses redeliveries of events it remembers. Together they close the gap when the
store remembers each handled event at least ``max_age`` + ``MAX_CLOCK_SKEW`` (an event may be
dated up to that skew ahead of the receiver's clock): any replay is then either remembered or
too old. A store that forgets sooner (a short ``ttl``) is warned about when the receiver is
built; one that loses its memory (an in-memory store across a restart, or one evicting keys)
weakens the guarantee, which is why several instances want a shared, persistent store.

Floods: anyone can POST to a receiver, so what an unauthenticated request may cost is bounded
before its signature is known. :meth:`WebhookReceiver.receive`, which the adapters call with
the request's headers and a way to read its body, answers before reading any of the body when
it can: 400 for two signature headers, 413 for a declared length over ``max_body``, 401 for a
missing or malformed signature, and 503 with ``Retry-After`` when the bodies being received
would go over ``max_pending_bytes`` (each counts its declared length, or ``max_body`` when it
has none, from before it is read until its delivery is answered, or, when it is verified on
the worker thread, until the worker is done with it). The body must arrive within
``body_timeout`` (else 408). Verification costs CPU in proportion to the body (about 0.4 s for
a MiB of numbers): a body over :data:`VERIFY_OFF_LOOP_ABOVE` bytes is verified on one worker
thread shared by every receiver, so the event loop keeps answering genuine deliveries, which
are about 1.5 KB and verified in place. The adapters close the connection after any answer
given before the body was read to its end, so that the rest of it is never read.

One core, two worlds. :class:`WebhookReceiver` serves the event-loop adapters (aiohttp, ASGI,
Django's async view); :class:`SyncWebhookReceiver` the threaded ones (Django and Flask views
under a WSGI server). Both run the same coroutine, :meth:`_ReceiverCore._answer`, which holds
every decision once: the status of each verification failure, of each claim answer and of a
failed handler, and what the store is told (claim, then done or released). A sync receiver
gives it a store whose calls are its blocking ``*_sync`` methods and an ``on_event`` called in
the request's thread (an async one runs on a background event loop), so nothing in it ever
waits: it runs to its end in one step, without an event loop (:func:`_run_to_end`). The
request thread matters: Django's ORM refuses to run in a thread where an event loop runs.
What differs is how a body is read: a sync view reads it in blocking chunks and checks
``body_timeout`` between them, but cannot interrupt a read that stalls (the WSGI server's
timeouts, or a proxy in front, bound that), and answers 408 to a body that came too late.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import os
import reprlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import CoroutineType
from typing import Any, TypeVar

import attrs

from .._background import BackgroundLoop
from .._compat import timeout
from .._telemetry import telemetry
from .._validate import check_count, check_number
from ..dedupe import (
    ClaimResult,
    DedupeStore,
    InMemoryDedupeStore,
    SyncDedupeStore,
    UnreadableEntryError,
)
from ..errors import InstaxError, ValidationError, WebhookVerificationError
from ..models import WebhookEvent
from ..webhooks import (
    MAX_CLOCK_SKEW,
    RECEIVER_BODY_TIMEOUT,
    RECEIVER_MAX_BODY,
    RECEIVER_MAX_PENDING_BYTES,
    SIGNATURE_HEADER,
    VerificationFailure,
    check_max_age,
    dedupe_key,
    verify,
)

__all__ = [
    "BUSY_RETRY_AFTER",
    "DUPLICATE",
    "HANDLED",
    "VERIFY_OFF_LOOP_ABOVE",
    "BodyReader",
    "ChunkReader",
    "EventHandler",
    "Outcome",
    "SyncWebhookReceiver",
    "WebhookReceiver",
    "content_length",
    "signatures_in",
]

T = TypeVar("T")

logger = logging.getLogger("instax_async.webhooks")

EventHandler = Callable[[WebhookEvent], "Awaitable[Any] | Any"]
BodyReader = Callable[[int], Awaitable["bytes | None"]]
"""``read(limit)``: the request's body, or ``None`` as soon as it is known to exceed ``limit``
bytes (an adapter's way to read its framework's request)."""
ChunkReader = Callable[[int], bytes]
"""``read(size)``: at most ``size`` more bytes of the request's body, ``b""`` at its end,
blocking (a WSGI request's stream ``read``, as Django's ``request.read``)."""

VERIFY_OFF_LOOP_ABOVE = 4 * 1024
"""Bodies larger than this (bytes) are verified on a worker thread, off the event loop; smaller
ones (a webhook is about 1.5 KB, verified in well under a millisecond) in place."""
BUSY_RETRY_AFTER = 5
"""The ``Retry-After`` (seconds) of a 503 answered because ``max_pending_bytes`` was reached."""
#: The most bytes a sync receiver reads at once (it checks ``body_timeout`` between reads).
READ_CHUNK = 16 * 1024

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
    """What a receiver answers: an HTTP status, a small JSON body (never a secret) and any
    headers beyond the content type (``Retry-After`` on a 503 for a full receiver)."""

    status: int
    body: dict[str, str]
    headers: Mapping[str, str] = attrs.field(factory=dict)


class _ReceiverCore:
    """What both receivers share: the options, the flood limits, and every decision.

    Answers: 200 once ``on_event`` returned (or for a redelivery of a handled event); 401 for a
    missing or wrong signature; 400 for a malformed body, two ``X-Instaxwh-Key`` headers, or,
    with ``max_age``, an event older than ``max_age``, dated in the future or without
    ``createdAt``; 413 for a body over ``max_body``; 408 for a body not received within
    ``body_timeout``; 409 while another delivery of the same event is being handled; 500 when
    ``on_event`` raised (so the sender retries: the failed event is not remembered); 503 when
    the dedupe store failed or answered ``claim`` with something that is not a
    :class:`~instax_async.ClaimResult` value (the sender retries rather than the event being
    handled twice or dropped), and 503 with ``Retry-After`` when ``max_pending_bytes`` of
    bodies are being received already.

    Limits against unauthenticated floods: ``max_body`` (bytes, default
    :data:`~instax_async.webhooks.RECEIVER_MAX_BODY`, 64 KiB), ``body_timeout`` (seconds from
    the headers to the body's end, default
    :data:`~instax_async.webhooks.RECEIVER_BODY_TIMEOUT`, 10 s) and ``max_pending_bytes`` (the
    bytes of the bodies this receiver receives at once, each counted by its declared length or
    ``max_body`` from before it is read until its delivery is answered; default
    :data:`~instax_async.webhooks.RECEIVER_MAX_PENDING_BYTES`, 16 MiB, at least ``max_body``).

    ``max_age`` (seconds or a ``timedelta``; ``None``, the default, is off) is passed to
    :func:`~instax_async.webhooks.verify`. With a store that remembers handled events for at
    least ``max_age`` + :data:`~instax_async.webhooks.MAX_CLOCK_SKEW`, a captured webhook is
    never handled twice; a warning is logged here when the store's ``ttl`` is shorter.
    """

    #: The kind of dedupe store this receiver calls: ``True`` for :class:`SyncDedupeStore`.
    _synchronous = False
    #: Bodies larger than this are verified on the worker thread.
    _verify_off_loop_above: float = VERIFY_OFF_LOOP_ABOVE

    def __init__(
        self,
        secret: str,
        on_event: EventHandler,
        *,
        dedupe: DedupeStore | SyncDedupeStore | bool | None = None,
        max_body: int = RECEIVER_MAX_BODY,
        max_age: float | timedelta | None = None,
        body_timeout: float = RECEIVER_BODY_TIMEOUT,
        max_pending_bytes: int = RECEIVER_MAX_PENDING_BYTES,
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
        check_count("max_body", max_body, minimum=1, expected="a number of bytes >= 1")
        body_timeout = check_number(
            "body_timeout", body_timeout, expected="a number of seconds > 0"
        )
        check_count(
            "max_pending_bytes",
            max_pending_bytes,
            minimum=max_body,
            expected=f"a number of bytes >= max_body ({max_body})",
        )
        store = self._store(dedupe)
        window = check_max_age(max_age)
        self._secret = secret
        self._on_event = on_event
        self._dedupe: DedupeStore | None = store if store is None else self._calls_of(store)
        #: The store as it was given (its ``repr``, its ``ttl``).
        self.dedupe = store
        self.max_body = max_body
        #: The oldest event accepted (``None``: any age), as a ``timedelta``.
        self.max_age = window
        #: Seconds a body may take to arrive, from its headers to its end.
        self.body_timeout = body_timeout
        self._budget = _Budget(max_pending_bytes)
        self._too_large = Outcome(413, {"error": f"body over {max_body} bytes"})
        if window is not None and store is not None:
            _warn_if_forgotten_sooner(store, window)

    def _store(self, dedupe: object) -> Any:
        """The store ``dedupe`` names, checked to be of this receiver's kind."""
        kind = SyncDedupeStore if self._synchronous else DedupeStore
        if dedupe is None or dedupe is True:
            return InMemoryDedupeStore()
        if dedupe is False:
            return None
        wrong_kind = getattr(dedupe, "synchronous", self._synchronous) is not self._synchronous
        if isinstance(dedupe, kind) and not wrong_kind:
            return dedupe
        if self._synchronous:
            expected = (
                "a SyncDedupeStore (claim_sync, mark_done_sync, release_sync), such as "
                "InMemoryDedupeStore or RedisDedupeStore on a redis.Redis client"
            )
        else:
            expected = (
                "a DedupeStore (async claim, mark_done, release), such as InMemoryDedupeStore "
                "or RedisDedupeStore on a redis.asyncio.Redis client"
            )
        raise ValidationError(
            f"dedupe: expected {expected}; None (in-memory) or False (off), "
            f"got {type(dedupe).__name__}"
            + (" built for the other kind of receiver" if wrong_kind else ""),
            field="dedupe",
        )

    def _calls_of(self, store: Any) -> DedupeStore:
        """The store as :meth:`_answer` calls it."""
        return store  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        name = getattr(self._on_event, "__name__", "?")
        return f"<{type(self).__name__} on_event={name} dedupe={self.dedupe!r}>"

    @property
    def max_pending_bytes(self) -> int:
        """The most bytes of bodies this receiver receives at once."""
        return self._budget.limit

    @property
    def pending_bytes(self) -> int:
        """The body bytes counted now against :attr:`max_pending_bytes`."""
        return self._budget.used

    def _refusal_before_body(
        self, signatures: Sequence[str], declared: int | None
    ) -> Outcome | None:
        if len(signatures) > 1:
            return _TWO_SIGNATURES
        if declared is None:
            return None  # the body's length decides between 413 and a signature's 401
        if declared > self.max_body:
            return self._too_large
        signature = signatures[0] if signatures else None
        if signature is None or len(signature.strip()) != 32:
            # verify() checks the header before the body, so it refuses this one on an empty
            # body exactly as it would on the body to come, whatever that holds.
            try:
                verify(b"", signature, self._secret)
            except WebhookVerificationError as exc:
                return Outcome(_STATUS_FOR_FAILURE[exc.reason], {"error": str(exc)})
        return None

    async def _answer(
        self,
        body: bytes | Outcome | None,
        signature: str | None,
        span: Any = None,
        hold: _Hold | None = None,
    ) -> Outcome:
        """The answer to a delivery: a shared :data:`HANDLED` or :data:`DUPLICATE` (adapters
        answer those with text written once) or an :class:`Outcome` of its own. Verification,
        the dedupe store and ``on_event`` run in this one coroutine, with no coroutine per step
        (and, for a sync receiver, without anything that waits). ``body`` may be the
        :class:`Outcome` that refuses the delivery before its body was read (logged and traced
        as a refusal). ``span``: the delivery's span, when :meth:`_traced` calls this within
        it. ``hold``: the body's count against ``max_pending_bytes``, which the worker thread
        releases instead when it verifies the body.
        """
        if span is None:
            tel = telemetry()
            if tel is not None and not tel.idle():
                return await self._traced(tel, body, signature, hold)
        if type(body) is bytes and len(body) > self._verify_off_loop_above:
            event = await self._verified_off_loop(body, signature, hold)
        else:
            event = self._verified(body, signature)
        if isinstance(event, Outcome):
            return event
        if span is not None:
            span.set_attribute("instax.webhook.id", event.webhook_id)
            span.set_attribute("instax.webhook.status", str(event.status))
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

    async def _traced(
        self, tel: Any, body: bytes | Outcome | None, signature: str | None, hold: _Hold | None
    ) -> Outcome:
        with tel.server_span("instax.webhook.receive") as span:
            outcome = await self._answer(body, signature, span, hold)
            span.set_attribute("http.response.status_code", outcome.status)
            if outcome.status >= 500:
                tel.fail(span, str(outcome.status))
        tel.webhooks.add(1, {"http.response.status_code": outcome.status})
        return outcome

    async def _verified_off_loop(
        self, body: bytes, signature: str | None, hold: _Hold | None
    ) -> WebhookEvent | Outcome:
        job = _verifier().submit(self._verified, body, signature)
        if hold is not None:
            # Counted until the worker is done with the body, even if this delivery's task is
            # cancelled meanwhile: the count bounds the bodies held, queued ones included.
            hold.handed_off = True
            job.add_done_callback(hold.release_soon(asyncio.get_running_loop()))
        return await asyncio.wrap_future(job)

    def _verified(
        self, body: bytes | Outcome | None, signature: str | None
    ) -> WebhookEvent | Outcome:
        """The verified event, or the :class:`Outcome` that refuses the delivery (logged).
        Runs on the worker thread for a large body: it touches nothing but its arguments."""
        if body is None:
            body = self._too_large
        if isinstance(body, Outcome):
            logger.warning("webhook refused (%s): %s", body.status, body.body["error"])
            return body
        try:
            return verify(
                body, signature, self._secret, max_body=self.max_body, max_age=self.max_age
            )
        except WebhookVerificationError as exc:
            status = _STATUS_FOR_FAILURE.get(exc.reason, 400)
            logger.warning("webhook refused (%s): %s", status, exc)
            return Outcome(status, {"error": str(exc)})


class WebhookReceiver(_ReceiverCore):
    """Verify, deduplicate and dispatch webhooks in an event loop: the core of the aiohttp and
    ASGI receivers (and of Django's async view), which turn requests into :meth:`receive`.

    ``on_event`` may be sync or async (it runs in the event loop); ``dedupe`` is a
    :class:`~instax_async.DedupeStore`. A body over :data:`VERIFY_OFF_LOOP_ABOVE` bytes is
    verified off the event loop, on a worker thread.
    """

    async def handle(self, body: bytes | None, signature: str | None) -> Outcome:
        """Handle one delivery. ``body`` is ``None`` when it was over ``max_body``.

        For an adapter that has read the body itself (none of the flood limits but ``max_body``
        apply; :meth:`receive` is the whole path). A body over :data:`VERIFY_OFF_LOOP_ABOVE`
        bytes is verified on a worker thread.

        With OpenTelemetry, the delivery is a SERVER span ``instax.webhook.receive`` in which
        ``on_event`` runs, and counts in ``instax.webhooks.received`` by its answer's code.
        While that would record nothing (no OpenTelemetry SDK configured: see
        :meth:`~instax_async._telemetry.Telemetry.idle`), no telemetry call is made.
        """
        outcome = await self._answer(body, signature)
        # the caller's own, never one of the shared answers
        return Outcome(outcome.status, dict(outcome.body), dict(outcome.headers))

    async def receive(
        self,
        signatures: Sequence[str],
        declared: int | None,
        read: BodyReader,
        *,
        arrived: bool = False,
    ) -> Outcome:
        """Answer one HTTP delivery, reading its body only if it may be accepted.

        ``signatures``: every ``X-Instaxwh-Key`` value of the request; ``declared``: its
        ``Content-Length`` (``None`` without one); ``read``: reads the body (see
        :data:`BodyReader`). Before any of the body is read: 400 for more than one signature
        header, 413 for a declared length over ``max_body``, 401 for a missing or malformed
        signature when the length is declared (as :func:`~instax_async.webhooks.verify` would
        answer), and 503 with ``Retry-After`` when counting this body (its declared length, or
        ``max_body``) would take the bodies being received over ``max_pending_bytes``. The
        body then has ``body_timeout`` seconds to arrive (else 408); ``arrived``: the whole
        body is buffered already, so ``read`` will not wait and no deadline needs arming (a
        genuine webhook comes in one packet with its headers).

        The answer may be the shared :data:`HANDLED` or :data:`DUPLICATE` (never to be
        changed). An adapter closes the connection after answering a delivery whose body it has
        not read to its end.
        """
        refusal = self._refusal_before_body(signatures, declared)
        if refusal is not None:
            return await self._answer(refusal, None)
        hold = self._budget.hold(self.max_body if declared is None else declared)
        if hold is None:
            return await self._answer(_BUSY, None)
        try:
            if arrived:
                body = await read(self.max_body)
            else:
                try:
                    async with timeout(self.body_timeout):
                        body = await read(self.max_body)
                except TimeoutError:
                    return await self._answer(self._late(), None)
            return await self._answer(body, signatures[0] if signatures else None, hold=hold)
        finally:
            if not hold.handed_off:
                hold.release()

    def _late(self) -> Outcome:
        return Outcome(408, {"error": f"the body took over {self.body_timeout:g} s"})


class SyncWebhookReceiver(_ReceiverCore):
    """Verify, deduplicate and dispatch webhooks in the request's thread: the core of the
    Django and Flask views, which turn requests into :meth:`receive`.

    The same answers, limits and decisions as :class:`WebhookReceiver` (the same code: see
    the module's docstring). ``dedupe`` is a :class:`~instax_async.SyncDedupeStore`, whose
    blocking methods are called here. ``on_event`` may be sync (called in the request's thread,
    where Django's ORM works) or async (run on a background event loop shared by every sync
    receiver of the process, while the request's thread waits for it; a task it starts keeps
    running there after the answer, but is lost if the process ends).
    """

    _synchronous = True
    _verify_off_loop_above = math.inf  # in the request's thread: no event loop to keep free

    def __init__(
        self,
        secret: str,
        on_event: EventHandler,
        *,
        dedupe: SyncDedupeStore | bool | None = None,
        max_body: int = RECEIVER_MAX_BODY,
        max_age: float | timedelta | None = None,
        body_timeout: float = RECEIVER_BODY_TIMEOUT,
        max_pending_bytes: int = RECEIVER_MAX_PENDING_BYTES,
    ) -> None:
        super().__init__(
            secret,
            on_event,
            dedupe=dedupe,
            max_body=max_body,
            max_age=max_age,
            body_timeout=body_timeout,
            max_pending_bytes=max_pending_bytes,
        )
        self._on_event = _in_this_thread(on_event)
        self._budget = _SharedBudget(max_pending_bytes)

    def _calls_of(self, store: Any) -> DedupeStore:
        return _BlockingCalls(store)

    def handle(self, body: bytes | None, signature: str | None) -> Outcome:
        """Handle one delivery whose body was read already (``None``: over ``max_body``), as
        :meth:`WebhookReceiver.handle` does; :meth:`receive` is the whole path."""
        outcome = _run_to_end(self._answer(body, signature))
        return Outcome(outcome.status, dict(outcome.body), dict(outcome.headers))

    def receive(
        self, signatures: Sequence[str], declared: int | None, read: ChunkReader
    ) -> Outcome:
        """Answer one HTTP delivery, reading its body only if it may be accepted.

        ``signatures`` and ``declared`` as for :meth:`WebhookReceiver.receive`, with the same
        refusals before the body is read; ``read`` reads it in blocking chunks (see
        :data:`ChunkReader`), at most ``max_body`` + 1 bytes in all. A body whose last chunk
        came more than ``body_timeout`` seconds after the headers is answered 408 without being
        handled; a read that stalls is not interrupted (the server's timeouts bound it). The
        answer may be the shared :data:`HANDLED` or :data:`DUPLICATE`.
        """
        refusal = self._refusal_before_body(signatures, declared)
        if refusal is not None:
            return _run_to_end(self._answer(refusal, None))
        hold = self._budget.hold(self.max_body if declared is None else declared)
        if hold is None:
            return _run_to_end(self._answer(_BUSY, None))
        try:
            body = self._read(read, declared)
            signature = signatures[0] if signatures else None
            return _run_to_end(self._answer(body, signature))
        finally:
            hold.release()

    def _read(self, read: ChunkReader, declared: int | None) -> bytes | Outcome | None:
        """The body; ``None`` once it is over ``max_body``; an :class:`Outcome` (408) when it
        ended after ``body_timeout``."""
        deadline = time.monotonic() + self.body_timeout
        left = self.max_body + 1 if declared is None else declared
        chunks: list[bytes] = []
        size = 0
        while left > 0:
            chunk = read(min(left, READ_CHUNK))
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            left -= len(chunk)
            if time.monotonic() > deadline:
                return Outcome(408, {"error": f"the body took over {self.body_timeout:g} s"})
        return b"".join(chunks)


def _run_to_end(answer: Coroutine[Any, Any, T]) -> T:
    """Run a sync receiver's :meth:`_ReceiverCore._answer` to its end, in this thread and
    without an event loop: nothing it awaits ever waits (see the module's docstring), so it
    ends at its first step."""
    try:
        answer.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    answer.close()  # pragma: no cover - only a bug in the core could make it wait
    raise InstaxError(
        "a sync webhook receiver's answer waited for an event loop"
    )  # pragma: no cover


class _BlockingCalls:
    """A :class:`SyncDedupeStore` behind :class:`DedupeStore`'s async methods, which call its
    blocking ones and so end without waiting (for :func:`_run_to_end`)."""

    __slots__ = ("_store",)

    def __init__(self, store: SyncDedupeStore) -> None:
        self._store = store

    async def claim(self, key: str) -> ClaimResult:
        return self._store.claim_sync(key)

    async def mark_done(self, key: str) -> None:
        self._store.mark_done_sync(key)

    async def release(self, key: str) -> None:
        self._store.release_sync(key)


_handlers_loop: BackgroundLoop | None = None
_handlers_loop_lock = threading.Lock()


def _background_handlers() -> BackgroundLoop:
    """The event loop on which sync receivers run async handlers (one per process)."""
    global _handlers_loop
    with _handlers_loop_lock:
        if _handlers_loop is None or _handlers_loop.closed:  # closed at exit
            _handlers_loop = BackgroundLoop("instax_async webhook handlers")
        return _handlers_loop


def _in_this_thread(on_event: EventHandler) -> Callable[[WebhookEvent], None]:
    """``on_event`` for a sync receiver: called in the request's thread, and an awaitable it
    returns (an async handler's coroutine) run on the background loop until it is done."""

    def call(event: WebhookEvent) -> None:
        result = on_event(event)
        if inspect.isawaitable(result):
            _background_handlers().run_awaitable(result)

    call.__name__ = getattr(on_event, "__name__", "on_event")
    return call


def signatures_in(header: str | None) -> list[str]:
    """The signatures in a request's ``X-Instaxwh-Key`` value as a WSGI server (or Django)
    gives it: several headers of one name are joined with commas, which a signature never
    holds, so a comma means more than one header (answered 400)."""
    return [] if header is None else header.split(",")


def content_length(value: str | None) -> int | None:
    """A ``Content-Length`` (or WSGI ``CONTENT_LENGTH``) value as a number of bytes; ``None``
    when absent or not a plain number."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


class _Budget:
    """The bytes of the bodies being received, bounded by ``limit``; changed on the event
    loop's thread only."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def hold(self, size: int) -> _Hold | None:
        """Count ``size`` bytes, or ``None`` if that would go over the limit."""
        if self.used + size > self.limit:
            return None
        self.used += size
        return _Hold(self, size)

    def give_back(self, size: int) -> None:
        """Stop counting ``size`` bytes."""
        self.used -= size


class _SharedBudget(_Budget):
    """A :class:`_Budget` that the request threads of a sync receiver share (an async
    receiver's needs no lock: it is counted on its loop's thread only)."""

    __slots__ = ("_lock",)

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._lock = threading.Lock()

    def hold(self, size: int) -> _Hold | None:
        with self._lock:
            return super().hold(size)

    def give_back(self, size: int) -> None:
        with self._lock:
            super().give_back(size)


class _Hold:
    """One body's bytes counted in a :class:`_Budget` until :meth:`release`."""

    __slots__ = ("_budget", "_size", "handed_off")

    def __init__(self, budget: _Budget, size: int) -> None:
        self._budget = budget
        self._size = size
        #: Whether the worker thread's job releases it (when done with the body).
        self.handed_off = False

    def release(self) -> None:
        self._budget.give_back(self._size)

    def release_soon(self, loop: asyncio.AbstractEventLoop) -> Callable[[object], None]:
        """A job's done callback that releases this hold on ``loop``'s thread."""

        def done(_job: object) -> None:
            # A closed loop took its receiver's count with it: nothing left to release.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.release)

        return done


_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _verifier() -> ThreadPoolExecutor:
    """The one worker thread that verifies large bodies, for every receiver of this process
    (made anew in a forked child, where the parent's thread does not run)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(1, thread_name_prefix="instax-webhook-verify")
            _pool_pid = os.getpid()
        return _pool


#: The answer to a delivery handled now (shared: adapters check for it by identity).
HANDLED = Outcome(200, {"status": "ok"})
#: The answer to a redelivery of an event handled before (shared, like :data:`HANDLED`).
DUPLICATE = Outcome(200, {"status": "duplicate"})
_NEW = ClaimResult.NEW
_TWO_SIGNATURES = Outcome(400, {"error": f"more than one {SIGNATURE_HEADER} header"})
_BUSY = Outcome(
    503,
    {"error": "too many webhook bodies are being received; retry later"},
    {"Retry-After": str(BUSY_RETRY_AFTER)},
)


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
