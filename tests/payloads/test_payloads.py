from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instax_async import (
    AmountDirection,
    PaymentMethod,
    SessionRequest,
    ToCurrency,
    ValidationError,
)
from instax_async.payloads import (
    AMOUNT_LIMIT,
    AMOUNT_MAX_PLACES,
    is_tron_address,
    to_amount_decimal,
)

TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
EVM = "0x" + "aB" * 20


def sending(**kw: object) -> SessionRequest:
    base: dict[str, object] = {"from_amount": "10", "from_currency": "USD", "to_currency": "USDT"}
    base.update(kw)
    return SessionRequest.sending(**base)  # type: ignore[arg-type]


def test_sending_payload_is_camel_case_with_unset_fields_left_out() -> None:
    request = SessionRequest.sending(
        from_amount="50.10",
        from_currency="usd",
        to_currency=ToCurrency.USDT_TRON,
        address=TRON,
        webhook_ref="order-1",
        return_url="https://shop.example/paid",
        account_ref_id="acct-9",
    )
    assert request.to_payload() == {
        "amountDirection": "sending",
        "fromCurrency": "USD",
        "toCurrency": "USDT-TRON",
        "fromAmount": Decimal("50.10"),
        "accountRefId": "acct-9",
        "address": TRON,
        "webhookRef": "order-1",
        "returnUrl": "https://shop.example/paid",
    }


def test_receiving_payload_and_newer_fields() -> None:
    request = SessionRequest.receiving(
        to_amount=10,
        from_currency="EUR",
        to_currency="USDC",
        method="apple-pay",
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        country="gb",
    )
    payload = request.to_payload()
    assert payload == {
        "amountDirection": "receiving",
        "fromCurrency": "EUR",
        "toCurrency": "USDC",
        "toAmount": Decimal(10),
        "method": "apple-pay",
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "country": "GB",
    }
    assert all(type(v) in (str, Decimal) for v in payload.values())
    assert request.method is PaymentMethod.APPLE_PAY


def test_direction_accepts_enum_or_string_and_request_is_frozen() -> None:
    a = SessionRequest(
        amount_direction="sending", from_amount=1, from_currency="USD", to_currency="USDT"
    )
    b = SessionRequest(
        amount_direction=AmountDirection.SENDING,
        from_amount=1,
        from_currency="USD",
        to_currency="USDT",
    )
    assert a == b
    assert a.amount_direction is AmountDirection.SENDING
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.from_amount = Decimal(2)  # type: ignore[misc]


def test_float_goes_through_its_repr() -> None:
    assert sending(from_amount=3.74).from_amount == Decimal("3.74")
    assert str(sending(from_amount=0.1).from_amount) == "0.1"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"to_amount": "5"}, "to_amount"),
        ({"from_amount": None}, "from_amount"),
        ({"from_amount": True}, "from_amount"),
        ({"from_amount": "ten"}, "from_amount"),
        ({"from_amount": "NaN"}, "from_amount"),
        ({"from_amount": float("nan")}, "from_amount"),
        ({"from_amount": float("inf")}, "from_amount"),
        ({"from_amount": Decimal("Infinity")}, "from_amount"),
        ({"from_amount": 0}, "from_amount"),
        ({"from_amount": "-1"}, "from_amount"),
        ({"from_amount": [1]}, "from_amount"),
        ({"from_currency": "US"}, "from_currency"),
        ({"from_currency": 840}, "from_currency"),
        ({"from_currency": None}, "from_currency"),
        ({"to_currency": "LTC"}, "to_currency"),
        ({"to_currency": None}, "to_currency"),
        ({"to_currency": ""}, "to_currency"),
        ({"to_currency": 5}, "to_currency"),
        ({"address": ""}, "address"),
        ({"address": "abc def"}, "address"),
        ({"address": 12}, "address"),
        ({"to_currency": "USDT-TRON", "address": "T" + "1" * 33}, "address"),
        ({"to_currency": "USDT-TRON", "address": TRON[:-1] + "u"}, "address"),
        ({"to_currency": "USDT-AVALANCHE", "address": TRON}, "address"),
        ({"to_currency": "USDC_POLYGON", "address": "0x1234"}, "address"),
        ({"return_url": "ftp://x.example/"}, "return_url"),
        ({"return_url": "/relative"}, "return_url"),
        ({"webhook_ref": ""}, "webhook_ref"),
        ({"webhook_ref": "   "}, "webhook_ref"),
        ({"account_ref_id": 5}, "account_ref_id"),
        ({"method": "carrier-pigeon"}, "method"),
        ({"method": 3}, "method"),
        ({"email": "not-an-email"}, "email"),
        ({"country": "DEU"}, "country"),
        ({"allow_unlisted": "yes"}, "allow_unlisted"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_values_raise_validation_error_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        sending(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)


def test_receiving_rules() -> None:
    with pytest.raises(ValidationError, match="from_amount: must not be given"):
        SessionRequest.receiving(
            to_amount=1, from_currency="USD", to_currency="USDT", from_amount=1
        )
    with pytest.raises(ValidationError, match="to_amount: is required"):
        SessionRequest(amount_direction="receiving", from_currency="USD", to_currency="USDT")


def test_unknown_direction_and_missing_direction() -> None:
    with pytest.raises(ValidationError, match="'sending' or 'receiving'") as info:
        SessionRequest(amount_direction="both", from_currency="USD", to_currency="USDT")
    assert info.value.field == "amount_direction"
    with pytest.raises(ValidationError, match="amount_direction: is required"):
        SessionRequest(from_currency="USD", to_currency="USDT", from_amount=1)


def test_unknown_currency_message_lists_the_known_ones_and_the_opt_out() -> None:
    with pytest.raises(ValidationError) as info:
        sending(to_currency="LTC")
    message = str(info.value)
    for currency in ToCurrency:
        assert currency.value in message
    assert "allow_unlisted=True" in message
    request = sending(to_currency="LTC", allow_unlisted=True, method="wire")
    assert request.to_payload()["toCurrency"] == "LTC"
    assert request.to_payload()["method"] == "wire"
    assert "allowUnlisted" not in request.to_payload()


def test_sepa_is_a_listed_method_and_unlisted_ones_need_the_opt_in_as_currencies_do() -> None:
    request = sending(method="sepa")
    assert request.method is PaymentMethod.SEPA
    assert b'"method":"sepa"' in request.to_json()
    with pytest.raises(ValidationError) as info:
        sending(method="wire")
    assert info.value.field == "method"
    assert "sepa" in str(info.value) and "allow_unlisted=True" in str(info.value)
    assert sending(method="wire", allow_unlisted=True).method == "wire"


def test_address_rules_per_currency() -> None:
    assert sending(to_currency="USDT-TRON", address=TRON).address == TRON
    assert sending(to_currency="USDT-AVALANCHE", address=EVM).address == EVM
    assert sending(to_currency="USDC_POLYGON", address=EVM).address == EVM
    assert sending(to_currency="USDT", address="anything-without-spaces").address


def test_tron_address_checks() -> None:
    assert is_tron_address(TRON)
    assert not is_tron_address("T" + "0" * 33)  # '0' is not base58
    assert not is_tron_address("T" + "z" * 33)  # too large for 25 bytes
    assert not is_tron_address("A" + TRON[1:])
    assert not is_tron_address(TRON[:-1])
    # a valid base58check address with another version byte
    assert not is_tron_address("1" * 34)


LARGEST = Decimal("999999999999.999999999999999999")  # 30 digits: more than Decimal's default 28

amounts = st.one_of(
    st.integers(min_value=0, max_value=AMOUNT_MAX_PLACES).flatmap(
        lambda places: st.decimals(min_value=Decimal("1e-18"), max_value=LARGEST, places=places)
    ),
    st.integers(min_value=1, max_value=10**12 - 1),
    # from 0.01 up, a float's repr never has more than 18 decimal places
    st.floats(min_value=0.01, max_value=1e12, exclude_max=True),
)


@given(amounts)
def test_any_positive_amount_becomes_an_equal_decimal(amount: object) -> None:
    request = sending(from_amount=amount)
    assert isinstance(request.from_amount, Decimal)
    expected = Decimal(repr(amount)) if isinstance(amount, float) else Decimal(amount)  # type: ignore[arg-type]
    assert request.from_amount == expected
    assert sending(from_amount=str(amount)).from_amount == Decimal(str(amount))


@pytest.mark.parametrize(
    "value",
    [
        "1e3",
        "1E+3",
        Decimal("1e3"),
        1000,
        1000.0,
        " 1000 ",
        "1000.000000000000000000000000",  # zeros past the 18th place do not count
    ],
)
def test_exponent_forms_and_trailing_zeros_within_the_bound_are_accepted(value: object) -> None:
    request = sending(from_amount=value)
    assert request.from_amount == 1000
    number = request.to_json().rsplit(b":", 1)[1].rstrip(b"}")
    assert Decimal(number.decode()) == 1000 and b"E" not in number and len(number) <= 31


def test_the_bounds_themselves() -> None:
    assert AMOUNT_LIMIT == 10**12 and AMOUNT_MAX_PLACES == 18
    assert to_amount_decimal(LARGEST, "from_amount") == LARGEST
    assert to_amount_decimal(str(LARGEST), "x") == LARGEST
    assert to_amount_decimal(999999999999.9999, "x") == Decimal("999999999999.9999")
    assert to_amount_decimal("0.000000000000000001", "x") == Decimal("1e-18")
    assert to_amount_decimal(10**12 - 1, "x") == Decimal(999999999999)
    # only zeros are dropped past the 18th place, so the JSON number sent stays short
    padded = to_amount_decimal("1." + "0" * 10_000, "x")
    assert padded == 1 and padded.as_tuple().exponent == -18


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (AMOUNT_LIMIT, "Decimal('1000000000000')"),
        (10**12, "1000000000000"),
        ("1e12", "'1e12'"),
        (1e12, "1000000000000.0"),
        (1e30, "1e+30"),
        ("1e30", "'1e30'"),
        (Decimal("1e30"), "Decimal('1E+30')"),
        ("1E+400", "'1E+400'"),
        (Decimal("1e400"), "Decimal('1E+400')"),
        (Decimal("1e999999999999"), "Decimal('1E+999999999999')"),
        (10**400, "1.000000E+400"),
        # repr() of this int raises ValueError (and so would pytest's id for it)
        pytest.param(10**5000, "1.000000E+5000", id="10**5000"),
        (1e300, "1e+300"),
        (Decimal("1e-400"), "Decimal('1E-400') (400 decimal places)"),
        ("1e-19", "'1e-19' (19 decimal places)"),
        ("0.0000000000000000001", "(19 decimal places)"),
        (1e-300, "1e-300 (300 decimal places)"),
        (0, "got 0"),
        ("-0", "got '-0'"),
        (Decimal("-1e400"), "Decimal('-1E+400')"),
    ],
)
def test_amounts_outside_the_bounds_name_the_field_and_the_range(value: object, shown: str) -> None:
    for field, builder in (
        ("from_amount", lambda v: sending(from_amount=v)),
        (
            "to_amount",
            lambda v: SessionRequest.receiving(
                to_amount=v, from_currency="USD", to_currency="USDT"
            ),
        ),
    ):
        with pytest.raises(ValidationError) as info:
            builder(value)
        message = str(info.value)
        assert info.value.field == field
        assert message.startswith(f"{field}: must be greater than 0 and below 1,000,000,000,000")
        assert "at most 18 decimal places" in message
        assert shown in message
        assert len(message) < 200


def test_pathological_values_give_short_messages_and_only_validation_error() -> None:
    nested: list[object] = []
    for _ in range(100_000):
        nested = [nested]
    for value in (nested, {"a": nested}, [10**5000], "9" * 1_000_000):
        with pytest.raises(ValidationError) as info:
            sending(from_amount=value)
        assert info.value.field == "from_amount" and len(str(info.value)) < 200
    base = {"amount_direction": "sending", "from_currency": "USD", "to_currency": "USDT"}
    for field in attrs.fields(SessionRequest):
        if field.name == "from_amount":
            continue  # tested above
        for value in (nested, {"a": nested}, 10**5000):
            with pytest.raises(ValidationError) as info:
                SessionRequest(**{**base, "from_amount": 1, field.name: value})
            assert info.value.field == field.name and len(str(info.value)) < 300


@pytest.mark.parametrize(
    "field", ["first_name", "last_name", "webhook_ref", "address", "account_ref_id", "email"]
)
def test_text_that_utf8_cannot_encode_is_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="lone surrogate") as info:
        sending(**{field: "ab\ud800@x.example"})
    assert info.value.field == field
    for field_, value in (("to_currency", "USD\udc80"), ("method", "pi\udfffx")):
        with pytest.raises(ValidationError, match="lone surrogate") as info:
            sending(**{field_: value, "allow_unlisted": True})
        assert info.value.field == field_
    assert sending(first_name="Zoë 😀").first_name == "Zoë 😀"


@given(st.one_of(st.text(), st.none(), st.booleans(), st.floats(), st.integers(max_value=0)))
def test_bad_amounts_only_ever_raise_validation_error(value: object) -> None:
    try:
        request = sending(from_amount=value)
    except ValidationError as exc:
        assert exc.field == "from_amount"
    else:
        assert request.from_amount is not None and request.from_amount > 0


@given(st.text(max_size=12))
def test_arbitrary_currency_text_never_escapes_as_another_error(text: str) -> None:
    for field in ("from_currency", "to_currency", "address", "return_url", "email", "country"):
        try:
            sending(**{field: text})
        except ValidationError as exc:
            assert exc.field == field


optional_text = st.one_of(
    st.none(), st.text(min_size=1).filter(lambda t: t.strip() and not any(c.isspace() for c in t))
)


@given(
    amount=amounts,
    reference=optional_text,
    name=st.one_of(st.none(), st.text(min_size=1).filter(str.strip)),
    direction=st.sampled_from(["sending", "receiving"]),
)
def test_to_json_is_exactly_the_encoded_payload(
    amount: object, reference: str | None, name: str | None, direction: str
) -> None:
    from instax_async.serialization import dumps

    builder = SessionRequest.sending if direction == "sending" else SessionRequest.receiving
    key = "from_amount" if direction == "sending" else "to_amount"
    request = builder(  # type: ignore[operator]
        **{key: amount},
        from_currency="EUR",
        to_currency="USDT-AVALANCHE",
        webhook_ref=reference,
        first_name=name,
        method="pix",
    )
    assert request.to_json() == dumps(request.to_payload())
