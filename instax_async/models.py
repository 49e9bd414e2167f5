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
from typing import TYPE_CHECKING, Any

# ``attr``, not ``attrs``: the same library and objects (``attrs`` re-exports ``attr``'s through
# six small modules of its own), and aiohttp, which the client loads, imports ``attr`` itself.
import attr

if TYPE_CHECKING:
    from ._status_models import BlockchainStatus, SessionStatus, SessionStatusValue
    from ._webhook_models import InvoiceData, TransactionStatus, WebhookData, WebhookEvent

__all__ = [
    "BlockchainStatus",
    "InvoiceData",
    "PaymentSession",
    "SessionStatus",
    "SessionStatusValue",
    "TransactionStatus",
    "WebhookData",
    "WebhookEvent",
]

#: Where each name defined elsewhere lives: imported on first access.
_LAZY: dict[str, str] = {
    "BLOCKCHAIN_FAILED_STATUSES": "._status_models",
    "BLOCKCHAIN_HASH_KEYS": "._status_models",
    "SESSION_TERMINAL_STATUSES": "._status_models",
    "BlockchainStatus": "._status_models",
    "SessionStatus": "._status_models",
    "SessionStatusValue": "._status_models",
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


def _fields(instance: object) -> tuple[attr.Attribute[Any], ...]:
    fields: tuple[attr.Attribute[Any], ...] = attr.fields(type(instance))  # type: ignore[arg-type]
    return fields


class _Compared:
    """``repr``, ``==`` and ``hash`` of a frozen attrs class, written out once here rather than
    generated and compiled for each class when its module is imported.

    A subclass is declared ``@attr.frozen(repr=False, eq=False)`` (attrs then keeps these), and
    gets what attrs would have generated: ``Name(field=value, ...)`` over its fields with
    ``repr=True``; equality of the fields with ``eq=True`` with an instance of the very same
    class (``NotImplemented`` otherwise); a hash of those fields (``TypeError`` if one is
    unhashable, as a ``dict`` is).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{field.name}={getattr(self, field.name)!r}" for field in _fields(self) if field.repr
        )
        return f"{type(self).__qualname__.rsplit('>.', 1)[-1]}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(
            getattr(self, field.name) == getattr(other, field.name)
            for field in _fields(self)
            if field.eq
        )

    def __hash__(self) -> int:
        return hash(
            (
                type(self),
                *(
                    getattr(self, field.name)
                    for field in _fields(self)
                    if (field.eq if field.hash is None else field.hash)
                ),
            )
        )


@attr.frozen(kw_only=True, repr=False, eq=False)
class PaymentSession(_Compared):
    """A payment session InstaXchange created.

    ``id`` is the session id (``ps_…``), ``iframe_url`` the checkout page to embed, ``raw`` the
    whole response body as a mapping (amounts computed by the API, status, wallet, …), and
    ``headers`` the response's headers (read-only; a request id for support is among them).
    """

    id: str
    iframe_url: str
    raw: Mapping[str, Any] = attr.field(factory=dict, repr=False)
    headers: Mapping[str, str] = attr.field(factory=dict, repr=False, eq=False)

    @property
    def status(self) -> str | None:
        """The session's status as the API reported it on creation (e.g. ``initiated``)."""
        value = self.raw.get("status")
        return value if isinstance(value, str) else None
