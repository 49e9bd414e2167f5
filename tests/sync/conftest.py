"""A stand-in API server on a thread and event loop of its own, for the synchronous client.

The server outlives every loop a test makes (``asyncio.run`` in threads, the client's own), and
records what a test asks about: each request's process (the ``x-pid`` header the tests' hooks
add), the client port of its connection, and how many connections were open when it came.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from aiohttp import web

from instax_async import SessionRequest

REQUEST = SessionRequest.sending(from_amount="50", from_currency="USD", to_currency="USDT")


@attrs.define
class Seen:
    """One request as the server saw it."""

    path: str
    pid: str | None
    port: int
    connections: int


class ThreadServer:
    """``POST /api/session`` (``{"id": "ps_<n>"}``, after ``delay`` seconds, or once
    :meth:`release` is called while ``held``), ``GET /utils/blockchain-status`` (pending for
    the first ``pending_polls`` polls of a tx, then with a hash) and
    ``GET /api/session/{id}/status`` (completed)."""

    def __init__(self) -> None:
        self.url = ""
        self.seen: list[Seen] = []
        self.delay = 0.0
        self.held = False
        self.pending_polls = 1
        self._polls: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._gate: asyncio.Event | None = None

    @property
    def peak_connections(self) -> int:
        """The most connections open at once, as requests found them."""
        return max((seen.connections for seen in self.seen), default=0)

    def open_connections(self) -> int:
        """The connections open now (a connection whose handler runs counts until it ends)."""
        assert self._runner is not None and self._runner.server is not None
        return len(self._runner.server.connections)

    def _note(self, request: web.Request) -> None:
        assert self._runner is not None and self._runner.server is not None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append(
            Seen(
                request.path,
                request.headers.get("x-pid"),
                peer[1] if peer else 0,
                len(self._runner.server.connections),
            )
        )

    async def _create(self, request: web.Request) -> web.Response:
        self._note(request)
        if self.held:
            assert self._gate is not None
            await self._gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.json_response({"id": f"ps_{next(self._ids)}"}, status=201)

    async def _blockchain(self, request: web.Request) -> web.Response:
        self._note(request)
        tx_id = request.query["txId"]
        polls = self._polls[tx_id] = self._polls.get(tx_id, 0) + 1
        body: dict[str, Any] = {"txId": tx_id, "status": "pending"}
        if polls > self.pending_polls:
            body.update(status="completed", hash=f"0x{tx_id}")
        return web.json_response(body)

    async def _status(self, request: web.Request) -> web.Response:
        self._note(request)
        return web.json_response(
            {"sessionId": request.match_info["id"], "sessionStatus": "completed"}
        )

    def start(self) -> ThreadServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/session", self._create)
        app.router.add_get("/utils/blockchain-status", self._blockchain)
        app.router.add_get("/api/session/{id}/status", self._status)
        self._gate = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def release(self) -> None:
        """Answer the held requests (and every later one)."""
        self.held = False
        assert self._gate is not None
        self._loop.call_soon_threadsafe(self._gate.set)

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def server() -> Iterator[ThreadServer]:
    """A :class:`ThreadServer`, stopped after the test."""
    running = ThreadServer().start()
    try:
        yield running
    finally:
        running.stop()
