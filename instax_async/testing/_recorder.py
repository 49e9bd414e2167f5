"""A webhook receiver for tests: verifies every delivery, records it, and lets a test wait for one.

Deliveries go through the SDK's own aiohttp receiver (:func:`~instax_async.integrations.aiohttp.
webhook_handler`, without deduplication so that a redelivery is seen as one), so a test exercises
the very verification a merchant's endpoint runs. A refused delivery (wrong signature, malformed
body) is answered as that receiver answers it (401 for a bad signature) and only counted: a test
that expected a webhook then fails with a timeout that mentions the refusals, which points at a
secret mismatch faster than a list of errors would.

A recorder may run in another event loop, in another thread, than the test that waits on it
(the ``instax_webhooks`` fixture runs it in a thread of its own): deliveries are recorded under a
lock, and a waiter is woken in its own loop.

aiohttp's server side is imported when a recorder starts, never when this module is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from typing import TYPE_CHECKING

from .._compat import timeout as timeout_scope
from .._lifecycle import AsyncResource, elsewhere, run_in
from .._validate import check_number
from ..errors import InstaxError, ValidationError
from ..models import WebhookEvent

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["WebhookRecorder"]

_Filters = dict[str, str]

# How many arrived events a timeout message lists before it only counts the rest.
_SHOWN_EVENTS = 10


def _filters(**given: object) -> _Filters:
    for field, value in given.items():
        if value is not None and (not isinstance(value, str) or not value):
            raise ValidationError(
                f"{field}: expected a non-empty str or None, got {value!r}", field=field
            )
    return {field: value for field, value in given.items() if isinstance(value, str)}


def _matches(event: WebhookEvent, filters: _Filters) -> bool:
    return all(getattr(event, name) == value for name, value in filters.items())


def _wake(future: asyncio.Future[WebhookEvent], outcome: WebhookEvent | BaseException) -> None:
    """Settle ``future`` with ``outcome`` in the future's own loop, whichever thread calls."""
    loop = future.get_loop()
    if loop is asyncio.get_running_loop():
        _settle(future, outcome)
        return
    with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[WebhookEvent], outcome: WebhookEvent | BaseException) -> None:
    if future.done():  # cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _describe(event: WebhookEvent) -> str:
    status = event.status
    return (
        f"(session_id={event.session_id!r}, status={str(status) if status else None!r}, "
        f"reference={event.reference!r})"
    )


class WebhookRecorder(AsyncResource):
    """A running webhook receiver on a loopback port that records verified deliveries.

    It is what the ``instax_webhooks`` fixture yields; outside pytest, use it as an async
    context manager::

        async with WebhookRecorder() as webhooks:
            config = SandboxConfig(
                webhook_url=webhooks.url, webhook_secret=webhooks.secret
            )
            ...
            event = await webhooks.wait_for(reference="order-1", status="completed")

    It runs in the event loop :meth:`start` is awaited in; :meth:`wait_for` works from any loop,
    and :meth:`start` and :meth:`stop` from another loop when the recorder's runs in another
    thread (as the ``instax_webhooks`` fixture's does).

    :param secret: the webhook secret deliveries must be signed with; a random one by default.
    :param host: the address to listen on (a free port is picked).
    :ivar url: where to send webhooks (set once started).
    :ivar events: the verified :class:`~instax_async.WebhookEvent` s, in arrival order.
    :ivar refused: how many deliveries were refused (bad signature or malformed body).
    """

    def __init__(self, secret: str | None = None, *, host: str = "127.0.0.1") -> None:
        if secret is None:
            secret = f"whsec_test_{secrets.token_hex(16)}"
        elif not isinstance(secret, str) or not secret:
            raise ValidationError(
                "secret: expected a non-empty str, or None for a random one", field="secret"
            )
        self.secret = secret
        self.events: list[WebhookEvent] = []
        self.refused = 0
        self.url = ""
        self._host = host
        self._waiters: list[tuple[_Filters, asyncio.Future[WebhookEvent]]] = []
        # events and waiters: deliveries arrive in the recorder's thread, waits in the test's
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._home: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (
            f"<WebhookRecorder url={self.url or 'not started'!r} events={len(self.events)} "
            f"refused={self.refused}>"
        )

    async def start(self) -> str:
        """Start listening on a free port; returns :attr:`url`."""
        home = elsewhere(self._home)
        if home is not None:
            return await run_in(home, self.start(), "this WebhookRecorder")
        if self._runner is not None:
            raise InstaxError("this WebhookRecorder is already running")
        from aiohttp import web

        from .._server_log import server_logger
        from ..integrations.aiohttp import webhook_handler

        handler = webhook_handler(self.secret, self._record, dedupe=False)

        async def receive(request: web.Request) -> web.StreamResponse:
            response = await handler(request)
            if response.status >= 400:
                self.refused += 1
            return response

        app = web.Application()
        app.router.add_post("/webhooks/instax", receive)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1, logger=server_logger)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, 0).start()
        except OSError as exc:
            await runner.cleanup()
            raise InstaxError(
                f"the webhook recorder cannot listen on {self._host}: {exc.strerror or exc}"
            ) from exc
        self._runner = runner
        self._home = asyncio.get_running_loop()
        host, port = runner.addresses[0][:2]
        origin = f"[{host}]" if ":" in host else host
        self.url = f"http://{origin}:{port}/webhooks/instax"
        return self.url

    async def stop(self) -> None:
        """Stop listening (:attr:`url` is ``""`` again). A :meth:`wait_for` still waiting raises
        :class:`InstaxError`."""
        home = elsewhere(self._home)
        if home is not None:
            return await run_in(home, self.stop(), "this WebhookRecorder")
        self.url = ""
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for _, future in waiters:
            _wake(future, InstaxError("the webhook recorder stopped"))
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> WebhookRecorder:
        await self.start()
        return self

    async def aclose(self) -> None:
        """The same as :meth:`stop` (leaving ``async with`` calls it)."""
        await self.stop()

    def _record(self, event: WebhookEvent) -> None:
        woken = []
        with self._lock:
            self.events.append(event)
            waiting = []
            for filters, future in self._waiters:
                # A cancelled waiter (done already) stays listed until its wait_for cleans up.
                if not future.done() and _matches(event, filters):
                    woken.append(future)
                else:
                    waiting.append((filters, future))
            self._waiters = waiting
        for future in woken:
            _wake(future, event)

    async def wait_for(
        self,
        *,
        session_id: str | None = None,
        status: str | None = None,
        reference: str | None = None,
        timeout: float = 5.0,
    ) -> WebhookEvent:
        """The first event, already received or still to come, that matches every given filter.

        ``status`` compares with :attr:`WebhookEvent.status <instax_async.WebhookEvent.status>`
        (``"completed"``, ``"failed"``, ``"pending"`` …); filters left ``None`` match anything.

        :raises TimeoutError: nothing matching arrived within ``timeout`` seconds; the message
            names the filters, the events that did arrive and the refused deliveries.
        :raises ValidationError: a filter is not a non-empty str, or ``timeout`` is not a
            positive number of seconds.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not this method's
        filters = _filters(session_id=session_id, status=status, reference=reference)
        check_number("timeout", timeout, expected="seconds > 0")
        future: asyncio.Future[WebhookEvent] = asyncio.get_running_loop().create_future()
        waiter = (filters, future)
        with self._lock:  # no delivery slips in between the look and the wait
            for event in self.events:
                if _matches(event, filters):
                    return event
            self._waiters.append(waiter)
        try:
            async with timeout_scope(timeout):
                return await future
        except TimeoutError:
            raise TimeoutError(self._timeout_message(filters, timeout)) from None
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _timeout_message(self, filters: _Filters, timeout: float) -> str:
        wanted = ", ".join(f"{name}={value!r}" for name, value in filters.items())
        message = (
            f"no webhook with {wanted} arrived within {timeout:g} s"
            if wanted
            else f"no webhook arrived within {timeout:g} s"
        )
        if self.events:
            shown = "; ".join(_describe(e) for e in self.events[:_SHOWN_EVENTS])
            more = len(self.events) - _SHOWN_EVENTS
            extra = f"; and {more} more" if more > 0 else ""
            message += f"; {len(self.events)} arrived: {shown}{extra}"
        else:
            message += "; none arrived"
        if self.refused:
            message += (
                f"; {self.refused} refused (signed with another secret than "
                "this recorder's, or malformed)"
            )
        return message
