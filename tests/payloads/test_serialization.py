from __future__ import annotations

import json
import tracemalloc
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instax_async import SessionRequest, ValidationError, serialization
from instax_async.models import PaymentSession, WebhookEvent
from instax_async.serialization import (
    MAX_JSON_DEPTH,
    OpenStrEnum,
    converter,
    dumps,
    loads,
    parse_datetime,
    structure_json,
)


def test_decimal_is_written_exactly() -> None:
    assert dumps({"a": Decimal("0.1")}) == b'{"a":0.1}'
    big = Decimal("12345678901234567890.123456789")
    assert dumps({"a": big}) == b'{"a":12345678901234567890.123456789}'
    assert dumps({"a": Decimal("1E+2"), "b": Decimal("1E-7")}) == b'{"a":100,"b":0.0000001}'


def test_other_values_and_containers() -> None:
    out = dumps({"s": "é/\n", "n": None, "t": True, "i": 3, "l": [Decimal("1.50"), "x"]})
    assert out == '{"s":"é/\\n","n":null,"t":true,"i":3,"l":[1.50,"x"]}'.encode()


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimal_round_trips_through_the_wire(value: Decimal) -> None:
    assert loads(dumps({"v": value}))["v"] == value


def test_loads_keeps_floats_exact() -> None:
    assert loads(b'{"a": 0.0421399418187522}')["a"] == Decimal("0.0421399418187522")


class Colour(OpenStrEnum):
    RED = "red"


@attrs.frozen(kw_only=True)
class Thing:
    amount_in_fiat: Decimal
    colour: Colour | str
    maybe: Colour | str | None = None
    created_at: datetime
    odd_name: str | None = attrs.field(default=None, metadata={"wire": "Odd_Name"})
    raw: dict[str, object] = attrs.field(factory=dict)


def test_converter_naming_rule_hooks_and_raw() -> None:
    data = {
        "amountInFiat": 3.74,
        "colour": "red",
        "maybe": "teal",
        "createdAt": "2024-05-22T19:58:54.097Z",
        "Odd_Name": "x",
        "extra": 1,
    }
    thing = converter.structure(data, Thing)
    assert thing.amount_in_fiat == Decimal("3.74")
    assert thing.colour is Colour.RED and thing.colour == "red" and str(thing.colour) == "red"
    assert thing.maybe == "teal" and not isinstance(thing.maybe, Colour)
    assert thing.created_at == datetime(2024, 5, 22, 19, 58, 54, 97000, tzinfo=timezone.utc)
    assert thing.odd_name == "x"
    assert thing.raw is data


@pytest.mark.parametrize("bad", [True, [1], "abc", "Infinity"])
def test_decimal_hook_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(Exception, match="number"):
        converter.structure(bad, Decimal)


def test_datetime_hook_variants() -> None:
    naive = datetime(2024, 1, 1)
    assert converter.structure(naive, datetime).tzinfo is timezone.utc
    assert converter.structure(0, datetime) == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert parse_datetime("2024-01-01T00:00:00").tzinfo is timezone.utc
    assert parse_datetime("2024-01-01T00:00:00+02:00").utcoffset() is not None
    with pytest.raises(Exception, match="ISO 8601"):
        converter.structure([], datetime)


def test_open_enum_rejects_non_strings() -> None:
    with pytest.raises(Exception):  # noqa: B017 - cattrs wraps the ValueError
        converter.structure(5, Colour)
    with pytest.raises(Exception):  # noqa: B017
        converter.structure(5, Colour | str | None)
    assert converter.structure(None, Colour | str | None) is None


def test_dumps_matches_json_for_plain_values() -> None:
    value = {"a": [1, 2.5, "x"], "b": {"c": None}}
    assert json.loads(dumps(value)) == value


def test_non_finite_decimals_and_odd_keys() -> None:
    with pytest.raises(ValueError, match="JSON number"):
        dumps({"a": Decimal("NaN")})
    assert dumps({1: (Decimal("2.50"),), "k": 1.5}) == b'{"1":[2.50],"k":1.5}'

    class Sub(Decimal):
        pass

    assert dumps([Sub("1.0")]) == b"[1.0]"


def test_loads_bytes_encodings_and_bom() -> None:
    assert loads('{"a": 1}'.encode("utf-16")) == {"a": 1}
    with pytest.raises(ValueError, match="BOM"):
        loads("\ufeff{}")


@attrs.frozen(kw_only=True)
class Optional_:
    name: str | None = None
    when: datetime | None = None


def test_optional_fields_bind_their_hook() -> None:
    thing = converter.structure({"name": 5, "when": "2024-01-01T00:00:00Z"}, Optional_)
    assert thing.name == "5"
    assert thing.when == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert converter.structure({}, Optional_) == Optional_()
    assert converter.structure({"name": None, "when": None}, Optional_) == Optional_()


@pytest.mark.parametrize("encoding", ["str", "utf-8", "utf-16"])
def test_loads_refuses_json_nested_deeper_than_the_limit(encoding: str) -> None:
    def encoded(text: str) -> str | bytes:
        return text if encoding == "str" else text.encode(encoding)

    limit = MAX_JSON_DEPTH
    assert loads(encoded("[" * limit + "]" * limit)) == json.loads("[" * limit + "]" * limit)
    for text in (
        "[" * (limit + 1) + "]" * (limit + 1),
        "[" * 100_000,
        '{"a":' * 100_000,
        '{"a":' * (limit + 1) + "1.5" + "}" * (limit + 1),
    ):
        with pytest.raises(ValueError, match=f"nested deeper than {limit} levels"):
            loads(encoded(text))
    in_a_string = json.dumps({"message": "[" * 10_000})
    assert loads(encoded(in_a_string)) == {"message": "[" * 10_000}


def test_loads_turns_a_recursion_error_into_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import instax_async.serialization as serialization

    # no depth check of its own: the C parser's recursion limit is what stops it
    monkeypatch.setattr(serialization, "too_deep", lambda text, limit: False)
    with pytest.raises(ValueError, match="nested"):
        loads(b"[" * 100_000)


def test_loads_reads_utf16_and_utf32_bodies_that_start_like_an_object() -> None:
    # '{' then a NUL byte: not UTF-8, whatever the first byte says
    for encoding in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        assert loads('{"amount":1.5}'.encode(encoding)) == {"amount": Decimal("1.5")}


def test_loads_refuses_deep_nesting_only_past_the_limit() -> None:
    assert loads(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(ValueError, match="nested deeper"):
        loads(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))


# -- structure_json: the converter's result, built without a call per field -------------------

_WIRE_VALUES = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.sampled_from(["completed", "failed", "pending", "weird", "2024-05-22T19:58:54.097Z"]),
    st.sampled_from(["2024-05-22T19:58:54+02:00", "2024-05-22", "not a date", " 2024-05-22Z"]),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _webhook_objects(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), _WIRE_VALUES, max_size=len(keys))


_DATA_KEYS = [
    "amountInFiat",
    "fiatCurrency",
    "amountInCrypto",
    "cryptoCurrency",
    "status",
    "statusReason",
    "walletAddress",
    "additionalData",
    "sessionId",
    "createdAt",
    "x",
]
_INVOICE_KEYS = [
    "Email",
    "Name",
    "Credit_card_number",
    "Invoice_ID",
    "Status",
    "Wallet_address",
    "Details",
    "Invoice_date",
    "Deposit_tx_ID",
    "Deposit_tx_amount",
    "Deposit_tx_status",
    "Withdraw_tx_ID",
    "Withdraw_tx_amount",
    "Withdraw_tx_status",
]
_EVENT_KEYS = ["webhookId", "transactionId", "reference", "createdAt", "raw", "y"]


@st.composite
def _webhooks(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(_webhook_objects(_EVENT_KEYS))
    for key, keys in (("data", _DATA_KEYS), ("invoiceData", _INVOICE_KEYS)):
        if draw(st.booleans()):
            event[key] = draw(st.one_of(_webhook_objects(keys), _WIRE_VALUES))
    return event


def _outcome(function: Any, data: Any) -> Any:
    try:
        return function(data, WebhookEvent)
    except Exception as exc:  # compared by type and text
        return (type(exc), str(exc), [str(e) for e in getattr(exc, "exceptions", [])])


@settings(max_examples=600, deadline=None)
@given(_webhooks())
def test_structure_json_builds_what_the_converter_builds(data: dict[str, Any]) -> None:
    fast, slow = _outcome(structure_json, data), _outcome(converter.structure, data)
    assert fast == slow
    if isinstance(slow, WebhookEvent):
        assert fast.raw is data and slow.raw is data
        for name in ("data", "invoice_data"):
            a, b = getattr(fast, name), getattr(slow, name)
            assert repr(a) == repr(b)  # the same types, enum members and all
            for field in attrs.fields(type(b)) if b is not None else ():
                assert type(getattr(a, field.name)) is type(getattr(b, field.name))


def test_structure_json_builds_the_documented_event_without_the_converter() -> None:
    body = json.loads(
        (Path(__file__).parent.parent / "vectors" / "signatures.json").read_text(encoding="utf-8")
    )[0]["body"]
    data = json.loads(body, parse_float=Decimal)
    assert structure_json(data, WebhookEvent) == converter.structure(data, WebhookEvent)
    assert serialization._fast_builder(WebhookEvent) is not None
    assert serialization._fast_builder(PaymentSession) is None  # a required field


def test_structure_json_hands_other_classes_and_values_to_the_converter() -> None:
    @attrs.frozen(kw_only=True)
    class Required:
        name: str

    assert serialization._fast_builder(Required) is None
    assert structure_json({"name": "a"}, Required) == Required(name="a")
    with pytest.raises(Exception, match="Required"):
        structure_json({}, Required)


@attrs.frozen(kw_only=True)
class _Required:
    name: str


@attrs.frozen(kw_only=True)
class _SelfFactory:
    inner: _Required = attrs.field(default=attrs.Factory(lambda self: None, takes_self=True))


@attrs.frozen(kw_only=True)
class _Nested:
    inner: _Required = attrs.field(factory=lambda: _Required(name="x"))


@attrs.frozen(kw_only=True)
class _OptionalNested:
    inner: _Required | None = None


@attrs.frozen(kw_only=True)
class _Listed:
    items: list[str] | None = None


@pytest.mark.parametrize("cls", [_Required, _SelfFactory, _Nested, _OptionalNested, _Listed])
def test_classes_the_builder_does_not_take(cls: type[Any]) -> None:
    assert serialization._fast_builder(cls) is None


# -- dumps: what JSON cannot hold is a ValidationError naming where it is ----------------------


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


@pytest.mark.parametrize(
    ("value", "field", "match"),
    [
        ({"data": {"items": [1, "a", None, {2}]}}, "data.items[3]", "a set cannot be written"),
        (
            {"data": {"name": "Zo\ud800"}},
            "data.name",
            r"surrogate code point \(U\+D800\) at index 2",
        ),
        ({"r": ["ok", "\ud83d\ude00"]}, "r[1]", r"U\+D83D"),  # a pair split in two code points
        ({"n": [10**5000]}, "n[0]", "integer too long"),
        ({"a": {"b": Decimal("NaN")}}, "a.b", "^a.b: NaN cannot be written as a JSON number$"),
        ({"a": Decimal("-Infinity")}, "a", "-Infinity cannot"),
        ({"a": [float("inf")]}, "a[0]", "inf cannot"),
        ({"a": Decimal("1E+5000")}, "a", "1.000000E[+]5000 has more than 4,300 digits"),
        ({"x\ud800": 1}, '["x\\ud800"]', "its key must be valid Unicode"),
        ({"a b": {"0": object()}}, '["a b"]["0"]', "an object cannot"),
        ({7: [{"k": b"x"}]}, '["7"][0].k', "a bytes cannot"),
        ({"k" * 50: {1}}, '["' + "k" * 40 + '..."]', "set"),
        ([(), {"ok": 1, "é": frozenset()}], "[1].é", "frozenset"),
        ({"x": {"ok": [1.5]}, "y": {"z": {1}}}, "y.z", "set"),  # after what can be written
        ({"a": {10**5000: 1}}, "a", "a key too long to write as JSON"),
    ],
)
def test_dumps_refuses_what_json_cannot_hold_naming_its_path(
    value: Any, field: str, match: str
) -> None:
    with pytest.raises(ValidationError, match=match) as caught:
        dumps(value)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    str(caught.value).encode("utf-8")  # the message itself can be logged


def test_dumps_refuses_a_whole_value_json_cannot_hold_without_a_path() -> None:
    with pytest.raises(ValidationError, match=r"^a set cannot be written as JSON") as caught:
        dumps({1, 2})
    assert caught.value.field is None
    looped: dict[str, Any] = {"a": []}
    looped["a"].append(looped)
    for value in (looped, _nested(5000), {"a": _nested(200, {"b": {1}})}):
        with pytest.raises(ValidationError, match=r"^nested deeper than 128 levels") as caught:
            dumps(value)
        assert caught.value.field is None
    assert dumps(_nested(100, {"b": 1})).startswith(b'{"a":' * 100)  # within the limit: written


def test_dumps_names_a_deep_part_of_a_wide_value() -> None:
    # 126 levels of long keys over 20,000 items: the path is written once, for the error.
    key = "k" * 60
    value: Any = [1] * 20_000 + [{"bad": {1}}]
    for _ in range(126):  # with the list and the innermost object: 128 levels
        value = {key: value}
    with pytest.raises(ValidationError, match="set") as caught:
        dumps(value)
    assert caught.value.field == f'["{"k" * 40}..."]' * 126 + "[20000].bad"
    with pytest.raises(ValidationError, match=r"^a key too long to write as JSON") as caught:
        dumps({10**5000: 1})
    assert caught.value.field is None


def test_dumps_on_a_nearly_exhausted_stack_is_still_a_validation_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def exhausted(*_args: Any) -> Any:
        raise RecursionError

    monkeypatch.setattr(serialization, "_find_unwritable", exhausted)
    with pytest.raises(ValidationError, match=r"^nested deeper than 128 levels") as caught:
        dumps({"a": {1}})
    assert caught.value.field is None


def _nested(depth: int, inner: Any = 1) -> Any:
    value = inner
    for _ in range(depth):
        value = {"a": value}
    return value


def test_dumps_never_writes_out_a_huge_exponent() -> None:
    # A few bytes of Decimal that would be megabytes (1E+9999999), or gigabytes and half a
    # minute (1E+999999999), of digits: refused before any is written.
    for text in [
        "1E+9999999",
        "1E+999999999",
        "-1E+999999999999",
        "1E-999999999",
        "-123456789E-999999999",
        "0E-999999999",
        "9.99E+999999999999999999",
    ]:
        result, peak = _peak_bytes(lambda text=text: dumps({"data": {"amount": Decimal(text)}}))
        assert isinstance(result, ValidationError), (text, result)
        assert result.field == "data.amount" and "4,300 digits" in str(result)
        assert peak < 64 * 1024, (text, peak)
    # Zero has one digit whatever its exponent.
    assert dumps([Decimal("0E+999999999"), Decimal("-0E+5000")]) == b"[0,-0]"


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("1E+4299", True),  # 4,300 digits
        ("-1E+4299", True),
        ("1E+4300", False),
        ("1E-4299", True),  # 0.000…1: a 0 and 4,299 places
        ("1E-4300", False),
        ("0." + "0" * 4298 + "5", True),
        ("-0." + "0" * 4299 + "5", False),
        ("0E-4299", True),  # 0.000…0: 4,300 digits
        ("0E-4300", False),
        ("1." + "2" * 5000, True),  # digits it holds: written, however many (as they came)
    ],
)
def test_dumps_writes_what_an_exponent_puts_up_to_4300_digits(text: str, written: bool) -> None:
    assert serialization.MAX_NUMBER_DIGITS == 4300
    value = Decimal(text)
    if written:
        assert dumps([value]) == f"[{value:f}]".encode()
        assert serialization.encode_decimal(value) == format(value, "f")
    else:
        with pytest.raises(ValidationError, match="more than 4,300 digits"):
            dumps([value])
        with pytest.raises(ValidationError, match="more than 4,300 digits"):
            serialization.encode_decimal(value)


@settings(max_examples=300, deadline=None)
@given(
    sign=st.integers(0, 1),
    digits=st.lists(st.integers(0, 9), min_size=1, max_size=60),
    exponent=st.one_of(st.integers(-5000, 5000), st.integers(-(10**17), 10**17)),
)
def test_dumps_writes_a_decimal_exactly_or_refuses_it_by_its_length(
    sign: int, digits: list[int], exponent: int
) -> None:
    value = Decimal((sign, tuple(digits), exponent))
    try:
        written = dumps(value)
    except ValidationError as exc:
        assert "more than 4,300 digits" in str(exc)
        # refused only for what would be more than 4,300 digits written out
        if abs(exponent) <= 10_000:
            assert len(format(value, "f").lstrip("-").replace(".", "")) > 4300
        else:
            assert not (value.is_zero() and exponent > 0)  # zero is "0" with any exponent above 0
        return
    assert Decimal(written.decode()) == value and b"E" not in written
    # at most the digits it holds, and 4,300 more
    assert len(written.lstrip(b"-").replace(b".", b"")) <= len(digits) + 4300


def test_loads_refuses_an_exponent_past_what_a_decimal_holds_as_value_error() -> None:
    for body in (b'{"a":1e9999999999999999999999}', b"[0.1e1000000000000000000001]"):
        with pytest.raises(ValueError, match="exponent is beyond what a Decimal holds"):
            loads(body)
    # within a Decimal's range: read exactly, however large, without writing it out
    result, peak = _peak_bytes(lambda: loads(b'{"a":1e999999999,"b":-1E-999999999999}'))
    assert result == {"a": Decimal("1E+999999999"), "b": Decimal("-1E-999999999999")}
    assert peak < 64 * 1024


async def test_an_api_answer_with_an_exponent_past_a_decimal_is_an_api_status_error() -> None:
    from instax_async import APIStatusError, AsyncSession
    from instax_async.transports import MockTransport, Response

    body = b'{"id":"ps_1","amount":1e9999999999999999999999}'
    transport = MockTransport(lambda request: Response(status=201, headers={}, content=body))
    async with AsyncSession(
        api_key="sk_test_unit", base_url="http://api.test", transport=transport
    ) as session:
        with pytest.raises(APIStatusError, match="exponent") as caught:
            await session.create_session(
                SessionRequest.sending(from_amount="5", from_currency="USD", to_currency="USDT")
            )
    assert caught.value.body == body
