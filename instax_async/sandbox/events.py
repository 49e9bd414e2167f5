"""Webhook payloads of the documented shape, for the sandbox and for ``instax webhook send``."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

__all__ = ["webhook_payload"]

_REASONS = {"failed": "Do Not Honor"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def webhook_payload(
    *,
    status: str = "completed",
    reference: str | None = None,
    session_id: str | None = None,
    amount_in_fiat: Decimal = Decimal("3.74"),
    fiat_currency: str = "USD",
    amount_in_crypto: Decimal = Decimal("3.6278"),
    crypto_currency: str = "USDT",
    wallet_address: str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
    deposit_tx_id: str | None = None,
    withdraw_tx_id: str | None = None,
    status_reason: str | None = None,
    email: str = "customer@example.com",
    name: str = "Sandbox Customer",
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """A webhook body with every documented field, in the provider's key order.

    Ids follow the shapes seen in real webhooks (``whc_…``, ``dp_…``, ``wd_…``, ``ps_…``).
    A failed payment gets the status reason ``Do Not Honor`` unless another is given.
    """
    now = created_at or datetime.now(timezone.utc)
    session_id = session_id or f"ps_{uuid.uuid4()}"
    deposit_tx_id = deposit_tx_id or f"dp_{uuid.uuid4()}"
    withdraw_tx_id = withdraw_tx_id or f"wd_{uuid.uuid4()}"
    if status_reason is None:
        status_reason = _REASONS.get(status)
    withdraw_status = status if status in ("completed", "failed") else "pending"
    deposit_status = "completed" if status in ("completed", "failed") else "in_progress"
    return {
        "webhookId": f"whc_{uuid.uuid4()}",
        "transactionId": deposit_tx_id,
        "reference": reference,
        "data": {
            "amountInFiat": amount_in_fiat,
            "fiatCurrency": fiat_currency,
            "amountInCrypto": amount_in_crypto,
            "cryptoCurrency": crypto_currency,
            "status": status,
            "statusReason": status_reason,
            "walletAddress": wallet_address,
            "additionalData": {"wdId": withdraw_tx_id},
            "sessionId": session_id,
            "createdAt": _iso(now),
        },
        "invoiceData": {
            "Email": email,
            "Name": name,
            "Credit_card_number": "4****4242",
            "Invoice_ID": session_id,
            "Status": status,
            "Wallet_address": wallet_address,
            "Details": f"{amount_in_fiat} {fiat_currency} => {amount_in_crypto} {crypto_currency}",
            "Invoice_date": f"{_ordinal(now.day)} {now:%B, %Y}",
            "Deposit_tx_ID": deposit_tx_id,
            "Deposit_tx_amount": f"{amount_in_fiat} {fiat_currency}",
            "Deposit_tx_status": deposit_status,
            "Withdraw_tx_ID": withdraw_tx_id,
            "Withdraw_tx_amount": f"{amount_in_crypto} {crypto_currency}",
            "Withdraw_tx_status": withdraw_status,
        },
        "createdAt": _iso(now),
    }
