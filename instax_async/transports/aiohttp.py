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

**One loop at a time.** Successive loops are fine; two at once are not: starting a new session
for a loop in another thread would close the connections the first loop's requests are using
(``asyncio.run`` per request in a threaded web server). A request from another loop while the
session's loop still runs raises :class:`~instax_async.InstaxError` before anything is sent,
pointing to :class:`~instax_async.Client`, the client for threads.

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
import base64
import contextlib
import ipaddress
import math
import ssl as ssl_module
import threading
import zlib
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from .._validate import check_count
from ..errors import APIConnectionError, APITimeoutError, InstaxError
from .base import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_RESPONSE_BYTES,
    BodyCollector,
    Inflater,
    Request,
    Response,
    check_max_response_bytes,
    is_secret_header,
    scrub_exception,
    secret_values,
    unsendable_request_error,
)

__all__ = ["AiohttpTransport"]


#: The most origins whose proxy and ``.netrc`` settings a transport remembers. A client talks
#: to one origin; past the bound the origin seen first is forgotten (and read again if used).
MAX_ROUTES = 64

#: The keywords for a request that needs no proxy and no credentials (never changed).
_NO_ROUTE: dict[str, Any] = {}


def _environment_routes() -> bool:
    """True if the environment names a proxy or a ``.netrc`` file: routes to look up."""
    from aiohttp.helpers import netrc_from_env, proxies_from_env

    return bool(proxies_from_env()) or netrc_from_env() is not None


async def _close_when_loop_ends(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Wait at ``yield`` for the life of the loop; then close ``session`` (see module doc)."""
    loop = asyncio.get_running_loop()
    try:
        yield
    finally:
        if not loop.is_closed() and not session.closed:
            await session.close()


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def _route_from_env(origin: str) -> dict[str, Any]:
    """``proxy``, ``proxy_headers`` and ``Authorization`` for requests to ``origin``.

    From ``HTTP(S)_PROXY`` / ``NO_PROXY`` (with credentials in the proxy URL or ``.netrc``) and
    ``.netrc`` for the origin's host, as aiohttp's ``trust_env`` reads them; nothing for
    loopback.
    """
    from aiohttp.helpers import get_env_proxy_for_url, netrc_from_env
    from yarl import URL

    url = URL(origin)
    host = url.host or ""
    if _is_loopback(host):
        return {}
    route: dict[str, Any] = {}
    headers: dict[str, str] = {}
    with contextlib.suppress(LookupError):
        proxy, proxy_auth = get_env_proxy_for_url(url)
        route["proxy"] = proxy
        if proxy_auth is not None:
            credentials = _basic(proxy_auth.login, proxy_auth.password)
            if url.scheme == "https":  # sent with the CONNECT request to the proxy
                route["proxy_headers"] = {"Proxy-Authorization": credentials}
            else:  # a plain-HTTP request goes to the proxy itself
                headers["Proxy-Authorization"] = credentials
    netrc = netrc_from_env()
    entry = netrc.authenticators(host) if netrc is not None else None
    if entry is not None:
        login, account, password = entry
        headers["Authorization"] = _basic(login or account or "", password or "")
    if headers:
        route["headers"] = headers
    return route


class AiohttpTransport:
    """Send requests with aiohttp.

    :param session: an ``aiohttp.ClientSession`` of your own (its connector, cookies and
        tracing stay yours); it is never closed by this transport, and must be used in the
        event loop it was created in.
    :param limit: the connection pool size of the session this transport creates.
    :param ssl: an ``ssl.SSLContext``, ``False`` to skip certificate checks (loopback tests
        only), or ``None`` for aiohttp's default verification.
    :param proxy: an HTTP proxy URL for every request (used as given, even for loopback).
    :param trust_env: honour ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` and ``.netrc``
        from the environment (the default, as in httpx and openai-python). They are read when
        the transport opens its session (on the first request in an event loop), and then
        once per origin, on its first request. Loopback addresses (``localhost``,
        ``127.0.0.0/8``, ``::1``: the sandbox, tests) are never proxied.
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
        trust_env: bool = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        check_count("limit", limit, expected="a non-negative int (0 = no limit)")
        self._max_response_bytes = check_max_response_bytes(max_response_bytes)
        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        # makes "is the session's loop still running? else start afresh" one step for threads
        self._switching = threading.Lock()
        self._guard: AsyncGenerator[None, None] | None = None
        self._limit = limit
        self._ssl: ssl_module.SSLContext | bool = True if ssl is None else ssl
        self._proxy = proxy
        self._trust_env = trust_env
        # The last attempt's ClientTimeout, reused while attempts ask for the same seconds (all
        # but polls, whose attempts may take only the time left). Building one costs about
        # 7,500 instructions, 1.3 % of a request (cachegrind, aiohttp 3.14); one entry, so
        # attempts with ever-new timeouts leave nothing behind. NaN equals no timeout: the
        # placeholder is never used.
        self._last_seconds = math.nan
        self._last_timeout = aiohttp.ClientTimeout()
        # Proxy and netrc credentials per origin ("https://host:port"), read on first use:
        # reading them costs about 1.4 M instructions (2.5 requests). None while the
        # environment names no proxy and no .netrc (or trust_env is off): nothing to look up.
        self._routes: dict[str, dict[str, Any]] | None = None

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
        # First use, or the session of a loop that has ended (its guard closed it) or that
        # cannot run now (``send`` uses a session of the running loop without coming here):
        # start afresh in this loop. Dropping the old guard is enough: if its loop is still
        # open, asyncio's finalizer for async generators closes the old session there, the
        # next time that loop runs. A loop that is running now, in another thread, is using
        # the session: replacing it would close that loop's connections under its requests.
        with self._switching:
            owner = self._loop
            if owner is not None and owner is not loop and owner.is_running():
                raise InstaxError(_TWO_LOOPS)
            connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl)
            # trust_env is handled here, once per session and origin (see _route): aiohttp's
            # own would look the environment up in a thread on every request, and would proxy
            # loopback
            self._routes = {} if self._trust_env and _environment_routes() else None
            # Accept-Encoding as a session default: aiohttp merges default headers into every
            # request anyway (a request's own Accept-Encoding replaces it), so no request pays
            # for a merge of its own
            session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                auto_decompress=False,
                headers={"Accept-Encoding": ACCEPT_ENCODING},
            )
            guard = _close_when_loop_ends(session)
            self._session, self._loop, self._guard = session, loop, guard
        await guard.__anext__()  # runs to its ``yield`` at once: registered with this loop
        return session

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        # ceil_threshold: aiohttp would round a deadline of 5 s or more up to a whole second
        timeout = aiohttp.ClientTimeout(total=seconds, ceil_threshold=math.inf)
        self._last_seconds, self._last_timeout = seconds, timeout
        return timeout

    async def send(self, request: Request) -> Response:
        """Send one request; aiohttp's errors come back as ``APIConnectionError``.

        A body over ``max_response_bytes`` raises ``ResponseTooLargeError``; a transport's
        session used outside its event loop raises ``InstaxError``.
        """
        session = self._session
        if (
            session is None
            or not self._owns_session
            or self._loop is not asyncio.get_running_loop()
            or session.closed
        ):
            session = await self._client()
        error: InstaxError
        answered = False  # the response's head arrived: the request was built and sent
        try:  # one frame for the whole exchange: it runs on every request
            headers = request.headers
            url = request.url
            if self._owns_session:
                inflating = True  # this transport's session never decompresses (see _client)
                if self._proxy is not None:
                    kwargs: dict[str, Any] = {"proxy": self._proxy}
                elif self._routes is None:  # the environment names no proxy, no .netrc
                    kwargs = _NO_ROUTE
                else:
                    kwargs = self._route(url)
                    if "headers" in kwargs:  # credentials for the proxy or from .netrc
                        kwargs = dict(kwargs)
                        headers = {**headers, **kwargs.pop("headers")}
            else:
                # a caller's session applies its own trust_env; if it does not decompress, it
                # gets the Accept-Encoding header per request (this transport's own session
                # asks for gzip and deflate by default, see _client)
                kwargs = {"proxy": self._proxy} if self._proxy is not None else {}
                inflating = not session.auto_decompress
                if inflating and not any(name.lower() == "accept-encoding" for name in headers):
                    headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
            seconds = request.timeout
            async with session.request(
                request.method,
                url,
                headers=headers,
                data=request.content or None,
                timeout=(
                    self._last_timeout if seconds == self._last_seconds else self._timeout(seconds)
                ),
                allow_redirects=False,
                **kwargs,
            ) as response:
                answered = True
                encoding = response.headers.get("Content-Encoding", "")
                if encoding:
                    encoding = encoding.strip().lower()
                inflater = Inflater.for_encoding(encoding) if inflating and encoding else None
                try:
                    plain = inflater is None and encoding in ("", "identity")
                    length = response.content_length if plain else None
                    if length is not None and length <= self._max_response_bytes:
                        # the declared length, within the limit, bounds what aiohttp reads: one
                        # read, no chunk loop; none at all when the whole body came with the
                        # headers (the usual case for an API's answer)
                        stream = response.content
                        content = stream.read_nowait() if stream.is_eof() else await stream.read()
                        return Response(
                            status=response.status, headers=response.headers, content=content
                        )
                    body = BodyCollector(
                        request, response.status, response.headers, self._max_response_bytes
                    )
                    if inflater is None:
                        if plain:
                            body.check_length(length)
                        async for chunk in response.content.iter_any():
                            body.add(chunk)
                    else:
                        async for chunk in response.content.iter_any():
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
        except aiohttp.ClientConnectorError as exc:
            error = APIConnectionError(
                f"could not connect to {exc.host}:{exc.port}: {exc.os_error}",
                connect_failed=True,
            )
            cause = self._scrub(exc, request)
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            error = APITimeoutError(
                f"{request.method} {request.url} timed out after {request.timeout:g} s"
            )
            cause = self._scrub(exc, request)
        except (ValueError, TypeError) as exc:
            cause = self._scrub(exc, request)
            if answered:
                # raised inside aiohttp while the answer was read: says nothing of the request
                error = APIConnectionError(
                    f"{request.method} {request.url} failed: {type(cause).__name__}: {cause}"
                )
            else:
                # raised while aiohttp puts the request together (a header value it refuses, a
                # URL it cannot parse: InvalidURL is a ValueError too), before it is sent
                error = unsendable_request_error(request, cause)
        except aiohttp.ClientError as exc:
            cause = self._scrub(exc, request)
            error = APIConnectionError(
                f"{request.method} {request.url} failed: {type(cause).__name__}: {cause}"
            )
        except zlib.error as exc:
            cause = self._scrub(exc, request)
            error = APIConnectionError(
                f"{request.method} {request.url} failed: the response body does not "
                f"decompress ({cause})"
            )
        # raised here, after the except blocks: inside one, the original exception, with the
        # request headers, would become the new error's __context__
        raise error from cause

    def _route(self, url: str) -> dict[str, Any]:
        """The ``proxy`` / ``proxy_headers`` / ``headers`` keywords for a URL's origin."""
        routes = self._routes
        if routes is None:
            return _NO_ROUTE
        end = url.find("/", url.find("//") + 2)
        origin = url if end < 0 else url[:end]
        route = routes.get(origin)
        if route is None:
            if len(routes) >= MAX_ROUTES:  # forget the origin seen first
                del routes[next(iter(routes))]
            route = routes[origin] = _route_from_env(origin)
        return route

    def _scrub(self, exc: BaseException, request: Request) -> BaseException:
        secrets = secret_values(request.headers)
        if self._owns_session and self._proxy is None:  # credentials this transport added
            secrets += tuple(self._route(request.url).get("headers", {}).values())
        return scrub_exception(exc, secrets, _redact)

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


_TWO_LOOPS = (
    "AiohttpTransport: used from two event loops at once. Its connections belong to an event "
    "loop that is still running in another thread, and a request from this loop would close "
    "them under that loop's requests; nothing was sent. An AsyncSession (and its transport) "
    "serves one event loop at a time: successive asyncio.run calls are fine, concurrent ones "
    "from several threads (asyncio.run per request in Flask or Django) are not. From threads, "
    "use instax_async.Client, the thread-safe client; or give each thread an AsyncSession of "
    "its own."
)


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


def _redact(exc: BaseException) -> None:
    """Replace the request headers aiohttp attached to ``exc`` with their redacted copy."""
    if isinstance(exc, aiohttp.ClientResponseError):
        info = exc.request_info
        headers = CIMultiDictProxy(
            CIMultiDict(
                (name, "<redacted>" if is_secret_header(name) else value)
                for name, value in info.headers.items()
            )
        )
        safe = aiohttp.RequestInfo(info.url, info.method, headers, info.real_url)
        exc.request_info = safe
        exc.history = ()
        exc.args = (safe, ())
