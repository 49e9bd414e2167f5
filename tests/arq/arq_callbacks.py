"""Callbacks the arq payout tests name by import path, as an application's tasks module would."""

from __future__ import annotations

from arq.worker import Retry

from instax_async import BlockchainStatus
from instax_async.integrations.arq import PayoutWatchFailure

#: Every ``on_hash`` call, in order.
HASHES: list[BlockchainStatus] = []
#: Every ``on_failure`` call, in order.
FAILURES: list[PayoutWatchFailure] = []
#: Not a function: an ``on_hash`` path naming it is refused when the job runs.
NOT_CALLABLE = 42


async def record_hash(status: BlockchainStatus) -> None:
    """An async ``on_hash``."""
    HASHES.append(status)


def record_failure(failure: PayoutWatchFailure) -> None:
    """A sync ``on_failure``."""
    FAILURES.append(failure)


async def broken(status: BlockchainStatus) -> None:
    """An ``on_hash`` whose database is down."""
    raise RuntimeError(f"cannot record {status.tx_id}")


async def retry_once(status: BlockchainStatus) -> None:
    """An ``on_hash`` that asks arq to run the slice again the first time."""
    HASHES.append(status)
    if len(HASHES) == 1:
        raise Retry(defer=0.01)


class Namespace:
    """Holds a callback one attribute deeper (``module:Namespace.record``)."""

    record = staticmethod(record_hash)


def reset() -> None:
    """Forget every recorded call."""
    HASHES.clear()
    FAILURES.clear()
