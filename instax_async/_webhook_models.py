"""The webhook models: :class:`WebhookEvent`, its :class:`WebhookData` and :class:`InvoiceData`,
:class:`TransactionStatus`, and :class:`AmountMismatch` (what :meth:`WebhookEvent.check_amount`
finds).

Their public home is :mod:`instax_async.models`, which loads this module on the first access to
one of them: code that only creates sessions never builds these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attr

from ._frozen import Frozen
from .errors import ValidationError
from .serialization import OpenStrEnum

__all__ = ["AmountMismatch", "InvoiceData", "TransactionStatus", "WebhookData", "WebhookEvent"]


class TransactionStatus(OpenStrEnum):
    """Statuses a webhook's payment can carry. Values not listed arrive as plain strings."""

    COMPLETED = "completed"
    FAILED = "failed"
    PENDING = "pending"
    PROCESSING = "processing"
    IN_PROGRESS = "in_progress"
    REFUNDED = "refunded"


@attr.frozen(kw_only=True, repr=False, eq=False)
class WebhookData(Frozen):
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


@attr.frozen(kw_only=True, repr=False, eq=False)
class InvoiceData(Frozen):
    """The invoice in a webhook (its ``invoiceData`` object), every documented field."""

    email: str | None = attr.field(default=None, metadata={"wire": "Email"})
    name: str | None = attr.field(default=None, metadata={"wire": "Name"})
    credit_card_number: str | None = attr.field(
        default=None, metadata={"wire": "Credit_card_number"}
    )
    invoice_id: str | None = attr.field(default=None, metadata={"wire": "Invoice_ID"})
    status: TransactionStatus | str | None = attr.field(default=None, metadata={"wire": "Status"})
    wallet_address: str | None = attr.field(default=None, metadata={"wire": "Wallet_address"})
    details: str | None = attr.field(default=None, metadata={"wire": "Details"})
    invoice_date: str | None = attr.field(default=None, metadata={"wire": "Invoice_date"})
    deposit_tx_id: str | None = attr.field(default=None, metadata={"wire": "Deposit_tx_ID"})
    deposit_tx_amount: str | None = attr.field(default=None, metadata={"wire": "Deposit_tx_amount"})
    deposit_tx_status: TransactionStatus | str | None = attr.field(
        default=None, metadata={"wire": "Deposit_tx_status"}
    )
    withdraw_tx_id: str | None = attr.field(default=None, metadata={"wire": "Withdraw_tx_ID"})
    withdraw_tx_amount: str | None = attr.field(
        default=None, metadata={"wire": "Withdraw_tx_amount"}
    )
    withdraw_tx_status: TransactionStatus | str | None = attr.field(
        default=None, metadata={"wire": "Withdraw_tx_status"}
    )


@attr.frozen(kw_only=True, repr=False, eq=False)
class WebhookEvent(Frozen):
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
    data: WebhookData = attr.field(factory=WebhookData)
    invoice_data: InvoiceData | None = None
    created_at: datetime | None = None
    raw: Mapping[str, Any] = attr.field(factory=dict, repr=False, eq=False)

    @property
    def status(self) -> TransactionStatus | str | None:
        """The payment's status: ``data.status``, else the invoice's."""
        if self.data.status is not None:
            return self.data.status
        return self.invoice_data.status if self.invoice_data is not None else None

    @property
    def is_completed(self) -> bool:
        """True when the payment completed (``data.status``, else the invoice's ``Status``)."""
        return self.status == TransactionStatus.COMPLETED

    @property
    def is_paid(self) -> bool:
        """True when the customer's money arrived: ``data.status`` is ``completed`` **and**
        ``invoiceData.Deposit_tx_status`` is ``completed``.

        The rule integrations in the field use before they deliver an order: a ``completed``
        status alone (or an event without ``invoiceData``) is not a paid deposit. Check the
        amount too: :meth:`check_amount`.
        """
        invoice = self.invoice_data
        return (
            self.data.status == TransactionStatus.COMPLETED
            and invoice is not None
            and invoice.deposit_tx_status == TransactionStatus.COMPLETED
        )

    def check_amount(
        self, expected: Decimal | int | str | float, currency: str
    ) -> AmountMismatch | None:
        """``None`` when the customer paid exactly ``expected`` in ``currency`` (the fiat
        amount of ``data``: ``amountInFiat`` and ``fiatCurrency``), else what differs.

        ``expected`` is the order's total, read as :class:`~instax_async.SessionRequest` reads
        amounts (``Decimal``, ``int``, numeric ``str``, ``float`` through its repr) and compared
        by value, so ``50`` matches ``50.00``; ``currency`` is its ISO 4217 code, in any case. A
        bad ``expected`` or ``currency`` is a :class:`~instax_async.ValidationError`: your
        code's mistake, not the payment's. Nothing is raised for the payment: a mismatch is
        returned, to be handled (held for review, refunded), because the same event redelivered
        would mismatch again::

            if event.is_paid:
                mismatch = event.check_amount(order.total, order.currency)
                await (orders.hold(order, str(mismatch)) if mismatch else orders.mark_paid(order))
        """
        from .payloads import to_amount_decimal

        wanted = to_amount_decimal(expected, "expected")
        if not isinstance(currency, str) or not _is_currency_code(currency):
            raise ValidationError(
                f"currency: expected a 3-letter ISO 4217 code such as 'USD', got {currency!r}",
                field="currency",
            )
        wanted_currency = currency.upper()
        paid, paid_currency = self.data.amount_in_fiat, self.data.fiat_currency
        if paid is None or paid_currency is None:
            reason = "missing"
        elif paid_currency.strip().upper() != wanted_currency:
            reason = "currency"
        elif paid != wanted:
            reason = "amount"
        else:
            return None
        return AmountMismatch(
            reason=reason,
            expected=wanted,
            expected_currency=wanted_currency,
            paid=paid,
            paid_currency=paid_currency,
        )

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


def _is_currency_code(text: str) -> bool:
    return len(text) == 3 and text.isascii() and text.isalpha()


@attr.frozen(kw_only=True, repr=False, eq=False)
class AmountMismatch(Frozen):
    """What :meth:`WebhookEvent.check_amount` found: the payment is not the order's.

    ``reason`` is ``"amount"`` (another amount), ``"currency"`` (another currency) or
    ``"missing"`` (the event has no fiat amount or currency); ``expected`` /
    ``expected_currency`` are the order's, ``paid`` / ``paid_currency`` the event's (``None``
    when missing). ``str()`` says it in one line, for a log or a review queue.

    >>> print(AmountMismatch(reason="amount", expected=Decimal("50"), expected_currency="USD",
    ...                      paid=Decimal("5.00"), paid_currency="USD"))
    paid 5.00 USD, expected 50 USD (amount)
    """

    reason: str
    expected: Decimal
    expected_currency: str
    paid: Decimal | None = None
    paid_currency: str | None = None

    def __str__(self) -> str:
        paid = (
            "no fiat amount"
            if self.paid is None or self.paid_currency is None
            else f"{self.paid} {self.paid_currency}"
        )
        return f"paid {paid}, expected {self.expected} {self.expected_currency} ({self.reason})"
