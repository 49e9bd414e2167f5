"""A transport on httpx (optional extra ``instax-async[httpx]``).

It exists so that teams already on httpx need no second HTTP stack, and it shows that the
transport contract is not shaped after aiohttp.
"""

from __future__ import annotations

from .._extras import extra_required

with extra_required("httpx"):
    import httpx

from ..errors import APIConnectionError, APITimeoutError
from .base import Request, Response

__all__ = ["HttpxTransport"]


class HttpxTransport:
    """Send requests with ``httpx.AsyncClient``.

    :param client: an ``httpx.AsyncClient`` of your own; it is never closed by this transport.
        Without one, a client is created on the first request and closed by :meth:`aclose`.
    """

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client
        self._owns_client = client is None

    def __repr__(self) -> str:
        return f"<HttpxTransport client={'owned' if self._owns_client else 'shared'}>"

    async def send(self, request: Request) -> Response:
        """Send one request; httpx's errors come back as ``APIConnectionError``."""
        client = self._client
        if client is None:
            client = self._client = httpx.AsyncClient()
        try:
            response = await client.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.content or None,
                timeout=request.timeout,
                follow_redirects=False,
            )
        except httpx.ConnectError as exc:
            raise APIConnectionError(
                f"could not connect for {request.method} {request.url}: {exc}",
                connect_failed=True,
            ) from exc
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"{request.method} {request.url} timed out after {request.timeout:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise APIConnectionError(
                f"{request.method} {request.url} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return Response(
            status=response.status_code, headers=response.headers, content=response.content
        )

    async def aclose(self) -> None:
        """Close the client this transport created; a caller's client is left open."""
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
