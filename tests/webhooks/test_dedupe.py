from __future__ import annotations

import pytest

from instax_async import ClaimResult, DedupeStore, InMemoryDedupeStore, ValidationError
from instax_async._logging import ReportThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_claim_done_release_and_expiry() -> None:
    clock = Clock()
    store = InMemoryDedupeStore(ttl=100, processing_ttl=10, clock=clock)
    assert isinstance(store, DedupeStore)
    assert await store.claim("a") is ClaimResult.NEW
    assert await store.claim("a") is ClaimResult.PROCESSING
    clock.now = 11  # the claim of a crashed handler expires
    assert await store.claim("a") is ClaimResult.NEW
    await store.mark_done("a")
    assert await store.claim("a") is ClaimResult.DONE
    clock.now = 200
    assert await store.claim("a") is ClaimResult.NEW
    await store.release("a")
    await store.release("never-seen")
    assert await store.claim("a") is ClaimResult.NEW
    assert "entries=1" in repr(store)


async def test_bounded_size_forgets_the_oldest() -> None:
    store = InMemoryDedupeStore(max_entries=3)
    for key in "abcd":
        await store.claim(key)
        await store.mark_done(key)
    assert len(store) == 3
    assert await store.claim("a") is ClaimResult.NEW
    assert await store.claim("d") is ClaimResult.DONE


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": True}, "max_entries"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": "1"}, "ttl"),
        ({"processing_ttl": float("inf")}, "processing_ttl"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        InMemoryDedupeStore(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_report_throttle_lets_one_report_per_key_a_minute_in_bounded_memory() -> None:
    clock = Clock()
    throttle = ReportThrottle(clock=clock, max_keys=3)
    assert [throttle.due(key) for key in "aab"] == [True, False, True]
    clock.now = 59.9
    assert [throttle.due(key) for key in "ab"] == [False, False]
    clock.now = 60.0  # a minute after: reported again
    assert [throttle.due(key) for key in "ab"] == [True, True]
    for n in range(10_000):  # a flood of distinct keys
        throttle.due(f"k{n}")
    assert len(throttle) == 3
    clock.now = 200.0  # the keys of long ago are forgotten
    assert throttle.due("c") and len(throttle) == 1
