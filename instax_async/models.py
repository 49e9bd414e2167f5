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

# ``attr``, not ``attrs``: see _frozen.py
import attr

from ._frozen import Frozen

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


@attr.frozen(kw_only=True, repr=False, eq=False)
class PaymentSession(Frozen):
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
