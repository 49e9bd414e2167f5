"""What the API answers with, as typed, immutable objects.

Every model keeps the mapping it was built from in ``raw``, so fields this release does not
model are never lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["PaymentSession"]


@attrs.frozen(kw_only=True)
class PaymentSession:
    """A payment session InstaXchange created.

    ``id`` is the session id (``ps_…``), ``iframe_url`` the checkout page to embed, ``raw`` the
    whole response body as a mapping (amounts computed by the API, status, wallet, …).
    """

    id: str
    iframe_url: str
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def status(self) -> str | None:
        """The session's status as the API reported it on creation (e.g. ``initiated``)."""
        value = self.raw.get("status")
        return value if isinstance(value, str) else None
