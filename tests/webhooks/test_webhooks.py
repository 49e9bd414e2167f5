"""Webhook signing, verification and parsing: pure functions."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
import tracemalloc
from datetime import datetime, timedelta, timezone
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
    jsjson,
    webhooks,
)
from instax_async.serialization import MAX_JSON_DEPTH
from instax_async.webhooks import (
    MAX_CLOCK_SKEW,
    SIGNATURE_HEADER,
    VerificationFailure,
    dedupe_key,
    parse,
    sign,
    verify,
)

VECTORS: list[dict[str, str]] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "signatures.json").read_text(encoding="utf-8")
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


TRICKY_BODIES = [
    b'{"webhookId": "w", "n": [1e21, 1e-7, -0.0, -0, 5e-324, 2.5e-324, 1e400, -1e400]}',
    b'{"n": [9007199254740993, 12345678901234567890, -123456789012345678901234567890]}',
    b'{"n": [0.1, 0.30000000000000004, 3.74000000000000000009, 5.0, 1.50, 1e2, 1E+2]}',
    b'{"n": {"a": 100000000000000000000.5, "b": 0.000001, "c": 0.0000001, "d": 1.5e-7}}',
    '{"\u00e9t\u00e9": 1.5, "\U0001f600": 2, "\ufb01": [3.25, "\\u0000\u2028"], "a": 1}'.encode(),
    b'{"z\\ud83d\\ude00": 1, "z\\uffff": 2, "\\u00e9": {"2": 0.5, "10": 1.0, "x": 1e-7}}',
    b'{"__proto__": {"a": 1}, "data": {"__proto__": 5.0}, "0": 1, "1e3": 2}',
    b'{"n": [' + b", ".join([b"0.1", b"1e-7", b"5.0", b"0.30000000000000004"] * 30) + b"]}",
]


@pytest.mark.parametrize("body", TRICKY_BODIES)
def test_sign_and_verify_agree_on_tricky_numbers_and_keys(body: bytes) -> None:
    # The signature of the general path (parse like JSON.parse, then JSON.stringify), which
    # Node's vectors check, is what sign() writes, for the bytes, their text and a mapping.
    base = jsjson.signature_base(jsjson.loads(body), SECRET)
    expected = hashlib.md5(base).hexdigest()
    assert sign(body, SECRET) == expected
    assert sign(body.decode(), SECRET) == expected
    event = verify(body, expected, SECRET)
    signed = json.loads(base[: -len(SECRET) - 1], parse_float=Decimal)
    assert event.raw == signed and list(event.raw) == list(signed)
    assert sign(dict(event.raw), SECRET) == expected  # the event's raw signs as the body does


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


# -- nesting: refused as invalid JSON, never a RecursionError --------------------------------


def _nested_body(depth: int) -> bytes:
    """A webhook-shaped object whose arrays and objects nest ``depth`` levels in all."""
    return b'{"webhookId": "w", "x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_verify_accepts_the_nesting_limit_and_refuses_one_more_level() -> None:
    at_limit = _nested_body(MAX_JSON_DEPTH)
    assert verify(at_limit, sign(at_limit, SECRET), SECRET).webhook_id == "w"
    over = _nested_body(MAX_JSON_DEPTH + 1)
    with pytest.raises(WebhookVerificationError, match="nested deeper than 128") as info:
        verify(over, "0" * 32, SECRET)
    assert info.value.reason is VerificationFailure.INVALID_BODY
    with pytest.raises(ValidationError, match="nested deeper than 128"):
        parse(over)
    with pytest.raises(ValidationError, match="nested deeper than 128"):
        sign(over, SECRET)
    assert parse(at_limit).webhook_id == "w"


@pytest.mark.parametrize("depth", [200, 990, 5000])
def test_sign_refuses_deep_bodies_and_mappings_with_validation_error(depth: int) -> None:
    body = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(ValidationError) as info:
        sign(body, SECRET)
    assert info.value.field == "payload"
    with pytest.raises(ValidationError):
        sign(body.decode(), SECRET)
    mapping: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        mapping = {"a": mapping}
    with pytest.raises(ValidationError, match="nested deeper than 128") as info:
        sign(mapping, SECRET)
    assert info.value.field == "payload"


def test_sign_refuses_a_mapping_that_contains_itself() -> None:
    looped: dict[str, Any] = {"webhookId": "w"}
    looped["self"] = looped
    with pytest.raises(ValidationError, match="payload"):
        sign(looped, SECRET)


def test_sign_on_a_nearly_exhausted_stack_is_still_a_validation_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def exhausted(*_args: Any) -> Any:
        raise RecursionError

    monkeypatch.setattr(webhooks, "dumps", exhausted)
    with pytest.raises(ValidationError, match=r"^payload: nested deeper than 128") as caught:
        sign({"a": 1}, SECRET)
    assert caught.value.field == "payload"


def _peak_bytes(function: Any) -> tuple[Any, int]:
    """What ``function()`` returned or raised, and the most memory it held at once (Python's
    allocators, which Decimal's digits and every string go through)."""
    tracemalloc.start()
    try:
        try:
            result = function()
        except Exception as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# Bounded work: a few times the body, never the digits an exponent would write out.
PEAK = 1024 * 1024


def test_sign_refuses_a_huge_decimal_without_writing_it_out() -> None:
    # 1E+9999999 first: ten megabytes written out where that is not refused, before the cases
    # that would take gigabytes (1E+999999999: 28 s and 3.8 GiB).
    huge = parse(b'{"data":{"amountInFiat":1e99999999}}').raw
    for payload, field in [
        ({"a": Decimal("1E+9999999")}, "a"),
        ({"a": Decimal("1e999999999")}, "a"),
        (huge, "data.amountInFiat"),
        ({"data": {"items": [Decimal("1"), Decimal("-1E-999999999")]}}, "data.items[1]"),
    ]:
        result, peak = _peak_bytes(lambda payload=payload: sign(payload, SECRET))
        assert isinstance(result, ValidationError), result
        assert result.field == field and "more than 4,300 digits" in str(result)
        assert peak < PEAK
    assert huge["data"]["amountInFiat"] == Decimal("1E+99999999")  # parse keeps the wire number


@pytest.mark.parametrize(
    ("payload", "field", "match"),
    [
        ({"data": {"items": [1, 2, 3, {4}]}}, "data.items[3]", "a set cannot be written"),
        ({"reference": "order-\ud800"}, "reference", r"surrogate code point \(U\+D800\)"),
        ({"data": {"name": "\ud83d\ude00"}}, "data.name", r"U\+D83D"),  # a split pair
        ({"data": {"amountInFiat": 10**5000}}, "data.amountInFiat", "integer too long"),
        ({"data": {"amountInFiat": Decimal("NaN")}}, "data.amountInFiat", "NaN"),
        ({"\udc00": 1}, '["\\udc00"]', "its key"),
    ],
)
def test_sign_names_the_path_of_a_value_json_cannot_hold(
    payload: dict[str, Any], field: str, match: str
) -> None:
    with pytest.raises(ValidationError, match=match) as caught:
        sign(payload, SECRET)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


HUGE_EXPONENTS = [
    b"1e99999999",
    b"-1e-99999999",
    b"1E+999999999999",
    b"123456789e-999999999",
    b"-123456789.5e+999999999",
    b"0e99999999",
    b"1e9999999999999999999999",  # past a Decimal's exponents
    b"-0.0e-99999999999999999999",
]


@pytest.mark.parametrize("number", HUGE_EXPONENTS, ids=[n.decode() for n in HUGE_EXPONENTS])
def test_huge_exponents_are_read_as_javascript_reads_them_in_bounded_memory(number: bytes) -> None:
    body = b'{"webhookId":"w","data":{"amountInFiat":' + number + b',"status":"completed"}}'
    double = float(number)  # what JavaScript holds: an infinity (written null) or zero
    assert math.isinf(double) or double == 0
    signed = b'{"data":{"amountInFiat":' + (b"null" if math.isinf(double) else b"0")
    expected = hashlib.md5(signed + b',"status":"completed"},"webhookId":"w"}:s').hexdigest()
    key, peak = _peak_bytes(lambda: sign(body, "s"))
    assert key == expected and peak < PEAK
    for form in (body, body.decode()):
        event, peak = _peak_bytes(lambda form=form: verify(form, expected, "s"))
        assert isinstance(event, WebhookEvent) and peak < PEAK
        assert event.data.amount_in_fiat == (None if math.isinf(double) else 0)
        event, peak = _peak_bytes(lambda form=form: parse(form))
        assert peak < PEAK
        if isinstance(event, WebhookEvent):  # the wire number, exactly
            assert event.data.amount_in_fiat == Decimal(number.decode())
        else:
            assert isinstance(event, ValidationError) and "Decimal" in str(event)
            assert abs(int(number.decode().lower().partition("e")[2])) >= 10**18


def test_the_huge_exponents_vector_is_nodes() -> None:
    vector = BY_NAME["huge_exponents"]
    assert vector["signing_string"].startswith('{"a":null,"b":0,"c":[null,null,0,0],')
    event = verify(vector["body"].encode(), vector["signature"], vector["secret"])
    assert event.data.amount_in_fiat is None and event.data.amount_in_crypto == 0


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"a":' * 100_000, b'{"a":' * 990 + b"1" + b"}" * 990],
    ids=["100k [", "100k {a:", "990 {a:"],
)
def test_verify_and_parse_refuse_pathological_nesting(body: bytes) -> None:
    for form in (body, body.decode()):
        with pytest.raises(WebhookVerificationError) as info:
            verify(form, "0" * 32, SECRET)
        assert info.value.reason is VerificationFailure.INVALID_BODY
        with pytest.raises(ValidationError):
            parse(form)


def test_a_recursion_error_while_verifying_is_a_verification_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # only possible when the caller's own stack is nearly exhausted; simulated here
    def exhausted(data: Any, cls: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    key = BY_NAME["documented_completed"]["signature"]
    monkeypatch.setattr(webhooks, "structure_json", exhausted)  # the last step, once signed
    with pytest.raises(WebhookVerificationError) as info:
        verify(COMPLETED, key, SECRET)
    assert info.value.reason is VerificationFailure.INVALID_BODY


def test_verify_on_a_nearly_exhausted_stack_raises_only_verification_errors() -> None:
    body = _nested_body(MAX_JSON_DEPTH)
    key = sign(body, SECRET)
    frames, frame = 0, sys._getframe()
    while frame is not None:
        frames, frame = frames + 1, frame.f_back
    limit = sys.getrecursionlimit()
    outcomes: list[object] = []
    try:
        for headroom in (30, 60, 120, 200):
            sys.setrecursionlimit(frames + headroom)
            try:
                outcomes.append(verify(body, key, SECRET))
            except WebhookVerificationError as exc:
                outcomes.append(exc.reason)
    finally:
        sys.setrecursionlimit(limit)
    assert all(
        isinstance(o, WebhookEvent) or o is VerificationFailure.INVALID_BODY for o in outcomes
    )
    assert isinstance(outcomes[-1], WebhookEvent)


# -- a verified event holds only what the signature covers -----------------------------------


def _signed_view(body: bytes) -> dict[str, Any]:
    """The event's raw as it should be: Node's signing string, numbers as exact Decimals."""
    event = verify(body, sign(body, SECRET), SECRET)
    return dict(event.raw)


def test_numbers_are_what_javascript_read_not_the_digits_on_the_wire() -> None:
    body = (
        b'{"webhookId": "w", "data": {"amountInFiat": 3.74000000000000000009,'
        b' "amountInCrypto": 0.1000000000000000055511151231257827, "status": "completed"},'
        b' "n": [5.0, -0, -0.0, 1e2, 9007199254740993, 12345678901234567890, 1e21, 1e-7,'
        b" 0.000001, 1e400, -1e400, 123456789012345678901234567890.5, 2e-324]}"
    )
    event = verify(body, sign(body, SECRET), SECRET)
    assert event.data.amount_in_fiat == Decimal("3.74")
    assert str(event.data.amount_in_fiat) == "3.74"
    assert str(event.data.amount_in_crypto) == "0.1"
    assert event.raw["data"]["amountInFiat"] == Decimal("3.74")
    numbers = event.raw["n"]
    assert numbers == [
        5,
        0,
        0,
        100,
        9007199254740992,
        12345678901234567000,
        Decimal("1E+21"),
        Decimal("1E-7"),
        Decimal("0.000001"),
        None,
        None,
        Decimal("1.2345678901234568E+29"),
        0,
    ]
    assert [type(n) for n in numbers[:6]] == [int] * 6
    assert str(numbers[7]) == "1E-7" and str(numbers[8]) == "0.000001"
    # parse() does not verify, and keeps the exact wire digits
    assert parse(body).data.amount_in_fiat == Decimal("3.74000000000000000009")


def test_a_top_level_proto_member_is_not_in_the_event() -> None:
    plain = b'{"webhookId": "w", "reference": "order-1"}'
    for proto in (b'{"evil": true}', b"[1, 2]", b'"x"', b"null", b"7"):
        body = b'{"__proto__": ' + proto + b', "webhookId": "w", "reference": "order-1"}'
        assert sign(body, SECRET) == sign(plain, SECRET)  # the signer drops it
        event = verify(body, sign(plain, SECRET), SECRET)
        assert "__proto__" not in event.raw
        assert dict(event.raw) == {"reference": "order-1", "webhookId": "w"}
    nested = b'{"data": {"__proto__": {"a": 1}}}'
    assert verify(nested, sign(nested, SECRET), SECRET).raw["data"] == {"__proto__": {"a": 1}}


@pytest.mark.parametrize(
    "vector",
    [v for v in VECTORS if v["secret"]],
    ids=[v["name"] for v in VECTORS if v["secret"]],
)
def test_the_event_is_nodes_signing_string_for_every_vector(vector: dict[str, str]) -> None:
    signed = json.loads(vector["signing_string"], parse_float=Decimal)
    try:
        event = verify(vector["body"].encode(), vector["signature"], vector["secret"])
    except WebhookVerificationError as exc:
        assert exc.reason is VerificationFailure.INVALID_BODY  # signed, but not webhook-shaped
        return
    assert event.raw == signed
    assert list(event.raw) == list(signed)  # the signing order of the top-level keys


def _as_javascript(value: Any) -> Any:
    """The numbers of a verified event's raw as the doubles JavaScript would hold."""
    if isinstance(value, dict):
        return {key: _as_javascript(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_javascript(item) for item in value]
    if isinstance(value, Decimal):
        return float(value)
    return value


NUMBER_TEXT = st.from_regex(
    r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?\Z", fullmatch=True
)


@settings(max_examples=300, deadline=None)
@given(st.lists(NUMBER_TEXT, min_size=1, max_size=12))
def test_every_number_of_a_verified_event_is_exactly_what_was_signed(texts: list[str]) -> None:
    body = ('{"webhookId": "w", "n": [' + ", ".join(texts) + "]}").encode()
    event = verify(body, sign(body, SECRET), SECRET)
    signed = jsjson.signing_string(jsjson.loads(body))
    # the event, read back as JavaScript would, serializes to the very text that was signed
    assert jsjson.signing_string(_as_javascript(dict(event.raw))) == signed
    for number, text in zip(event.raw["n"], texts, strict=True):
        double = float(text)
        if math.isinf(double):
            assert number is None
        elif isinstance(number, Decimal):
            assert float(number) == double and number == Decimal(repr(double))
        else:
            assert type(number) is int and float(number) == double


NODE = shutil.which("node")


@pytest.mark.node
@pytest.mark.subprocess
@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_numbers_match_what_node_reads() -> None:
    literals = [
        "3.74000000000000000009",
        "0.1000000000000000055511151231257827",
        "9007199254740993",
        "12345678901234567890",
        "123456789012345678901234567890.5",
        "1e21",
        "1.5e300",
        "1e-7",
        "5e-324",
        "2.5e-324",
        "0.000001",
        "-0",
        "-0.0",
        "5.0",
        "1e400",
        "-1e400",
        "1" * 400,
    ]
    body = '{"webhookId": "w", "n": [' + ", ".join(literals) + "]}"
    script = (
        "const {signingString} = require(process.argv[1]);"
        "const body = require('fs').readFileSync(0, 'utf8');"
        "process.stdout.write(signingString(JSON.parse(body)));"
    )
    assert NODE is not None
    node_text = subprocess.run(
        [NODE, "-e", script, str(Path(__file__).parent.parent / "vectors" / "node_sign.js")],
        input=body.encode(),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    event = verify(body.encode(), sign(body, SECRET), SECRET)
    assert event.raw == json.loads(node_text, parse_float=Decimal)
    assert event.raw["n"][0] == Decimal("3.74")


# -- max_age: the replay window --------------------------------------------------------------

CREATED = datetime(2024, 5, 22, 19, 59, 5, 913000, tzinfo=timezone.utc)  # COMPLETED's createdAt
KEY = BY_NAME["documented_completed"]["signature"]


def _age_failure(max_age: Any, now: datetime, body: bytes = COMPLETED) -> Any:
    try:
        return verify(body, sign(body, SECRET), SECRET, max_age=max_age, now=now)
    except WebhookVerificationError as exc:
        assert isinstance(exc.reason, VerificationFailure)
        return exc.reason


@pytest.mark.parametrize("max_age", [600, 600.0, timedelta(minutes=10)])
def test_max_age_accepts_up_to_the_age_and_refuses_older(max_age: Any) -> None:
    exactly = CREATED + timedelta(minutes=10)
    assert isinstance(_age_failure(max_age, exactly), WebhookEvent)
    later = exactly + timedelta(milliseconds=1)
    assert _age_failure(max_age, later) is VerificationFailure.TOO_OLD
    with pytest.raises(WebhookVerificationError, match="max_age") as info:
        verify(COMPLETED, KEY, SECRET, max_age=max_age, now=later)
    assert info.value.reason is VerificationFailure.TOO_OLD


def test_max_age_tolerates_five_minutes_of_clock_skew_into_the_future() -> None:
    assert timedelta(minutes=5) == MAX_CLOCK_SKEW
    ahead = CREATED - MAX_CLOCK_SKEW  # our clock is behind the sender's by exactly the skew
    assert isinstance(_age_failure(60, ahead), WebhookEvent)
    too_far = ahead - timedelta(milliseconds=1)
    assert _age_failure(60, too_far) is VerificationFailure.IN_FUTURE
    assert _age_failure(timedelta(days=3650), too_far) is VerificationFailure.IN_FUTURE


def test_max_age_in_other_time_zones_and_from_epoch_milliseconds() -> None:
    now = (CREATED + timedelta(seconds=30)).astimezone(timezone(timedelta(hours=-7)))
    assert isinstance(_age_failure(31, now), WebhookEvent)
    assert _age_failure(29, now) is VerificationFailure.TOO_OLD
    millis = int(CREATED.timestamp() * 1000)
    body = b'{"webhookId": "w", "createdAt": ' + str(millis).encode() + b"}"
    assert isinstance(_age_failure(31, now, body), WebhookEvent)
    assert _age_failure(29, now, body) is VerificationFailure.TOO_OLD


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"webhookId": "w"}', VerificationFailure.NO_TIMESTAMP),
        (b'{"webhookId": "w", "createdAt": null}', VerificationFailure.NO_TIMESTAMP),
        # a nested createdAt is the payment's, not the event's
        (b'{"data": {"createdAt": "2024-05-22T19:59:05Z"}}', VerificationFailure.NO_TIMESTAMP),
        (b'{"webhookId": "w", "createdAt": "yesterday"}', VerificationFailure.INVALID_BODY),
        (b'{"webhookId": "w", "createdAt": 1e400}', VerificationFailure.NO_TIMESTAMP),
        (b'{"createdAt": "0001-01-01T00:00:00+14:00"}', VerificationFailure.TOO_OLD),
        (b'{"createdAt": "9999-12-31T23:59:59.999999-14:00"}', VerificationFailure.IN_FUTURE),
        (b'{"createdAt": 1e300}', VerificationFailure.INVALID_BODY),
    ],
)
def test_max_age_needs_a_parseable_created_at(body: bytes, reason: VerificationFailure) -> None:
    assert _age_failure(60, CREATED, body) is reason


def test_without_max_age_any_age_is_accepted() -> None:
    assert verify(COMPLETED, KEY, SECRET).created_at == CREATED
    assert verify(COMPLETED, KEY, SECRET, max_age=None, now=CREATED + timedelta(days=9999))
    assert verify(b'{"webhookId": "w"}', sign(b'{"webhookId": "w"}', SECRET), SECRET)


def test_max_age_defaults_to_the_current_time() -> None:
    fresh = json.dumps({"webhookId": "w", "createdAt": datetime.now(timezone.utc).isoformat()})
    assert verify(fresh, sign(fresh, SECRET), SECRET, max_age=60).webhook_id == "w"
    with pytest.raises(WebhookVerificationError) as info:
        verify(COMPLETED, KEY, SECRET, max_age=3600)
    assert info.value.reason is VerificationFailure.TOO_OLD


def test_the_age_is_checked_only_once_the_signature_matched() -> None:
    for signature in (None, "abc", "0" * 32):
        with pytest.raises(WebhookVerificationError) as info:
            verify(COMPLETED, signature, SECRET, max_age=1)
        assert info.value.reason in (
            VerificationFailure.MISSING_SIGNATURE,
            VerificationFailure.MALFORMED_SIGNATURE,
            VerificationFailure.SIGNATURE_MISMATCH,
        )


@pytest.mark.parametrize(
    "max_age",
    [0, -1, 0.0, True, "60", float("nan"), float("inf"), 1e300, timedelta(0), timedelta(-1), []],
)
def test_a_bad_max_age_is_a_validation_error(max_age: Any) -> None:
    with pytest.raises(ValidationError, match="max_age") as info:
        verify(COMPLETED, KEY, SECRET, max_age=max_age)
    assert info.value.field == "max_age"


@pytest.mark.parametrize("now", [datetime(2024, 5, 22), "2024-05-22T19:59:05Z", 1716407945.0])
def test_now_must_be_an_aware_datetime(now: Any) -> None:
    with pytest.raises(ValidationError, match="now") as info:
        verify(COMPLETED, KEY, SECRET, max_age=60, now=now)
    assert info.value.field == "now"
    with pytest.raises(ValidationError, match="now"):
        verify(COMPLETED, KEY, SECRET, now=now)  # checked with or without max_age


@pytest.mark.parametrize("max_body", [None, -1, "1024", True, 1.5])
def test_a_bad_max_body_is_a_validation_error(max_body: Any) -> None:
    with pytest.raises(ValidationError, match="max_body") as info:
        verify(COMPLETED, KEY, SECRET, max_body=max_body)
    assert info.value.field == "max_body"


def test_an_integer_too_long_for_int_is_read_as_javascript_reads_it() -> None:
    body = b'{"webhookId": "w", "n": ' + b"1" * 5000 + b', "m": -' + b"9" * 400 + b"}"
    key = hashlib.md5(jsjson.signature_base(jsjson.loads(body), SECRET)).hexdigest()
    assert sign(body, SECRET) == key
    event = verify(body, key, SECRET)
    assert event.raw["n"] is None  # Infinity, which JSON.stringify writes as null
    assert event.raw["m"] is None  # -Infinity too
    for invalid in (b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1,}'):
        with pytest.raises(WebhookVerificationError) as info:
            verify(invalid, "0" * 32, SECRET)
        assert info.value.reason is VerificationFailure.INVALID_BODY
