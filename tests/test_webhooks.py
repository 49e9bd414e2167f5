"""Webhook signing, verification and parsing: pure functions."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instax_async import (
    InvoiceData,
    TransactionStatus,
    ValidationError,
    WebhookData,
    WebhookEvent,
    WebhookVerificationError,
)
from instax_async.webhooks import (
    SIGNATURE_HEADER,
    VerificationFailure,
    dedupe_key,
    parse,
    sign,
    verify,
)

VECTORS: list[dict[str, str]] = json.loads(
    (Path(__file__).parent / "vectors" / "signatures.json").read_text(encoding="utf-8")
)
BY_NAME = {v["name"]: v for v in VECTORS}
COMPLETED = BY_NAME["documented_completed"]["body"].encode()
FAILED = BY_NAME["documented_failed"]["body"].encode()
SECRET = "test-webhook-secret"


def test_header_name() -> None:
    assert SIGNATURE_HEADER == "X-Instaxwh-Key"


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_sign_matches_node_for_every_vector(vector: dict[str, str]) -> None:
    assert sign(vector["body"], vector["secret"]) == vector["signature"]
    assert (
        sign(vector["body"].encode("utf-8", "surrogatepass"), vector["secret"])
        == vector["signature"]
        or "\\ud8" in vector["body"]
    )


@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS if v["secret"]],
    ids=[v["name"] for v in VECTORS if v["secret"]],
)
def test_verify_accepts_every_node_signature(vector: dict[str, str]) -> None:
    try:
        event = verify(vector["body"].encode(), vector["signature"], vector["secret"])
    except WebhookVerificationError as exc:
        # Bodies that are not webhooks in shape are still signed correctly.
        assert exc.reason is VerificationFailure.INVALID_BODY, exc
    else:
        assert isinstance(event, WebhookEvent)


def test_documented_completed_event_fields() -> None:
    key = BY_NAME["documented_completed"]["signature"]
    event = verify(COMPLETED, key, SECRET)
    assert event.webhook_id == "testcompleteddwebhook"
    assert event.transaction_id == "*****"
    assert event.reference == "your_reference"
    assert event.created_at == datetime(2024, 5, 22, 19, 59, 5, 913000, tzinfo=timezone.utc)
    data = event.data
    assert isinstance(data, WebhookData)
    assert data.amount_in_fiat == Decimal("3.74")
    assert data.amount_in_crypto == Decimal("0.0421399418187522")
    assert str(data.amount_in_crypto) == "0.0421399418187522"
    assert data.fiat_currency == "USD" and data.crypto_currency == "LTC"
    assert data.status is TransactionStatus.COMPLETED and data.status == "completed"
    assert data.status_reason is None
    assert data.additional_data == {"wdId": "123"}
    assert data.created_at is not None and data.created_at.tzinfo is not None
    invoice = event.invoice_data
    assert isinstance(invoice, InvoiceData)
    assert invoice.email == "[email protected]"
    assert invoice.credit_card_number == "4****1111"
    assert invoice.invoice_date == "22nd May, 2024"
    assert invoice.withdraw_tx_amount == "0.0421399418187522 LTC"
    assert invoice.deposit_tx_status == "completed"
    assert event.is_completed and not event.is_failed
    assert event.withdraw_tx_id == "*****"
    assert event.session_id == "*****"
    assert event.raw["data"]["amountInFiat"] == Decimal("3.74")


def test_documented_failed_event() -> None:
    event = verify(FAILED, BY_NAME["documented_failed"]["signature"], SECRET)
    assert event.is_failed and not event.is_completed
    assert event.reference is None
    assert event.data.status_reason == "Do Not Honor"
    assert event.data.amount_in_fiat == Decimal(5)
    assert event.data.additional_data is None
    assert event.invoice_data is not None
    assert event.invoice_data.withdraw_tx_status == TransactionStatus.FAILED


def test_unknown_statuses_and_sparse_bodies_are_tolerated() -> None:
    event = parse(
        b'{"webhookId": "whc_1", "data": {"status": "chargeback_review", "amountInFiat": "1.5"},'
        b' "invoiceData": {"Credit_card_number": null, "Status": "in_progress"}}'
    )
    assert event.status == "chargeback_review"
    assert not isinstance(event.status, TransactionStatus)
    assert not event.is_completed and not event.is_failed
    assert event.data.amount_in_fiat == Decimal("1.5")
    assert event.invoice_data is not None
    assert event.invoice_data.credit_card_number is None
    assert event.invoice_data.status is TransactionStatus.IN_PROGRESS
    assert event.withdraw_tx_id is None
    assert event.session_id is None
    bare = parse({"invoiceData": {"Status": "pending", "Invoice_ID": "ps_9"}})
    assert bare.status is TransactionStatus.PENDING
    assert bare.session_id == "ps_9"
    assert parse({}).status is None
    assert parse({"data": {"additionalData": {"wdId": "wd_7"}}}).withdraw_tx_id == "wd_7"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"nope",
        b'{"data": []}',
        b'{"data": {"amountInFiat": "abc"}}',
        b'{"createdAt": "yesterday"}',
    ],
)
def test_parse_rejects_malformed_bodies_with_validation_error(body: bytes) -> None:
    with pytest.raises(ValidationError) as info:
        parse(body)
    assert info.value.field == "body"


def test_verify_tolerates_hex_case_and_whitespace() -> None:
    key = BY_NAME["documented_completed"]["signature"]
    assert verify(COMPLETED, f"  {key.upper()}\t", SECRET).is_completed
    assert verify(COMPLETED.decode(), key, SECRET).is_completed
    assert verify(bytearray(COMPLETED), key, SECRET).is_completed


@pytest.mark.parametrize(
    ("body", "signature", "secret", "reason"),
    [
        (COMPLETED, None, SECRET, VerificationFailure.MISSING_SIGNATURE),
        (COMPLETED, "", SECRET, VerificationFailure.MISSING_SIGNATURE),
        (COMPLETED, "   ", SECRET, VerificationFailure.MISSING_SIGNATURE),
        (COMPLETED, "abc", SECRET, VerificationFailure.MALFORMED_SIGNATURE),
        (COMPLETED, "g" * 32, SECRET, VerificationFailure.MALFORMED_SIGNATURE),
        (COMPLETED, 12, SECRET, VerificationFailure.MALFORMED_SIGNATURE),
        (COMPLETED, "0" * 32, SECRET, VerificationFailure.SIGNATURE_MISMATCH),
        (
            COMPLETED,
            BY_NAME["documented_completed"]["signature"],
            "other",
            VerificationFailure.SIGNATURE_MISMATCH,
        ),
        (b"[1,2]", "0" * 32, SECRET, VerificationFailure.INVALID_BODY),
        (b"\xff\xfe{}", "0" * 32, SECRET, VerificationFailure.INVALID_BODY),
        (b"{", "0" * 32, SECRET, VerificationFailure.INVALID_BODY),
        (b"[" * 100_000, "0" * 32, SECRET, VerificationFailure.INVALID_BODY),
        ("\ud800", "0" * 32, SECRET, VerificationFailure.INVALID_BODY),
        (12345, "0" * 32, SECRET, VerificationFailure.INVALID_BODY),
        (COMPLETED, "0" * 32, "", VerificationFailure.NO_SECRET),
        (COMPLETED, "0" * 32, None, VerificationFailure.NO_SECRET),
    ],
)
def test_verify_refusals(
    body: Any, signature: Any, secret: Any, reason: VerificationFailure
) -> None:
    with pytest.raises(WebhookVerificationError) as info:
        verify(body, signature, secret)
    assert info.value.reason is reason
    assert not secret or secret not in str(info.value)


def test_size_limit_is_configurable() -> None:
    key = BY_NAME["documented_completed"]["signature"]
    with pytest.raises(WebhookVerificationError) as info:
        verify(COMPLETED, key, SECRET, max_body=100)
    assert info.value.reason is VerificationFailure.TOO_LARGE
    with pytest.raises(WebhookVerificationError):
        verify(b" " * (1024 * 1024 + 1), key, SECRET)


def test_a_valid_signature_on_a_body_not_shaped_like_a_webhook() -> None:
    body = b'{"data": "not an object"}'
    with pytest.raises(WebhookVerificationError) as info:
        verify(body, sign(body, SECRET), SECRET)
    assert info.value.reason is VerificationFailure.INVALID_BODY


def test_flipping_any_byte_is_always_rejected() -> None:
    key = BY_NAME["documented_completed"]["signature"]
    accepted = 0
    for index in range(len(COMPLETED)):
        tampered = bytearray(COMPLETED)
        tampered[index] ^= 0x01
        try:
            verify(bytes(tampered), key, SECRET)
        except WebhookVerificationError:
            continue
        # Only a change the JSON parser cannot see (whitespace to whitespace) may pass.
        assert chr(COMPLETED[index]).isspace() and chr(tampered[index]).isspace()
        accepted += 1
    assert accepted == 0


def test_re_serialized_bodies_still_verify_when_json_equal() -> None:
    """Key order and whitespace of the transport don't matter; values do."""
    key = BY_NAME["documented_completed"]["signature"]
    reordered = dict(reversed(list(json.loads(COMPLETED).items())))
    assert verify(json.dumps(reordered, indent=2).encode(), key, SECRET).is_completed
    reordered["reference"] = "changed"
    with pytest.raises(WebhookVerificationError):
        verify(json.dumps(reordered).encode(), key, SECRET)


def test_sign_accepts_mappings_with_decimals_and_rejects_bad_input() -> None:
    payload = json.loads(COMPLETED, parse_float=Decimal)
    assert sign(payload, SECRET) == BY_NAME["documented_completed"]["signature"]
    with pytest.raises(ValidationError, match="payload"):
        sign(b"[1]", SECRET)
    with pytest.raises(ValidationError, match="payload"):
        sign(b"{", SECRET)
    with pytest.raises(ValidationError, match="payload"):
        sign(12, SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="secret"):
        sign(COMPLETED, None)  # type: ignore[arg-type]


def test_dedupe_key_distinguishes_statuses() -> None:
    first = parse({"webhookId": "w", "transactionId": "t", "data": {"status": "pending"}})
    second = parse({"webhookId": "w", "transactionId": "t", "data": {"status": "completed"}})
    assert dedupe_key(first) != dedupe_key(second)
    assert dedupe_key(first) == dedupe_key(parse(first.raw))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(st.binary(max_size=300), st.text(max_size=300)),
    signature=st.one_of(st.none(), st.text(max_size=40), st.from_regex(r"[0-9a-fA-F]{32}")),
)
def test_verify_only_ever_raises_webhook_verification_error(body: Any, signature: Any) -> None:
    try:
        verify(body, signature, SECRET)
    except WebhookVerificationError as exc:
        assert isinstance(exc.reason, VerificationFailure)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_signed_json_objects_verify_or_fail_only_on_shape(payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    try:
        verify(body, sign(body, SECRET), SECRET)
    except WebhookVerificationError as exc:
        assert exc.reason is VerificationFailure.INVALID_BODY
