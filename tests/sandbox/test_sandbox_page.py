"""The checkout page's HTML, without a browser: amounts for people, a safe way back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from instax_async.sandbox.page import checkout_page, format_amount, safe_return_url


@pytest.mark.parametrize(
    ("value", "fiat", "crypto"),
    [
        ("12345.67", "12,345.67", "12,345.67"),
        ("12933.323892", "12,933.32", "12,933.323892"),
        ("12345.675", "12,345.68", "12,345.675"),
        ("50", "50.00", "50"),
        ("48.500000", "48.50", "48.5"),
        ("0.0421399418187522", "0.04", "0.0421399"),
        ("0.000000123456789", "0.00", "0.000000123456"),
        ("1234567.1234567", "1,234,567.12", "1,234,567.123456"),
        ("0.9999999", "1.00", "0.999999"),
        ("0", "0.00", "0"),
        ("1E+30", "1,000,000,000,000,000,000,000,000,000,000.00", "1" + ",000" * 10),
        ("1E+50", "1E+50", "1E+50"),
        ("NaN", "NaN", "NaN"),
        ("n/a", "n/a", "n/a"),
    ],
)
def test_amounts_for_people(value: str, fiat: str, crypto: str) -> None:
    amount: Any = Decimal(value) if value != "n/a" else value
    assert format_amount(amount, crypto=False) == fiat
    assert format_amount(amount, crypto=True) == crypto


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/x",
        "/relative",
        "https://",
        "https://shop.example/ thanks",
        "https://shop.example/\nthanks",
        "https://shop.example/\x7f",
        "http://[::1",
        "https://shop.example/" + "x" * 3000,
        "",
        None,
        42,
    ],
)
def test_only_http_return_urls_are_followed(url: object) -> None:
    assert safe_return_url(url) is None


def session(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "ps_1",
        "status": "initiated",
        "from_amount": Decimal("12345.67"),
        "from_currency": "EUR",
        "to_amount": Decimal("12933.323892"),
        "to_currency": "USDC_POLYGON",
        "return_url": None,
    }
    record.update(changes)
    return record


def test_the_page_escapes_the_return_url_and_skips_an_unsafe_one() -> None:
    url = 'https://shop.example/thanks?a=1&b="<x>"'
    assert safe_return_url(url) == url
    page = checkout_page(session(return_url=url))
    assert 'data-return-url="https://shop.example/thanks?a=1&amp;b=&quot;&lt;x&gt;&quot;"' in page
    assert 'href="https://shop.example/thanks?a=1&amp;b=&quot;&lt;x&gt;&quot;"' in page
    unsafe = checkout_page(session(return_url="javascript:alert(document.cookie)"))
    assert "javascript:alert" not in unsafe and 'id="return"' not in unsafe
    assert "data-return-url" not in checkout_page(session())


def test_the_page_shows_amounts_for_people_and_exact_ones_on_hover() -> None:
    page = checkout_page(session())
    assert '<span class="num">12,345.67</span> <span class="cur">EUR</span>' in page
    assert '<span class="num">12,933.323892</span> <span class="cur">USDC_POLYGON</span>' in page
    assert 'title="12933.323892 USDC_POLYGON"' in page
    exponent = checkout_page(session(from_amount=Decimal("1E+3"), to_amount=Decimal("9.7E+2")))
    assert 'title="1000 EUR"' in exponent and 'title="970 USDC_POLYGON"' in exponent
    assert '<span class="num">1,000.00</span>' in exponent and ">970</span>" in exponent
    settled = checkout_page(session(status="completed"))
    assert "Payment already completed" in settled and '<button id="pay" disabled>' in settled
