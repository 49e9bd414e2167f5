"""The ``instax_client`` fixture's client, closed in the event loop its connections belong to.

The client's default transport follows the running loop: the test's. pytest-asyncio may keep
that loop open after the test (a test marked ``loop_scope="module"``) and run the fixtures in
another one, where a connection of the test's loop cannot be closed; dropped instead, it would
close only as that loop next runs or ends, with a task still pending when the loop closes. So
the fixture is synchronous, and its teardown, where no loop runs, closes the client in the loop
it was used in while that loop is open (a loop that has ended closed it already).
"""

from __future__ import annotations

import asyncio

from ..client import AsyncSession
from ..transports.aiohttp import AiohttpTransport
from ..transports.base import Request, Response

__all__ = ["LoopTrackingTransport", "close_client"]


class LoopTrackingTransport:
    """The default transport, remembering the event loop it last sent a request from."""

    #: as the aiohttp transport it wraps: it bounds each attempt by the request's timeout
    enforces_timeout = True

    def __init__(self) -> None:
        self._transport = AiohttpTransport()
        #: the loop of the last request (the one its connections belong to), or None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def send(self, request: Request) -> Response:
        """Send ``request`` with the aiohttp transport, noting the running loop."""
        self.loop = asyncio.get_running_loop()
        return await self._transport.send(request)

    async def aclose(self) -> None:
        """Close the aiohttp transport (in the loop that used it, to close its connections)."""
        await self._transport.aclose()


def close_client(client: AsyncSession, transport: LoopTrackingTransport) -> None:
    """Close ``client`` and its ``transport`` from synchronous code (no loop running)."""

    async def close() -> None:
        await client.aclose()
        await transport.aclose()

    loop = transport.loop
    if loop is not None and not loop.is_closed() and not loop.is_running():
        loop.run_until_complete(close())
        return
    # Unused, or its loop ended (and closed its connections), or runs in a thread of its own
    # (and closes them as it ends): only the objects are left to close.
    spare = asyncio.new_event_loop()
    try:
        spare.run_until_complete(close())
    finally:
        spare.close()
