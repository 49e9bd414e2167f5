"""instax_async: the async-first Python SDK for the InstaXchange payment API.

>>> from instax_async import AsyncSession, SessionRequest
>>> request = SessionRequest.sending(from_amount="50", from_currency="USD", to_currency="USDT")
"""

from ._version import __version__
from .client import AsyncSession
from .dedupe import ClaimResult, DedupeStore, InMemoryDedupeStore
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
    ServerError,
    ValidationError,
    WebhookVerificationError,
)
from .models import (
    BlockchainStatus,
    InvoiceData,
    PaymentSession,
    SessionStatus,
    SessionStatusValue,
    TransactionStatus,
    WebhookData,
    WebhookEvent,
)
from .payloads import AmountDirection, PaymentMethod, SessionRequest, ToCurrency
from .polling import BlockchainPoller
from .retry import RetryPolicy
from .transports import AiohttpTransport, MockTransport, Request, Response, Transport

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AiohttpTransport",
    "AmountDirection",
    "AsyncSession",
    "AuthenticationError",
    "BadRequestError",
    "BlockchainPoller",
    "BlockchainStatus",
    "ClaimResult",
    "DedupeStore",
    "InMemoryDedupeStore",
    "InstaxError",
    "InvoiceData",
    "MissingExtraError",
    "MockTransport",
    "NotFoundError",
    "PaymentMethod",
    "PaymentSession",
    "PollTimeoutError",
    "RateLimitError",
    "Request",
    "Response",
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
