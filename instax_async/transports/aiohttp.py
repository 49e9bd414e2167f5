"""The default transport, on aiohttp.

The ``aiohttp.ClientSession`` is created lazily, on the first request, inside the running event
loop, so an :class:`~instax_async.AsyncSession` can be built at import time or before the loop
starts. A session passed in by the caller is used as it is and never closed by the transport.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any

import aiohttp

from ..errors import APIConnectionError, APITimeoutError, InstaxError
from .base import Request, Response

__all__ = ["AiohttpTransport"]


class AiohttpTransport:
    """Send requests with aiohttp.

    :param session: an ``aiohttp.ClientSession`` of your own (its connector, cookies and
        tracing stay yours); it is never closed by this transport.
    :param limit: the connection pool size of the session this transport creates.
    :param ssl: an ``ssl.SSLContext``, ``False`` to skip certificate checks (loopback tests
        only), or ``None`` for aiohttp's default verification.
    :param proxy: an HTTP proxy URL for every request.
    :param trust_env: read proxy settings and ``.netrc`` from the environment.

    >>> transport = AiohttpTransport(limit=200)
    >>> # AsyncSession(transport=transport)
    """

    #: aiohttp's ``ClientTimeout(total=...)`` bounds the whole attempt, so the client adds no
    #: timer of its own (aiohttp rounds a total of 5 s or more up to the next second).
    enforces_timeout = True

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        limit: int = 100,
        ssl: ssl_module.SSLContext | bool | None = None,
        proxy: str | None = None,
        trust_env: bool = False,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InstaxError(f"limit must be a non-negative int (0 = no limit), got {limit!r}")
        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limit = limit
        self._ssl: ssl_module.SSLContext | bool = True if ssl is None else ssl
        self._proxy = proxy
        self._trust_env = trust_env
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def __repr__(self) -> str:
        mode = "owned" if self._owns_session else "shared"
        return f"<AiohttpTransport session={mode} limit={self._limit}>"

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and (not self._owns_session or self._loop is loop):
            return session
        # First use, or an owned session left behind by an event loop that has ended
        # (e.g. a second ``asyncio.run``): start afresh in this loop.
        connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl)
        session = aiohttp.ClientSession(
            connector=connector, trust_env=self._trust_env, auto_decompress=True
        )
        self._session = session
        self._loop = loop
        return session

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def send(self, request: Request) -> Response:
        """Send one request; aiohttp's errors come back as ``APIConnectionError``."""
        session = self._client()
        kwargs: dict[str, Any] = {}
        if self._proxy is not None:
            kwargs["proxy"] = self._proxy
        try:
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.content or None,
                timeout=self._timeout(request.timeout),
                allow_redirects=False,
                **kwargs,
            ) as response:
                content = await response.read()
                return Response(status=response.status, headers=response.headers, content=content)
        except aiohttp.ClientConnectorError as exc:
            raise APIConnectionError(
                f"could not connect to {exc.host}:{exc.port}: {exc.os_error}",
                connect_failed=True,
            ) from exc
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise APITimeoutError(
                f"{request.method} {request.url} timed out after {request.timeout:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"{request.method} {request.url} failed: {type(exc).__name__}: {exc}"
            ) from exc

    async def aclose(self) -> None:
        """Close the session this transport created; a caller's session is left open."""
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
        elif session is not None:
            self._session = session
