"""``AsyncSession``: the client for the InstaXchange API."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import os
import platform
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

from . import _poll_defaults as poll_defaults
from ._compat import timeout as timeout_scope
from ._lifecycle import AsyncResource
from ._poll_defaults import check_id
from ._retry_rules import RETRYABLE_GET_STATUSES, RETRYABLE_POST_STATUSES, parse_retry_after
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InstaxError,
    RateLimitError,
    ValidationError,
    request_id_from,
    status_error_class,
)
from .models import PaymentSession
from .payloads import SessionRequest
from .serialization import get_converter, loads
from .transports.base import (
    Request,
    Response,
    Transport,
    scrub_exception,
    secret_values,
    unsendable_request_error,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ._telemetry import Telemetry
    from .models import BlockchainStatus, SessionStatus
    from .polling import Clock, PollOptions
    from .retry import RetryPolicy

__all__ = ["DEFAULT_BASE_URL", "NOT_GIVEN", "AsyncSession", "EventHook"]

logger = logging.getLogger("instax_async")

T = TypeVar("T")

# Ids such as ``ps_<uuid>`` need no quoting in a path; anything else is percent-encoded.
_PATH_SAFE = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch

#: The production API.
DEFAULT_BASE_URL = "https://instaxchange.com"


class _NotGiven:
    """The default of :meth:`AsyncSession.with_options`' keywords: keep this client's value."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()

#: An event hook: ``hook(request)`` for "request", ``hook(request, response)`` for "response";
#: sync, or async (awaited).
EventHook = Callable[..., Any]
_HOOK_KINDS = ("request", "response")


@functools.cache
def user_agent() -> str:
    """The ``User-Agent`` every request carries."""
    from importlib import metadata  # only when the first client is built: it is slow to import

    try:
        aiohttp_version = metadata.version("aiohttp")
    except metadata.PackageNotFoundError:  # pragma: no cover - aiohttp is a core dependency
        aiohttp_version = "unknown"
    return (
        f"instax-async/{__version__} python/{platform.python_version()} aiohttp/{aiohttp_version}"
    )


def _check_timeout(timeout: object) -> float:
    if timeout is None:
        raise ValidationError(
            "timeout: None would wait forever; give the seconds each attempt may take "
            "(default 30.0)",
            field="timeout",
        )
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValidationError(
            f"timeout: expected seconds as a number, got {timeout!r}", field="timeout"
        )
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValidationError(
            f"timeout: expected a finite number of seconds > 0, got {timeout!r}", field="timeout"
        )
    return float(timeout)


def _check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str):
        raise ValidationError(
            f"base_url: expected an http(s) URL string, got {base_url!r}", field="base_url"
        )
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValidationError(
            f"base_url: expected an absolute http(s) URL such as {DEFAULT_BASE_URL!r}, "
            f"got {base_url!r}",
            field="base_url",
        )
    return base_url.rstrip("/")


# What an api key may hold: visible ASCII, as an HTTP header value can carry it unchanged.
_API_KEY = re.compile(r"[!-~]+").fullmatch


def _check_api_key(api_key: object) -> str | None:
    if api_key is None:
        return None
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValidationError("api_key: expected a non-empty string", field="api_key")
    key = api_key.strip()
    if not _API_KEY(key):
        # the position only: the key itself, or a part of it, is never shown
        position = next(i for i, char in enumerate(key, 1) if not "!" <= char <= "~")
        raise ValidationError(
            "api_key: expected visible ASCII characters only ('!' to '~', no spaces, control "
            f"or non-ASCII characters); character {position} of the key is not one",
            field="api_key",
        )
    return key


def _error_message(status: int, data: Any) -> str:
    if isinstance(data, Mapping):
        for key in ("message", "error"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, Mapping) and isinstance(value.get("message"), str):
                return str(value["message"])
    return f"InstaXchange answered HTTP {status}"


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
        successive ``asyncio.run`` calls; a session or client of your own is tied to its loop.
    :param timeout: seconds each attempt may take, connection included. ``None`` is refused.
    :param retry: a :class:`~instax_async.RetryPolicy`; ``RetryPolicy()`` by default.
    :param max_retries: a shortcut for ``retry=RetryPolicy(max_retries=n)``; giving both is a
        :class:`~instax_async.ValidationError`.
    :param max_concurrency: the most requests this client has in flight at once (``None``: no
        bound beyond the transport's connection pool).
    :param event_hooks: ``{"request": [...], "response": [...]}``, called on every attempt
        (see :attr:`event_hooks`). Each attempt's request has a ``dict`` of headers of its own:
        a request hook changes that attempt's headers in place, and no other request's.

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
    ) -> None:
        self._api_key = _check_api_key(api_key if api_key is not None else _env("INSTAX_API_KEY"))
        self._base_url = _check_base_url(
            base_url if base_url is not None else _env("INSTAX_BASE_URL") or DEFAULT_BASE_URL
        )
        self._timeout = _check_timeout(timeout)
        self._retry = _check_retry(retry, max_retries)
        self._event_hooks = _check_event_hooks(event_hooks)
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ValidationError(
                f"max_concurrency: expected an int >= 1 or None, got {max_concurrency!r}",
                field="max_concurrency",
            )
        self._shared = _Shared(max_concurrency)
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
        self._transport: Transport = transport
        # A transport that enforces ``Request.timeout`` as a total deadline itself spares every
        # request a second timer; any other gets one from the client, so no attempt can hang.
        self._transport_times_out = getattr(transport, "enforces_timeout", False) is True
        self._closed = False
        self._is_copy = False
        from ._telemetry import telemetry  # loaded with the first client, not with this module

        self._telemetry = telemetry()
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        # None: the running loop's clock. Tests inject a fake one together with ``_sleep``.
        self._clock: Clock | None = None
        common = {"User-Agent": user_agent(), "Accept": "application/json"}
        if self._api_key is not None:
            common["x-api-key"] = self._api_key
        self._get_headers: Mapping[str, str] = common
        self._post_headers: Mapping[str, str] = {**common, "Content-Type": "application/json"}
        self._session_url = f"{self._base_url}/api/session"

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
        >>> await patient.wait_for_session(session.id)  # doctest: +SKIP
        """
        self._ensure_open()
        copy = object.__new__(AsyncSession)
        copy.__dict__.update(self.__dict__)
        copy._is_copy = True
        copy._closed = False
        if timeout is not NOT_GIVEN:
            copy._timeout = _check_timeout(timeout)
        if retry is not NOT_GIVEN or max_retries is not NOT_GIVEN:
            copy._retry = _check_retry(
                None if retry is NOT_GIVEN else retry,
                None if max_retries is NOT_GIVEN else max_retries,
            )
        copy._event_hooks = _check_event_hooks(
            self._event_hooks if event_hooks is NOT_GIVEN else event_hooks
        )
        return copy

    async def __aenter__(self) -> AsyncSession:
        self._ensure_open()
        return self

    async def aclose(self) -> None:
        """Close the client (and the transport it created). Calling it again does nothing.

        Closing a copy made by :meth:`with_options` closes only the copy.
        """
        if self._closed:
            return
        self._closed = True
        if self._is_copy:
            return
        self._shared.closed = True
        if self._owns_transport:
            await self._transport.aclose()

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called (on this client or the one it copies)."""
        return self._closed or self._shared.closed

    @property
    def event_hooks(self) -> dict[str, list[EventHook]]:
        """The hooks called on every attempt: ``{"request": [...], "response": [...]}``.

        A mutable dict of lists, as in httpx: ``client.event_hooks["response"].append(f)``.
        """
        return self._event_hooks

    @event_hooks.setter
    def event_hooks(self, hooks: Mapping[str, Sequence[EventHook]]) -> None:
        self._event_hooks = _check_event_hooks(hooks)

    @property
    def base_url(self) -> str:
        """The API's base URL, without a trailing slash."""
        return self._base_url

    @property
    def has_api_key(self) -> bool:
        """True when an api key is configured (the key itself is never exposed)."""
        return self._api_key is not None

    def _active_telemetry(self) -> Telemetry | None:
        """The instruments, or ``None`` when telemetry would record and propagate nothing now
        (``opentelemetry-api`` absent, or present with no SDK configured: see
        :meth:`Telemetry.idle`), so that such requests skip every span and metric call."""
        tel = self._telemetry
        if tel is None or tel.idle():
            return None
        return tel

    def _ensure_open(self) -> None:
        if self._closed or self._shared.closed:
            raise InstaxError(
                "this AsyncSession is closed; create a new one (or keep it open with "
                "'async with' around all of its use)"
            )

    # -- the API -----------------------------------------------------------------------------

    async def create_session(self, request: SessionRequest) -> PaymentSession:
        """Create a payment session: ``POST /api/session``.

        Retried only where the request cannot have been processed (could not connect, 429,
        503), since creating a session is not idempotent.
        """
        if not isinstance(request, SessionRequest):
            raise ValidationError(
                "request: expected a SessionRequest (see SessionRequest.sending / .receiving), "
                f"got {type(request).__name__}",
                field="request",
            )
        tel = self._active_telemetry()
        if tel is None:
            return self._session_from(
                await self._send("POST", self._session_url, request.to_json(), idempotent=False)
            )
        direction = {"instax.amount_direction": str(request.amount_direction)}
        with tel.call("instax.create_session", direction) as span:
            session = self._session_from(
                await self._send("POST", self._session_url, request.to_json(), idempotent=False)
            )
            span.set_attribute("instax.session.id", session.id)
            return session

    def _session_from(self, response: Response) -> PaymentSession:
        data = self._json_object(response)
        session_id = data.get("id") or data.get("sessionId")
        try:
            # "." or "..": its checkout URL, /embed/.., would be another page; a lone
            # surrogate has no URL form at all
            session_id = check_id(session_id, "id")
        except ValidationError:
            raise APIStatusError(
                "InstaXchange answered without a session id ('id' or 'sessionId') that can "
                "name its checkout page",
                status=response.status,
                body=response.content,
                headers=response.headers,
            ) from None
        return PaymentSession(
            id=session_id,
            iframe_url=self._embed_url(session_id),
            raw=data,
            headers=_read_only(response.headers),
        )

    def iframe_url(self, session_id: str) -> str:
        """The checkout page of a session, to embed in an iframe: ``{base_url}/embed/{id}``.

        The id is percent-encoded; an empty or blank id, ``"."`` and ``".."`` raise
        :class:`~instax_async.ValidationError`.
        """
        return self._embed_url(check_id(session_id, "session_id"))

    def _embed_url(self, session_id: str) -> str:
        if not _PATH_SAFE(session_id):
            session_id = quote(session_id, safe="")
        return f"{self._base_url}/embed/{session_id}"

    # -- blockchain status and session status ------------------------------------------------

    def _blockchain_url(self, tx_id: str) -> str:
        return f"{self._base_url}/utils/blockchain-status?txId={quote(tx_id, safe='')}"

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
        from .models import BlockchainStatus  # built on first use, not with the client

        tx_id = check_id(tx_id, "tx_id")
        tel = self._active_telemetry()
        if tel is None:
            response = await self._send("GET", self._blockchain_url(tx_id), idempotent=True)
            return BlockchainStatus.from_mapping(tx_id, self._json_object(response))
        with tel.call("instax.blockchain_status", {"instax.tx.id": tx_id}):
            response = await self._send("GET", self._blockchain_url(tx_id), idempotent=True)
            return BlockchainStatus.from_mapping(tx_id, self._json_object(response))

    async def _fetch_blockchain_status(self, tx_id: str, timeout: float) -> BlockchainStatus:
        from .models import BlockchainStatus  # built on first use, not with the client

        url = self._blockchain_url(tx_id)
        response = await self._send("GET", url, idempotent=True, timeout=timeout, retry=False)
        return BlockchainStatus.from_mapping(tx_id, self._json_object(response))

    def poll_blockchain_status(
        self,
        tx_id: str,
        *,
        interval: float = poll_defaults.INTERVAL,
        max_interval: float = poll_defaults.MAX_INTERVAL,
        backoff: float = poll_defaults.BACKOFF,
        timeout: float = poll_defaults.TIMEOUT,
        until: Callable[[BlockchainStatus], bool] | None = None,
    ) -> AsyncGenerator[BlockchainStatus, None]:
        """Poll a payout's blockchain status; yield each status that differs from the last.

        It stops after yielding a status for which ``until(status)`` is true (by default: it
        has a ``hash``) or that says the payout failed (:attr:`BlockchainStatus.is_failed`).
        The first request goes out at once; then waits grow from ``interval`` by ``backoff``
        up to ``max_interval``, with jitter. Connection errors, timeouts, 408, 429 (with its
        ``Retry-After``) and 5xx are retried; other errors raise. ``timeout`` is one deadline
        for the whole poll: past it, :class:`~instax_async.PollTimeoutError` with
        ``last_status``. Every option is checked at the call, before any request.

        ::

            async for status in client.poll_blockchain_status(event.withdraw_tx_id):
                print(status.status, status.hash)
        """
        tx_id = check_id(tx_id, "tx_id")
        from .polling import PollOptions  # the poll engine loads with the first poll

        options = PollOptions(
            interval=interval, max_interval=max_interval, backoff=backoff, timeout=timeout
        )
        _check_until(until)
        goal = until or _has_hash

        def stop(status: BlockchainStatus) -> bool:
            return goal(status) or status.is_failed

        subject = (
            f"blockchain hash for tx {tx_id!r}"
            if until is None
            else f"awaited blockchain status for tx {tx_id!r}"
        )
        return self._poll(
            functools.partial(self._fetch_blockchain_status, tx_id),
            stop=stop,
            options=options,
            subject=subject,
            attributes={"instax.tx.id": tx_id},
        )

    async def wait_for_blockchain_hash(
        self,
        tx_id: str,
        *,
        interval: float = poll_defaults.INTERVAL,
        max_interval: float = poll_defaults.MAX_INTERVAL,
        backoff: float = poll_defaults.BACKOFF,
        timeout: float = poll_defaults.TIMEOUT,
        until: Callable[[BlockchainStatus], bool] | None = None,
    ) -> BlockchainStatus:
        """Poll until the payout has a hash (or ``until``), and return that final status.

        A payout that failed ends the wait too, with the failed status: check ``.hash``
        (or :attr:`BlockchainStatus.is_failed`) before using it. The options and errors are
        those of :meth:`poll_blockchain_status`.

        >>> status = await client.wait_for_blockchain_hash(tx_id, timeout=300)  # doctest: +SKIP
        >>> if status.hash is None: ...  # the payout failed: see status.status  # doctest: +SKIP
        """
        return await _last(
            self.poll_blockchain_status(
                tx_id,
                interval=interval,
                max_interval=max_interval,
                backoff=backoff,
                timeout=timeout,
                until=until,
            )
        )

    def _session_status_url(self, session_id: str) -> str:
        if self._api_key is None:
            raise ValidationError(
                "api_key: the session-status endpoint needs an api key; pass "
                "AsyncSession(api_key=...) or set INSTAX_API_KEY",
                field="api_key",
            )
        return f"{self._base_url}/api/session/{quote(session_id, safe='')}/status"

    def _session_status_from(self, response: Response) -> SessionStatus:
        from .models import SessionStatus  # built on first use, not with the client

        data = self._json_object(response)
        try:
            return get_converter().structure(data, SessionStatus)
        except Exception as exc:  # cattrs wraps what it finds in its own exception groups
            raise APIStatusError(
                f"InstaXchange answered with a session status that does not parse: "
                f"{_structure_errors(exc)}",
                status=response.status,
                body=response.content,
                headers=response.headers,
            ) from exc

    async def session_status(self, session_id: str) -> SessionStatus:
        """A payment session's state: ``GET /api/session/{session_id}/status``.

        Needs an api key (sent as ``x-api-key``); without one it raises
        :class:`~instax_async.ValidationError` before any request. Retried like every GET.

        >>> status = await client.session_status("ps_…")  # doctest: +SKIP
        >>> status.session_status, status.to_amount  # doctest: +SKIP
        (<SessionStatusValue.COMPLETED: 'completed'>, Decimal('49.12'))
        """
        url = self._session_status_url(check_id(session_id, "session_id"))
        tel = self._active_telemetry()
        if tel is None:
            return self._session_status_from(await self._send("GET", url, idempotent=True))
        with tel.call("instax.session_status", {"instax.session.id": session_id}):
            return self._session_status_from(await self._send("GET", url, idempotent=True))

    async def _fetch_session_status(self, url: str, timeout: float) -> SessionStatus:
        response = await self._send("GET", url, idempotent=True, timeout=timeout, retry=False)
        return self._session_status_from(response)

    def poll_session_status(
        self,
        session_id: str,
        *,
        interval: float = poll_defaults.INTERVAL,
        max_interval: float = poll_defaults.MAX_INTERVAL,
        backoff: float = poll_defaults.BACKOFF,
        timeout: float = poll_defaults.TIMEOUT,
        until: Callable[[SessionStatus], bool] | None = None,
    ) -> AsyncGenerator[SessionStatus, None]:
        """Poll a session's status; yield each one that differs from the last.

        It stops after a terminal status (``completed`` or ``failed``; an unknown status is
        not terminal) or one for which ``until(status)`` is true. Same engine and options as
        :meth:`poll_blockchain_status`.
        """
        url = self._session_status_url(check_id(session_id, "session_id"))
        from .polling import PollOptions  # the poll engine loads with the first poll

        options = PollOptions(
            interval=interval, max_interval=max_interval, backoff=backoff, timeout=timeout
        )
        _check_until(until)

        def stop(status: SessionStatus) -> bool:
            return status.is_terminal or (until is not None and until(status))

        return self._poll(
            functools.partial(self._fetch_session_status, url),
            stop=stop,
            options=options,
            subject=f"terminal status for session {session_id!r}",
            attributes={"instax.session.id": session_id},
        )

    def _poll(
        self,
        fetch: Callable[[float], Awaitable[T]],
        *,
        stop: Callable[[T], bool],
        options: PollOptions,
        subject: str,
        attributes: Mapping[str, str],
    ) -> AsyncGenerator[T, None]:
        from .polling import poll

        tel = self._active_telemetry()
        if tel is None:
            return poll(
                fetch,
                stop=stop,
                options=options,
                subject=subject,
                sleep=self._sleep,
                clock=self._clock,
            )
        return self._traced_poll(tel, fetch, stop, options, subject, attributes)

    async def _traced_poll(
        self,
        tel: Telemetry,
        fetch: Callable[[float], Awaitable[T]],
        stop: Callable[[T], bool],
        options: PollOptions,
        subject: str,
        attributes: Mapping[str, str],
    ) -> AsyncGenerator[T, None]:
        """The poll inside one ``instax.poll`` span, parent of every attempt's CLIENT span.

        The span is made current only around each attempt: a generator's consumer may resume
        it from any context, so it cannot stay current across ``yield``.
        """
        from .polling import poll

        span = tel.start_call("instax.poll", attributes)
        polls = 0

        async def fetch_in_span(seconds_left: float) -> T:
            nonlocal polls
            polls += 1
            with tel.use(span):
                return await fetch(seconds_left)

        try:
            updates = poll(
                fetch_in_span,
                stop=stop,
                options=options,
                subject=subject,
                sleep=self._sleep,
                clock=self._clock,
            )
            async with contextlib.aclosing(updates):
                async for status in updates:
                    yield status
        except Exception as exc:
            tel.end_with_error(span, exc)
            raise
        finally:
            span.set_attribute("instax.poll.count", polls)
            span.end()

    async def wait_for_session(
        self,
        session_id: str,
        *,
        interval: float = poll_defaults.INTERVAL,
        max_interval: float = poll_defaults.MAX_INTERVAL,
        backoff: float = poll_defaults.BACKOFF,
        timeout: float = poll_defaults.TIMEOUT,
        until: Callable[[SessionStatus], bool] | None = None,
    ) -> SessionStatus:
        """Poll until the session is ``completed`` or ``failed`` (or ``until``); return it.

        >>> status = await client.wait_for_session(session.id, timeout=900)  # doctest: +SKIP
        >>> status.is_completed  # doctest: +SKIP
        True
        """
        return await _last(
            self.poll_session_status(
                session_id,
                interval=interval,
                max_interval=max_interval,
                backoff=backoff,
                timeout=timeout,
                until=until,
            )
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _json_object(self, response: Response) -> dict[str, Any]:
        try:
            data = loads(response.content)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise APIStatusError(
                f"InstaXchange answered with a body that is not JSON: {exc}",
                status=response.status,
                body=response.content,
                headers=response.headers,
            ) from exc
        if not isinstance(data, dict):
            raise APIStatusError(
                f"InstaXchange answered with JSON that is not an object ({type(data).__name__})",
                status=response.status,
                body=response.content,
                headers=response.headers,
            )
        return data

    def _status_error(self, response: Response, retry_after: float | None) -> APIStatusError:
        try:
            data = loads(response.content) if response.content else None
        except ValueError:  # not JSON, or nested deeper than MAX_JSON_DEPTH: no message in it
            data = None
        status = response.status
        cls = status_error_class(status)
        message = _error_message(status, data)
        if cls is RateLimitError:
            return RateLimitError(
                message,
                status=status,
                body=response.content,
                headers=response.headers,
                retry_after=retry_after,
            )
        return cls(message, status=status, body=response.content, headers=response.headers)

    async def _send_once(self, request: Request) -> Response:
        try:
            if self._transport_times_out:
                return await self._transport.send(request)
            async with timeout_scope(request.timeout):
                return await self._transport.send(request)
        except InstaxError:
            raise
        except Exception as exc:
            error = _transport_error(request, exc)
        # outside the except blocks, so that the transport's exception (which may hold the
        # request headers) does not ride along as __context__
        raise error

    async def _send_limited(self, request: Request) -> Response:
        semaphore = self._shared.limiter()
        if semaphore is None:
            return await self._send_once(request)
        async with semaphore:
            return await self._send_once(request)

    # -- the request path --------------------------------------------------------------------
    #
    # Every request takes the same path, in one coroutine (each frame less is time saved on
    # every request): build a Request → (trace context) → request hooks → transport →
    # response hooks → span, metrics and the DEBUG record of the attempt → map the status and
    # decide on a retry. The poll engine's single attempts take it with ``retry=False``: it
    # decides every wait itself.

    def _record(
        self,
        request: Request,
        resend_count: int,
        started: float,
        outcome: Response | BaseException,
        span: Span | None,
    ) -> None:
        """The attempt's DEBUG record, metrics and span end."""
        seconds = time.perf_counter() - started
        if isinstance(outcome, Response):
            status: int | None = outcome.status
            request_id = request_id_from(outcome.headers)
            error_type = None if outcome.status < 400 else str(outcome.status)
        else:
            status = request_id = None
            error_type = type(outcome).__qualname__
        tel = self._telemetry
        if tel is not None and span is not None:
            tel.end_attempt(span, request.method, seconds, status, error_type, outcome, request_id)
        if logger.isEnabledFor(logging.DEBUG):
            _log_attempt(request, resend_count + 1, seconds * 1000.0, status, request_id, outcome)

    async def _send(
        self,
        method: str,
        url: str,
        content: bytes = b"",
        *,
        idempotent: bool,
        timeout: float | None = None,
        retry: bool = True,
    ) -> Response:
        """Send with retries (none if not ``retry``); return a 2xx response or raise the
        mapped error. An attempt that did not complete is kept as its error, not raised, so
        that only the retry decision raises it; anything else (a hook that failed) aborts the
        call."""
        headers = self._post_headers if content else self._get_headers
        seconds = self._timeout if timeout is None else min(self._timeout, timeout)
        retries = 0
        while True:
            if self._closed or self._shared.closed:
                self._ensure_open()
            # Each attempt's request has headers of its own: a hook may change them (httpx's
            # idiom for a per-tenant key) for this attempt only, never for the next or a copy.
            tel = self._telemetry
            span = None
            if tel is not None and not tel.idle():
                span = tel.start_attempt(method, url, retries)
                request = Request(method, url, tel.inject(span, headers), content, seconds)
            else:
                request = Request(method, url, dict(headers), content, seconds)
            hooks = self._event_hooks
            # the DEBUG record's clock runs only when something reads it
            started = (
                time.perf_counter()
                if span is not None or logger.isEnabledFor(logging.DEBUG)
                else None
            )
            outcome: Response | APIConnectionError | ValidationError
            try:
                if hooks["request"]:
                    pending = _run_hooks(hooks["request"], request)
                    if pending is not None:
                        await pending
                try:
                    if self._transport_times_out and self._shared.max_concurrency is None:
                        # the common case, without the two frames of _send_limited / _send_once
                        outcome = await self._transport.send(request)
                    else:
                        outcome = await self._send_limited(request)
                except APIConnectionError as exc:
                    outcome = exc
                except InstaxError:
                    raise
                except Exception as exc:  # from the direct call only: _send_once maps its own
                    # not raised: a later ``raise`` outside any except block leaves no __context__
                    outcome = _transport_error(request, exc)
                if hooks["response"] and isinstance(outcome, Response):
                    pending = _run_hooks(hooks["response"], request, outcome)
                    if pending is not None:
                        await pending
            except Exception as exc:
                if started is not None:
                    self._record(request, retries, started, exc, span)
                raise
            except BaseException:  # cancellation: no log, no metrics, but no span left open
                if span is not None:
                    span.end()
                raise
            if started is not None:
                self._record(request, retries, started, outcome, span)
            # the retry decision
            if isinstance(outcome, Response):
                status = outcome.status
                if 200 <= status < 300:
                    return outcome
            policy = self._retry
            max_retries = policy.max_retries if retry else 0
            if isinstance(outcome, ValidationError):  # never sent: the same would fail again
                _raise_clean(outcome)
            if isinstance(outcome, APIConnectionError):
                if not (idempotent or outcome.connect_failed) or retries >= max_retries:
                    _raise_clean(outcome)
                reason = str(outcome)
                delay = policy.backoff(retries + 1)
            else:
                retry_after = parse_retry_after(outcome.headers) if status in (429, 503) else None
                if (
                    status
                    not in (RETRYABLE_GET_STATUSES if idempotent else RETRYABLE_POST_STATUSES)
                    or retries >= max_retries
                    or (retry_after is not None and retry_after > policy.max_retry_after)
                ):
                    raise self._status_error(outcome, retry_after)
                reason = f"HTTP {status}"
                delay = retry_after if retry_after is not None else policy.backoff(retries + 1)
            retries += 1
            logger.warning(
                "instax_async: retrying %s %s in %.2f s (retry %d of %d) after %s",
                method,
                urlsplit(url).path,
                delay,
                retries,
                policy.max_retries,
                reason,
                extra={"instax_method": method, "instax_attempt": retries},
            )
            await self._sleep(delay)


class _Shared:
    """What a client and the copies :meth:`AsyncSession.with_options` makes of it share."""

    __slots__ = ("_loop", "_semaphore", "closed", "max_concurrency")

    def __init__(self, max_concurrency: int | None) -> None:
        self.max_concurrency = max_concurrency
        self.closed = False
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def limiter(self) -> asyncio.Semaphore | None:
        """The ``max_concurrency`` semaphore of the running event loop.

        An ``asyncio.Semaphore`` binds to the first loop it waits in; a client used in a second
        loop (a second ``asyncio.run``) gets a fresh one there.
        """
        if self.max_concurrency is None:
            return None
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._loop = loop
        return self._semaphore


def _transport_error(request: Request, exc: Exception) -> APIConnectionError | ValidationError:
    """The SDK's error for an exception a transport raised, chained to a scrubbed copy of it
    (the original may hold the request headers). A ``ValueError`` or ``TypeError`` is taken for
    a request that could not be built (nothing was sent): it is not retried."""
    cause = scrub_exception(exc, secret_values(request.headers))
    error: APIConnectionError | ValidationError
    if isinstance(exc, (ValueError, TypeError)):
        error = unsendable_request_error(request, cause)
    elif isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        error = APITimeoutError(
            f"{request.method} {request.url} timed out after {request.timeout:g} s"
        )
    else:
        error = APIConnectionError(
            f"{request.method} {request.url} failed: {type(cause).__name__}: {cause}"
        )
    error.__cause__ = cause
    return error


def _check_event_hooks(hooks: object) -> dict[str, list[EventHook]]:
    if hooks is None:
        return {"request": [], "response": []}
    if not isinstance(hooks, Mapping):
        raise ValidationError(
            'event_hooks: expected a mapping such as {"request": [f], "response": [g]}, '
            f"got {type(hooks).__name__}",
            field="event_hooks",
        )
    checked: dict[str, list[EventHook]] = {"request": [], "response": []}
    for kind, functions in hooks.items():
        if kind not in _HOOK_KINDS:
            raise ValidationError(
                f"event_hooks: unknown event {kind!r}; the events are 'request' and 'response'",
                field="event_hooks",
            )
        if isinstance(functions, (str, bytes)) or not isinstance(functions, Sequence):
            raise ValidationError(
                f"event_hooks[{kind!r}]: expected a list of callables, "
                f"got {type(functions).__name__}",
                field="event_hooks",
            )
        for function in functions:
            if not callable(function):
                raise ValidationError(
                    f"event_hooks[{kind!r}]: expected callables, got {function!r}",
                    field="event_hooks",
                )
        checked[kind] = list(functions)
    return checked


def _run_hooks(
    hooks: Sequence[EventHook], request: Request, response: Response | None = None
) -> Awaitable[None] | None:
    """Call the hooks in order, with the request (and the response, for response hooks).
    Sync hooks run here, with no coroutine made for them; from the first hook that returns an
    awaitable on, the rest run in the coroutine returned."""
    snapshot = tuple(hooks)  # a hook may change the list it is in
    called = 0
    for hook in snapshot:
        called += 1  # noqa: SIM113 - cheaper than enumerate on every request
        try:
            result = hook(request) if response is None else hook(request, response)
        except InstaxError:
            raise
        except Exception as exc:
            raise _hook_error(hook, exc) from exc
        if result is not None and inspect.isawaitable(result):
            return _finish_hooks(hook, result, snapshot[called:], request, response)
    return None


async def _finish_hooks(
    hook: EventHook,
    result: Awaitable[Any],
    rest: tuple[EventHook, ...],
    request: Request,
    response: Response | None,
) -> None:
    try:
        await result
    except InstaxError:
        raise
    except Exception as exc:
        raise _hook_error(hook, exc) from exc
    if rest:
        more = _run_hooks(rest, request, response)
        if more is not None:
            await more


def _hook_error(hook: EventHook, exc: Exception) -> InstaxError:
    name = getattr(hook, "__qualname__", type(hook).__name__)
    return InstaxError(f"event hook {name} raised {type(exc).__name__}: {exc}")


def _raise_clean(error: InstaxError) -> NoReturn:
    """Raise a transport's error without a context that ``raise … from cause`` hid.

    Such a context is never shown, but error reporters walk it; on Python 3.10 it can be an
    exception the HTTP library handled earlier (holding what the cleaned cause left out).
    """
    try:
        raise error
    finally:
        if error.__suppress_context__:
            error.__context__ = None


def _check_retry(retry: object, max_retries: object) -> RetryPolicy:
    from .retry import RetryPolicy  # built with the first client, not on import

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


def _read_only(headers: Mapping[str, str]) -> Mapping[str, str]:
    if isinstance(headers, MutableMapping):
        return MappingProxyType(headers)
    return headers  # aiohttp's and httpx's own mappings are read-only or ours alone


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _log_attempt(
    request: Request,
    attempt: int,
    elapsed_ms: float,
    status: int | None,
    request_id: str | None,
    outcome: Response | BaseException,
) -> None:
    path = _path_of(request.url)
    extra = {
        "instax_method": request.method,
        "instax_path": path,
        "instax_status": status,
        "instax_elapsed_ms": round(elapsed_ms, 1),
        "instax_attempt": attempt,
        "instax_request_id": request_id,
    }
    if isinstance(outcome, Response):
        logger.debug(
            "%s %s -> %d in %.1f ms (attempt %d%s)",
            request.method,
            path,
            status,
            elapsed_ms,
            attempt,
            f", request id {request_id}" if request_id else "",
            extra=extra,
        )
    else:
        logger.debug(
            "%s %s failed after %.1f ms (attempt %d): %s",
            request.method,
            path,
            elapsed_ms,
            attempt,
            outcome,
            extra=extra,
        )


def _has_hash(status: BlockchainStatus) -> bool:
    return status.hash is not None


def _check_until(until: object) -> None:
    if until is not None and not callable(until):
        raise ValidationError(
            f"until: expected a callable taking a status and returning a bool, or None, "
            f"got {type(until).__name__}",
            field="until",
        )


async def _last(updates: AsyncGenerator[T, None]) -> T:
    final: T | None = None
    # aclosing: a poll that raises or is cancelled is closed here, not left to the GC
    async with contextlib.aclosing(updates) as statuses:
        async for final in statuses:  # noqa: B007 - only the last one is wanted
            pass
    assert final is not None  # a poll only ends normally after yielding its final status
    return final


def _structure_errors(error: Exception) -> str:
    import cattrs

    try:
        return "; ".join(cattrs.transform_error(error))
    except Exception:  # pragma: no cover - transform_error handles every cattrs error
        return f"{type(error).__name__}: {error}"


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None
