"""BlockchainPoller: many payouts on one scheduler, within a concurrency and a rate limit."""

from __future__ import annotations

import asyncio
import bisect
import gc
import itertools
from typing import Any

import pytest

from instax_async import (
    BlockchainPoller,
    BlockchainStatus,
    InstaxError,
    NotFoundError,
    PollTimeoutError,
    Request,
    Response,
    ValidationError,
)
from instax_async.poller import RATE_CATCH_UP, RATE_MARGIN, _send_spacing
from tests.polling.fakes import (
    DONE,
    PENDING,
    FakeTime,
    answer,
    make_client,
    per_tx,
    poller_for,
)


async def test_poller_watches_resolve_and_share_one_poll(fake: FakeTime) -> None:
    handler, asked = per_tx(
        {"a": [answer(PENDING), answer(PENDING), answer(DONE)], "b": [answer(DONE)]}
    )
    async with make_client(handler) as client, poller_for(client, fake) as poller:
        first, second, other = poller.watch("a"), poller.watch("a"), poller.watch("b")
        assert poller.watching == 2 and "watching=2 open" in repr(poller)
        results = await asyncio.gather(first, second, other)
        assert poller.watching == 0
    assert (
        results[0] == results[1] == BlockchainStatus(tx_id="a", hash="0xfeed", status="completed")
    )
    assert results[2].tx_id == "b"
    assert asked.count("a") == 3 and asked.count("b") == 1
    assert "closed" in repr(poller)


async def test_poller_errors_and_timeouts_belong_to_one_tx(fake: FakeTime) -> None:
    handler, asked = per_tx(
        {
            "gone": [answer({"message": "no such tx"}, 404)],
            "slow": [answer(PENDING)],
            "flaky": [answer({}, 500), answer({}, 429, {"Retry-After": "5"}), answer(DONE)],
            "failed": [answer({"status": "FAILED"})],
        }
    )
    async with (
        make_client(handler) as client,
        poller_for(client, fake, interval=1.0, timeout=60.0) as poller,
    ):
        gone, slow = poller.watch("gone"), poller.watch("slow")
        flaky, failed = poller.watch("flaky"), poller.watch("failed")
        results = await asyncio.gather(gone, slow, flaky, failed, return_exceptions=True)
    assert isinstance(results[0], NotFoundError)
    assert isinstance(results[1], PollTimeoutError)
    assert results[1].last_status == BlockchainStatus(tx_id="slow", status="pending")
    assert "'slow'" in str(results[1])
    assert isinstance(results[2], BlockchainStatus) and results[2].hash == "0xfeed"
    assert isinstance(results[3], BlockchainStatus) and results[3].is_failed
    assert asked.count("gone") == 1 and asked.count("flaky") == 3 and asked.count("failed") == 1


async def test_poller_timeout_never_polls_past_the_deadline(fake: FakeTime) -> None:
    handler, asked = per_tx({"slow": [answer(PENDING)]})
    start = fake.now
    async with (
        make_client(handler) as client,
        poller_for(client, fake, interval=4.0, backoff=1, timeout=9.0) as poller,
    ):
        with pytest.raises(PollTimeoutError):
            await poller.watch("slow")
        assert fake.now == pytest.approx(start + 9.0)  # raised at the deadline
    # at 0, after one wait and after two (3.2 to 4 s each); a third would be past the deadline
    assert len(asked) == 3


async def test_poller_updates_reports_every_change_and_ends_on_close(fake: FakeTime) -> None:
    handler, _ = per_tx(
        {"a": [answer(PENDING), answer(PENDING), answer(DONE)], "b": [answer({"status": "x"})]}
    )
    seen: list[tuple[str, str | None]] = []
    async with make_client(handler) as client:
        async with poller_for(client, fake, timeout=30.0) as poller:
            updates = poller.updates()

            async def consume() -> None:
                async for status in updates:
                    seen.append((status.tx_id, status.status))

            consumer = asyncio.create_task(consume())
            poller.watch("a")
            poller.watch("b")
            await poller.watch("a")
            for _ in range(5):
                await asyncio.sleep(0)
        await consumer
    assert ("a", "pending") in seen and ("a", "completed") in seen and ("b", "x") in seen
    assert len(seen) == 3
    assert await anext(updates, None) is None  # an ended iterator stays ended


async def test_an_update_stream_can_be_closed_early(fake: FakeTime) -> None:
    handler, _ = per_tx({"a": [answer(DONE)]})
    async with make_client(handler) as client, poller_for(client, fake) as poller:
        updates = poller.updates()
        await updates.aclose()  # type: ignore[attr-defined]
        assert await anext(updates, None) is None
        await poller.watch("a")
        assert len(poller._streams) == 0


async def test_leaving_the_block_cancels_outstanding_watches_cleanly(fake: FakeTime) -> None:
    handler, _ = per_tx({"a": [answer(PENDING)], "b": [answer(PENDING)]})
    problems: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    try:
        async with make_client(handler) as client:
            async with poller_for(client, fake, timeout=600.0) as poller:
                awaited = poller.watch("a")
                poller.watch("b")  # nobody ever awaits this one
                for _ in range(10):
                    await asyncio.sleep(0)
                tasks = list(poller._tasks)
            assert awaited.cancelled() and poller.watching == 0
            with pytest.raises(asyncio.CancelledError):
                await awaited
            assert len(tasks) >= 2 and all(task.done() for task in tasks)
            await poller.aclose()  # a second close does nothing
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert problems == []


async def test_an_unawaited_failed_watch_logs_nothing(fake: FakeTime) -> None:
    handler, _ = per_tx({"gone": [answer({}, 404)]})
    problems: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    try:
        async with make_client(handler) as client, poller_for(client, fake) as poller:
            poller.watch("gone")
            for _ in range(10):
                await asyncio.sleep(0)
            assert poller.watching == 0
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert problems == []


async def test_cancelling_every_waiter_of_a_tx_stops_its_poll(fake: FakeTime) -> None:
    handler, asked = per_tx({"a": [answer(PENDING)], "b": [answer(PENDING), answer(DONE)]})
    async with make_client(handler) as client, poller_for(client, fake, interval=1.0) as poller:
        one, two = poller.watch("a"), poller.watch("a")
        for _ in range(5):
            await asyncio.sleep(0)
        one.cancel()
        await asyncio.sleep(0)
        assert poller.watching == 1  # 'two' still waits
        two.cancel()
        await asyncio.sleep(0)
        assert poller.watching == 0
        sent = asked.count("a")
        await poller.watch("b")  # time moves on; 'a' is not asked again
        assert asked.count("a") == sent
        again = poller.watch("a")  # a new watch of the same id starts a new poll
        for _ in range(5):
            await asyncio.sleep(0)
        assert poller.watching == 1 and not again.done()
    assert asked.count("a") > sent


async def test_a_waiter_cancelled_while_its_request_is_out_drops_the_answer(
    fake: FakeTime,
) -> None:
    release = asyncio.Event()
    asked: list[str] = []

    async def handler(request: Request) -> Response:
        asked.append(request.url)
        await release.wait()
        return answer(DONE)

    async with make_client(handler) as client, poller_for(client, fake) as poller:
        waiter = poller.watch("a")
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(asked) == 1
        waiter.cancel()
        await asyncio.sleep(0)
        updates = poller.updates()
        release.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert updates._queue.empty()  # type: ignore[attr-defined]
    assert len(asked) == 1


def busiest(times: list[float], window: float = 1.0) -> int:
    """The most of the sorted ``times`` in any closed window ``[t, t + window]``."""
    return max((bisect.bisect_right(times, t + window) - i for i, t in enumerate(times)), default=0)


async def test_poller_concurrency_and_even_rate(fake: FakeTime) -> None:
    in_flight = peak = 0
    times: list[float] = []

    async def handler(request: Request) -> Response:
        nonlocal in_flight, peak
        times.append(fake.now)
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        in_flight -= 1
        return answer(DONE)

    async with (
        make_client(handler) as client,
        poller_for(client, fake, concurrency=3, rate_limit=4) as poller,
    ):
        await asyncio.gather(*(poller.watch(f"tx{n}") for n in range(12)))
        assert 0 < len(poller._tasks) <= 1 + 3  # the dispatcher and at most 3 workers
    assert peak <= 3 and len(times) == 12
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # evenly spaced, a little over 1/rate_limit apart: never a burst, and never 5 in a second
    assert all(0.25 <= gap <= 0.257 for gap in gaps)
    assert busiest(times) == 4


async def test_the_rate_is_not_saved_up_while_idle(fake: FakeTime) -> None:
    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(fake.now)
        return answer(DONE)

    async with make_client(handler) as client, poller_for(client, fake, rate_limit=2) as poller:
        await poller.watch("a")
        await fake.sleep(100.0)  # a long quiet spell earns no burst
        await asyncio.gather(*(poller.watch(f"b{n}") for n in range(3)))
    assert times[1] - times[0] == pytest.approx(100.0)  # the first after the pause goes at once
    assert all(0.5 <= b - a <= 0.513 for a, b in itertools.pairwise(times[1:]))


@pytest.mark.parametrize(
    ("rate_limit", "window", "most"),
    [
        (10, 1.0, 10),
        (40, 1.0, 40),
        (200, 1.0, 200),
        (1000, 1.0, 1000),
        (2.5, 2.0, 5),  # 2.5 per second: 5 in any 2 s, and at most 3 (rounded up) in one
        (2.5, 1.0, 3),
        (0.5, 2.0, 1),  # one every 2 s
    ],
)
async def test_a_stalled_loop_never_sends_a_burst(
    fake: FakeTime, rate_limit: float, window: float, most: int
) -> None:
    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(fake.now)
        return answer(DONE)

    # the loop wakes the scheduler a little late, or very late (a stall), now and then
    lateness = itertools.cycle([0.0, 0.0004, 0.3, 0.0, 0.0019, 0.004, 0.0, 1.7, 0.001, 0.05])

    async def late_sleep(seconds: float) -> None:
        await fake.sleep(seconds)
        fake.now += next(lateness)

    count = int(max(1.2 * rate_limit, 12))
    async with (
        make_client(handler) as client,
        BlockchainPoller(
            client, rate_limit=rate_limit, concurrency=8, sleep=late_sleep, clock=fake.clock
        ) as poller,
    ):
        await asyncio.gather(*(poller.watch(f"tx{n}") for n in range(count)))
    assert len(times) == count
    assert busiest(times, window) <= most
    # no two requests closer than half their spacing, even right after a stall (up to 250/s:
    # faster, the loop's timers cannot keep such gaps, and the window alone holds)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= (0.5 / rate_limit if rate_limit <= 250 else 0.0)


@pytest.mark.parametrize("rate_limit", [40, 1000])
async def test_a_little_lateness_is_caught_up_so_the_rate_holds(
    fake: FakeTime, rate_limit: float
) -> None:
    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(fake.now)
        return answer(DONE)

    async def late_sleep(seconds: float) -> None:
        await fake.sleep(seconds)
        fake.now += 0.0004  # as the loop's timers are, now and then

    count = 200
    async with (
        make_client(handler) as client,
        BlockchainPoller(
            client, rate_limit=rate_limit, concurrency=8, sleep=late_sleep, clock=fake.clock
        ) as poller,
    ):
        await asyncio.gather(*(poller.watch(f"tx{n}") for n in range(count)))
    mean_gap = (times[-1] - times[0]) / (count - 1)
    # 1/rate_limit plus the margin (2.5 %), not 0.4 ms more for every request
    assert 1 / rate_limit < mean_gap < 1.026 / rate_limit
    assert busiest(times) <= rate_limit


async def test_a_new_watch_wakes_an_idle_scheduler(fake: FakeTime) -> None:
    handler, asked = per_tx({"slow": [answer(PENDING)], "quick": [answer(DONE)]})
    gate = asyncio.Event()
    sleeping: list[float] = []

    async def blocking_sleep(seconds: float) -> None:
        sleeping.append(seconds)
        gate.set()
        await asyncio.sleep(3600)  # only a wake-up can end this wait

    async with make_client(handler) as client:
        poller = BlockchainPoller(client, sleep=blocking_sleep, clock=fake.clock)
        async with poller:
            poller.watch("slow")
            await gate.wait()  # the scheduler now sleeps until 'slow' is due again
            assert (await asyncio.wait_for(poller.watch("quick"), 5)).hash == "0xfeed"
    assert asked == ["slow", "quick"] and len(sleeping) >= 1


async def test_a_failing_injected_sleep_fails_every_watch(fake: FakeTime) -> None:
    handler, _ = per_tx({"a": [answer(PENDING)]})

    async def broken_sleep(seconds: float) -> None:
        raise RuntimeError("sleep is broken")

    client = make_client(handler)
    async with client, BlockchainPoller(client, sleep=broken_sleep, clock=fake.clock) as poller:
        with pytest.raises(InstaxError, match="stopped: RuntimeError") as caught:
            await poller.watch("a")
        assert isinstance(caught.value.__cause__, RuntimeError)
        with pytest.raises(InstaxError, match="stopped after an error"):
            poller.watch("b")


async def test_a_watch_that_waited_past_its_deadline_is_not_sent(fake: FakeTime) -> None:
    handler, asked = per_tx({"a0": [answer(PENDING)], "a": [answer(DONE)]})
    async with (
        make_client(handler) as client,
        poller_for(client, fake, rate_limit=0.01, timeout=50.0) as poller,
    ):
        first, late = poller.watch("a0"), poller.watch("a")
        with pytest.raises(PollTimeoutError):
            await late  # its slot came 100 s after the first request
        first.cancel()
    assert asked.count("a") == 0


async def test_poller_with_the_real_clock() -> None:
    handler, asked = per_tx({"a": [answer(PENDING), answer(DONE)]})
    async with (
        make_client(handler) as client,
        BlockchainPoller(client, interval=0.001, rate_limit=1000) as poller,
    ):
        assert (await poller.watch("a")).hash == "0xfeed"
    assert len(asked) == 2


async def test_poller_lifecycle_errors() -> None:
    handler, _ = per_tx({})
    async with make_client(handler) as client:
        poller = BlockchainPoller(client)
        with pytest.raises(InstaxError, match="not running"):
            poller.watch("a")
        with pytest.raises(InstaxError, match="not running"):
            poller.updates()
        with pytest.raises(TypeError, match="async with"), poller:  # type: ignore[attr-defined]
            pass
        async with poller:
            with pytest.raises(ValidationError, match="tx_id"):
                poller.watch("")
        with pytest.raises(InstaxError, match="not running"):
            poller.watch("a")
        with pytest.raises(InstaxError, match="one 'async with' block"):
            async with poller:
                pass
        await BlockchainPoller(client).aclose()  # never entered: nothing to stop


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": -5}, "rate_limit"),
        ({"rate_limit": float("nan")}, "rate_limit"),
        ({"rate_limit": "10"}, "rate_limit"),
        ({"interval": 0}, "interval"),
        ({"max_interval": 0.5, "interval": 1.0}, "max_interval"),
        ({"timeout": None}, "timeout"),
        ({"backoff": 0}, "backoff"),
        ({"sleep": 3}, "sleep"),
        ({"clock": "now"}, "clock"),
    ],
)
async def test_poller_options_are_checked(options: dict[str, Any], field: str) -> None:
    handler, _ = per_tx({})
    async with make_client(handler) as client:
        with pytest.raises(ValidationError) as caught:
            BlockchainPoller(client, **options)
    assert caught.value.field == field and field in str(caught.value)


def test_poller_needs_an_async_session() -> None:
    with pytest.raises(ValidationError, match="AsyncSession") as caught:
        BlockchainPoller("http://api.test")  # type: ignore[arg-type]
    assert caught.value.field == "session"


async def test_a_watch_dropped_while_it_waits_for_a_free_slot_is_never_sent(
    fake: FakeTime,
) -> None:
    release = asyncio.Event()
    asked: list[str] = []

    async def handler(request: Request) -> Response:
        asked.append(request.url.rsplit("=", 1)[1])
        await release.wait()
        return answer(DONE)

    async with make_client(handler) as client, poller_for(client, fake, concurrency=1) as poller:
        busy, waiting = poller.watch("a"), poller.watch("b")
        for _ in range(5):
            await asyncio.sleep(0)
        assert asked == ["a"]  # 'b' is out of the heap, waiting for the one slot
        waiting.cancel()
        release.set()
        assert (await busy).hash == "0xfeed"
        for _ in range(5):
            await asyncio.sleep(0)
    assert asked == ["a"]


async def test_a_waiter_cancelled_just_as_its_answer_arrives(fake: FakeTime) -> None:
    release = asyncio.Event()

    async def handler(request: Request) -> Response:
        await release.wait()
        return answer(DONE)

    async with make_client(handler) as client, poller_for(client, fake) as poller:
        dropped, kept = poller.watch("a"), poller.watch("a")
        for _ in range(5):
            await asyncio.sleep(0)
        release.set()  # the answer is processed before the cancellation's callback runs
        dropped.cancel()
        assert (await kept).hash == "0xfeed"
        assert dropped.cancelled()


@pytest.mark.parametrize("rate_limit", [0.001, 0.5, 1, 2.5, 40, 249, 250, 260, 1000, 1e6])
def test_the_send_spacing_keeps_the_window_and_its_margin(rate_limit: float) -> None:
    spacing, catch_up, min_gap = _send_spacing(rate_limit)
    # any rate_limit + 1 successive sends span rate_limit * spacing - catch_up or more
    assert rate_limit * spacing - catch_up == pytest.approx(1 + RATE_MARGIN)
    assert catch_up == RATE_CATCH_UP
    assert min_gap == (spacing / 2 if rate_limit <= 250 else 0.0)
    assert _send_spacing(None) == (0.0, 0.0, 0.0)


async def test_among_due_watches_the_oldest_is_polled_first(fake: FakeTime) -> None:
    """A watch that had its first poll is polled again before younger watches have had theirs,
    so answers arrive in the order the watches were made instead of all at the end."""
    handler, asked = per_tx({tx: [answer(PENDING), answer(DONE)] for tx in "abc"})
    async with (
        make_client(handler) as client,
        # one request per 0.25 s, the poll interval shorter: several watches are due at once
        poller_for(client, fake, concurrency=1, rate_limit=4, interval=0.1) as poller,
    ):
        done: list[str] = []
        waiters = [poller.watch(tx) for tx in "abc"]
        for waiter in asyncio.as_completed(waiters):
            done.append((await waiter).tx_id)
    # a is due again when b's request has gone: a comes before c's first poll; before, every
    # first poll came before any second one (a, b, c, a, b, c). The same 6 requests.
    assert asked == ["a", "b", "a", "b", "c", "c"]
    assert done == ["a", "b", "c"]
