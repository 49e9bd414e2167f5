"""Payment-session requests: validated when built, so a bad one never reaches the API.

>>> from decimal import Decimal
>>> request = SessionRequest.sending(from_amount="50", from_currency="usd", to_currency="USDT")
>>> request.to_payload()["fromAmount"], request.to_payload()["fromCurrency"]
(Decimal('50'), 'USD')
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import operator
import re
import reprlib
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import attr  # the library ``attrs`` re-exports; see models.py

from ._frozen import Frozen
from ._validate import surrogate_at
from .errors import ValidationError
from .serialization import OpenStrEnum, encode_decimal, encode_str, wire_name

__all__ = [
    "AMOUNT_LIMIT",
    "AMOUNT_MAX_PLACES",
    "NEWEST_API_REQUIRED",
    "AmountDirection",
    "PaymentMethod",
    "SessionRequest",
    "ToCurrency",
    "WIRE_FIELDS",
    "check_require",
    "check_required",
    "check_text",
    "to_amount_decimal",
]


class AmountDirection(OpenStrEnum):
    """Which side of the exchange the caller fixes.

    ``SENDING``: the customer pays exactly ``from_amount``; the payout is computed.
    ``RECEIVING``: the payout is exactly ``to_amount``; what the customer pays is computed.
    """

    SENDING = "sending"
    RECEIVING = "receiving"


class ToCurrency(OpenStrEnum):
    """Payout currencies InstaXchange documents. The list grows; see ``allow_unlisted``."""

    USDT = "USDT"
    USDT_TRON = "USDT-TRON"
    USDT_AVALANCHE = "USDT-AVALANCHE"
    USDC = "USDC"
    USDC_POLYGON = "USDC_POLYGON"


class PaymentMethod(OpenStrEnum):
    """Payment methods of the newer API (``card`` when none is given). The list changes (``sepa``
    is in some versions of the provider's page and not in the newest); see ``allow_unlisted``."""

    CARD = "card"
    SEPA = "sepa"
    IDEAL = "ideal"
    BANCONTACT = "bancontact"
    APPLE_PAY = "apple-pay"
    GOOGLE_PAY = "google-pay"
    INTERAC = "interac"
    PIX = "pix"
    BLIK = "blik"


_EVM_CURRENCIES = frozenset({ToCurrency.USDT_AVALANCHE, ToCurrency.USDC_POLYGON})
# Patterns for rarely given fields, compiled (and cached by ``re``) on first use, not at import.
_EVM_ADDRESS = r"0x[0-9a-fA-F]{40}"
_EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


#: Every amount must be below this: one trillion units of any currency. Far above any card
#: payment, and small enough that the SDK, the sandbox and any client that reads the JSON number
#: handle it without exponent notation or overflow.
AMOUNT_LIMIT = Decimal(10**12)

#: The most decimal places an amount may have: 18, the precision of ERC-20 tokens, the finest
#: unit any payout currency uses. Trailing zeros do not count (``1.50000000000000000000`` is 1.5).
AMOUNT_MAX_PLACES = 18

_AMOUNT_RULE = (
    f"greater than 0 and below {AMOUNT_LIMIT:,f} (10**12), "
    f"with at most {AMOUNT_MAX_PLACES} decimal places"
)

# Values land in error messages, which the sandbox sends back over HTTP: keep them short, and
# never let a pathological value (a list nested 10,000 deep, a 5,000-digit int that ``repr``
# refuses) turn a ValidationError into another exception.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 2


def _shown(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"{Decimal(value):.6E}"
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):  # a huge int inside a container
        return f"a {type(value).__name__}"


def _fail(field: str, message: str) -> ValidationError:
    return ValidationError(f"{field}: {message}", field=field)


def _decimal_places(amount: Decimal) -> int:
    """Decimal places of a finite amount's value (trailing zeros do not count); context-free."""
    _sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + zeros))


def to_amount_decimal(value: object, field: str) -> Decimal:
    """Convert an amount to a ``Decimal`` within the SDK's range, or raise ``ValidationError``.

    Accepts ``Decimal``, ``int``, numeric ``str`` (exponent forms too: ``"1e3"`` is 1000) and
    ``float`` (through its repr, so ``3.74`` becomes ``Decimal("3.74")``). The amount must be
    greater than 0, below :data:`AMOUNT_LIMIT` (10**12) and have at most
    :data:`AMOUNT_MAX_PLACES` (18) decimal places; bool, NaN and infinities are refused.

    >>> to_amount_decimal("1e3", "from_amount")
    Decimal('1E+3')
    """
    if isinstance(value, bool):
        raise _fail(field, f"expected an amount (Decimal, int or numeric str), got {value!r}")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(field, f"expected a finite amount, got {value!r}")
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise _fail(
                field, f"expected a numeric string such as '10.50', got {_shown(value)}"
            ) from None
    else:
        raise _fail(
            field,
            f"expected a Decimal, int or numeric str, got {type(value).__name__} {_shown(value)}",
        )
    if not amount.is_finite():
        raise _fail(field, f"expected a finite amount, got {_shown(value)}")
    # Comparisons are exact whatever the exponent; nothing here expands ``1E+999999999``.
    if not 0 < amount < AMOUNT_LIMIT:
        raise _fail(field, f"must be {_AMOUNT_RULE}, got {_shown(value)}")
    places = _decimal_places(amount)
    if places > AMOUNT_MAX_PLACES:
        raise _fail(field, f"must be {_AMOUNT_RULE}, got {_shown(value)} ({places} decimal places)")
    _sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    if exponent < -AMOUNT_MAX_PLACES:
        # Only zeros lie past the last allowed place: drop them so that the JSON number sent
        # stays short (``format(amount, "f")`` would write every one of them).
        excess = -AMOUNT_MAX_PLACES - exponent
        amount = Decimal((0, digits[:-excess], -AMOUNT_MAX_PLACES))
    return amount


def check_text(value: object, field: str) -> str | None:
    """``value`` if it is ``None`` or a non-blank string UTF-8 can encode, else
    :class:`~instax_async.ValidationError` naming ``field``: the rule of a request's text
    fields (``account_ref_id``, ``webhook_ref`` …)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(field, f"expected a str, got {type(value).__name__} {_shown(value)}")
    if not value.strip():
        raise _fail(field, "must be a non-empty string")
    return _utf8(value, field)


def _utf8(text: str, field: str) -> str:
    # A lone surrogate ("\ud800", from a JSON escape or a bad decode) cannot be sent as UTF-8.
    index = surrogate_at(text)
    if index is not None:
        raise _fail(field, f"must be valid Unicode text, got a lone surrogate at index {index}")
    return text


def _direction(value: object) -> AmountDirection | None:
    if value is None:
        return None
    if isinstance(value, str):  # Enum's own error would repr any other value, however deep
        with contextlib.suppress(ValueError):
            return AmountDirection(value)
    raise _fail(
        "amount_direction",
        f"expected 'sending' or 'receiving' (or AmountDirection), got {_shown(value)}",
    )


def _ascii_letters(text: str, count: int) -> bool:
    """Whether ``text`` is exactly ``count`` letters A-Z or a-z."""
    return len(text) == count and text.isascii() and text.isalpha()


def _fiat_code(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ascii_letters(value, 3):
        raise _fail(
            "from_currency", f"expected a 3-letter ISO 4217 code such as 'USD', got {_shown(value)}"
        )
    return value.upper()


def _country(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ascii_letters(value, 2):
        raise _fail(
            "country", f"expected an ISO 3166 alpha-2 code such as 'DE', got {_shown(value)}"
        )
    return value.upper()


def _email(value: object) -> str | None:
    text = check_text(value, "email")
    if text is not None and not re.fullmatch(_EMAIL, text):
        raise _fail(
            "email", f"expected an e-mail address such as 'ada@example.com', got {_shown(text)}"
        )
    return text


def _return_url(value: object) -> str | None:
    text = check_text(value, "return_url")
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        raise _fail(
            "return_url",
            "expected an absolute http(s) URL such as 'https://shop.example/paid', "
            f"got {_shown(text)}",
        )
    return text


def _known_or_text(value: object, enum_cls: type[OpenStrEnum], field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum_cls):
        return value
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, f"expected a non-empty str, got {_shown(value)}")
    try:
        return enum_cls(value)
    except ValueError:
        # checked against allow_unlisted once every field is known
        return _utf8(value, field)


def _from_amount(value: object) -> Decimal | None:
    return None if value is None else to_amount_decimal(value, "from_amount")


def _to_amount(value: object) -> Decimal | None:
    return None if value is None else to_amount_decimal(value, "to_amount")


def _to_currency(value: object) -> str | None:
    return _known_or_text(value, ToCurrency, "to_currency")


def _method(value: object) -> str | None:
    return _known_or_text(value, PaymentMethod, "method")


def is_tron_address(address: str) -> bool:
    """True for a mainnet TRON address: base58check, 'T', 34 characters, valid checksum."""
    if len(address) != 34 or address[0] != "T":
        return False
    number = 0
    for char in address:
        digit = _B58_INDEX.get(char)
        if digit is None:
            return False
        number = number * 58 + digit
    raw = number.to_bytes(25, "big")  # 58**34 < 2**200: always fits
    payload, checksum = raw[:21], raw[21:]
    if payload[0] != 0x41:
        return False
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] == checksum


_OPTIONAL_FIELDS = frozenset(
    {
        "account_ref_id",
        "address",
        "webhook_ref",
        "return_url",
        "method",
        "email",
        "first_name",
        "last_name",
        "country",
        "allow_unlisted",
    }
)


#: ``object.__setattr__`` bound to an instance: how a frozen class sets its own fields.
_setattr_of = object.__setattr__.__get__


@attr.frozen(kw_only=True, init=False, repr=False, eq=False)
class SessionRequest(Frozen):
    """What to ask InstaXchange for when creating a payment session.

    Build one with :meth:`sending` or :meth:`receiving`; the constructor applies the same rules.
    Every rule is checked here, so a request that exists is a request the API accepts:

    - ``sending``: ``from_amount`` is required and ``to_amount`` must not be given;
      ``receiving``: the other way round. Both need ``from_currency`` and ``to_currency``.
    - Amounts are ``Decimal`` (``int``, numeric ``str`` and ``float`` via its repr accepted),
      greater than zero, below :data:`AMOUNT_LIMIT` (10**12) and with at most
      :data:`AMOUNT_MAX_PLACES` (18) decimal places.
    - ``to_currency`` is one of :class:`ToCurrency`. A payout currency InstaXchange added after
      this release can be sent with ``allow_unlisted=True``, which also lets ``method`` take a
      value that :class:`PaymentMethod` does not list yet.
    - ``from_currency``: a 3-letter ISO 4217 code, upper-cased; ``country``: ISO 3166 alpha-2.
    - ``address``: no whitespace; a valid TRON address for ``USDT-TRON``; ``0x`` + 40 hex digits
      for ``USDT-AVALANCHE`` and ``USDC_POLYGON``.
    - ``return_url``: an absolute http(s) URL. Text fields: non-empty strings that UTF-8 can
      encode (no lone surrogates).

    Any rule broken raises :class:`~instax_async.ValidationError` naming the field.
    """

    amount_direction: AmountDirection | None = None
    from_currency: str | None = None
    to_currency: str | None = None
    from_amount: Decimal | None = None
    to_amount: Decimal | None = None
    account_ref_id: str | None = None
    address: str | None = None
    webhook_ref: str | None = None
    return_url: str | None = None
    method: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    country: str | None = None
    allow_unlisted: bool = False

    # Written out rather than generated from a converter per field, each of which attrs would
    # inspect (``inspect.signature``) and compile into ``__init__`` when this module is
    # imported: each field converted in order, then the rules.
    def __init__(
        self,
        *,
        amount_direction: object = None,
        from_currency: object = None,
        to_currency: object = None,
        from_amount: object = None,
        to_amount: object = None,
        account_ref_id: object = None,
        address: object = None,
        webhook_ref: object = None,
        return_url: object = None,
        method: object = None,
        email: object = None,
        first_name: object = None,
        last_name: object = None,
        country: object = None,
        allow_unlisted: bool = False,
    ) -> None:
        set_ = _setattr_of(self)
        set_("amount_direction", _direction(amount_direction))
        set_("from_currency", _fiat_code(from_currency))
        set_("to_currency", _to_currency(to_currency))
        set_("from_amount", _from_amount(from_amount))
        set_("to_amount", _to_amount(to_amount))
        set_("account_ref_id", check_text(account_ref_id, "account_ref_id"))
        set_("address", check_text(address, "address"))
        set_("webhook_ref", check_text(webhook_ref, "webhook_ref"))
        set_("return_url", _return_url(return_url))
        set_("method", _method(method))
        set_("email", _email(email))
        set_("first_name", check_text(first_name, "first_name"))
        set_("last_name", check_text(last_name, "last_name"))
        set_("country", _country(country))
        set_("allow_unlisted", allow_unlisted)
        self.__attrs_post_init__()

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.allow_unlisted, bool):
            raise _fail(
                "allow_unlisted", f"expected True or False, got {_shown(self.allow_unlisted)}"
            )
        direction = self.amount_direction
        if direction is None:
            raise _fail("amount_direction", "is required: 'sending' or 'receiving'")
        if self.from_currency is None:
            raise _fail("from_currency", "is required (a fiat code such as 'USD')")
        if self.to_currency is None:
            raise _fail(
                "to_currency", f"is required: one of {', '.join(c.value for c in ToCurrency)}"
            )
        if direction is AmountDirection.SENDING:
            if self.from_amount is None:
                raise _fail("from_amount", "is required when amount_direction is 'sending'")
            if self.to_amount is not None:
                raise _fail(
                    "to_amount",
                    "must not be given when amount_direction is 'sending' (the API computes it)",
                )
        else:
            if self.to_amount is None:
                raise _fail("to_amount", "is required when amount_direction is 'receiving'")
            if self.from_amount is not None:
                raise _fail(
                    "from_amount",
                    "must not be given when amount_direction is 'receiving' (the API computes it)",
                )
        if not isinstance(self.to_currency, ToCurrency) and not self.allow_unlisted:
            raise _fail(
                "to_currency",
                f"unknown currency {_shown(self.to_currency)}; expected one of "
                f"{', '.join(c.value for c in ToCurrency)} "
                "(pass allow_unlisted=True to send a currency this release does not list)",
            )
        if (
            self.method is not None
            and not isinstance(self.method, PaymentMethod)
            and not self.allow_unlisted
        ):
            raise _fail(
                "method",
                f"unknown payment method {_shown(self.method)}; expected one of "
                f"{', '.join(m.value for m in PaymentMethod)} "
                "(pass allow_unlisted=True to send a method this release does not list)",
            )
        if self.address is not None:
            self._check_address(self.address)

    def _check_address(self, address: str) -> None:
        if any(c.isspace() for c in address):
            raise _fail("address", f"must not contain whitespace, got {_shown(address)}")
        if self.to_currency == ToCurrency.USDT_TRON and not is_tron_address(address):
            raise _fail(
                "address",
                f"expected a TRON address for USDT-TRON (base58check, starts with 'T', "
                f"34 characters), got {_shown(address)}",
            )
        if self.to_currency in _EVM_CURRENCIES and not re.fullmatch(_EVM_ADDRESS, address):
            raise _fail(
                "address",
                f"expected an EVM address for {self.to_currency} ('0x' followed by 40 hex "
                f"digits), got {_shown(address)}",
            )

    @classmethod
    def sending(
        cls,
        *,
        from_amount: Decimal | int | str | float,
        from_currency: str,
        to_currency: ToCurrency | str,
        **optional: Any,
    ) -> SessionRequest:
        """A session in which the customer pays exactly ``from_amount`` of ``from_currency``.

        >>> SessionRequest.sending(
        ...     from_amount="25.00", from_currency="EUR", to_currency="USDC"
        ... )  # doctest: +ELLIPSIS
        SessionRequest(amount_direction=<AmountDirection.SENDING: 'sending'>, ...)
        """
        _check_optional(optional, "to_amount")
        return cls(
            amount_direction=AmountDirection.SENDING,
            from_amount=from_amount,
            from_currency=from_currency,
            to_currency=to_currency,
            **optional,
        )

    @classmethod
    def receiving(
        cls,
        *,
        to_amount: Decimal | int | str | float,
        from_currency: str,
        to_currency: ToCurrency | str,
        **optional: Any,
    ) -> SessionRequest:
        """A session whose payout is exactly ``to_amount`` of ``to_currency``.

        >>> SessionRequest.receiving(
        ...     to_amount=10, from_currency="USD", to_currency="USDT"
        ... )  # doctest: +ELLIPSIS
        SessionRequest(amount_direction=<AmountDirection.RECEIVING: 'receiving'>, ...)
        """
        _check_optional(optional, "from_amount")
        return cls(
            amount_direction=AmountDirection.RECEIVING,
            to_amount=to_amount,
            from_currency=from_currency,
            to_currency=to_currency,
            **optional,
        )

    def to_json(self) -> bytes:
        """The exact body ``create_session`` sends: ``to_payload()`` as compact UTF-8 JSON.

        >>> request = SessionRequest.sending(
        ...     from_amount="0.1", from_currency="USD", to_currency="USDT"
        ... )
        >>> request.to_json()
        b'{"amountDirection":"sending","fromCurrency":"USD","toCurrency":"USDT","fromAmount":0.1}'
        """
        parts = []
        for key, value in zip(_WIRE_KEYS, _wire_values(self), strict=True):
            if value is None:
                continue
            # every field but the amounts is a str or a str enum, whose str content is its
            # value: the C encoder reads that directly, without calling the enum's __str__
            parts.append(
                key + (encode_str(value) if type(value) is not Decimal else encode_decimal(value))
            )
        return ("{" + ",".join(parts) + "}").encode("utf-8")

    def with_account_ref_id(self, account_ref_id: str) -> SessionRequest:
        """This request if it has an ``account_ref_id`` (its own value wins), else a copy of it
        with ``account_ref_id`` (checked as the field is). The request itself never changes.

        >>> request = SessionRequest.sending(from_amount=5, from_currency="USD", to_currency="USDT")
        >>> request.with_account_ref_id("merchant-1").account_ref_id, request.account_ref_id
        ('merchant-1', None)
        """
        if self.account_ref_id is not None:
            return self
        value = check_text(account_ref_id, "account_ref_id")
        # A copy of checked fields, not a new request: nothing to check again (and cheap, as
        # create_session makes one per request when the client has an account_ref_id).
        twin = object.__new__(type(self))
        set_ = _setattr_of(twin)
        for name in _FIELD_NAMES:
            set_(name, getattr(self, name))
        set_("account_ref_id", value)
        return twin

    def to_payload(self) -> dict[str, Any]:
        """The JSON body for ``POST /api/session``: camelCase keys, unset fields left out.

        Amounts stay ``Decimal``; the client writes them as exact JSON numbers.
        """
        payload: dict[str, Any] = {}
        for field, key in WIRE_FIELDS:
            value = getattr(self, field)
            if value is not None:
                payload[key] = value.value if isinstance(value, OpenStrEnum) else value
        return payload


def _check_optional(optional: dict[str, Any], computed_amount: str) -> None:
    # The computed amount passes through so that the direction rule names it precisely.
    unknown = sorted(set(optional) - _OPTIONAL_FIELDS - {computed_amount})
    if unknown:
        raise _fail(
            unknown[0],
            "is not a SessionRequest field; optional fields are "
            + ", ".join(sorted(_OPTIONAL_FIELDS)),
        )


#: ``(field, wire key)`` of each field a request sends, in wire order: direction first, then
#: currencies and amounts, then the optional fields.
WIRE_FIELDS: tuple[tuple[str, str], ...] = tuple(
    (f.name, wire_name(f)) for f in attr.fields(SessionRequest) if f.name != "allow_unlisted"
)

# The keys as ``to_json`` writes them (quoted, with the colon), and all the values in one call.
_WIRE_KEYS: tuple[str, ...] = tuple(encode_str(key) + ":" for _, key in WIRE_FIELDS)
_wire_values: Callable[[SessionRequest], tuple[Any, ...]] = operator.attrgetter(
    *(name for name, _ in WIRE_FIELDS)
)

_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in attr.fields(SessionRequest))

NEWEST_API_REQUIRED: tuple[str, ...] = ("account_ref_id", "address")
"""The fields the newest versions of the provider's documentation mark mandatory:
``AsyncSession(require=NEWEST_API_REQUIRED)`` refuses a request without them, before sending it.
"""

_REQUIRABLE = tuple(name for name, _ in WIRE_FIELDS)


def check_require(value: object) -> tuple[str, ...]:
    """``value`` as a tuple of :class:`SessionRequest` field names (``()`` for ``None``), each
    once, in the order given; else :class:`~instax_async.ValidationError` naming ``require``."""
    if value is None:
        return ()
    expected = (
        "expected a tuple of SessionRequest field names such as NEWEST_API_REQUIRED "
        f"{NEWEST_API_REQUIRED!r}"
    )
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list, set, frozenset)):
        raise _fail("require", f"{expected}, got {_shown(value)}")
    names: list[str] = []
    for name in value:
        if name not in _REQUIRABLE:
            raise _fail(
                "require",
                f"{expected}; {_shown(name)} is not one (the fields are {', '.join(_REQUIRABLE)})",
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def check_required(request: SessionRequest, fields: tuple[str, ...], why: str) -> None:
    """Raise :class:`~instax_async.ValidationError` naming the first of ``fields`` that
    ``request`` leaves unset; ``why`` says who requires it (``"by this client (…)"``)."""
    for field in fields:
        if getattr(request, field) is None:
            raise _fail(field, f"is required {why}")
