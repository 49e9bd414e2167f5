"""When a webhook means "paid": ``WebhookEvent.is_paid`` and ``check_amount``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from instax_async import AmountMismatch, ValidationError, WebhookEvent
from instax_async.sandbox.events import webhook_payload
from instax_async.serialization import dumps
from instax_async.webhooks import parse, sign, verify


def event(**fields: Any) -> WebhookEvent:
    return parse(dumps(webhook_payload(**fields)))


def with_statuses(status: object, deposit: object, *, invoice: bool = True) -> WebhookEvent:
    payload = webhook_payload(status="completed")
    payload["data"]["status"] = status
    if invoice:
        payload["invoiceData"]["Deposit_tx_status"] = deposit
    else:
        del payload["invoiceData"]
    return parse(dumps(payload))


@pytest.mark.parametrize(
    ("status", "deposit", "paid"),
    [
        ("completed", "completed", True),
        ("completed", "in_progress", False),  # the status alone is not a paid deposit
        ("completed", "failed", False),
        ("completed", None, False),
        ("pending", "completed", False),
        ("failed", "completed", False),
        ("refunded", "completed", False),
        ("COMPLETED", "completed", False),  # an unknown spelling is not "completed"
        (None, "completed", False),
    ],
)
def test_is_paid_needs_both_statuses(status: object, deposit: object, paid: bool) -> None:
    assert with_statuses(status, deposit).is_paid is paid


def test_is_paid_without_invoice_data_is_false_though_completed() -> None:
    unpaid = with_statuses("completed", None, invoice=False)
    assert unpaid.is_completed and not unpaid.is_paid


def test_the_sandbox_and_the_signed_events_agree() -> None:
    payload = webhook_payload(status="completed")
    body = dumps(payload)
    verified = verify(body, sign(body, "s"), "s")
    assert verified.is_paid and verified.is_completed
    pending = event(status="pending")
    assert not pending.is_paid and not pending.is_completed


def test_check_amount_matches_by_value_and_currency_in_any_case() -> None:
    paid = event(amount_in_fiat=Decimal("50.00"), fiat_currency="USD")
    assert paid.check_amount(Decimal("50"), "USD") is None
    assert paid.check_amount("50.00", "usd") is None
    assert paid.check_amount(50, "Usd") is None
    assert paid.check_amount(50.0, "USD") is None


@pytest.mark.parametrize(
    ("fields", "reason", "paid"),
    [
        ({"amount_in_fiat": Decimal("5.00")}, "amount", "5.00 USD"),
        ({"amount_in_fiat": Decimal("50.01")}, "amount", "50.01 USD"),
        ({"amount_in_fiat": Decimal("50"), "fiat_currency": "EUR"}, "currency", "50 EUR"),
    ],
)
def test_check_amount_returns_what_differs(fields: dict[str, Any], reason: str, paid: str) -> None:
    mismatch = event(**{"fiat_currency": "USD", **fields}).check_amount(Decimal("50.00"), "usd")
    assert isinstance(mismatch, AmountMismatch) and mismatch.reason == reason
    assert (mismatch.expected, mismatch.expected_currency) == (Decimal("50.00"), "USD")
    assert str(mismatch) == f"paid {paid}, expected 50.00 USD ({reason})"


def test_an_event_without_a_fiat_amount_is_a_mismatch() -> None:
    bare = parse(b'{"webhookId": "wh_1", "data": {"status": "completed"}}')
    mismatch = bare.check_amount("10", "USD")
    assert mismatch is not None and mismatch.reason == "missing"
    assert mismatch.paid is None and str(mismatch).startswith("paid no fiat amount")


@pytest.mark.parametrize(
    ("expected", "currency", "field"),
    [
        ("ten", "USD", "expected"),
        (0, "USD", "expected"),
        (-5, "USD", "expected"),
        (True, "USD", "expected"),
        (None, "USD", "expected"),
        (float("nan"), "USD", "expected"),
        ("10", "US", "currency"),
        ("10", "US$", "currency"),
        ("10", None, "currency"),
        ("10", "ÜSD", "currency"),
    ],
)
def test_bad_expectations_are_the_callers_error(
    expected: object, currency: object, field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        event().check_amount(expected, currency)  # type: ignore[arg-type]
    assert info.value.field == field


def test_a_receiver_checks_in_three_lines() -> None:
    """The documented pattern, against an order of 3.74 USD (the sandbox event's amount)."""
    marked: list[str] = []
    held: list[str] = []

    def on_event(event: WebhookEvent) -> None:
        if event.is_paid:
            mismatch = event.check_amount(Decimal("3.74"), "USD")
            (held if mismatch else marked).append(str(mismatch or event.reference))

    on_event(event(reference="order-1"))
    on_event(event(reference="order-2", amount_in_fiat=Decimal("0.01")))
    on_event(event(reference="order-3", status="pending"))
    assert marked == ["order-1"]
    assert held == ["paid 0.01 USD, expected 3.74 USD (amount)"]
