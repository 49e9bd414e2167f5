"""One client across several event loops (``asyncio.run`` twice), against real servers.

The default transport follows the running loop and leaves nothing unclosed behind; a session
or client of the caller's that cannot be used in the new loop gets a clear ``InstaxError``.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from instax_async import (
    AiohttpTransport,
    AsyncSession,
    InstaxError,
    MockTransport,
    Request,
    Response,
    SessionRequest,
)
from instax_async.transports.httpx import HttpxTransport

REPO_ROOT = Path(__file__).resolve().parents[2]
SENDING = SessionRequest.sending(from_amount="5", from_currency="USD", to_currency="USDT")


@pytest.fixture
def thread_server() -> Iterator[str]:
    """An aiohttp server in a thread with a loop of its own, so it outlives the test's loops."""
    ready: list[str] = []
    stop: list[asyncio.Event] = []
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        async def handle(request: web.Request) -> web.Response:
            await asyncio.sleep(0.005)
            return web.json_response({"id": "ps_1"}, headers={"Connection": "close"})

        app = web.Application()
        app.router.add_post("/api/session", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        stop.append(asyncio.Event())
        ready.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
        await stop[0].wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    while not ready:
        thread.join(0.01)
    yield ready[0]
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(10)
    loop.close()


_TWO_RUNS = textwrap.dedent(
    """
    import asyncio, gc, sys, threading
    from aiohttp import web
    from instax_async import AiohttpTransport, AsyncSession, SessionRequest

    REQUEST = SessionRequest.sending(from_amount="5", from_currency="USD", to_currency="USDT")
    ready, stop = [], []

    async def serve():
        async def handle(request):
            await asyncio.sleep(0.005)
            return web.json_response({"id": "ps_1"})
        app = web.Application()
        app.router.add_post("/api/session", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        stop.append(asyncio.Event())
        ready.append(runner.addresses[0][1])
        await stop[0].wait()
        await runner.cleanup()

    server_loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=server_loop.run_until_complete, args=(serve(),), daemon=True
    )
    thread.start()
    while not ready:
        thread.join(0.01)

    transport = AiohttpTransport() if sys.argv[1] == "passed" else None
    client = AsyncSession(
        base_url=f"http://127.0.0.1:{ready[0]}", transport=transport, max_concurrency=1
    )

    async def use():
        # three at once through max_concurrency=1: the semaphore has to wait in this loop
        ids = await asyncio.gather(*(client.create_session(REQUEST) for _ in range(3)))
        assert [s.id for s in ids] == ["ps_1"] * 3

    for _ in range(3):
        asyncio.run(use())
        gc.collect()
    asyncio.run(client.aclose())
    if transport is not None:
        asyncio.run(transport.aclose())
    gc.collect()
    server_loop.call_soon_threadsafe(stop[0].set)
    thread.join()
    server_loop.close()
    print("ok")
    """
)


@pytest.mark.subprocess
@pytest.mark.parametrize("transport", ["default", "passed"])
def test_one_client_in_successive_asyncio_runs_leaves_nothing_unclosed(transport: str) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", _TWO_RUNS, transport],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert "Unclosed" not in done.stderr
    assert done.stderr == ""


def test_the_owned_session_closes_as_its_loop_ends(thread_server: str) -> None:
    transport = AiohttpTransport()
    client = AsyncSession(base_url=thread_server, transport=transport)

    async def create() -> aiohttp.ClientSession:
        await client.create_session(SENDING)
        assert transport._session is not None
        return transport._session

    first = asyncio.run(create())
    assert first.closed  # closed by asyncio.run's shutdown of async generators
    second = asyncio.run(create())
    assert second is not first and second.closed
    asyncio.run(client.aclose())
    asyncio.run(transport.aclose())


def test_a_loop_that_is_still_open_gets_its_session_closed_when_it_runs(
    thread_server: str,
) -> None:
    transport = AiohttpTransport()
    client = AsyncSession(base_url=thread_server, transport=transport)
    old_loop = asyncio.new_event_loop()
    try:
        old_loop.run_until_complete(client.create_session(SENDING))
        old_session = transport._session
        assert old_session is not None and not old_session.closed
        asyncio.run(client.create_session(SENDING))  # another loop, while the first is open
        gc.collect()
        assert transport._session is not old_session
        old_loop.run_until_complete(asyncio.sleep(0.05))
        assert old_session.closed
    finally:
        old_loop.run_until_complete(old_loop.shutdown_asyncgens())
        old_loop.close()
    asyncio.run(transport.aclose())


def test_a_callers_session_from_another_loop_is_refused_clearly(thread_server: str) -> None:
    async def make_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    theirs = asyncio.run(make_session())  # its loop has ended; the session is still open

    async def use() -> None:
        async with AsyncSession(
            base_url=thread_server, transport=AiohttpTransport(theirs)
        ) as client:
            await client.create_session(SENDING)

    try:
        with pytest.raises(InstaxError, match="belongs to another event loop") as info:
            asyncio.run(use())
        assert "Create the session inside the loop that uses it" in str(info.value)
        assert type(info.value) is InstaxError  # not a connection error: never retried
    finally:
        theirs.detach()  # nothing was opened; nothing to close in a loop that is gone


async def test_a_callers_closed_session_is_refused_clearly(thread_server: str) -> None:
    theirs = aiohttp.ClientSession()
    await theirs.close()
    async with AsyncSession(base_url=thread_server, transport=AiohttpTransport(theirs)) as client:
        with pytest.raises(InstaxError, match="passed to it is closed"):
            await client.create_session(SENDING)


def test_an_httpx_client_is_refused_in_another_loop_unless_closed_first(
    thread_server: str,
) -> None:
    transport = HttpxTransport()
    client = AsyncSession(base_url=thread_server, transport=transport)
    asyncio.run(client.create_session(SENDING))
    with pytest.raises(InstaxError, match="first used in another event loop"):
        asyncio.run(client.create_session(SENDING))
    asyncio.run(transport.aclose())  # from another loop: let go, not closed there

    async def use_then_close() -> str:
        session_id = (await client.create_session(SENDING)).id
        await transport.aclose()
        return session_id

    assert asyncio.run(use_then_close()) == "ps_1"
    assert asyncio.run(use_then_close()) == "ps_1"


async def test_a_callers_closed_httpx_client_is_refused_clearly(thread_server: str) -> None:
    import httpx

    theirs = httpx.AsyncClient()
    await theirs.aclose()
    transport = HttpxTransport(theirs)
    async with AsyncSession(base_url=thread_server, transport=transport) as client:
        with pytest.raises(InstaxError, match="passed to it is closed"):
            await client.create_session(SENDING)
    await transport.aclose()  # a caller's client: nothing to do


def test_max_concurrency_follows_the_running_loop() -> None:
    async def handler(request: Request) -> Response:
        await asyncio.sleep(0.01)
        return Response(200, {}, b'{"id": "ps_1"}')

    client = AsyncSession(
        base_url="http://api.test", transport=MockTransport(handler), max_concurrency=1
    )

    async def burst() -> int:
        sessions = await asyncio.gather(*(client.create_session(SENDING) for _ in range(3)))
        return len(sessions)

    assert asyncio.run(burst()) == 3
    assert asyncio.run(burst()) == 3  # the first loop's semaphore would raise RuntimeError


async def test_closing_an_already_closed_session_is_harmless(thread_server: str) -> None:
    transport = AiohttpTransport()
    async with AsyncSession(base_url=thread_server, transport=transport) as client:
        await client.create_session(SENDING)
    session = transport._session
    assert session is not None and not session.closed  # a passed transport stays open
    await session.close()
    await transport.aclose()
    await transport.aclose()
    assert transport._session is None
