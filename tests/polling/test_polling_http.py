"""Blockchain/session status polling against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from benchmarks.server import ServerProcess
from instax_async import (
    AiohttpTransport,
    AsyncSession,
    BlockchainPoller,
    BlockchainStatus,
    NotFoundError,
    PollTimeoutError,
    SessionStatusValue,
    Transport,
)
from instax_async.transports.httpx import HttpxTransport
from tests.conftest import StartServer

Script = Callable[[str, int], web.Response]

PENDING = {"status": "pending"}


def done(tx_id: str) -> dict[str, Any]:
    return {"status": "completed", "data": {"txHash": f"0x{tx_id}"}}


class Provider:
    """A stand-in for the blockchain-status endpoint that records what reaches it."""

    def __init__(self, script: Script, delay: float = 0.0) -> None:
        self.script = script
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self.times: list[float] = []
        self.in_flight = 0
        self.peak = 0
        self.api_keys: list[str | None] = []
        self._changed = asyncio.Condition()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checked after every request arrives."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    async def blockchain_status(self, request: web.Request) -> web.Response:
        tx_id = request.query["txId"]
        self.times.append(asyncio.get_running_loop().time())
        self.counts[tx_id] += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        async with self._changed:
            self._changed.notify_all()
        try:
            await asyncio.sleep(self.delay)
            return self.script(tx_id, self.counts[tx_id])
        finally:
            self.in_flight -= 1

    async def session_status(self, request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]
        self.api_keys.append(request.headers.get("x-api-key"))
        self.counts[session_id] += 1
        return self.script(session_id, self.counts[session_id])

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/utils/blockchain-status", self.blockchain_status)
        app.router.add_get("/api/session/{session_id}/status", self.session_status)
        return app


def pending_then_hash(pending: int) -> Script:
    def script(tx_id: str, n: int) -> web.Response:
        return web.json_response(PENDING if n <= pending else done(tx_id))

    return script


@pytest.fixture
async def serve(start_server: StartServer) -> AsyncIterator[Callable[..., Any]]:
    clients: list[AsyncSession] = []

    async def serve(
        script: Script, *, delay: float = 0.0, **client_options: Any
    ) -> tuple[Provider, AsyncSession]:
        provider = Provider(script, delay)
        client = AsyncSession(base_url=await start_server(provider.app()), **client_options)
        clients.append(client)
        return provider, client

    yield serve
    for client in clients:
        await client.aclose()


FAST = {"interval": 0.01, "max_interval": 0.02}


@pytest.mark.parametrize("transport", [AiohttpTransport, HttpxTransport])
async def test_the_hash_after_n_pending_answers_with_an_exact_request_count(
    serve: Any, transport: Callable[[], Transport]
) -> None:
    own_transport = transport()
    provider, client = await serve(pending_then_hash(3), transport=own_transport)
    try:
        statuses = [s async for s in client.poll_blockchain_status("a b&c", **FAST)]
    finally:
        await own_transport.aclose()
    assert provider.counts == {"a b&c": 4}  # the tx id arrived intact, and 3 + 1 requests
    assert [s.status for s in statuses] == ["pending", "completed"]
    assert statuses[-1] == BlockchainStatus(tx_id="a b&c", hash="0xa b&c", status="completed")


async def test_blockchain_status_one_shot_and_404(serve: Any) -> None:
    def script(tx_id: str, n: int) -> web.Response:
        if tx_id == "missing":
            return web.json_response({"message": "transaction not found"}, status=404)
        return web.json_response({"hash": "0xabc", "status": "completed", "confirmations": 12})

    provider, client = await serve(script)
    status = await client.blockchain_status("wd_1")
    assert status.hash == "0xabc" and status.raw["confirmations"] == 12
    with pytest.raises(NotFoundError, match="transaction not found"):
        await client.wait_for_blockchain_hash("missing", **FAST)
    with pytest.raises(NotFoundError):
        await client.blockchain_status("missing")
    assert provider.counts["missing"] == 2  # 404 is not retried, in a poll or out of one


async def test_the_deadline_raises_poll_timeout_with_the_last_status(serve: Any) -> None:
    provider, client = await serve(lambda tx_id, n: web.json_response({"status": f"step-{n}"}))
    with pytest.raises(PollTimeoutError) as caught:
        # (long enough for a first answer on a loaded machine: the last status must be known)
        await client.wait_for_blockchain_hash("wd_1", timeout=0.6, **FAST)
    assert isinstance(caught.value, TimeoutError)
    last = caught.value.last_status
    assert isinstance(last, BlockchainStatus) and last.hash is None
    # really the last answer seen; the server may have counted one more request whose answer
    # the deadline cut off
    answered = provider.counts["wd_1"]
    assert last.status in (f"step-{answered}", f"step-{answered - 1}")


async def test_cancelling_the_task_stops_the_requests(serve: Any) -> None:
    provider, client = await serve(lambda tx_id, n: web.json_response(PENDING))
    task = asyncio.create_task(client.wait_for_blockchain_hash("wd_1", **FAST))
    await provider.until(lambda: provider.total >= 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sent = provider.total
    await asyncio.sleep(0.1)  # ten intervals: a poll still running would have asked again
    assert provider.total == sent


async def test_a_429_retry_after_is_honoured(serve: Any) -> None:
    def script(tx_id: str, n: int) -> web.Response:
        if n == 1:
            # Retry-After in decimal seconds keeps the test quick; parse_retry_after accepts it
            return web.json_response({}, status=429, headers={"Retry-After": "0.3"})
        return web.json_response(done(tx_id))

    provider, client = await serve(script)
    status = await client.wait_for_blockchain_hash("wd_1", **FAST)
    assert status.hash == "0xwd_1" and provider.total == 2
    first, second = provider.times
    assert second - first >= 0.3 - 0.01  # not the 0.01 s interval


async def test_500s_are_retried_inside_the_poll(serve: Any) -> None:
    def script(tx_id: str, n: int) -> web.Response:
        if n <= 2:
            return web.json_response({"message": "upstream down"}, status=500)
        return web.json_response(done(tx_id))

    provider, client = await serve(script)
    assert (await client.wait_for_blockchain_hash("wd_1", **FAST)).hash == "0xwd_1"
    assert provider.total == 3


async def test_session_status_over_http(serve: Any) -> None:
    steps = ["initiated", "processing", "processing", "completed"]

    def script(session_id: str, n: int) -> web.Response:
        return web.json_response(
            {"sessionId": session_id, "sessionStatus": steps[n - 1], "toAmount": 49.12}
        )

    provider, client = await serve(script, api_key="k-test")
    first = await client.session_status("ps_1")
    assert first.session_status is SessionStatusValue.INITIATED
    final = await client.wait_for_session("ps_1", **FAST)
    assert final.is_completed and str(final.to_amount) == "49.12"
    assert provider.counts["ps_1"] == 4 and provider.api_keys == ["k-test"] * 4


# -- BlockchainPoller -----------------------------------------------------------------------


async def test_1000_watches_never_exceed_the_concurrency_at_the_server(serve: Any) -> None:
    provider, client = await serve(pending_then_hash(1), delay=0.002)
    async with BlockchainPoller(client, concurrency=20, **FAST) as poller:
        results = await asyncio.gather(*(poller.watch(f"wd_{n}") for n in range(1000)))
    assert all(r.hash == f"0x{r.tx_id}" for r in results)
    assert provider.total == 2000  # one pending answer, then the hash, for each
    assert 1 < provider.peak <= 20


async def test_the_rate_limit_shows_in_the_server_timestamps(serve: Any) -> None:
    provider, client = await serve(pending_then_hash(0))
    rate, count, window = 50, 30, 0.2
    async with BlockchainPoller(client, concurrency=10, rate_limit=rate) as poller:
        await asyncio.gather(*(poller.watch(f"wd_{n}") for n in range(count)))
    times = sorted(provider.times)
    assert len(times) == count
    busiest = max(bisect.bisect_right(times, t + window) - i for i, t in enumerate(times))
    assert busiest <= rate * window + 2  # spread evenly: no burst, as the server counts
    assert times[-1] - times[0] >= (count - 1) / rate * 0.8


async def test_shared_watches_of_one_id_send_one_poll_sequence(serve: Any) -> None:
    provider, client = await serve(pending_then_hash(2))
    async with BlockchainPoller(client, **FAST) as poller:
        watches = [poller.watch("wd_1") for _ in range(3)]
        assert poller.watching == 1
        results = await asyncio.gather(*watches)
    assert provider.counts == {"wd_1": 3}
    assert results[0] == results[1] == results[2] and results[0].hash == "0xwd_1"


async def test_updates_over_http(serve: Any) -> None:
    _, client = await serve(pending_then_hash(1))
    seen: list[tuple[str, str | None]] = []
    async with BlockchainPoller(client, **FAST) as poller:
        updates = poller.updates()

        async def consume() -> None:
            async for status in updates:
                seen.append((status.tx_id, status.status))

        consumer = asyncio.create_task(consume())
        await asyncio.gather(poller.watch("a"), poller.watch("b"))
        await asyncio.sleep(0.01)
    await asyncio.wait_for(consumer, 1.0)  # it ended with the poller
    assert sorted(seen) == [
        ("a", "completed"),
        ("a", "pending"),
        ("b", "completed"),
        ("b", "pending"),
    ]


async def test_leaving_the_block_with_requests_in_flight_is_prompt_and_clean(
    serve: Any,
) -> None:
    provider, client = await serve(lambda tx_id, n: web.json_response(PENDING), delay=5.0)
    problems: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    try:
        started = loop.time()
        async with BlockchainPoller(client, concurrency=5) as poller:
            watches = [poller.watch(f"wd_{n}") for n in range(20)]
            await provider.until(lambda: provider.in_flight >= 5)
        assert loop.time() - started < 2.0  # it did not wait for the 5 s answers
        assert all(w.cancelled() for w in watches)
        await asyncio.sleep(0.05)
    finally:
        loop.set_exception_handler(None)
    assert problems == []
    assert provider.total == 5


# -- the rate limit as a server in another process counts it ----------------------------------


@pytest.fixture(scope="module")
def counting_server() -> Iterator[ServerProcess]:
    """The benchmarks' stand-in server, in a process of its own: it records when each
    blockchain-status request arrives (``time.monotonic()``), whatever this process's event
    loop is doing. Every tx id has its hash at the first poll."""
    with ServerProcess(pending_polls=0, max_seconds=300) as server:
        yield server


async def _bench(base_url: str, path: str, method: str = "GET") -> Any:
    async with aiohttp.ClientSession() as http, http.request(method, base_url + path) as resp:
        resp.raise_for_status()
        return await resp.json()


async def _block_the_loop(every: float, block: float) -> None:
    while True:
        await asyncio.sleep(every - block)
        time.sleep(block)  # noqa: ASYNC251 - the point: the loop blocked, as CPU work blocks it


async def _poll_through_the_counting_server(
    server: ServerProcess, rate_limit: int, count: int, stalls: bool
) -> tuple[list[float], float]:
    """Watch ``count`` ids at ``rate_limit``; the times the server saw, and its own lateness."""
    concurrency = 4
    async with AsyncSession(base_url=server.url) as client:
        # a pooled connection for each request that can be in flight, so every request is
        # written in the step that takes its send slot (a new connection would be written later)
        await asyncio.gather(*(client.blockchain_status(f"warm_{n}") for n in range(concurrency)))
        await _bench(server.url, "/_bench/reset?pending_polls=0&watch_lag=1", "POST")
        blocker = asyncio.create_task(_block_the_loop(0.2, 0.04)) if stalls else None
        try:
            async with BlockchainPoller(
                client, concurrency=concurrency, rate_limit=rate_limit
            ) as poller:
                results = await asyncio.gather(*(poller.watch(f"wd_{n}") for n in range(count)))
        finally:
            if blocker is not None:
                blocker.cancel()
                await asyncio.gather(blocker, return_exceptions=True)
    assert all(r.hash for r in results)
    stats = await _bench(server.url, "/_bench/stats")
    await _bench(server.url, "/_bench/reset", "POST")  # (stops watching the lateness)
    return sorted(stats["poll_times"]), stats["max_lag"]


@pytest.mark.parametrize(
    ("rate_limit", "count", "stalls"),
    [(40, 60, False), (20, 30, True)],
    ids=["steady", "loop-blocked-40ms-every-200ms"],
)
async def test_the_server_never_counts_more_than_rate_limit_in_any_second(
    counting_server: ServerProcess, rate_limit: int, count: int, stalls: bool
) -> None:
    # The server time-stamps a request when its handler runs: if the server itself stalls (a
    # busy machine), requests it reads late get bunched stamps, which says nothing of when the
    # client sent them. A run that breaks a bound while the server woke late by a fifth of
    # 1/rate_limit or more is measured again (three runs at most); any other must meet them.
    stalled: list[float] = []
    for _ in range(3):
        times, lag = await _poll_through_the_counting_server(
            counting_server, rate_limit, count, stalls
        )
        assert len(times) == count
        # the README's promise, as the server counts: any closed 1-s window [t, t + 1]
        busiest = max(bisect.bisect_right(times, t + 1.0) - i for i, t in enumerate(times))
        # and no burst after a stall: the client sends them over 0.8/rate_limit apart; a
        # quarter of 1/rate_limit leaves room for the delays the two processes see
        closest = min(b - a for a, b in itertools.pairwise(times))
        if (busiest <= rate_limit and closest >= 0.25 / rate_limit) or lag < 0.2 / rate_limit:
            break
        stalled.append(lag)
    else:
        pytest.fail(f"the counting server stalled in every run (woke late by {stalled} s)")
    assert busiest <= rate_limit
    assert closest >= 0.25 / rate_limit
