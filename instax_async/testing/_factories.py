"""Signed webhooks of the documented shape, for unit tests of a merchant's own endpoint."""

from __future__ import annotations

import reprlib
from decimal import Decimal

from .._validate import surrogate_at
from ..errors import ValidationError
from ..payloads import to_amount_decimal

__all__ = ["make_webhook"]

#: The header names exactly as InstaXchange's sender writes them (HTTP treats them
#: case-insensitively; a test's plain dict does not).
CONTENT_TYPE = "Content-Type"
SIGNATURE = "X-InstaXWH-KEY"

# Plain-notation digits an amount may have: far beyond any real payment, small enough that a
# typo such as "1e999999" fails here instead of producing a megabyte of zeros.
_MAX_AMOUNT_CHARS = 40


def _shown(value: object) -> str:
    # Short, and never an error of its own (``repr`` refuses an int of 5,000 digits).
    return reprlib.repr(value) if isinstance(value, str) else type(value).__name__


def _required(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{field}: expected a non-empty str, got {_shown(value)}", field=field
        )
    return _unicode(value, field)


def _optional(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{field}: expected a non-empty str or None, got {_shown(value)}", field=field
        )
    return _unicode(value, field)


def _unicode(text: str, field: str) -> str:
    # A surrogate code point, lone or half of a pair split in two, has no UTF-8: the body
    # could not be sent.
    index = surrogate_at(text)
    if index is not None:
        raise ValidationError(
            f"{field}: must be valid Unicode text, got a surrogate code point "
            f"(U+{ord(text[index]):04X}) at index {index}",
            field=field,
        )
    return text


def _amount(value: object, field: str) -> Decimal:
    amount = to_amount_decimal(value, field)
    if len(format(amount, "f")) > _MAX_AMOUNT_CHARS:
        raise ValidationError(
            f"{field}: expected an amount of at most {_MAX_AMOUNT_CHARS} digits, got {value!r}",
            field=field,
        )
    return amount


def make_webhook(
    secret: str,
    *,
    status: str = "completed",
    reference: str | None = None,
    session_id: str | None = None,
    status_reason: str | None = None,
    withdraw_tx_id: str | None = None,
    amount_in_fiat: Decimal | int | str = "50",
    fiat_currency: str = "USD",
    amount_in_crypto: Decimal | int | str = "48.5",
    crypto_currency: str = "USDT",
) -> tuple[bytes, dict[str, str]]:
    """A webhook body and its headers exactly as InstaXchange sends them, signed with ``secret``.

    The body has every field of the documented examples, in their order, ``createdAt`` now
    (so it passes a receiver's replay window) and fresh ids where none are given; amounts are
    exact JSON numbers. A ``failed`` status gets the documented failed shape: ``statusReason``
    ``"Do Not Honor"`` unless ``status_reason`` says otherwise, and ``additionalData: null``
    unless a ``withdraw_tx_id`` is given. The headers are ``Content-Type`` and
    ``X-InstaXWH-KEY``, so a test client can post both as they are::

        body, headers = make_webhook("whsec_test", reference="order-1")
        response = await client.post("/webhooks/instax", data=body, headers=headers)

    and ``webhooks.verify(body, headers["X-InstaXWH-KEY"], "whsec_test")`` accepts them.

    Amounts take a ``Decimal``, an ``int`` or a numeric ``str`` (``float`` is converted through
    its repr, as everywhere in the SDK).

    :raises ValidationError: an argument has the wrong type or value (a text argument with a
        surrogate code point, which UTF-8 cannot encode, too); ``error.field`` names it.
    """
    if not isinstance(secret, str) or not secret:
        # The value is never echoed: it may be the real secret in the wrong type.
        raise ValidationError(
            f"secret: expected the webhook secret as a non-empty str, got {type(secret).__name__}",
            field="secret",
        )
    status = _required(status, "status")
    reference = _optional(reference, "reference")
    session_id = _optional(session_id, "session_id")
    status_reason = _optional(status_reason, "status_reason")
    withdraw_tx_id = _optional(withdraw_tx_id, "withdraw_tx_id")
    fiat_currency = _required(fiat_currency, "fiat_currency")
    crypto_currency = _required(crypto_currency, "crypto_currency")
    fiat_amount = _amount(amount_in_fiat, "amount_in_fiat")
    crypto_amount = _amount(amount_in_crypto, "amount_in_crypto")

    # Imported here: loading the pytest plugin (which imports this package) stays cheap.
    from ..sandbox.events import webhook_payload
    from ..serialization import dumps
    from ..webhooks import sign

    payload = webhook_payload(
        status=status,
        reference=reference,
        session_id=session_id,
        status_reason=status_reason,
        withdraw_tx_id=withdraw_tx_id,
        amount_in_fiat=fiat_amount,
        fiat_currency=fiat_currency,
        amount_in_crypto=crypto_amount,
        crypto_currency=crypto_currency,
    )
    if status == "failed" and withdraw_tx_id is None:
        payload["data"]["additionalData"] = None  # as in the documented failed example
    body = dumps(payload)
    return body, {CONTENT_TYPE: "application/json", SIGNATURE: sign(body, secret)}
