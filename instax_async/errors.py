"""The exception tree of instax_async.

Every error the SDK raises is an :class:`InstaxError`. Transport, JSON and timeout exceptions
from the libraries underneath are always wrapped (the original is kept as ``__cause__``);
``asyncio.CancelledError`` is never caught.

::

    InstaxError
    ├── ValidationError (also ValueError)       bad input, caught before any request
    ├── WebhookVerificationError                a webhook that must not be trusted
    ├── MissingExtraError (also ModuleNotFoundError)  an optional extra is not installed
    ├── PollTimeoutError (also TimeoutError)    a poll's deadline passed
    ├── UnreadableEntryError (dedupe)           an unreadable dedupe entry
    ├── APIConnectionError                      the request did not complete
    │   └── APITimeoutError
    └── APIStatusError                          the API answered, but not with success
        ├── ResponseTooLargeError a body past the transport's max_response_bytes
        ├── BadRequestError       400, 422
        ├── AuthenticationError   401, 403
        ├── NotFoundError         404
        ├── RateLimitError        429
        └── ServerError           5xx
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "InstaxError",
    "MissingExtraError",
    "NotFoundError",
    "PollTimeoutError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ServerError",
    "ValidationError",
    "WebhookVerificationError",
]

_BODY_PREVIEW = 200
#: The most bytes of a refused body that :class:`ResponseTooLargeError` keeps.
RESPONSE_PREFIX_BYTES = 4096


class InstaxError(Exception):
    """Base class of every error raised by instax_async."""


class ValidationError(InstaxError, ValueError):
    """A value given to the SDK is not acceptable.

    ``field`` names the offending field (wire or Python name) when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class WebhookVerificationError(InstaxError):
    """A webhook's signature or body could not be verified; the event must not be trusted.

    ``reason`` says why (a ``instax_async.webhooks.VerificationFailure``); receivers map it to
    the HTTP status they answer with.
    """

    def __init__(self, message: str, *, reason: Any = None) -> None:
        super().__init__(message)
        self.reason = reason


class MissingExtraError(InstaxError, ModuleNotFoundError):
    """A module needs an optional dependency that is not installed; the message says how.

    Also a ``ModuleNotFoundError``, so ``try: import … except ImportError`` keeps working.
    ``extra`` is the extra that brings the dependency (``"redis"`` for
    ``pip install 'instax-async[redis]'``); ``name`` is the missing module.
    """

    def __init__(self, message: str, *, extra: str, name: str | None = None) -> None:
        super().__init__(message)
        self.extra = extra
        self.name = name


class PollTimeoutError(InstaxError, TimeoutError):
    """A poll did not reach its goal before its deadline.

    ``last_status`` is the last status the poll saw (``None`` if no answer arrived).
    """

    def __init__(self, message: str, *, last_status: Any = None) -> None:
        super().__init__(message)
        self.last_status = last_status


class APIConnectionError(InstaxError):
    """The request did not complete: DNS, connect, TLS, or a broken connection.

    ``connect_failed`` is true when no connection could be opened, so the request cannot have
    reached the server (which makes even a non-idempotent request safe to retry).
    """

    def __init__(self, message: str, *, connect_failed: bool = False) -> None:
        super().__init__(message)
        self.connect_failed = connect_failed


class APITimeoutError(APIConnectionError):
    """The request did not complete within the configured timeout."""


#: Response headers that carry the server's id for a request, most specific first.
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "cf-ray")


def request_id_from(headers: Mapping[str, str]) -> str | None:
    """The server's id for a request (``x-request-id``, ``request-id`` or ``cf-ray``), if any."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value is None and not hasattr(headers, "getall"):  # a plain dict: any case
            value = next((v for k, v in headers.items() if k.lower() == name), None)
        if value:
            return value
    return None


class APIStatusError(InstaxError):
    """The API answered with a status that is not success, or with an unusable body.

    ``status`` is the HTTP status, ``body`` the raw response body (bytes), ``headers`` the
    response headers, and ``request_id`` the server's id for the request (from
    ``x-request-id``, ``request-id`` or ``cf-ray``), or ``None``: quote it to the provider's
    support.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.headers: Mapping[str, str] = dict(headers or {})
        self.request_id: str | None = request_id_from(headers) if headers else None

    def __str__(self) -> str:
        text = super().__str__()
        details = f"HTTP {self.status}"
        if self.request_id:
            details += f"; request id {self.request_id}"
        if self.body:
            preview = self.body[:_BODY_PREVIEW].decode("utf-8", "replace")
            more = "…" if len(self.body) > _BODY_PREVIEW else ""
            details += f"; body: {preview}{more}"
        return f"{text} ({details})"


class ResponseTooLargeError(APIStatusError):
    """The response body is larger than the transport's ``max_response_bytes``; it was not read.

    The transport stopped reading at the limit (counted after decompression) or refused at once
    when ``Content-Length`` said the body would not fit, and closed the connection. ``status``
    and ``headers`` are the response's; ``body`` keeps only the first bytes read, at most 4 KiB
    and never more than the limit, and is empty when the transport refused on
    ``Content-Length`` alone. ``max_response_bytes`` is the limit that was exceeded.

    Never retried, whatever the status: a server that sent too much once will do it again.
    Raise the limit (``AiohttpTransport(max_response_bytes=...)``) if the body was legitimate.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        max_response_bytes: int | None = None,
    ) -> None:
        prefix = body[:RESPONSE_PREFIX_BYTES]
        super().__init__(message, status=status, body=prefix, headers=headers)
        self.max_response_bytes = max_response_bytes


class BadRequestError(APIStatusError):
    """400 or 422: the API rejected the request's content."""


class AuthenticationError(APIStatusError):
    """401 or 403: the api key is missing, wrong, or lacks permission."""


class NotFoundError(APIStatusError):
    """404: no such session or transaction."""


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body, headers=headers)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the API failed to handle the request."""


def status_error_class(status: int) -> type[APIStatusError]:
    """The most specific :class:`APIStatusError` subclass for an HTTP status."""
    if status in (400, 422):
        return BadRequestError
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return NotFoundError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    return APIStatusError
