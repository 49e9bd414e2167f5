"""The status models: :class:`BlockchainStatus`, :class:`SessionStatus` and
:class:`SessionStatusValue`.

Their public home is :mod:`instax_async.models`, which loads this module on the first access to
one of them (the client does so on its first status request): importing the client does not
build these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attr

from ._frozen import Frozen
from .serialization import OpenStrEnum

__all__ = [
    "BLOCKCHAIN_FAILED_STATUSES",
    "BLOCKCHAIN_HASH_KEYS",
    "SESSION_TERMINAL_STATUSES",
    "BlockchainStatus",
    "SessionStatus",
    "SessionStatusValue",
]


#: Keys that may carry a payout's on-chain hash, in the order they are tried. The response shape
#: of ``/utils/blockchain-status`` is not documented, so every spelling seen in the wild counts.
BLOCKCHAIN_HASH_KEYS = ("hash", "txHash", "transactionHash", "blockchainHash", "tx_hash")

#: Blockchain statuses (compared case-insensitively) after which no hash will ever come.
BLOCKCHAIN_FAILED_STATUSES = frozenset(
    {"failed", "failure", "rejected", "error", "cancelled", "canceled", "reverted", "expired"}
)


def _first_text(sources: tuple[Mapping[str, Any], ...], keys: tuple[str, ...]) -> str | None:
    for source in sources:
        for key in keys:
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


@attr.frozen(kw_only=True, repr=False, eq=False)
class BlockchainStatus(Frozen):
    """What ``GET /utils/blockchain-status?txId=…`` says about one payout transaction.

    ``hash`` is the on-chain transaction hash once the payout is broadcast (``None`` before),
    ``status`` the provider's status string, if it sent one, and ``raw`` the whole answer. Two
    statuses are equal when ``tx_id``, ``hash`` and ``status`` are; ``raw`` is not compared, so
    a field that changes on every answer (a timestamp) does not count as a status change.

    >>> answer = {"data": {"txHash": "0xabc"}}
    >>> status = BlockchainStatus.from_mapping("wd_1", answer)
    >>> status.hash, status.is_final
    ('0xabc', True)
    """

    tx_id: str
    hash: str | None = None
    status: str | None = None
    raw: Mapping[str, Any] = attr.field(factory=dict, repr=False, eq=False)

    @classmethod
    def from_mapping(cls, tx_id: str, data: Mapping[str, Any]) -> BlockchainStatus:
        """Read an answer of the blockchain-status endpoint.

        The hash is the first non-empty string among :data:`BLOCKCHAIN_HASH_KEYS` at the top
        level, then inside a nested ``data`` object; the status is ``status`` (top level first,
        then ``data``). Nothing is dropped: the whole mapping is kept in ``raw``.
        """
        nested = data.get("data")
        sources = (data, nested) if isinstance(nested, Mapping) else (data,)
        return cls(
            tx_id=tx_id,
            hash=_first_text(sources, BLOCKCHAIN_HASH_KEYS),
            status=_first_text(sources, ("status",)),
            raw=data,
        )

    @property
    def is_failed(self) -> bool:
        """True when the status says the payout failed for good (``failed``, ``rejected``,
        ``error``, ``cancelled``, …, in any case): polling it further is pointless."""
        return self.status is not None and self.status.lower() in BLOCKCHAIN_FAILED_STATUSES

    @property
    def is_final(self) -> bool:
        """True once there is a hash, or the payout failed: where a default poll stops."""
        return self.hash is not None or self.is_failed


class SessionStatusValue(OpenStrEnum):
    """A payment session's ``sessionStatus``. Values not listed arrive as plain strings."""

    INITIATED = "initiated"
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


#: Session statuses after which a session does not change any more. Plain strings: a str enum
#: member hashes by its name, so it is looked up through ``str()``.
SESSION_TERMINAL_STATUSES = frozenset({"completed", "failed"})


@attr.frozen(kw_only=True, repr=False, eq=False)
class SessionStatus(Frozen):
    """A payment session's state: ``GET /api/session/{sessionId}/status``.

    Every field is optional, so a sparse answer still reads; amounts are exact ``Decimal``,
    ``created_at`` / ``updated_at`` are timezone-aware, and ``raw`` is the whole answer.

    >>> status.session_status, status.is_terminal  # doctest: +SKIP
    (<SessionStatusValue.COMPLETED: 'completed'>, True)
    """

    session_id: str | None = None
    webhook_ref: str | None = None
    address: str | None = None
    session_status: SessionStatusValue | str | None = None
    deposit_id: str | None = None
    deposit_status: str | None = None
    deposit_status_reason: str | None = None
    withdrawal_id: str | None = attr.field(default=None, metadata={"wire": "withdrawalID"})
    withdraw_status: str | None = None
    withdraw_status_reason: str | None = None
    from_amount: Decimal | None = None
    to_amount: Decimal | None = None
    from_currency: str | None = None
    to_currency: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = attr.field(factory=dict, repr=False, eq=False)

    @property
    def is_terminal(self) -> bool:
        """True when the session is ``completed`` or ``failed``: it will not change any more.
        An unknown status is not terminal."""
        status = self.session_status
        return status is not None and str(status) in SESSION_TERMINAL_STATUSES

    @property
    def is_completed(self) -> bool:
        """True when the session completed (the customer paid)."""
        return self.session_status == SessionStatusValue.COMPLETED

    @property
    def is_failed(self) -> bool:
        """True when the session failed."""
        return self.session_status == SessionStatusValue.FAILED
