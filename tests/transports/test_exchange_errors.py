"""Only a request that cannot be built is a ValidationError; whatever else fails is a connection
error.

A ``ValueError`` or ``TypeError`` raised while httpx or aiohttp puts the request together (a
header value they refuse) means nothing was sent and the same request would fail again: a
``ValidationError``, never retried. One raised once the exchange is under way comes from inside
the HTTP library (anyio on Python 3.10 raised ``ValueError: second argument (exceptions) must
be a non-empty sequence`` from a cancelled connection attempt): an ``APIConnectionError``, retried
like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from instax_async import (
    AiohttpTransport,
    APIConnectionError,
    AsyncSession,
    RetryPolicy,
    ValidationError,
)
from instax_async.transports.httpx import HttpxTransport
from tests.conftest import StartServer

KEY = "sk_live_not_in_any_error"
ANYIO_ON_310 = "second argument (exceptions) must be a non-empty sequence"
ONE_RETRY = RetryPolicy(max_retries=1, backoff_base=0.0, backoff_max=0.0)


class BrokenBody(httpx.AsyncByteStream):
    """A body whose reading fails inside the library, after its first bytes."""

    def __init__(self, raised: Exception) -> None:
        self.raised = raised

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"txId": '
        raise self.raised


def httpx_session(handler: Any, **kwargs: Any) -> tuple[AsyncSession, HttpxTransport]:
    """A client on httpx whose exchanges ``handler`` answers (httpx's ``MockTransport``)."""
    transport = HttpxTransport(httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    client = AsyncSession(
        KEY, base_url="http://api.test", transport=transport, retry=ONE_RETRY, **kwargs
    )
    return client, transport


@pytest.mark.parametrize("raised", [ValueError(ANYIO_ON_310), TypeError("bad operand")])
@pytest.mark.parametrize("where", ["before the answer", "while the body is read"])
async def test_an_error_inside_httpx_during_the_exchange_is_a_connection_error_retried(
    raised: Exception, where: str
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        assert request.headers["x-api-key"] == KEY  # built and handed over
        if where == "before the answer":
            raise raised
        return httpx.Response(200, stream=BrokenBody(raised))

    client, transport = httpx_session(handler)
    async with client:
        with pytest.raises(APIConnectionError) as info:
            await client.blockchain_status("wd_1")
    await transport.aclose()
    assert not isinstance(info.value, ValidationError)
    assert f"{type(raised).__name__}: {raised}" in str(info.value)
    assert calls == 2  # transient: retried
    assert KEY not in repr(info.value.__cause__)


async def test_a_header_httpx_cannot_encode_is_still_a_validation_error_never_sent() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json={"txId": "wd_1", "status": "pending"})

    def non_ascii(request: Any) -> None:
        request.headers["x-tenant"] = "t\u00e9nant"

    client, transport = httpx_session(handler, event_hooks={"request": [non_ascii]})
    async with client:
        with pytest.raises(ValidationError, match="could not be built, so nothing was sent"):
            await client.blockchain_status("wd_1")
    await transport.aclose()
    assert calls == 0


class BrokenLength(aiohttp.ClientResponse):
    """A response whose length fails to be read inside aiohttp, once its head arrived."""

    @property
    def content_length(self) -> int | None:
        raise ValueError(ANYIO_ON_310)


async def test_an_error_inside_aiohttp_once_the_answer_arrived_is_a_connection_error_retried(
    start_server: StartServer,
) -> None:
    calls = 0

    async def status(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response({"txId": "wd_1", "status": "pending"})

    app = web.Application()
    app.router.add_get("/utils/blockchain-status", status)
    base_url = await start_server(app)
    async with aiohttp.ClientSession(response_class=BrokenLength) as session:
        transport = AiohttpTransport(session)
        async with AsyncSession(KEY, base_url=base_url, transport=transport, retry=ONE_RETRY) as c:
            with pytest.raises(APIConnectionError) as info:
                await c.blockchain_status("wd_1")
    assert not isinstance(info.value, ValidationError)
    assert f"ValueError: {ANYIO_ON_310}" in str(info.value)
    assert calls == 2
