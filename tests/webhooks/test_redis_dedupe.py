"""RedisDedupeStore against a real Redis, and aiohttp receivers that share one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis
import redis.asyncio
from aiohttp import web

from instax_async import (
    ClaimResult,
    DedupeStore,
    UnreadableEntryError,
    ValidationError,
    WebhookEvent,
)
from instax_async.integrations.aiohttp import webhook_handler
from instax_async.integrations.redis import RedisDedupeStore
from instax_async.sandbox.events import webhook_payload
from instax_async.serialization import dumps
from instax_async.webhooks import SIGNATURE_HEADER, dedupe_key, parse, sign
from tests.conftest import StartServer
from tests.redis_fixtures import RedisServer, free_port, redis_server_binary

SECRET = "redis-receiver-secret"

Post = Callable[[str, bytes], Awaitable[tuple[int, dict[str, Any]]]]


def event_body(**fields: Any) -> bytes:
    """A realistic webhook body (``post`` signs it)."""
    return dumps(webhook_payload(**fields))


class Handler:
    """An ``on_event`` that records events; it may hold each one a while, or fail."""

    def __init__(self, *, delay: float = 0.0, fail_times: int = 0) -> None:
        self.calls: list[WebhookEvent] = []
        self.delay = delay
        self.fail_times = fail_times

    async def __call__(self, event: WebhookEvent) -> None:
        self.calls.append(event)
        await asyncio.sleep(self.delay)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("the order database is down")


async def receiver(start_server: StartServer, store: DedupeStore, on_event: Handler) -> str:
    """One app instance: its own aiohttp app on its own loopback port."""
    app = web.Application()
    app.router.add_post("/hook", webhook_handler(SECRET, on_event, dedupe=store))
    return f"{await start_server(app)}/hook"


@pytest.fixture
async def post() -> Any:
    async with aiohttp.ClientSession() as http:

        async def send(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
            headers = {SIGNATURE_HEADER: sign(body, SECRET), "Content-Type": "application/json"}
            async with http.post(url, data=body, headers=headers) as response:
                return response.status, await response.json()

        yield send


@pytest.fixture
async def second_client(redis_url: str) -> Any:
    """Another connection pool to the same Redis: what a second app instance has."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


# -- the store's semantics against the real Redis ------------------------------------------


async def test_claim_done_and_release_states(redis_client: redis.asyncio.Redis) -> None:
    store = RedisDedupeStore(redis_client, prefix="t1:", ttl=120, processing_ttl=30)
    assert isinstance(store, DedupeStore)
    assert await store.claim("a") is ClaimResult.NEW
    assert await redis_client.get("t1:a") == b"processing"
    assert 29_000 < await redis_client.pttl("t1:a") <= 30_000
    assert await store.claim("a") is ClaimResult.PROCESSING
    await store.mark_done("a")
    assert await redis_client.get("t1:a") == b"done"
    assert 119_000 < await redis_client.pttl("t1:a") <= 120_000
    assert await store.claim("a") is ClaimResult.DONE
    await store.release("a")  # a late release must not erase the done mark
    assert await store.claim("a") is ClaimResult.DONE

    assert await store.claim("b") is ClaimResult.NEW
    await store.release("b")
    assert await redis_client.exists("t1:b") == 0
    assert await store.claim("b") is ClaimResult.NEW
    await store.release("never-claimed")
    assert sorted(await redis_client.keys("*")) == [b"t1:a", b"t1:b"]


async def test_a_crashed_claim_expires_after_processing_ttl(
    redis_client: redis.asyncio.Redis,
) -> None:
    # (times long enough that the second claim comes before the expiry on a loaded machine)
    store = RedisDedupeStore(redis_client, prefix="t2:", processing_ttl=0.5)
    assert await store.claim("a") is ClaimResult.NEW
    assert await store.claim("a") is ClaimResult.PROCESSING
    await asyncio.sleep(0.55)
    assert await store.claim("a") is ClaimResult.NEW


async def test_done_marks_expire_after_ttl(redis_client: redis.asyncio.Redis) -> None:
    store = RedisDedupeStore(redis_client, prefix="t3:", ttl=0.5)
    await store.claim("a")
    await store.mark_done("a")
    assert await store.claim("a") is ClaimResult.DONE
    await asyncio.sleep(0.55)
    assert await store.claim("a") is ClaimResult.NEW


async def test_simultaneous_claims_from_two_clients_give_one_new(
    redis_client: redis.asyncio.Redis, second_client: redis.asyncio.Redis
) -> None:
    stores = [RedisDedupeStore(c, prefix="t4:") for c in (redis_client, second_client)]
    results = await asyncio.gather(*(stores[i % 2].claim("event") for i in range(40)))
    assert results.count(ClaimResult.NEW) == 1
    assert results.count(ClaimResult.PROCESSING) == 39


async def test_works_with_decode_responses(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        store = RedisDedupeStore(client, prefix="t5:")
        assert await store.claim("a") is ClaimResult.NEW
        assert await store.claim("a") is ClaimResult.PROCESSING
        await store.mark_done("a")
        assert await store.claim("a") is ClaimResult.DONE
        await client.set("t5:a", "garbage")
        with pytest.raises(UnreadableEntryError, match="holds a string that is neither"):
            await store.claim("a")
        await client.delete("t5:a")
    finally:
        await client.aclose()


async def test_configuration_is_checked_and_shown_without_the_client() -> None:
    client = redis.asyncio.Redis(password="hunter2")  # never connects: nothing is sent
    store = RedisDedupeStore(client, prefix="app:", ttl=60, processing_ttl=0.5)
    assert repr(store) == "<RedisDedupeStore prefix='app:' ttl=60s processing_ttl=0.5s>"
    assert (store.ttl, store.processing_ttl, store.key("k")) == (60.0, 0.5, "app:k")
    bad: list[tuple[Any, dict[str, Any], str]] = [
        (object(), {}, "redis"),
        (client, {"prefix": None}, "prefix"),
        (client, {"ttl": 0}, "ttl"),
        (client, {"ttl": True}, "ttl"),
        (client, {"processing_ttl": "300"}, "processing_ttl"),
        (client, {"processing_ttl": float("nan")}, "processing_ttl"),
    ]
    for target, kwargs, field in bad:
        with pytest.raises(ValidationError) as info:
            RedisDedupeStore(target, **kwargs)
        assert info.value.field == field
    # a blocking client makes a store for the sync receivers (tests/webhooks/)
    assert RedisDedupeStore(redis.Redis()).synchronous and not store.synchronous
    await client.aclose()


# -- receivers sharing one Redis ------------------------------------------------------------


async def test_two_receivers_get_the_same_webhook_at_once_and_handle_it_once(
    start_server: StartServer,
    post: Post,
    redis_client: redis.asyncio.Redis,
    second_client: redis.asyncio.Redis,
) -> None:
    on_event = Handler(delay=0.2)  # still handling when the other delivery arrives
    urls = [
        await receiver(start_server, RedisDedupeStore(client, prefix="r1:"), on_event)
        for client in (redis_client, second_client)
    ]
    body = event_body(reference="order-1")
    answers = await asyncio.gather(*(post(urls[i % 2], body) for i in range(6)))
    assert len(on_event.calls) == 1
    assert on_event.calls[0].reference == "order-1"
    assert sorted(status for status, _ in answers) == [200, 409, 409, 409, 409, 409]
    # redeliveries after it was handled: answered as duplicates on either instance
    for url in urls:
        assert await post(url, body) == (200, {"status": "duplicate"})
    assert len(on_event.calls) == 1
    # another event is its own
    other = event_body(reference="order-2")
    assert (await post(urls[1], other))[0] == 200
    assert [e.reference for e in on_event.calls] == ["order-1", "order-2"]


async def test_a_handler_that_fails_midway_gets_the_redelivery_on_another_instance(
    start_server: StartServer,
    post: Post,
    redis_client: redis.asyncio.Redis,
    second_client: redis.asyncio.Redis,
) -> None:
    on_event = Handler(fail_times=1)
    first = await receiver(start_server, RedisDedupeStore(redis_client, prefix="r2:"), on_event)
    second = await receiver(start_server, RedisDedupeStore(second_client, prefix="r2:"), on_event)
    body = event_body()
    assert (await post(first, body))[0] == 500
    assert await redis_client.keys("r2:*") == []  # released
    assert await post(second, body) == (200, {"status": "ok"})
    assert await post(first, body) == (200, {"status": "duplicate"})
    assert len(on_event.calls) == 2  # the failed attempt and the redelivery


async def test_a_crashed_instance_claim_expires_and_the_redelivery_is_processed(
    start_server: StartServer, post: Post, redis_client: redis.asyncio.Redis
) -> None:
    store = RedisDedupeStore(redis_client, prefix="r3:", processing_ttl=1.0)
    on_event = Handler()
    url = await receiver(start_server, store, on_event)
    body = event_body()
    # an instance claimed this event, then died before marking or releasing it
    crashed = RedisDedupeStore(redis_client, prefix="r3:", processing_ttl=1.0)
    assert await crashed.claim(dedupe_key(parse(body))) is ClaimResult.NEW
    assert (await post(url, body))[0] == 409
    assert on_event.calls == []
    await asyncio.sleep(1.05)
    assert await post(url, body) == (200, {"status": "ok"})
    assert len(on_event.calls) == 1


async def test_redis_unreachable_answers_503_and_the_event_is_not_handled(
    start_server: StartServer, post: Post
) -> None:
    client = redis.asyncio.Redis(port=free_port(), socket_connect_timeout=0.5)
    on_event = Handler()
    url = await receiver(start_server, RedisDedupeStore(client), on_event)
    body = event_body()
    assert await post(url, body) == (503, {"error": "dedupe store unavailable; retry later"})
    assert on_event.calls == []
    await client.aclose()


async def test_redis_stopping_under_a_running_receiver_answers_503(
    start_server: StartServer, post: Post, redis_url: str
) -> None:
    binary = redis_server_binary()
    if binary is None:  # pragma: no cover - redis_url was given without a local redis-server
        pytest.skip("stopping Redis needs a local redis-server binary")
    server = RedisServer(binary)
    url = server.start()
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        on_event = Handler()
        hook = await receiver(start_server, RedisDedupeStore(client), on_event)
        first = event_body()
        assert (await post(hook, first))[0] == 200
        server.stop()
        second = event_body()
        assert (await post(hook, second))[0] == 503
        assert len(on_event.calls) == 1
    finally:
        server.stop()
        await client.aclose()


@pytest.mark.parametrize(
    ("write", "found"),
    [
        (lambda r, k: r.set(k, "garbage"), "a string that is neither processing nor done"),
        (lambda r, k: r.hset(k, mapping={"state": "done"}), "a Redis hash"),
        (lambda r, k: r.rpush(k, "done"), "a Redis list"),
    ],
)
async def test_a_value_the_store_did_not_write_is_answered_503_and_logged_once_a_minute(
    start_server: StartServer,
    post: Post,
    redis_client: redis.asyncio.Redis,
    caplog: pytest.LogCaptureFixture,
    write: Callable[[redis.asyncio.Redis, str], Awaitable[Any]],
    found: str,
) -> None:
    store = RedisDedupeStore(redis_client, prefix="u1:")
    on_event = Handler()
    url = await receiver(start_server, store, on_event)
    bodies = [event_body(reference="order-1"), event_body(reference="order-2")]
    keys = [store.key(dedupe_key(parse(body))) for body in bodies]
    for key in keys:
        await write(redis_client, key)
    with caplog.at_level(logging.INFO, logger="instax_async.webhooks"):
        for body in bodies * 3:  # InstaXchange resends each event
            answer = await post(url, body)
            assert answer == (503, {"error": "dedupe store unavailable; retry later"})
    assert on_event.calls == []
    # once per key, naming it and how to clear it; no traceback, no other line
    logged = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records]
    assert logged == [
        (
            logging.ERROR,
            f"webhook dedupe key {key!r} holds {found}, which RedisDedupeStore does not write: "
            "deliveries of this event are answered 503 until the key is deleted "
            "(redis-cli DEL <key>) or expires",
            None,
        )
        for key in keys
    ]
    # a release never trips over it (and never deletes what it did not write)
    await store.release(dedupe_key(parse(bodies[0])))
    assert await redis_client.exists(keys[0]) == 1
    # cleared by hand: the redelivery is handled
    await redis_client.delete(keys[0])
    assert await post(url, bodies[0]) == (200, {"status": "ok"})
    assert [e.reference for e in on_event.calls] == ["order-1"]
