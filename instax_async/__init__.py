"""instax_async: the async-first Python SDK for the InstaXchange payment API.

>>> from instax_async import AsyncSession, Client, SessionRequest
>>> request = SessionRequest.sending(from_amount="50", from_currency="USD", to_currency="USDT")
"""

from __future__ import annotations

import importlib
from os import environ as _environ
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .client import AsyncSession
    from .dedupe import (
        ClaimResult,
        DedupeStore,
        InMemoryDedupeStore,
        SyncDedupeStore,
        UnreadableEntryError,
    )
    from .errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        InstaxError,
        MissingExtraError,
        NotFoundError,
        PollTimeoutError,
        RateLimitError,
        ResponseTooLargeError,
        ServerError,
        ValidationError,
        WebhookVerificationError,
    )
    from .models import (
        CHECKOUT_URL_KEYS,
        AmountMismatch,
        BlockchainStatus,
        InvoiceData,
        PaymentSession,
        SessionStatus,
        SessionStatusValue,
        TransactionStatus,
        WebhookData,
        WebhookEvent,
    )
    from .payloads import (
        NEWEST_API_REQUIRED,
        AmountDirection,
        PaymentMethod,
        SessionRequest,
        ToCurrency,
    )
    from .poller import BlockchainPoller
    from .retry import RetryPolicy
    from .sync_client import Client
    from .transports import AiohttpTransport, MockTransport, Request, Response, Transport

# Every public name is imported on first use (PEP 562), so ``import instax_async`` — which pytest
# does for the bundled plugin in every project that installs the SDK — costs almost nothing;
# ``from instax_async import AsyncSession`` (or ``Client``) loads the client (and aiohttp) as usual.
_LAZY: dict[str, str] = {
    "APIConnectionError": ".errors",
    "APIStatusError": ".errors",
    "APITimeoutError": ".errors",
    "AiohttpTransport": ".transports",
    "AmountDirection": ".payloads",
    "AmountMismatch": ".models",
    "AsyncSession": ".client",
    "AuthenticationError": ".errors",
    "BadRequestError": ".errors",
    "BlockchainPoller": ".poller",
    "BlockchainStatus": ".models",
    "CHECKOUT_URL_KEYS": ".models",
    "ClaimResult": ".dedupe",
    "Client": ".sync_client",
    "DedupeStore": ".dedupe",
    "InMemoryDedupeStore": ".dedupe",
    "SyncDedupeStore": ".dedupe",
    "UnreadableEntryError": ".dedupe",
    "InstaxError": ".errors",
    "InvoiceData": ".models",
    "MissingExtraError": ".errors",
    "MockTransport": ".transports",
    "NEWEST_API_REQUIRED": ".payloads",
    "NotFoundError": ".errors",
    "PaymentMethod": ".payloads",
    "PaymentSession": ".models",
    "PollTimeoutError": ".errors",
    "RateLimitError": ".errors",
    "Request": ".transports",
    "Response": ".transports",
    "ResponseTooLargeError": ".errors",
    "RetryPolicy": ".retry",
    "ServerError": ".errors",
    "SessionRequest": ".payloads",
    "SessionStatus": ".models",
    "SessionStatusValue": ".models",
    "ToCurrency": ".payloads",
    "TransactionStatus": ".models",
    "Transport": ".transports",
    "ValidationError": ".errors",
    "WebhookData": ".models",
    "WebhookEvent": ".models",
    "WebhookVerificationError": ".errors",
}


# INSTAX_LOG=debug|info|warning: a stderr handler; unset: none (nor its module, nor ``logging``)
if _environ.get("INSTAX_LOG", "").strip():
    from ._logging import configure_from_env as _configure_logging

    _configure_logging()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'instax_async' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AiohttpTransport",
    "AmountDirection",
    "AmountMismatch",
    "AsyncSession",
    "AuthenticationError",
    "BadRequestError",
    "BlockchainPoller",
    "BlockchainStatus",
    "CHECKOUT_URL_KEYS",
    "ClaimResult",
    "Client",
    "DedupeStore",
    "InMemoryDedupeStore",
    "SyncDedupeStore",
    "UnreadableEntryError",
    "InstaxError",
    "InvoiceData",
    "MissingExtraError",
    "MockTransport",
    "NEWEST_API_REQUIRED",
    "NotFoundError",
    "PaymentMethod",
    "PaymentSession",
    "PollTimeoutError",
    "RateLimitError",
    "Request",
    "Response",
    "ResponseTooLargeError",
    "RetryPolicy",
    "ServerError",
    "SessionRequest",
    "SessionStatus",
    "SessionStatusValue",
    "ToCurrency",
    "TransactionStatus",
    "Transport",
    "ValidationError",
    "WebhookData",
    "WebhookEvent",
    "WebhookVerificationError",
    "__version__",
]
