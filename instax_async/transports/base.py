"""The transport contract: one request in, one response out.

A transport moves bytes; it knows nothing of InstaXchange. The client builds a :class:`Request`,
a transport sends it and returns a :class:`Response`, and the client interprets the status and
body. Any object with the two methods of :class:`Transport` can be passed as ``transport=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["Request", "Response", "Transport"]


@attrs.frozen(slots=True)
class Request:
    """An HTTP request as the client hands it to a transport.

    ``timeout`` is the number of seconds this one attempt may take, connection included.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    content: bytes
    timeout: float


@attrs.frozen(slots=True)
class Response:
    """An HTTP response as a transport hands it back: status, headers and the whole body.

    ``headers`` should look names up case-insensitively (aiohttp's and httpx's header mappings
    do); a plain ``dict`` works when its keys are lower case.
    """

    status: int
    headers: Mapping[str, str]
    content: bytes


@runtime_checkable
class Transport(Protocol):
    """What ``AsyncSession(transport=...)`` needs: two async methods.

    ``send`` performs one attempt (the client does the retrying) and should raise
    :class:`~instax_async.APIConnectionError` / :class:`~instax_async.APITimeoutError` when the
    request does not complete; any other exception it raises is wrapped by the client as an
    ``APIConnectionError``. Set ``connect_failed=True`` on the error when nothing was sent,
    which lets the client retry a non-idempotent ``POST`` safely.
    """

    async def send(self, request: Request) -> Response:
        """Send one request and return its response."""
        ...

    async def aclose(self) -> None:
        """Release the transport's resources (connections, sessions)."""
        ...
