"""What the API answers with, as typed, immutable objects.

Every model keeps the mapping it was built from in ``raw``, so fields this release does not
model are never lost.

:class:`PaymentSession`, which every ``create_session`` returns, is defined here. The others are
defined in two private modules and loaded from here on first access (PEP 562), so that importing
the client builds no class it does not need yet: the status models (:class:`BlockchainStatus`,
:class:`SessionStatus`) with the first status request, the webhook models
(:class:`WebhookEvent` and its parts) with the first webhook. Import them from here (or from
``instax_async``), as always.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

# ``attr``, not ``attrs``: see _frozen.py
import attr

from ._frozen import Frozen
from ._validate import is_checkout_url

if TYPE_CHECKING:
    from ._status_models import BlockchainStatus, SessionStatus, SessionStatusValue
    from ._webhook_models import (
        AmountMismatch,
        InvoiceData,
        TransactionStatus,
        WebhookData,
        WebhookEvent,
    )
    from .payloads import AmountDirection

__all__ = [
    "CHECKOUT_URL_KEYS",
    "MAX_CHECKOUT_URL_CHARS",
    "AmountMismatch",
    "BlockchainStatus",
    "InvoiceData",
    "PaymentSession",
    "SessionStatus",
    "SessionStatusValue",
    "TransactionStatus",
    "WebhookData",
    "WebhookEvent",
    "checkout_url_in",
]

#: Where each name defined elsewhere lives: imported on first access.
_LAZY: dict[str, str] = {
    "BLOCKCHAIN_FAILED_STATUSES": "._status_models",
    "BLOCKCHAIN_HASH_KEYS": "._status_models",
    "SESSION_TERMINAL_STATUSES": "._status_models",
    "BlockchainStatus": "._status_models",
    "SessionStatus": "._status_models",
    "SessionStatusValue": "._status_models",
    "AmountMismatch": "._webhook_models",
    "InvoiceData": "._webhook_models",
    "TransactionStatus": "._webhook_models",
    "WebhookData": "._webhook_models",
    "WebhookEvent": "._webhook_models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __package__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


CHECKOUT_URL_KEYS = (
    "checkoutUrl",
    "checkout_url",
    "widgetUrl",
    "widget_url",
    "iframeUrl",
    "iframe_url",
    "paymentUrl",
    "payment_url",
    "url",
)
"""Keys of a create-session answer that may carry the checkout page's URL, in the order they are
tried (:attr:`PaymentSession.iframe_url`). The newest provider pages say the iframe's URL is to
come from the API (its "Widget URL API", whose endpoint and answer are unknown); these are the
names public payment clients use for such a URL. ``redirectUrl`` is left out: elsewhere it names
the merchant's own return page, which must never become the checkout."""

MAX_CHECKOUT_URL_CHARS = 4096
"""The longest checkout URL taken from an answer (browsers and servers refuse much longer ones)."""

# Where each typed field of a PaymentSession is read from, in the order the keys are tried:
# the snake_case names the API answers with, then the camelCase names of its requests.
_FROM_AMOUNT_KEYS = ("from_amount", "fromAmount")
_TO_AMOUNT_KEYS = ("to_amount", "toAmount")
_FROM_CURRENCY_KEYS = ("from_currency", "fromCurrency")
_TO_CURRENCY_KEYS = ("to_currency", "toCurrency")
_DIRECTION_KEYS = ("payment_direction", "quote_direction", "amountDirection", "amount_direction")


def checkout_url_in(data: Mapping[str, Any]) -> str | None:
    """The checkout URL a create-session answer carries (:data:`CHECKOUT_URL_KEYS`), or ``None``.

    Only an absolute ``https`` URL is taken (``http`` only on a loopback host, as the sandbox
    serves), of visible ASCII, at most :data:`MAX_CHECKOUT_URL_CHARS` long, without a user name
    or password: never another scheme (``javascript:``, ``data:``), whatever the answer says.
    A key holding anything else is skipped, and the next one tried.
    """
    for key in CHECKOUT_URL_KEYS:
        value = data.get(key)
        if value is not None and is_checkout_url(value, MAX_CHECKOUT_URL_CHARS):
            assert isinstance(value, str)
            return value
    return None


def _first(raw: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = raw.get(key)
        if value is not None:
            return value
    return None


def _amount(raw: Mapping[str, Any], keys: tuple[str, ...]) -> Decimal | None:
    value = _first(raw, keys)
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        return None
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else value)
    except (ArithmeticError, ValueError):
        return None
    return amount if amount.is_finite() else None


def _text(raw: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    value = _first(raw, keys)
    return value if isinstance(value, str) and value.strip() else None


@attr.frozen(kw_only=True, repr=False, eq=False)
class PaymentSession(Frozen):
    """A payment session InstaXchange created.

    ``id`` is the session id (``ps_…``), ``iframe_url`` the checkout page to embed, ``raw`` the
    whole response body as a mapping (amounts computed by the API, status, wallet, …), and
    ``headers`` the response's headers (read-only; a request id for support is among them).

    ``iframe_url`` is the checkout URL the answer carries, if it carries one
    (:data:`CHECKOUT_URL_KEYS`, ``https`` only), else the client's ``checkout_url`` template
    with the id (``{base_url}/embed/{id}`` by default).

    The quote is typed, read from ``raw`` when present (the API's snake_case keys first, then
    the camelCase ones): :attr:`from_amount` and :attr:`to_amount` (``from_amount`` /
    ``fromAmount``, ``to_amount`` / ``toAmount``) as exact ``Decimal``, :attr:`from_currency`,
    :attr:`to_currency`, :attr:`status` and :attr:`amount_direction` (``payment_direction``,
    ``quote_direction``, ``amountDirection``). Each is ``None`` when the answer lacks it or
    holds something else there (a number where text belongs, text that is not a number): it
    never raises, and ``raw`` keeps the value as it came.

    >>> session = PaymentSession(id="ps_1", iframe_url="https://instaxchange.com/embed/ps_1",
    ...                          raw={"from_amount": 50, "to_amount": 48.5, "to_currency": "USDT"})
    >>> session.from_amount, session.to_amount, session.to_currency, session.status
    (Decimal('50'), Decimal('48.5'), 'USDT', None)
    """

    id: str
    iframe_url: str
    raw: Mapping[str, Any] = attr.field(factory=dict, repr=False)
    headers: Mapping[str, str] = attr.field(factory=dict, repr=False, eq=False)

    # Properties over ``raw``, not fields: a session is built on every create_session, and
    # most callers read none of them.

    @property
    def status(self) -> str | None:
        """The session's status as the API reported it on creation (e.g. ``initiated``)."""
        value = self.raw.get("status")
        return value if isinstance(value, str) else None

    @property
    def from_amount(self) -> Decimal | None:
        """What the customer pays (given, or computed by the API for ``receiving``)."""
        return _amount(self.raw, _FROM_AMOUNT_KEYS)

    @property
    def to_amount(self) -> Decimal | None:
        """The payout (given, or computed by the API for ``sending``)."""
        return _amount(self.raw, _TO_AMOUNT_KEYS)

    @property
    def from_currency(self) -> str | None:
        """The fiat currency the customer pays in."""
        return _text(self.raw, _FROM_CURRENCY_KEYS)

    @property
    def to_currency(self) -> str | None:
        """The payout currency."""
        return _text(self.raw, _TO_CURRENCY_KEYS)

    @property
    def amount_direction(self) -> AmountDirection | str | None:
        """Which amount was fixed: an :class:`~instax_async.AmountDirection` when known, the
        plain string otherwise."""
        value = _text(self.raw, _DIRECTION_KEYS)
        if value is None:
            return None
        from .payloads import AmountDirection

        try:
            return AmountDirection(value)
        except ValueError:
            return value
