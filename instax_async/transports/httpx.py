"""A transport on httpx (optional extra ``instax-async[httpx]``).

It exists so that teams already on httpx need no second HTTP stack, and it shows that the
transport contract is not shaped after aiohttp.

httpx's ``timeout`` bounds each phase (connect, every read) rather than the attempt, so the
transport puts one deadline of its own around the whole exchange: headers, body and
decompression. That deadline is an anyio cancel scope, as httpx's own are: on Python 3.10 anyio
cannot tell an asyncio cancellation from its own, and may swallow one (the attempt then ran
past its deadline, or failed inside anyio with an unrelated error). The body is streamed,
taken as it came off the wire and inflated here in bounded steps, and counted against
``max_response_bytes``; a refused body closes its connection (httpx does not return a
half-read connection to its pool). httpx's exceptions are re-raised from scrubbed copies, as
in the aiohttp transport.

Only what fails while the request is put together, before anything is sent (a header value
httpx or h11 refuses), is a :class:`~instax_async.ValidationError`; anything else raised
during the exchange, whatever its type, is an :class:`~instax_async.APIConnectionError`.

An ``httpx.AsyncClient`` keeps connections that belong to the event loop that opened them, so
the transport refuses, with a clear :class:`~instax_async.InstaxError` (before anything is
sent), to use a client in another loop than the one it first used it in, such as another
thread's: from threads, :class:`~instax_async.Client` is the client to use.
"""

from __future__ import annotations

import asyncio
import threading
import zlib

from .._extras import extra_required

with extra_required("httpx"):
    import anyio
    import httpx

from ..errors import APIConnectionError, APITimeoutError, InstaxError
from .base import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_RESPONSE_BYTES,
    BodyCollector,
    Inflater,
    Request,
    Response,
    check_max_response_bytes,
    redacted_headers,
    scrub_exception,
    secret_values,
    unsendable_request_error,
)

__all__ = ["HttpxTransport"]


class HttpxTransport:
    """Send requests with ``httpx.AsyncClient``.

    :param client: an ``httpx.AsyncClient`` of your own; it is never closed by this transport.
        Without one, a client is created on the first request and closed by :meth:`aclose`.
        Either way the client is used in one event loop only: close the transport before that
        loop ends (``await transport.aclose()``) if the next loop is to use it again.
    :param max_response_bytes: the most bytes of a response body the transport reads, counted
        after decompression (16 MiB by default). A larger body raises
        :class:`~instax_async.ResponseTooLargeError` and its connection is closed.
    """

    #: The transport bounds the whole attempt by ``Request.timeout`` itself.
    enforces_timeout = True

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._max_response_bytes = check_max_response_bytes(max_response_bytes)
        self._client = client
        self._owns_client = client is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._first_use = threading.Lock()

    def __repr__(self) -> str:
        mode = "owned" if self._owns_client else "shared"
        return f"<HttpxTransport client={mode} max_response_bytes={self._max_response_bytes}>"

    @property
    def max_response_bytes(self) -> int:
        """The most bytes of a response body this transport reads."""
        return self._max_response_bytes

    def _client_for_loop(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._client
        if client is None or self._loop is None:
            with self._first_use:  # two threads' first requests: one loop wins, once
                if self._client is None:
                    self._client = httpx.AsyncClient()
                if self._loop is None:  # pragma: no branch - else another thread's came first
                    self._loop = loop
                client = self._client
        if self._loop is not loop:
            raise InstaxError(
                "HttpxTransport: its httpx.AsyncClient was first used in another event loop "
                "(an earlier asyncio.run, or another thread's?), and an httpx client's "
                "connections cannot move between loops; nothing was sent. Close the transport "
                "(await transport.aclose()) before its loop ends, or make a transport (and "
                "AsyncSession) per event loop. From threads, use instax_async.Client, the "
                "thread-safe client."
            )
        if client.is_closed:
            raise InstaxError(
                "HttpxTransport: the httpx.AsyncClient passed to it is closed; pass an open "
                "client, or none to let the transport manage its own"
            )
        return client

    async def send(self, request: Request) -> Response:
        """Send one request; httpx's errors come back as ``APIConnectionError``.

        A body over ``max_response_bytes`` raises ``ResponseTooLargeError``; a client used
        outside its event loop raises ``InstaxError``; a request httpx cannot put together
        raises ``ValidationError``.
        """
        client = self._client_for_loop()
        error: InstaxError
        try:
            built = _build(client, request)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            # a header value httpx refuses (not str, not ASCII): nothing was sent
            cause = _scrub(exc, request)
            error = unsendable_request_error(request, cause)
        else:
            try:
                with anyio.fail_after(request.timeout):
                    return await self._exchange(client, built, request)
            except httpx.ConnectError as exc:
                cause = _scrub(exc, request)
                error = APIConnectionError(
                    f"could not connect for {request.method} {request.url}: {cause}",
                    connect_failed=True,
                )
            except (httpx.TimeoutException, asyncio.TimeoutError, TimeoutError) as exc:
                cause = _scrub(exc, request)
                error = APITimeoutError(
                    f"{request.method} {request.url} timed out after {request.timeout:g} s"
                )
            except (httpx.LocalProtocolError, httpx.InvalidURL) as exc:
                # h11 refused to write the request (a header value with a character HTTP does
                # not allow), before anything was sent
                cause = _scrub(exc, request)
                error = unsendable_request_error(request, cause)
            except httpx.HTTPError as exc:
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
            except (ValueError, TypeError) as exc:
                # raised inside httpx, httpcore or anyio while the exchange was under way:
                # the request was built, so this says nothing about it
                cause = _scrub(exc, request)
                error = APIConnectionError(
                    f"{request.method} {request.url} failed: {type(cause).__name__}: {cause}"
                )
        # raised here, after the except blocks: inside one, the original exception, with the
        # request headers, would become the new error's __context__
        raise error from cause

    async def _exchange(
        self, client: httpx.AsyncClient, built: httpx.Request, request: Request
    ) -> Response:
        response = await client.send(built, stream=True, follow_redirects=False)
        try:
            body = BodyCollector(
                request, response.status_code, response.headers, self._max_response_bytes
            )
            encoding = response.headers.get("Content-Encoding", "").strip().lower()
            inflater = Inflater.for_encoding(encoding)
            if encoding in ("", "identity"):
                body.check_length(_content_length(response.headers))
            async for chunk in response.aiter_raw():
                if inflater is None:
                    body.add(chunk)
                else:
                    for piece in inflater.feed(chunk):
                        body.add(piece)
            return Response(
                status=response.status_code, headers=response.headers, content=body.content()
            )
        finally:
            # closed, read or not: an unread response's connection is discarded
            await response.aclose()

    async def aclose(self) -> None:
        """Close the client this transport created; a caller's client is left open.

        Call it in the event loop that used the transport: a client of another loop cannot be
        closed from this one and is only let go.
        """
        if self._owns_client and self._client is not None:
            client, loop = self._client, self._loop
            self._client = self._loop = None
            if loop is asyncio.get_running_loop():
                await client.aclose()


def _build(client: httpx.AsyncClient, request: Request) -> httpx.Request:
    """The httpx request for ``request``, asking for gzip and deflate unless it says otherwise;
    raises what httpx raises for a request it cannot put together."""
    headers = dict(request.headers)
    if not any(name.lower() == "accept-encoding" for name in headers):
        headers["Accept-Encoding"] = ACCEPT_ENCODING
    return client.build_request(
        request.method,
        request.url,
        headers=headers,
        content=request.content or None,
        timeout=request.timeout,
    )


def _content_length(headers: httpx.Headers) -> int | None:
    value = headers.get("Content-Length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _scrub(exc: BaseException, request: Request) -> BaseException:
    return scrub_exception(exc, secret_values(request.headers), _redact)


def _redact(exc: BaseException) -> None:
    """Give ``exc`` a copy of its request with the secret headers redacted."""
    if isinstance(exc, httpx.RequestError):
        try:
            original = exc.request
        except RuntimeError:  # no request attached
            return
        exc.request = httpx.Request(
            original.method, original.url, headers=redacted_headers(original.headers)
        )
