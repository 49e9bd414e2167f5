"""Dedupe stores from threads: ``InMemoryDedupeStore``'s and ``RedisDedupeStore``'s blocking
methods, as the Django and Flask receivers call them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from instax_async import (
    ClaimResult,
    DedupeStore,
    InMemoryDedupeStore,
    InstaxError,
    SyncDedupeStore,
    UnreadableEntryError,
)
from instax_async.integrations.redis import RedisDedupeStore
from tests.redis_fixtures import redis_url

__all__ = ["redis_url"]


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A blocking client on an empty database, flushed again after the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def _claims_from_threads(claim: Callable[[str], Any], threads: int = 16) -> list[Any]:
    results: list[Any] = []
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        results.append(claim("event"))

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for worker_thread in workers:
        worker_thread.start()
    for worker_thread in workers:
        worker_thread.join(30)
    return results


def test_the_in_memory_store_is_both_kinds_and_one_claim_wins_among_threads() -> None:
    store = InMemoryDedupeStore()
    assert isinstance(store, SyncDedupeStore) and isinstance(store, DedupeStore)
    results = _claims_from_threads(store.claim_sync)
    assert results.count(ClaimResult.NEW) == 1
    assert results.count(ClaimResult.PROCESSING) == 15
    store.mark_done_sync("event")
    assert store.claim_sync("event") is ClaimResult.DONE
    store.release_sync("event")  # in memory a release forgets, whatever the state
    assert store.claim_sync("event") is ClaimResult.NEW


async def test_the_in_memory_stores_two_kinds_share_one_memory() -> None:
    store = InMemoryDedupeStore(max_entries=2)
    assert store.claim_sync("a") is ClaimResult.NEW
    assert await store.claim("a") is ClaimResult.PROCESSING
    await store.mark_done("a")
    assert store.claim_sync("a") is ClaimResult.DONE
    store.claim_sync("b")
    store.mark_done_sync("c")  # the oldest is forgotten past max_entries
    assert len(store) == 2
    assert await store.claim("a") is ClaimResult.NEW


def test_a_redis_store_on_a_blocking_client(sync_redis: redis.Redis) -> None:
    store = RedisDedupeStore(sync_redis, prefix="s1:", ttl=120, processing_ttl=30)
    assert store.synchronous and isinstance(store, SyncDedupeStore)
    results = _claims_from_threads(store.claim_sync)
    assert results.count(ClaimResult.NEW) == 1
    assert results.count(ClaimResult.PROCESSING) == 15
    assert sync_redis.get("s1:event") == b"processing"
    store.mark_done_sync("event")
    assert sync_redis.get("s1:event") == b"done"
    assert 119_000 < sync_redis.pttl("s1:event") <= 120_000
    store.release_sync("event")  # a late release keeps the done mark
    assert store.claim_sync("event") is ClaimResult.DONE
    assert store.claim_sync("other") is ClaimResult.NEW
    store.release_sync("other")
    assert sync_redis.exists("s1:other") == 0
    sync_redis.set("s1:odd", "garbage")
    with pytest.raises(UnreadableEntryError, match="s1:odd"):
        store.claim_sync("odd")


async def test_each_redis_store_refuses_the_other_kinds_calls(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    blocking = RedisDedupeStore(sync_redis)
    with pytest.raises(InstaxError, match=r"built on redis\.Redis: use the \*_sync methods"):
        await blocking.claim("a")
    with pytest.raises(InstaxError, match=r"built on redis\.Redis"):
        await blocking.mark_done("a")
    with pytest.raises(InstaxError, match=r"built on redis\.Redis"):
        await blocking.release("a")
    asynchronous = RedisDedupeStore(redis.asyncio.Redis.from_url(redis_url))
    assert not asynchronous.synchronous
    for call in (asynchronous.claim_sync, asynchronous.mark_done_sync, asynchronous.release_sync):
        with pytest.raises(InstaxError, match=r"built on redis\.asyncio\.Redis: use the async"):
            call("a")
    assert sync_redis.keys("*") == []  # nothing was sent


def test_a_cluster_client_makes_a_blocking_store() -> None:
    from redis.cluster import RedisCluster

    cluster = RedisCluster.__new__(RedisCluster)  # no connection is made

    def register_script(script: str) -> Any:
        return lambda **kwargs: 0

    cluster.register_script = register_script  # type: ignore[method-assign]
    assert RedisDedupeStore(cluster).synchronous
