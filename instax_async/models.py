"""What the API answers with, as typed, immutable objects.

Every model keeps the mapping it was built from in ``raw``, so fields this release does not
model are never lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from .serialization import OpenStrEnum

__all__ = [
    "BlockchainStatus",
    "InvoiceData",
    "PaymentSession",
    "SessionStatus",
    "SessionStatusValue",
    "TransactionStatus",
    "WebhookData",
    "WebhookEvent",
]


@attrs.frozen(kw_only=True)
class PaymentSession:
    """A payment session InstaXchange created.

    ``id`` is the session id (``ps_…``), ``iframe_url`` the checkout page to embed, ``raw`` the
    whole response body as a mapping (amounts computed by the API, status, wallet, …), and
    ``headers`` the response's headers (read-only; a request id for support is among them).
    """

    id: str
    iframe_url: str
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def status(self) -> str | None:
        """The session's status as the API reported it on creation (e.g. ``initiated``)."""
        value = self.raw.get("status")
        return value if isinstance(value, str) else None


class TransactionStatus(OpenStrEnum):
    """Statuses a webhook's payment can carry. Values not listed arrive as plain strings."""

    COMPLETED = "completed"
    FAILED = "failed"
    PENDING = "pending"
    PROCESSING = "processing"
    IN_PROGRESS = "in_progress"
    REFUNDED = "refunded"


@attrs.frozen(kw_only=True)
class WebhookData:
    """The payment in a webhook (its ``data`` object). Amounts are exact ``Decimal``."""

    amount_in_fiat: Decimal | None = None
    fiat_currency: str | None = None
    amount_in_crypto: Decimal | None = None
    crypto_currency: str | None = None
    status: TransactionStatus | str | None = None
    status_reason: str | None = None
    wallet_address: str | None = None
    additional_data: dict[str, Any] | None = None
    session_id: str | None = None
    created_at: datetime | None = None


@attrs.frozen(kw_only=True)
class InvoiceData:
    """The invoice in a webhook (its ``invoiceData`` object), every documented field."""

    email: str | None = attrs.field(default=None, metadata={"wire": "Email"})
    name: str | None = attrs.field(default=None, metadata={"wire": "Name"})
    credit_card_number: str | None = attrs.field(
        default=None, metadata={"wire": "Credit_card_number"}
    )
    invoice_id: str | None = attrs.field(default=None, metadata={"wire": "Invoice_ID"})
    status: TransactionStatus | str | None = attrs.field(default=None, metadata={"wire": "Status"})
    wallet_address: str | None = attrs.field(default=None, metadata={"wire": "Wallet_address"})
    details: str | None = attrs.field(default=None, metadata={"wire": "Details"})
    invoice_date: str | None = attrs.field(default=None, metadata={"wire": "Invoice_date"})
    deposit_tx_id: str | None = attrs.field(default=None, metadata={"wire": "Deposit_tx_ID"})
    deposit_tx_amount: str | None = attrs.field(
        default=None, metadata={"wire": "Deposit_tx_amount"}
    )
    deposit_tx_status: TransactionStatus | str | None = attrs.field(
        default=None, metadata={"wire": "Deposit_tx_status"}
    )
    withdraw_tx_id: str | None = attrs.field(default=None, metadata={"wire": "Withdraw_tx_ID"})
    withdraw_tx_amount: str | None = attrs.field(
        default=None, metadata={"wire": "Withdraw_tx_amount"}
    )
    withdraw_tx_status: TransactionStatus | str | None = attrs.field(
        default=None, metadata={"wire": "Withdraw_tx_status"}
    )


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """A webhook notification from InstaXchange, verified or parsed.

    ``reference`` is the ``webhookRef`` the session was created with (or ``None``);
    ``raw`` is the whole body as a mapping. From :func:`~instax_async.webhooks.verify` it holds
    exactly what was signed: numbers as JavaScript read them (``Decimal`` of the text
    ``JSON.stringify`` writes, or ``int``; ``None`` for an overflow), top-level keys in the
    signing order, no top-level ``__proto__``. From :func:`~instax_async.webhooks.parse` it is
    the body as sent, with amounts as exact ``Decimal``.

    >>> event.is_completed, event.withdraw_tx_id  # doctest: +SKIP
    (True, 'wd_…')
    """

    webhook_id: str | None = None
    transaction_id: str | None = None
    reference: str | None = None
    data: WebhookData = attrs.field(factory=WebhookData)
    invoice_data: InvoiceData | None = None
    created_at: datetime | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def status(self) -> TransactionStatus | str | None:
        """The payment's status: ``data.status``, else the invoice's."""
        if self.data.status is not None:
            return self.data.status
        return self.invoice_data.status if self.invoice_data is not None else None

    @property
    def is_completed(self) -> bool:
        """True when the payment completed."""
        return self.status == TransactionStatus.COMPLETED

    @property
    def is_failed(self) -> bool:
        """True when the payment failed."""
        return self.status == TransactionStatus.FAILED

    @property
    def session_id(self) -> str | None:
        """The payment session's id (``data.sessionId``, else the invoice id)."""
        if self.data.session_id:
            return self.data.session_id
        return self.invoice_data.invoice_id if self.invoice_data is not None else None

    @property
    def withdraw_tx_id(self) -> str | None:
        """The payout's transaction id: what ``AsyncSession.blockchain_status`` takes."""
        if self.invoice_data is not None and self.invoice_data.withdraw_tx_id:
            return self.invoice_data.withdraw_tx_id
        extra = self.data.additional_data
        wd_id = extra.get("wdId") if isinstance(extra, Mapping) else None
        return wd_id if isinstance(wd_id, str) and wd_id else None


# -- blockchain status and session status (issue 4) -------------------------------------------

#: Keys that may carry a payout's on-chain hash, in the order they are tried. The response shape
#: of ``/utils/blockchain-status`` is not documented, so every spelling seen in the wild counts.
BLOCKCHAIN_HASH_KEYS = ("hash", "txHash", "transactionHash", "blockchainHash", "tx_hash")

#: Blockchain statuses (compared case-insensitively) after which no hash will ever come.
BLOCKCHAIN_FAILED_STATUSES = frozenset(
    {"failed", "failure", "rejected", "error", "cancelled", "canceled", "reverted", "expired"}
)


def _first_text(sources: tuple[Mapping[str, Any], ...], keys: tuple[str, ...]) -> str | None:
    for source in sources:
        for key in keys:
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


@attrs.frozen(kw_only=True)
class BlockchainStatus:
    """What ``GET /utils/blockchain-status?txId=…`` says about one payout transaction.

    ``hash`` is the on-chain transaction hash once the payout is broadcast (``None`` before),
    ``status`` the provider's status string, if it sent one, and ``raw`` the whole answer. Two
    statuses are equal when ``tx_id``, ``hash`` and ``status`` are; ``raw`` is not compared, so
    a field that changes on every answer (a timestamp) does not count as a status change.

    >>> status = BlockchainStatus.from_mapping("wd_1", {"data": {"txHash": "0xabc"}})
    >>> status.hash, status.is_final
    ('0xabc', True)
    """

    tx_id: str
    hash: str | None = None
    status: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_mapping(cls, tx_id: str, data: Mapping[str, Any]) -> BlockchainStatus:
        """Read an answer of the blockchain-status endpoint.

        The hash is the first non-empty string among :data:`BLOCKCHAIN_HASH_KEYS` at the top
        level, then inside a nested ``data`` object; the status is ``status`` (top level first,
        then ``data``). Nothing is dropped: the whole mapping is kept in ``raw``.
        """
        nested = data.get("data")
        sources = (data, nested) if isinstance(nested, Mapping) else (data,)
        return cls(
            tx_id=tx_id,
            hash=_first_text(sources, BLOCKCHAIN_HASH_KEYS),
            status=_first_text(sources, ("status",)),
            raw=data,
        )

    @property
    def is_failed(self) -> bool:
        """True when the status says the payout failed for good (``failed``, ``rejected``,
        ``error``, ``cancelled``, …, in any case): polling it further is pointless."""
        return self.status is not None and self.status.lower() in BLOCKCHAIN_FAILED_STATUSES

    @property
    def is_final(self) -> bool:
        """True once there is a hash, or the payout failed: where a default poll stops."""
        return self.hash is not None or self.is_failed


class SessionStatusValue(OpenStrEnum):
    """A payment session's ``sessionStatus``. Values not listed arrive as plain strings."""

    INITIATED = "initiated"
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


#: Session statuses after which a session does not change any more. Plain strings: a str enum
#: member hashes by its name, so it is looked up through ``str()``.
SESSION_TERMINAL_STATUSES = frozenset({"completed", "failed"})


@attrs.frozen(kw_only=True)
class SessionStatus:
    """A payment session's state: ``GET /api/session/{sessionId}/status``.

    Every field is optional, so a sparse answer still reads; amounts are exact ``Decimal``,
    ``created_at`` / ``updated_at`` are timezone-aware, and ``raw`` is the whole answer.

    >>> status.session_status, status.is_terminal  # doctest: +SKIP
    (<SessionStatusValue.COMPLETED: 'completed'>, True)
    """

    session_id: str | None = None
    webhook_ref: str | None = None
    address: str | None = None
    session_status: SessionStatusValue | str | None = None
    deposit_id: str | None = None
    deposit_status: str | None = None
    deposit_status_reason: str | None = None
    withdrawal_id: str | None = attrs.field(default=None, metadata={"wire": "withdrawalID"})
    withdraw_status: str | None = None
    withdraw_status_reason: str | None = None
    from_amount: Decimal | None = None
    to_amount: Decimal | None = None
    from_currency: str | None = None
    to_currency: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def is_terminal(self) -> bool:
        """True when the session is ``completed`` or ``failed``: it will not change any more.
        An unknown status is not terminal."""
        status = self.session_status
        return status is not None and str(status) in SESSION_TERMINAL_STATUSES

    @property
    def is_completed(self) -> bool:
        """True when the session completed (the customer paid)."""
        return self.session_status == SessionStatusValue.COMPLETED

    @property
    def is_failed(self) -> bool:
        """True when the session failed."""
        return self.session_status == SessionStatusValue.FAILED
