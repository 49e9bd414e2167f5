"""``AsyncSession``: the client for the InstaXchange API.

The class is the list of API calls. Each builds its URL and reads the answer with
:mod:`instax_async._protocol` (no I/O), and sends through its :class:`Requester`
(:mod:`instax_async._requester`: limits, hooks, logs, telemetry and retries). Every resource is
read the same three ways: ``<resource>_status`` once, ``poll_<resource>_status`` as a stream of
changes, ``wait_for_<resource>_status`` for the final one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import _protocol as protocol
from ._lifecycle import AsyncResource
from ._protocol import DEFAULT_BASE_URL
from ._requester import EventHook, Requester, Shared, check_event_hooks
from ._validate import (
    check_api_key,
    check_base_url,
    check_checkout_url,
    check_count,
    check_default_headers,
    check_id,
    check_number,
)
from .errors import ValidationError
from .payloads import SessionRequest, check_require, check_required, check_text
from .retry import RetryPolicy

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .models import BlockchainStatus, PaymentSession, SessionStatus
    from .polling import BlockchainPollOptions, PollAttempt, PollOptions, SessionPollOptions
    from .transports.base import Transport

__all__ = ["DEFAULT_BASE_URL", "NOT_GIVEN", "AsyncSession", "EventHook"]

T = TypeVar("T")


class _NotGiven:
    """The default of :meth:`AsyncSession.with_options`' keywords: keep this client's value."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()


class AsyncSession(AsyncResource):
    """An async client for the InstaXchange API.

    :param api_key: sent as ``x-api-key`` (needed by the session-status endpoint); defaults to
        the ``INSTAX_API_KEY`` environment variable. Visible ASCII only (``!`` to ``~``;
        surrounding blanks are dropped), else :class:`~instax_async.ValidationError`. Never
        shown in reprs, logs or errors.
    :param base_url: defaults to ``INSTAX_BASE_URL``, else ``https://instaxchange.com``.
    :param transport: how requests travel; :class:`~instax_async.AiohttpTransport` by default.
        A transport passed in is not closed by :meth:`aclose` (close it yourself); the default
        one is. The default one follows the running event loop, so one client can serve
        successive ``asyncio.run`` calls in turn, but one event loop at a time: a request from
        a second loop (another thread's ``asyncio.run``) while the first still runs raises
        :class:`~instax_async.InstaxError` before anything is sent. From threads, use
        :class:`~instax_async.Client`. A session or client of your own is tied to its loop.
    :param timeout: seconds each attempt may take, connection included. ``None`` is refused.
    :param retry: a :class:`~instax_async.RetryPolicy`; ``RetryPolicy()`` by default.
    :param max_retries: a shortcut for ``retry=RetryPolicy(max_retries=n)``; giving both is a
        :class:`~instax_async.ValidationError`.
    :param max_concurrency: the most requests this client has in flight at once (``None``: no
        bound beyond the transport's connection pool).
    :param event_hooks: ``{"request": [...], "response": [...]}``, called on every attempt
        (see :attr:`event_hooks`). Each attempt's request has a ``dict`` of headers of its own:
        a request hook changes that attempt's headers in place, and no other request's.
    :param account_ref_id: your merchant account's id, filled into every
        :class:`~instax_async.SessionRequest` that has none (a request's own value wins; the
        request object is not changed); defaults to ``INSTAX_ACCOUNT_REF_ID``.
    :param checkout_url: the checkout page's URL, a template with ``{id}`` for the session id
        (percent-encoded): ``https://instaxchange.com/order/{id}``, a checkout host of its own
        such as ``https://checkout.example/order/{id}``, or ``{base_url}/order/{id}``.
        Defaults to ``INSTAX_CHECKOUT_URL``, else ``{base_url}/embed/{id}``. ``https`` (``http``
        only on a loopback host, or after ``{base_url}``), ``{id}`` once in the path or query,
        no other braces; checked here. :attr:`PaymentSession.iframe_url` prefers a checkout
        URL the API's answer carries (``https`` only; see
        :data:`~instax_async.models.CHECKOUT_URL_KEYS`) and falls back to this template.
    :param default_headers: headers sent with every request, as in openai-python: to follow
        an API change without a new release, such as
        ``{"Authorization": f"Bearer {key}"}``. They replace the SDK's own ``User-Agent``,
        ``Accept`` and ``Content-Type`` when they name them (in any case). ``x-api-key`` among
        them is refused while an api key is configured (``api_key`` or ``INSTAX_API_KEY``),
        never silently replaced; without one it is taken as the api key. Names are HTTP tokens,
        values visible ASCII, spaces and tabs (no CR, LF or NUL); ``Host``,
        ``Content-Length``, ``Transfer-Encoding`` and ``Connection`` are the transport's.
        Values of secret-looking headers (``Authorization``, ``Cookie``, names with ``token``,
        ``key``, ``secret`` …) are never shown in reprs, logs or errors.
    :param require: :class:`~instax_async.SessionRequest` fields that :meth:`create_session`
        insists on, a tuple of field names: ``require=NEWEST_API_REQUIRED``
        (``("account_ref_id", "address")``, which the newest provider pages mark mandatory)
        refuses a request without them with a :class:`~instax_async.ValidationError` naming
        the field, before any request is sent (after ``account_ref_id`` is filled in).
        ``SessionRequest`` itself stays as lenient as the API it was written for.

    Building one needs no running event loop. Use it as an async context manager::

        async with AsyncSession() as client:
            request = SessionRequest.sending(
                from_amount="50", from_currency="USD", to_currency="USDT"
            )
            session = await client.create_session(request)
            print(session.iframe_url)
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        transport: Transport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        max_concurrency: int | None = None,
        event_hooks: Mapping[str, Sequence[EventHook]] | None = None,
        account_ref_id: str | None = None,
        checkout_url: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        require: Sequence[str] | None = None,
    ) -> None:
        key_source = "api_key" if api_key is not None else "INSTAX_API_KEY"
        self._api_key = check_api_key(api_key if api_key is not None else _env("INSTAX_API_KEY"))
        self._base_url = check_base_url(
            base_url if base_url is not None else _env("INSTAX_BASE_URL") or DEFAULT_BASE_URL,
            DEFAULT_BASE_URL,
        )
        headers = check_default_headers(default_headers)
        header_key = next((name for name in headers if name.lower() == "x-api-key"), None)
        if header_key is not None:
            if self._api_key is not None:
                raise ValidationError(
                    f"default_headers: {header_key} would replace the api key set by "
                    f"{key_source}; give the key once (api_key=... or INSTAX_API_KEY)",
                    field="default_headers",
                )
            # the api key, given as a header: it is checked, used and hidden as one
            self._api_key = check_api_key(headers.pop(header_key))
        self._account_ref_id = check_text(
            account_ref_id if account_ref_id is not None else _env("INSTAX_ACCOUNT_REF_ID"),
            "account_ref_id",
        )
        template = checkout_url if checkout_url is not None else _env("INSTAX_CHECKOUT_URL")
        self._checkout_url = (
            f"{self._base_url}/embed/{{id}}"
            if template is None
            else check_checkout_url(template, self._base_url)
        )
        self._checkout = protocol.checkout_template(self._checkout_url)
        self._require = check_require(require)
        checked_timeout = _check_timeout(timeout)
        policy = _check_retry(retry, max_retries)
        hooks = check_event_hooks(event_hooks)
        if max_concurrency is not None:
            check_count("max_concurrency", max_concurrency, minimum=1, accepted=" or None")
        if transport is None:
            from .transports.aiohttp import AiohttpTransport

            transport = AiohttpTransport()
            self._owns_transport = True
        else:
            if not callable(getattr(transport, "send", None)) or not callable(
                getattr(transport, "aclose", None)
            ):
                raise ValidationError(
                    "transport: expected an object with async send(request) and aclose() "
                    f"methods, got {type(transport).__name__}",
                    field="transport",
                )
            self._owns_transport = False
        self._requester = Requester(
            Shared(transport, max_concurrency),
            api_key=self._api_key,
            timeout=checked_timeout,
            retry=policy,
            event_hooks=hooks,
            default_headers=headers,
        )
        self._is_copy = False
        self._session_url = protocol.session_url(self._base_url)

    # -- lifecycle ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        state = " closed" if self.closed else ""
        return f"<AsyncSession base_url={self._base_url!r} api_key={key}{state}>"

    def with_options(
        self,
        *,
        timeout: float = NOT_GIVEN,
        retry: RetryPolicy | None = NOT_GIVEN,
        max_retries: int | None = NOT_GIVEN,
        event_hooks: Mapping[str, Sequence[EventHook]] | None = NOT_GIVEN,
    ) -> AsyncSession:
        """A client like this one, with the options given replaced.

        The copy shares this client's transport (and its connection pool), api key, base URL
        and ``max_concurrency`` bound; it has its own timeout, retry policy and event hooks
        (a copy of this client's hooks unless ``event_hooks`` is given). Closing the copy
        never closes the shared transport; closing this client makes the copy fail with the
        usual "closed" error.

        >>> patient = client.with_options(timeout=120.0, max_retries=5)  # doctest: +SKIP
        >>> await patient.wait_for_session_status(session.id)  # doctest: +SKIP
        """
        self._requester.ensure_open()
        requester = self._requester.copy()
        if timeout is not NOT_GIVEN:
            requester.timeout = _check_timeout(timeout)
        if retry is not NOT_GIVEN or max_retries is not NOT_GIVEN:
            requester.retry = _check_retry(
                None if retry is NOT_GIVEN else retry,
                None if max_retries is NOT_GIVEN else max_retries,
            )
        if event_hooks is not NOT_GIVEN:
            requester.event_hooks = check_event_hooks(event_hooks)
        copy = object.__new__(AsyncSession)
        copy.__dict__.update(self.__dict__)
        copy._requester = requester
        copy._is_copy = True
        return copy

    async def __aenter__(self) -> AsyncSession:
        self._requester.ensure_open()
        return self

    async def aclose(self) -> None:
        """Close the client (and the transport it created). Calling it again does nothing.

        Closing a copy made by :meth:`with_options` closes only the copy.
        """
        requester = self._requester
        if requester.closed:
            return
        requester.closed = True
        if self._is_copy:
            return
        requester.shared.closed = True
        if self._owns_transport:
            await requester.shared.transport.aclose()

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called (on this client or the one it copies)."""
        return self._requester.closed or self._requester.shared.closed

    @property
    def event_hooks(self) -> dict[str, list[EventHook]]:
        """The hooks called on every attempt: ``{"request": [...], "response": [...]}``.

        A mutable dict of lists, as in httpx: ``client.event_hooks["response"].append(f)``.
        """
        return self._requester.event_hooks

    @event_hooks.setter
    def event_hooks(self, hooks: Mapping[str, Sequence[EventHook]]) -> None:
        self._requester.event_hooks = check_event_hooks(hooks)

    @property
    def base_url(self) -> str:
        """The API's base URL, without a trailing slash."""
        return self._base_url

    @property
    def account_ref_id(self) -> str | None:
        """The merchant account id filled into requests that have none (``None``: not set)."""
        return self._account_ref_id

    @property
    def checkout_url(self) -> str:
        """The checkout URL template, with ``{id}`` where the session id goes."""
        return self._checkout_url

    @property
    def require(self) -> tuple[str, ...]:
        """The :class:`~instax_async.SessionRequest` fields :meth:`create_session` insists on."""
        return self._require

    @property
    def has_api_key(self) -> bool:
        """True when an api key is configured (the key itself is never exposed)."""
        return self._api_key is not None

    @property
    def requester(self) -> Requester:
        """The request pipeline this client sends through (its timeout, retries, hooks).

        For the SDK's own pollers and clients built on this one; its interface may change in
        any release.
        """
        return self._requester

    # -- payment sessions --------------------------------------------------------------------

    async def create_session(self, request: SessionRequest) -> PaymentSession:
        """Create a payment session: ``POST /api/session``.

        Retried only where the request cannot have been processed (could not connect, 429,
        503), since creating a session is not idempotent.

        The client's ``account_ref_id`` goes into a request that has none; then a field of
        ``require`` the request leaves unset raises :class:`~instax_async.ValidationError`
        naming it, before anything is sent.
        """
        if not isinstance(request, SessionRequest):
            raise ValidationError(
                "request: expected a SessionRequest (see SessionRequest.sending / .receiving), "
                f"got {type(request).__name__}",
                field="request",
            )
        if self._account_ref_id is not None and request.account_ref_id is None:
            request = request.with_account_ref_id(self._account_ref_id)
        if self._require:
            check_required(request, self._require, f"by this client (require={self._require!r})")
        requester = self._requester
        direction = request.amount_direction
        with requester.call("instax.create_session", "instax.amount_direction", direction) as span:
            response = await requester.send(
                "POST",
                self._session_url,
                request.to_json(),
                idempotent=False,
                spans=span is not None,
            )
            session = protocol.payment_session_from(response, self._checkout)
            if span is not None:
                span.set_attribute("instax.session.id", session.id)
            return session

    def iframe_url(self, session_id: str) -> str:
        """The checkout page of a session, to embed in an iframe: the :attr:`checkout_url`
        template with the id (``{base_url}/embed/{id}`` by default).

        The id is percent-encoded; an empty or blank id, ``"."`` and ``".."`` raise
        :class:`~instax_async.ValidationError`. Where the API's answer carried a checkout URL,
        :attr:`PaymentSession.iframe_url` has it; this method knows only the template.
        """
        return protocol.checkout_url(self._checkout, check_id(session_id, "session_id"))

    # -- payouts: blockchain status ----------------------------------------------------------

    async def blockchain_status(self, tx_id: str) -> BlockchainStatus:
        """The payout's on-chain status: ``GET /utils/blockchain-status?txId={tx_id}``.

        ``tx_id`` is the payout's transaction id, from a webhook's
        ``invoiceData.Withdraw_tx_ID`` (:attr:`WebhookEvent.withdraw_tx_id`). Retried like
        every GET. ``hash`` is ``None`` until the payout is on chain. 404 raises
        :class:`~instax_async.NotFoundError`.

        >>> status = await client.blockchain_status("wd_8f3e…")  # doctest: +SKIP
        >>> status.hash, status.status  # doctest: +SKIP
        ('0x5c50…', 'completed')
        """
        tx_id = check_id(tx_id, "tx_id")
        url = protocol.blockchain_status_url(self._base_url, tx_id)
        requester = self._requester
        with requester.call("instax.blockchain_status", "instax.tx.id", tx_id) as span:
            response = await requester.send("GET", url, idempotent=True, spans=span is not None)
            return protocol.blockchain_status_from(tx_id, response)

    def poll_blockchain_status(
        self, tx_id: str, **options: Unpack[BlockchainPollOptions]
    ) -> AsyncGenerator[BlockchainStatus, None]:
        """Poll a payout's blockchain status; yield each status that differs from the last.

        It stops after yielding a status for which ``until(status)`` is true (by default: it
        has a ``hash``) or that says the payout failed (:attr:`BlockchainStatus.is_failed`).
        The first request goes out at once; then waits grow from ``interval`` by ``backoff``
        up to ``max_interval``, with jitter. Transient failures (connection errors, timeouts,
        408, 429 with its ``Retry-After``, 5xx but 501 and 505) are retried; other errors
        raise. ``timeout`` is one deadline for the whole poll: past it,
        :class:`~instax_async.PollTimeoutError` with ``last_status``. ``on_attempt`` sees
        every attempt (:class:`~instax_async.polling.PollAttempt`).

        The options, each with its default, are those of
        :class:`~instax_async.polling.BlockchainPollOptions`; every one is checked at the call,
        before any request.

        ::

            async for status in client.poll_blockchain_status(event.withdraw_tx_id):
                print(status.status, status.hash)
        """
        from .polling import poll_options  # the poll engine loads with the first poll

        tx_id = check_id(tx_id, "tx_id")
        pacing, until, on_attempt = poll_options(options, "poll_blockchain_status")
        goal = until or _has_hash

        def stop(status: BlockchainStatus) -> bool:
            return goal(status) or status.is_failed

        url = protocol.blockchain_status_url(self._base_url, tx_id)

        async def fetch(seconds_left: float) -> BlockchainStatus:
            response = await self._requester.send(
                "GET", url, idempotent=True, timeout=seconds_left, retry=False
            )
            return protocol.blockchain_status_from(tx_id, response)

        subject = (
            f"blockchain hash for tx {tx_id!r}"
            if until is None
            else f"awaited blockchain status for tx {tx_id!r}"
        )
        return self._poll(fetch, stop, pacing, on_attempt, subject, {"instax.tx.id": tx_id})

    async def wait_for_blockchain_status(
        self, tx_id: str, **options: Unpack[BlockchainPollOptions]
    ) -> BlockchainStatus:
        """Poll until the payout has a hash (or ``until``), and return that final status.

        A payout that failed ends the wait too, with the failed status: check ``.hash``
        (or :attr:`BlockchainStatus.is_failed`) before using it. The options and errors are
        those of :meth:`poll_blockchain_status`.

        >>> status = await client.wait_for_blockchain_status(tx_id, timeout=300)  # doctest: +SKIP
        >>> if status.hash is None: ...  # the payout failed: see status.status  # doctest: +SKIP
        """
        return await _last(self.poll_blockchain_status(tx_id, **options))

    async def wait_for_blockchain_hash(
        self, tx_id: str, **options: Unpack[BlockchainPollOptions]
    ) -> BlockchainStatus:
        """The same as :meth:`wait_for_blockchain_status` (its earlier name, kept).

        Like it, it returns the final status, which for a failed payout has no ``hash``.
        """
        return await _last(self.poll_blockchain_status(tx_id, **options))

    # -- payment sessions: status ------------------------------------------------------------

    def _session_status_url(self, session_id: str) -> str:
        session_id = check_id(session_id, "session_id")
        if self._api_key is None:
            raise ValidationError(
                "api_key: the session-status endpoint needs an api key; pass "
                "AsyncSession(api_key=...) or set INSTAX_API_KEY",
                field="api_key",
            )
        return protocol.session_status_url(self._base_url, session_id)

    async def session_status(self, session_id: str) -> SessionStatus:
        """A payment session's state: ``GET /api/session/{session_id}/status``.

        Needs an api key (sent as ``x-api-key``); without one it raises
        :class:`~instax_async.ValidationError` before any request. Retried like every GET.

        >>> status = await client.session_status("ps_…")  # doctest: +SKIP
        >>> status.session_status, status.to_amount  # doctest: +SKIP
        (<SessionStatusValue.COMPLETED: 'completed'>, Decimal('49.12'))
        """
        url = self._session_status_url(session_id)
        requester = self._requester
        with requester.call("instax.session_status", "instax.session.id", session_id) as span:
            response = await requester.send("GET", url, idempotent=True, spans=span is not None)
            return protocol.session_status_from(response)

    def poll_session_status(
        self, session_id: str, **options: Unpack[SessionPollOptions]
    ) -> AsyncGenerator[SessionStatus, None]:
        """Poll a session's status; yield each one that differs from the last.

        It stops after a terminal status (``completed`` or ``failed``; an unknown status is
        not terminal) or one for which ``until(status)`` is true. Same engine, options
        (:class:`~instax_async.polling.SessionPollOptions`) and errors as
        :meth:`poll_blockchain_status`.
        """
        from .polling import poll_options  # the poll engine loads with the first poll

        url = self._session_status_url(session_id)
        pacing, until, on_attempt = poll_options(options, "poll_session_status")

        def stop(status: SessionStatus) -> bool:
            return status.is_terminal or (until is not None and until(status))

        async def fetch(seconds_left: float) -> SessionStatus:
            response = await self._requester.send(
                "GET", url, idempotent=True, timeout=seconds_left, retry=False
            )
            return protocol.session_status_from(response)

        subject = f"terminal status for session {session_id!r}"
        attributes = {"instax.session.id": session_id}
        return self._poll(fetch, stop, pacing, on_attempt, subject, attributes)

    async def wait_for_session_status(
        self, session_id: str, **options: Unpack[SessionPollOptions]
    ) -> SessionStatus:
        """Poll until the session is ``completed`` or ``failed`` (or ``until``); return it.

        >>> status = await client.wait_for_session_status(session.id, timeout=900)  # doctest: +SKIP
        >>> status.is_completed  # doctest: +SKIP
        True
        """
        return await _last(self.poll_session_status(session_id, **options))

    async def wait_for_session(
        self, session_id: str, **options: Unpack[SessionPollOptions]
    ) -> SessionStatus:
        """The same as :meth:`wait_for_session_status` (its earlier name, kept)."""
        return await _last(self.poll_session_status(session_id, **options))

    # -- polling -----------------------------------------------------------------------------

    async def _poll(
        self,
        fetch: Callable[[float], Awaitable[T]],
        stop: Callable[[T], bool],
        options: PollOptions,
        on_attempt: Callable[[PollAttempt[T]], object] | None,
        subject: str,
        attributes: Mapping[str, str],
    ) -> AsyncGenerator[T, None]:
        """The poll engine's statuses, inside one ``instax.poll`` span when telemetry is on.

        The span is the parent of every attempt's CLIENT span. It is made current only around
        each attempt: a generator's consumer may resume it from any context, so it cannot
        stay current across ``yield``.
        """
        from .polling import poll

        requester = self._requester
        tel = requester.active_telemetry()
        span = None if tel is None else tel.start_call("instax.poll", attributes)
        polls = 0

        async def fetch_in_span(seconds_left: float) -> T:
            nonlocal polls
            polls += 1
            assert tel is not None and span is not None
            with tel.use(span):
                return await fetch(seconds_left)

        updates = poll(
            fetch if span is None else fetch_in_span,
            stop=stop,
            options=options,
            subject=subject,
            on_attempt=on_attempt,
            sleep=requester.sleep,
            clock=requester.clock,
        )
        try:
            async with contextlib.aclosing(updates):
                async for status in updates:
                    yield status
        except Exception as exc:
            if tel is not None and span is not None:
                tel.end_with_error(span, exc)
            raise
        finally:
            if span is not None:
                span.set_attribute("instax.poll.count", polls)
                span.end()


def _check_timeout(timeout: object) -> float:
    return check_number(
        "timeout",
        timeout,
        expected="a finite number of seconds > 0",
        none="wait forever; give the seconds each attempt may take (default 30.0)",
    )


def _check_retry(retry: object, max_retries: object) -> RetryPolicy:
    if retry is not None and max_retries is not None:
        raise ValidationError(
            "max_retries: give either retry=RetryPolicy(...) or max_retries=n, not both",
            field="max_retries",
        )
    if max_retries is not None:
        return RetryPolicy(max_retries=max_retries)  # type: ignore[arg-type]  # checked there
    if retry is None:
        return RetryPolicy()
    if not isinstance(retry, RetryPolicy):
        raise ValidationError(
            f"retry: expected a RetryPolicy, got {type(retry).__name__}", field="retry"
        )
    return retry


def _has_hash(status: BlockchainStatus) -> bool:
    return status.hash is not None


async def _last(updates: AsyncGenerator[T, None]) -> T:
    final: T | None = None
    # aclosing: a poll that raises or is cancelled is closed here, not left to the GC
    async with contextlib.aclosing(updates) as statuses:
        async for final in statuses:  # noqa: B007 - only the last one is wanted
            pass
    assert final is not None  # a poll only ends normally after yielding its final status
    return final


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None
