"""What a created session carries: its typed quote, and the checkout URL the answer may give."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from instax_async import (
    AmountDirection,
    AsyncSession,
    MockTransport,
    PaymentSession,
    Request,
    Response,
    SessionRequest,
)
from instax_async.models import CHECKOUT_URL_KEYS, MAX_CHECKOUT_URL_CHARS, checkout_url_in

REQUEST = SessionRequest.sending(from_amount="50", from_currency="USD", to_currency="USDT")


async def created(answer: dict[str, Any] | bytes, **kwargs: Any) -> PaymentSession:
    content = answer if isinstance(answer, bytes) else json.dumps(answer).encode()

    def handler(request: Request) -> Response:
        return Response(201, {}, content)

    kwargs.setdefault("base_url", "https://api.test")
    async with AsyncSession(transport=MockTransport(handler), **kwargs) as client:
        return await client.create_session(REQUEST)


# -- the typed quote ---------------------------------------------------------------------------


async def test_the_quote_is_typed_from_the_answer() -> None:
    # the API's answer: snake_case, amounts as JSON numbers (exact: parsed as Decimal)
    body = (
        b'{"id": "ps_1", "from_amount": 50, "to_amount": 48.50, "from_currency": "USD",'
        b' "to_currency": "USDT", "status": "initiated", "payment_direction": "sending"}'
    )
    session = await created(body)
    assert session.from_amount == Decimal("50") and isinstance(session.from_amount, Decimal)
    assert str(session.to_amount) == "48.50"  # the digits as sent
    assert (session.from_currency, session.to_currency) == ("USD", "USDT")
    assert session.status == "initiated"
    assert session.amount_direction is AmountDirection.SENDING
    assert session.raw["to_amount"] == Decimal("48.50")


def test_camel_case_keys_are_read_too() -> None:
    session = PaymentSession(
        id="ps_1",
        iframe_url="https://x/ps_1",
        raw={
            "fromAmount": "10.5",
            "toAmount": 10,
            "fromCurrency": "EUR",
            "toCurrency": "USDC",
            "amountDirection": "receiving",
        },
    )
    assert (session.from_amount, session.to_amount) == (Decimal("10.5"), Decimal(10))
    assert (session.from_currency, session.to_currency) == ("EUR", "USDC")
    assert session.amount_direction is AmountDirection.RECEIVING


@pytest.mark.parametrize(
    ("keys", "direction"),
    [
        ({"quote_direction": "receiving"}, AmountDirection.RECEIVING),
        ({"payment_direction": "sending", "quote_direction": "receiving"}, "sending"),
        ({"payment_direction": "both-ways"}, "both-ways"),  # unknown: the plain string
    ],
)
def test_the_direction_keys_in_order(keys: dict[str, str], direction: object) -> None:
    session = PaymentSession(id="ps_1", iframe_url="u", raw=keys)
    assert session.amount_direction == direction


def test_absent_fields_are_none() -> None:
    session = PaymentSession(id="ps_1", iframe_url="u", raw={"id": "ps_1"})
    for name in ("from_amount", "to_amount", "from_currency", "to_currency", "status"):
        assert getattr(session, name) is None, name
    assert session.amount_direction is None
    assert PaymentSession(id="ps_1", iframe_url="u").from_amount is None  # raw defaults to {}


@pytest.mark.parametrize(
    "value",
    [
        "ten",
        "",
        True,
        None,
        [50],
        {"amount": 50},
        "NaN",
        "-Infinity",
        float("nan"),
        Decimal("NaN"),
        "1e99999999999999999999",
        "5\ud800",
    ],
)
def test_malformed_amounts_are_none_and_raw_keeps_them(value: object) -> None:
    raw = {"from_amount": value, "to_amount": value, "fromAmount": "1"}
    session = PaymentSession(id="ps_1", iframe_url="u", raw=raw)
    expected = Decimal("1") if value is None else None  # None: the next key is tried
    assert session.from_amount == expected
    assert session.to_amount is None
    assert session.raw["from_amount"] is value


@pytest.mark.parametrize("value", [7, "", "   ", ["USD"], True])
def test_malformed_text_fields_are_none(value: object) -> None:
    raw = {k: value for k in ("from_currency", "to_currency", "status", "payment_direction")}
    session = PaymentSession(id="ps_1", iframe_url="u", raw=raw)
    assert session.from_currency is None and session.to_currency is None
    assert session.amount_direction is None
    assert session.status is None or session.status == value  # status keeps any str


def test_a_float_amount_is_read_through_its_repr() -> None:
    session = PaymentSession(id="ps_1", iframe_url="u", raw={"to_amount": 3.74})
    assert session.to_amount == Decimal("3.74")


# -- the checkout URL in the answer ------------------------------------------------------------


@pytest.mark.parametrize("key", CHECKOUT_URL_KEYS)
async def test_a_checkout_url_in_the_answer_is_used(key: str) -> None:
    url = "https://checkout.partner.example/w/abc?t=1"
    session = await created({"id": "ps_1", key: url})
    assert session.iframe_url == url


async def test_the_keys_are_tried_in_order() -> None:
    answer = {"id": "ps_1", "url": "https://c.example/3", "checkoutUrl": "https://c.example/1"}
    answer["widgetUrl"] = "https://c.example/2"
    assert (await created(answer)).iframe_url == "https://c.example/1"
    answer["checkoutUrl"] = "javascript:alert(1)"  # unusable: the next key is tried
    assert (await created(answer)).iframe_url == "https://c.example/2"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "JavaScript://%0aalert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "http://checkout.example/order/ps_1",
        "ftp://checkout.example/ps_1",
        "//checkout.example/ps_1",
        "/order/ps_1",
        "https://",
        "https://user:pw@checkout.example/ps_1",
        "https://checkout.example/ps 1",
        "https://checkout.example/\u00e9",
        "https://checkout.example/\r\nSet-Cookie: x",
        "https://[::1/x",
        "https://c.example/" + "x" * MAX_CHECKOUT_URL_CHARS,
        "",
        42,
        None,
        ["https://c.example/"],
        {"href": "https://c.example/"},
    ],
)
async def test_an_unusable_checkout_url_falls_back_to_the_template(url: object) -> None:
    session = await created({"id": "ps_1", "checkoutUrl": url, "url": url})
    assert session.iframe_url == "https://api.test/order/ps_1".replace("order", "embed")
    custom = await created({"id": "ps_1", "url": url}, checkout_url="https://c.example/{id}")
    assert custom.iframe_url == "https://c.example/ps_1"
    assert session.raw["checkoutUrl"] == url  # kept as it came


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/order/ps_1",
        "http://localhost:9/o",
        "http://[::1]:9/o",
        "HTTPS://C.X/",
    ],
)
def test_http_only_for_loopback_hosts(url: str) -> None:
    assert checkout_url_in({"checkoutUrl": url}) == url
