"""The default transport, on aiohttp.

**One event loop per session.** An ``aiohttp.ClientSession`` belongs to the event loop it was
made in. The transport makes its own lazily, on the first request, inside the running loop, so
an :class:`~instax_async.AsyncSession` can be built at import time or before the loop starts.
Beside it, the transport starts a tiny async generator that does nothing but wait: asyncio
closes every async generator when a loop shuts down (``asyncio.run`` and ``asyncio.Runner`` do
this as they end), and this one's ``finally`` then closes the session, while its loop still
runs. So a client kept across two ``asyncio.run`` calls leaves nothing unclosed behind, and its
next request, in the new loop, starts a new session. A session passed in by the caller is used
as it is and never closed; used from another loop than its own, it raises
:class:`~instax_async.InstaxError` saying so, instead of failing deep inside aiohttp.

**Bounded bodies.** The body is read as it arrives and counted by a
:class:`~instax_async.transports.base.BodyCollector`; past ``max_response_bytes`` the
connection is closed, not drained. The transport's own session does not let aiohttp
decompress: it asks for ``gzip, deflate`` and inflates the body itself in bounded steps
(:class:`~instax_async.transports.base.Inflater`), whatever the aiohttp version.

**No secret in errors.** aiohttp's exceptions carry the request's headers; they are re-raised
as the SDK's errors from a scrubbed copy (:func:`~instax_async.transports.base.scrub_exception`).
"""

from __future__ import annotations

import asyncio
import math
import ssl as ssl_module
import zlib
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from ..errors import APIConnectionError, APITimeoutError, InstaxError, ValidationError
from .base import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_RESPONSE_BYTES,
    SECRET_HEADERS,
    BodyCollector,
    Inflater,
    Request,
    Response,
    check_max_response_bytes,
    scrub_exception,
    secret_values,
)

__all__ = ["AiohttpTransport"]


async def _close_when_loop_ends(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Wait at ``yield`` for the life of the loop; then close ``session`` (see module doc)."""
    loop = asyncio.get_running_loop()
    try:
        yield
    finally:
        if not loop.is_closed() and not session.closed:
            await session.close()


class AiohttpTransport:
    """Send requests with aiohttp.

    :param session: an ``aiohttp.ClientSession`` of your own (its connector, cookies and
        tracing stay yours); it is never closed by this transport, and must be used in the
        event loop it was created in.
    :param limit: the connection pool size of the session this transport creates.
    :param ssl: an ``ssl.SSLContext``, ``False`` to skip certificate checks (loopback tests
        only), or ``None`` for aiohttp's default verification.
    :param proxy: an HTTP proxy URL for every request.
    :param trust_env: read proxy settings and ``.netrc`` from the environment.
    :param max_response_bytes: the most bytes of a response body the transport reads, counted
        after decompression (16 MiB by default). A larger body raises
        :class:`~instax_async.ResponseTooLargeError` and its connection is closed.

    >>> transport = AiohttpTransport(limit=200, max_response_bytes=1024 * 1024)
    >>> # AsyncSession(transport=transport)
    """

    #: ``ClientTimeout(total=...)`` bounds the whole attempt (connection, headers, body and
    #: decompression, which happens as the body is read), so the client adds no timer.
    enforces_timeout = True

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        limit: int = 100,
        ssl: ssl_module.SSLContext | bool | None = None,
        proxy: str | None = None,
        trust_env: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValidationError(
                f"limit: expected a non-negative int (0 = no limit), got {limit!r}",
                field="limit",
            )
        self._max_response_bytes = check_max_response_bytes(max_response_bytes)
        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncGenerator[None, None] | None = None
        self._limit = limit
        self._ssl: ssl_module.SSLContext | bool = True if ssl is None else ssl
        self._proxy = proxy
        self._trust_env = trust_env
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def __repr__(self) -> str:
        mode = "owned" if self._owns_session else "shared"
        return (
            f"<AiohttpTransport session={mode} limit={self._limit} "
            f"max_response_bytes={self._max_response_bytes}>"
        )

    @property
    def max_response_bytes(self) -> int:
        """The most bytes of a response body this transport reads."""
        return self._max_response_bytes

    async def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if not self._owns_session:
            assert session is not None
            _check_shared(session, loop)
            return session
        if session is not None and self._loop is loop and not session.closed:
            return session
        # First use, or the session of a loop that has ended (its guard closed it) or that
        # cannot run now: start afresh in this loop. Dropping the old guard is enough: if its
        # loop is still open, asyncio's finalizer for async generators closes the old session
        # there, the next time that loop runs.
        connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl)
        session = aiohttp.ClientSession(
            connector=connector, trust_env=self._trust_env, auto_decompress=False
        )
        guard = _close_when_loop_ends(session)
        self._session, self._loop, self._guard = session, loop, guard
        await guard.__anext__()  # runs to its ``yield`` at once: registered with this loop
        return session

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            # ceil_threshold: aiohttp would round a deadline of 5 s or more up to a whole second
            timeout = aiohttp.ClientTimeout(total=seconds, ceil_threshold=math.inf)
            self._timeouts[seconds] = timeout
        return timeout

    async def send(self, request: Request) -> Response:
        """Send one request; aiohttp's errors come back as ``APIConnectionError``.

        A body over ``max_response_bytes`` raises ``ResponseTooLargeError``; a transport's
        session used outside its event loop raises ``InstaxError``.
        """
        session = await self._client()
        error: InstaxError
        try:
            return await self._exchange(session, request)
        except aiohttp.ClientConnectorError as exc:
            error = APIConnectionError(
                f"could not connect to {exc.host}:{exc.port}: {exc.os_error}",
                connect_failed=True,
            )
            cause = _scrub(exc, request)
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            error = APITimeoutError(
                f"{request.method} {request.url} timed out after {request.timeout:g} s"
            )
            cause = _scrub(exc, request)
        except aiohttp.ClientError as exc:
            cause = _scrub(exc, request)
            error = APIConnectionError(
                f"{request.method} {request.url} failed: {type(cause).__name__}: {cause}"
            )
        except zlib.error as exc:
            cause = _scrub(exc, request)
            error = APIConnectionError(
                f"{request.method} {request.url} failed: the response body does not "
                f"decompress ({cause})"
            )
        # raised here, after the except blocks: inside one, the original exception, with the
        # request headers, would become the new error's __context__
        raise error from cause

    async def _exchange(self, session: aiohttp.ClientSession, request: Request) -> Response:
        kwargs: dict[str, Any] = {}
        if self._proxy is not None:
            kwargs["proxy"] = self._proxy
        headers = request.headers
        inflating = not session.auto_decompress
        if inflating and not any(name.lower() == "accept-encoding" for name in headers):
            headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
        async with session.request(
            request.method,
            request.url,
            headers=headers,
            data=request.content or None,
            timeout=self._timeout(request.timeout),
            allow_redirects=False,
            **kwargs,
        ) as response:
            body = BodyCollector(
                request, response.status, response.headers, self._max_response_bytes
            )
            encoding = response.headers.get("Content-Encoding", "").strip().lower()
            inflater = Inflater.for_encoding(encoding) if inflating else None
            try:
                if encoding in ("", "identity"):
                    body.check_length(response.content_length)
                async for chunk in response.content.iter_any():
                    if inflater is None:
                        body.add(chunk)
                    else:
                        for piece in inflater.feed(chunk):
                            body.add(piece)
            except BaseException:
                # not drained, not back to the pool: a refused, timed-out or broken body
                # leaves the connection unusable
                response.close()
                raise
            return Response(
                status=response.status, headers=response.headers, content=body.content()
            )

    async def aclose(self) -> None:
        """Close the session this transport created; a caller's session is left open."""
        if not self._owns_session:
            return
        guard, loop = self._guard, self._loop
        self._session = self._guard = self._loop = None
        if guard is not None and loop is asyncio.get_running_loop():
            await guard.aclose()  # its ``finally`` closes the session
        # else: another loop's session, closed as that loop ended, or the next time it runs
        # (the dropped guard's finalizer does it there)


def _check_shared(session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
    if session.closed:
        raise InstaxError(
            "AiohttpTransport: the aiohttp.ClientSession passed to it is closed; pass an open "
            "session, or none to let the transport manage its own"
        )
    # aiohttp offers no public, non-deprecated way to ask a session for its loop
    owner = getattr(session, "_loop", None)
    if owner is not None and owner is not loop:
        raise InstaxError(
            "AiohttpTransport: the aiohttp.ClientSession passed to it belongs to another event "
            "loop (an earlier asyncio.run?), and an aiohttp session works only in the loop it "
            "was created in. Create the session inside the loop that uses it (async with "
            "aiohttp.ClientSession() as session: ...) with a transport and AsyncSession for "
            "that loop, or pass no session and let the transport manage its own."
        )


def _scrub(exc: BaseException, request: Request) -> BaseException:
    return scrub_exception(exc, secret_values(request.headers), _redact)


def _redact(exc: BaseException) -> None:
    """Replace the request headers aiohttp attached to ``exc`` with their redacted copy."""
    if isinstance(exc, aiohttp.ClientResponseError):
        info = exc.request_info
        headers = CIMultiDictProxy(
            CIMultiDict(
                (name, "<redacted>" if name.lower() in SECRET_HEADERS else value)
                for name, value in info.headers.items()
            )
        )
        safe = aiohttp.RequestInfo(info.url, info.method, headers, info.real_url)
        exc.request_info = safe
        exc.history = ()
        exc.args = (safe, ())
