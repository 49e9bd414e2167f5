"""A transport that calls a function instead of the network: for tests."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from .base import Request, Response

__all__ = ["MockTransport", "Handler"]

Handler = Callable[[Request], "Response | Awaitable[Response]"]


class MockTransport:
    """Answer every request with ``handler(request)``; the handler may be sync or async.

    Exceptions raised by the handler propagate as a real transport's would (raise
    :class:`~instax_async.APIConnectionError` to simulate a network failure).

    :param handler: called with each :class:`Request`; returns a :class:`Response`, or an
        awaitable of one.

    >>> import json
    >>> def handler(request: Request) -> Response:
    ...     body = json.dumps({"id": "ps_1"}).encode()
    ...     return Response(status=200, headers={}, content=body)
    >>> transport = MockTransport(handler)
    """

    def __init__(self, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError(f"MockTransport needs a callable handler, got {handler!r}")
        self._handler = handler

    def __repr__(self) -> str:
        return f"<MockTransport handler={getattr(self._handler, '__name__', self._handler)!r}>"

    async def send(self, request: Request) -> Response:
        """Return the handler's response, awaiting it if the handler is async."""
        result = self._handler(request)
        if inspect.isawaitable(result):
            return await result
        return result

    async def aclose(self) -> None:
        """Nothing to release."""
