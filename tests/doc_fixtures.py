"""The names documentation pages' examples may leave open, and helpers for their hidden code.

:func:`page_fixtures` gives a :class:`~tests.markdown_blocks.Page` (see that module for the
conventions) everything below, bound to one sandbox that runs on a thread of its own — an
outside server as far as the page can tell, so that it answers both the page's event loop and
the loops ``asyncio.run()`` makes in the examples:

- ``sandbox``: the running :class:`~instax_async.sandbox.Sandbox` (``INSTAX_BASE_URL`` points
  at it, ``INSTAX_API_KEY`` is set; with ``confirmation_polls=0`` a payout has its hash at the
  first poll, so the examples' default poll intervals cost nothing).
- ``orders``, ``payouts``, ``alerts``: :class:`Recorder` stand-ins for the application's own
  services; ``Recorder`` makes more.
- ``await serve(app)``: an ``aiohttp.web`` app on a free loopback port, a :class:`Server`
  (``.url``, ``await .close()``); closed with the page if not before.
- ``signed_webhook(secret, **fields)``: ``(body, headers)`` of a webhook signed as InstaXchange
  signs it (fields as :func:`instax_async.sandbox.events.webhook_payload` takes them);
  ``await post_webhook(url, secret, **fields)`` POSTs one and returns the answer's status;
  ``await deliver(url, body, headers)`` POSTs a given one (again, for a redelivery).
- ``await settled_session(paid=True)``: ``(session, tx_id)`` of a sandbox session paid (or
  declined) by the customer; ``tx_id`` is its payout's transaction id.
- ``await wait_until(predicate)``: wait (10 s at most) until ``predicate()`` is true.
- ``fixture(name)``: a pytest fixture's value (``fixture("redis_url")`` skips the rest of the
  page where there is no Redis).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable, Generator, Iterator
from types import TracebackType
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from instax_async import AsyncSession, PaymentSession, SessionRequest
from instax_async.sandbox import Sandbox, SandboxConfig
from instax_async.sandbox.events import webhook_payload
from instax_async.serialization import dumps
from instax_async.webhooks import SIGNATURE_HEADER, sign
from tests.markdown_blocks import Page

__all__ = ["BackgroundSandbox", "Recorder", "Server", "page_fixtures"]


class _Done:
    """What a recorded call returns: awaitable, and harmless when not awaited."""

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


class Recorder:
    """A stand-in for one of the application's services: every method call is recorded.

    ``orders.mark_paid("order-1", amount)`` appends ``("mark_paid", "order-1", amount)`` to
    ``orders.calls`` (keyword arguments as a trailing dict) and may be awaited or not.
    """

    def __init__(self, name: str = "service") -> None:
        self.name = name
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, method: str) -> Callable[..., _Done]:
        if method.startswith("_"):
            raise AttributeError(method)

        def record(*args: Any, **kwargs: Any) -> _Done:
            self.calls.append((method, *args, *([kwargs] if kwargs else [])))
            return _Done()

        return record

    def named(self, method: str) -> list[tuple[Any, ...]]:
        """The arguments of each call of ``method``."""
        return [call[1:] for call in self.calls if call[0] == method]

    def __repr__(self) -> str:
        return f"<Recorder {self.name}: {self.calls!r}>"


class BackgroundSandbox:
    """Run a :class:`Sandbox` on a thread and event loop of its own, for a ``with`` block."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="background-sandbox", daemon=True
        )
        self._sandbox: Sandbox | None = None

    def _call(self, coroutine: Awaitable[Any]) -> Any:
        async def wrapped() -> Any:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout=30)

    def __enter__(self) -> Sandbox:
        self._thread.start()

        async def start() -> Sandbox:
            sandbox = Sandbox(self._config)
            await sandbox.start()
            return sandbox

        try:
            self._sandbox = self._call(start())
        except BaseException:
            self._stop_thread()
            raise
        assert self._sandbox is not None
        return self._sandbox

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._sandbox is not None:
                self._call(self._sandbox.stop())
        finally:
            self._stop_thread()

    def _stop_thread(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


class Server:
    """An ``aiohttp.web`` app served on a loopback port."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self.url = url
        self._runner: web.AppRunner | None = runner

    async def close(self) -> None:
        """Stop serving (the app's cleanup runs); closing twice does nothing."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def signed_webhook(secret: str, **fields: Any) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a webhook InstaXchange would send, signed with ``secret``."""
    body = dumps(webhook_payload(**fields))
    return body, {SIGNATURE_HEADER: sign(body, secret), "Content-Type": "application/json"}


async def deliver(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST a webhook ``body`` with its ``headers`` to ``url``; the answer's status."""
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status


def page_fixtures(page: Page, sandbox: Sandbox, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The names :mod:`tests.doc_fixtures` describes, for ``page`` and ``sandbox``."""
    references: Iterator[int] = itertools.count(1)
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("INSTAX_BASE_URL", sandbox.url)
    monkeypatch.setenv("INSTAX_API_KEY", "sk_docs")

    async def serve(app: web.Application) -> Server:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        server = Server(runner, f"http://127.0.0.1:{runner.addresses[0][1]}")
        page.exit_stack.push_async_callback(server.close)
        return server

    async def post_webhook(url: str, secret: str, **fields: Any) -> int:
        return await deliver(url, *signed_webhook(secret, **fields))

    async def settled_session(*, paid: bool = True) -> tuple[PaymentSession, str]:
        async with AsyncSession(base_url=sandbox.url) as client:
            session = await client.create_session(
                SessionRequest.sending(
                    from_amount="50",
                    from_currency="USD",
                    to_currency="USDT",
                    webhook_ref=f"order-{next(references)}",
                )
            )
        settled = await (sandbox.complete(session.id) if paid else sandbox.fail(session.id))
        tx_id: str = settled["withdraw_tx_id"]
        return session, tx_id

    async def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
        for _ in range(int(timeout / 0.01)):
            if predicate():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"still not true after {timeout} s")

    return {
        "sandbox": sandbox,
        "orders": Recorder("orders"),
        "payouts": Recorder("payouts"),
        "alerts": Recorder("alerts"),
        "Recorder": Recorder,
        "serve": serve,
        "signed_webhook": signed_webhook,
        "post_webhook": post_webhook,
        "deliver": deliver,
        "settled_session": settled_session,
        "wait_until": wait_until,
        "fixture": request.getfixturevalue,
    }
