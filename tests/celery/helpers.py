"""What the Celery payout tests share: the callbacks' paths, a fast pace, payouts, waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from instax_async import AsyncSession, SessionRequest
from instax_async.sandbox import Sandbox

CALLBACKS = "tests.celery.celery_callbacks"
ON_HASH = f"{CALLBACKS}:record_hash"
ON_FAILURE = f"{CALLBACKS}:record_failure"
# fast enough for tests: slices of 0.3 s polling every 0.05 s
FAST: dict[str, Any] = {"slice_seconds": 0.3, "interval": 0.05, "max_interval": 0.05}


def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds (what a worker thread or process does)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def new_payouts(sandbox: Sandbox, count: int = 1, *, fail: bool = False) -> list[str]:
    """Paid (or declined) sandbox sessions' payout tx ids."""

    async def make() -> list[str]:
        request = SessionRequest.sending(from_amount="20", from_currency="USD", to_currency="USDT")
        async with AsyncSession(base_url=sandbox.url) as client:
            sessions = [await client.create_session(request) for _ in range(count)]
        settled = [await (sandbox.fail if fail else sandbox.complete)(s.id) for s in sessions]
        return [entry["withdraw_tx_id"] for entry in settled]

    return asyncio.run(make())


def confirm(sandbox: Sandbox, tx_id: str) -> None:
    """Make the payout's hash appear at its next poll (its confirmation_delay has passed)."""
    sandbox.state.payouts[tx_id].settled_at -= 7200
