"""Durable payout watches: arq workers in-process, a real Redis, the loopback sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.exceptions
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

from instax_async import AsyncSession, SessionRequest, ValidationError
from instax_async.integrations.arq import (
    JOB_NAME,
    SESSION_KEY,
    PayoutFailureReason,
    enqueue_payout_watch,
    instax_shutdown,
    instax_startup,
    payout_job_id,
    watch_key,
    watch_payout,
)
from instax_async.sandbox import Sandbox, SandboxConfig
from tests.arq import arq_callbacks

CALLBACKS = "tests.arq.arq_callbacks"
ON_HASH = f"{CALLBACKS}:record_hash"
ON_FAILURE = f"{CALLBACKS}:record_failure"
# fast enough for tests: slices of 0.3 s polling every 0.05 s
FAST: dict[str, Any] = {"slice_seconds": 0.3, "interval": 0.05, "max_interval": 0.05}

MakePool = Callable[..., Awaitable[ArqRedis]]

# arq 0.28 closes its pool with redis-py's deprecated close(); not this SDK's to fix
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (state changed by a server in this loop)."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting")


@pytest.fixture(autouse=True)
def _reset_callbacks() -> None:
    arq_callbacks.reset()


@pytest.fixture
def queue() -> str:
    return f"instax-test:{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def make_pool(redis_client: Any, redis_url: str, queue: str) -> AsyncIterator[MakePool]:
    """arq pools on the test's (flushed) Redis; each worker closes the one it was given."""
    pools: list[ArqRedis] = []

    async def make(default_queue_name: str = queue) -> ArqRedis:
        pool = await create_pool(
            RedisSettings.from_dsn(redis_url), default_queue_name=default_queue_name
        )
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.aclose()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(confirmation_polls=2)) as running:
        yield running


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(base_url=sandbox.url) as session:
        yield session


async def new_payout(sandbox: Sandbox, client: AsyncSession, *, fail: bool = False) -> str:
    """A paid (or declined) sandbox session's payout tx id."""
    session = await client.create_session(
        SessionRequest.sending(from_amount="20", from_currency="USD", to_currency="USDT")
    )
    settled = await (sandbox.fail(session.id) if fail else sandbox.complete(session.id))
    tx_id: str = settled["withdraw_tx_id"]
    return tx_id


def worker(pool: ArqRedis, queue: str, *, burst: bool = True, **kwargs: Any) -> Worker:
    return Worker(
        functions=[watch_payout],
        redis_pool=pool,
        queue_name=queue,
        burst=burst,
        poll_delay=0.02,
        handle_signals=False,
        **kwargs,
    )


async def run_burst(pool: ArqRedis, queue: str, **kwargs: Any) -> Worker:
    """Run a worker until the queue is empty (deferred slices included), then close it."""
    burst = worker(pool, queue, **kwargs)
    try:
        await asyncio.wait_for(burst.async_run(), 10)
    finally:
        await burst.close()
    return burst


async def results(pool: ArqRedis, tx_id: str) -> dict[str, Any]:
    """The kept result of each slice job of ``tx_id``, by job id."""
    prefix = payout_job_id(tx_id, 0)[:-1]
    jobs = await pool.all_job_results()
    return {r.job_id: r.result for r in jobs if r.job_id and r.job_id.startswith(prefix)}


async def test_a_worker_polls_the_payout_to_its_hash_and_calls_back(
    make_pool: MakePool, queue: str, sandbox: Sandbox, client: AsyncSession
) -> None:
    tx_id = await new_payout(sandbox, client)
    pool = await make_pool()
    job = await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, on_failure=ON_FAILURE, **FAST)
    assert job is not None and job.job_id == f"instax:payout:{tx_id}:0"
    await run_burst(await make_pool(), queue, ctx={SESSION_KEY: client})
    payout = sandbox.state.payouts[tx_id]
    assert [(s.tx_id, s.hash) for s in arq_callbacks.HASHES] == [(tx_id, payout.hash)]
    assert arq_callbacks.FAILURES == []
    assert payout.polls == 3  # confirmation_polls=2: the hash comes with the third answer
    assert await results(pool, tx_id) == {payout_job_id(tx_id, 0): "confirmed"}
    assert await pool.get(watch_key(tx_id)) == b"done"
    assert not client.closed  # the worker's shared session is the worker's to close


async def stopped(running: asyncio.Task[None], worker: Worker) -> None:
    """Wait for a worker's run task and its job tasks to end after its shutdown signal.

    arq's poll loop can lose a cancellation that lands inside a Redis call on Python 3.10
    (redis-py's timeouts there), so cancel again until the task ends; whatever it ended with
    is read, so nothing is left unretrieved. A job task cancelled before arq's own handler
    caught it is dropped, as arq's poll loop drops finished tasks, so that ``close()`` does
    not re-raise its cancellation.
    """
    for _ in range(100):
        done, _ = await asyncio.wait({running}, timeout=0.05)
        if done:
            break
        running.cancel()
    assert running.done()
    if not running.cancelled():
        running.exception()  # a Redis error raised by the interrupted loop, if any
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    for job_id, task in list(worker.tasks.items()):
        if task.cancelled():
            del worker.tasks[job_id]


async def test_killing_the_worker_mid_watch_loses_nothing(
    make_pool: MakePool, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the hash appears 1 s after settlement: several slices of 0.3 s, across two workers
    config = SandboxConfig(confirmation_polls=1, confirmation_delay=1.0)
    async with Sandbox(config) as sandbox, AsyncSession(base_url=sandbox.url) as client:
        tx_id = await new_payout(sandbox, client)
        pool = await make_pool()
        await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, deadline=30, **FAST)
        payout = sandbox.state.payouts[tx_id]

        first = worker(await make_pool(), queue, burst=False, ctx={SESSION_KEY: client})
        running = asyncio.create_task(first.async_run())
        await until(lambda: payout.polls >= 2)  # slice 0 is polling
        # stop it as SIGTERM does: cancel the running slice and the main loop, then close
        first.handle_sig(signal.SIGTERM)
        await stopped(running, first)
        await first.close()
        assert arq_callbacks.HASHES == []
        polls_before = payout.polls
        # the watch is still on (in Redis): enqueueing it again does nothing
        assert await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH) is None

        # a new worker, with the session of instax_startup (configured from the environment)
        monkeypatch.setenv("INSTAX_BASE_URL", sandbox.url)
        second = await run_burst(
            await make_pool(), queue, on_startup=instax_startup, on_shutdown=instax_shutdown
        )
        assert SESSION_KEY not in second.ctx  # closed and removed by instax_shutdown
        assert [s.hash for s in arq_callbacks.HASHES] == [payout.hash]
        assert payout.hash is not None and payout.polls > polls_before
    slices = await results(pool, tx_id)
    assert slices.pop(payout_job_id(tx_id, 0)) == "rescheduled"  # ran again on the new worker
    assert list(slices.values())[-1] == "confirmed"
    assert set(slices.values()) <= {"rescheduled", "confirmed"}


async def test_the_same_tx_enqueued_twice_runs_one_watch(
    make_pool: MakePool, queue: str, sandbox: Sandbox, client: AsyncSession
) -> None:
    tx_id = await new_payout(sandbox, client)
    pool = await make_pool()
    jobs = await asyncio.gather(
        *(enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, **FAST) for _ in range(5))
    )
    assert sum(job is not None for job in jobs) == 1
    assert await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, **FAST) is None
    await run_burst(await make_pool(), queue, ctx={SESSION_KEY: client})
    assert len(arq_callbacks.HASHES) == 1
    assert sandbox.state.payouts[tx_id].polls == 3  # one watch's polls, no more
    # a redelivered webhook enqueues it again: the ended watch is remembered
    assert await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, **FAST) is None


async def test_duplicate_and_stale_slice_jobs_are_skipped(
    make_pool: MakePool, queue: str, sandbox: Sandbox, client: AsyncSession
) -> None:
    tx_id = await new_payout(sandbox, client)
    pool = await make_pool()
    job = await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, **FAST)
    assert job is not None
    info = await job.info()
    assert info is not None
    kwargs = dict(info.kwargs)
    # a slice 0 of another watch that slipped past the check, and a stale retry of slice 1
    # while slice 3 of this watch runs
    await pool.set(watch_key(tx_id), f"{kwargs['token']}:3")
    await pool.enqueue_job(JOB_NAME, tx_id, **{**kwargs, "token": "other"}, _job_id="dup")
    await pool.enqueue_job(JOB_NAME, tx_id, **{**kwargs, "slice_number": 1}, _job_id="stale")
    await run_burst(await make_pool(), queue, ctx={SESSION_KEY: client})
    outcomes = {r.job_id: r.result for r in await pool.all_job_results()}
    assert outcomes == {"dup": "skipped", "stale": "skipped", job.job_id: "skipped"}
    assert arq_callbacks.HASHES == [] and sandbox.state.payouts[tx_id].polls == 0
    # an ended watch skips every slice
    await pool.set(watch_key(tx_id), "done")
    await pool.enqueue_job(JOB_NAME, tx_id, **kwargs, _job_id="late")
    await run_burst(await make_pool(), queue, ctx={SESSION_KEY: client})
    assert (await pool.all_job_results())[-1].result == "skipped"


async def test_a_failed_payout_calls_on_failure(
    make_pool: MakePool, queue: str, sandbox: Sandbox, client: AsyncSession
) -> None:
    tx_id = await new_payout(sandbox, client, fail=True)
    pool = await make_pool()
    await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, on_failure=ON_FAILURE, **FAST)
    await run_burst(await make_pool(), queue, ctx={SESSION_KEY: client})
    assert arq_callbacks.HASHES == []
    [failure] = arq_callbacks.FAILURES
    assert (failure.tx_id, failure.reason) == (tx_id, PayoutFailureReason.FAILED)
    assert failure.last_status is not None and failure.last_status.status == "failed"
    assert failure.message == "the payout failed (status 'failed')"
    assert await pool.exists(watch_key(tx_id)) == 0  # ended without a hash: released


async def test_an_unknown_tx_ends_the_watch_with_an_error(
    make_pool: MakePool, queue: str, client: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await make_pool()
    await enqueue_payout_watch(pool, "wd_unknown", on_hash=ON_HASH, on_failure=ON_FAILURE, **FAST)
    with caplog.at_level(logging.ERROR, logger="instax_async.arq"):
        await run_burst(await make_pool(), queue, ctx={SESSION_KEY: client})
    [failure] = arq_callbacks.FAILURES
    assert failure.reason is PayoutFailureReason.ERROR and failure.last_status is None
    assert "unknown transaction" in failure.message
    [error] = [r for r in caplog.records if r.name == "instax_async.arq"]
    assert error.getMessage() == f"payout wd_unknown: no blockchain hash: {failure.message}"
    assert await pool.exists(watch_key("wd_unknown")) == 0  # released: may be watched again
    assert await enqueue_payout_watch(pool, "wd_unknown", on_hash=ON_HASH) is not None


async def test_the_deadline_ends_the_watch_across_slices_and_is_logged(
    make_pool: MakePool, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = SandboxConfig(confirmation_delay=60)
    async with Sandbox(config) as sandbox, AsyncSession(base_url=sandbox.url) as client:
        tx_id = await new_payout(sandbox, client)
        # the pool's default queue is another one: the slices must follow queue_name
        pool = await make_pool("arq:queue")
        # A deadline of four 0.3-s slices: long enough that the worker (started after the
        # enqueue, on a loaded machine too) polls before it passes and knows the last status.
        await enqueue_payout_watch(
            pool, tx_id, on_hash=ON_HASH, deadline=1.2, queue_name=queue, **FAST
        )
        with caplog.at_level(logging.WARNING, logger="instax_async.arq"):
            await run_burst(
                await make_pool("arq:queue"), queue, ctx={SESSION_KEY: client}, keep_result=0
            )
    assert arq_callbacks.HASHES == []
    [error] = [r for r in caplog.records if r.name == "instax_async.arq"]
    assert error.levelno == logging.ERROR  # whether or not on_failure is given
    assert error.message in (
        f"payout {tx_id}: no blockchain hash: the deadline passed without a hash "
        "(last status: 'pending')",
        # a machine so loaded that the worker's first slice started after the deadline: the
        # same ending, reported as such (test_a_slice_that_runs_after_the_deadline_reports_it)
        f"payout {tx_id}: no blockchain hash: the deadline passed before this slice ran",
    )
    assert await pool.exists(watch_key(tx_id)) == 0


async def test_a_slice_that_runs_after_the_deadline_reports_it(
    make_pool: MakePool, queue: str, client: AsyncSession
) -> None:
    pool = await make_pool()
    await pool.enqueue_job(
        JOB_NAME,
        "wd_late",
        on_hash=ON_HASH,
        on_failure=ON_FAILURE,
        deadline_at=time.time() - 1,
        slice_seconds=1.0,
        interval=0.05,
        max_interval=0.05,
        backoff=1.0,
        remember=60.0,
        token="t",
        slice_number=4,
        queue_name=None,
    )
    await run_burst(await make_pool(), queue, ctx={SESSION_KEY: client})
    [failure] = arq_callbacks.FAILURES
    assert failure.reason is PayoutFailureReason.DEADLINE and failure.last_status is None


async def test_a_failing_callback_frees_the_tx_and_retry_runs_the_slice_again(
    make_pool: MakePool, queue: str, sandbox: Sandbox, client: AsyncSession
) -> None:
    tx_id = await new_payout(sandbox, client)
    pool = await make_pool()
    await enqueue_payout_watch(pool, tx_id, on_hash=f"{CALLBACKS}:broken", **FAST)
    failed = await run_burst(await make_pool(), queue, ctx={SESSION_KEY: client})
    assert failed.jobs_failed == 1
    assert await pool.exists(watch_key(tx_id)) == 0  # can be watched again
    assert await pool.exists(f"arq:result:{payout_job_id(tx_id, 0)}")  # the failed slice 0
    again = await enqueue_payout_watch(pool, tx_id, on_hash=f"{CALLBACKS}:retry_once", **FAST)
    assert again is not None
    retried = await run_burst(await make_pool(), queue, ctx={SESSION_KEY: client})
    assert (retried.jobs_retried, retried.jobs_complete) == (1, 1)
    assert len(arq_callbacks.HASHES) == 2  # at least once: the retried slice called again
    assert await pool.get(watch_key(tx_id)) == b"done"


async def test_a_worker_without_a_shared_session_opens_one_per_slice(
    make_pool: MakePool,
    queue: str,
    sandbox: Sandbox,
    client: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INSTAX_BASE_URL", sandbox.url)
    tx_id = await new_payout(sandbox, client)
    pool = await make_pool()
    await enqueue_payout_watch(pool, tx_id, on_hash=f"{CALLBACKS}:Namespace.record", **FAST)
    await run_burst(await make_pool(), queue)
    assert [s.tx_id for s in arq_callbacks.HASHES] == [tx_id]


async def test_a_retried_slice_whose_successor_exists_does_not_enqueue_it_again(
    make_pool: MakePool, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = SandboxConfig(confirmation_delay=60)
    async with Sandbox(config) as sandbox, AsyncSession(base_url=sandbox.url) as client:
        tx_id = await new_payout(sandbox, client)
        pool = await make_pool()
        job = await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, **FAST)
        assert job is not None
        # slice 1 is there already (a retried slice 0 ran after handing over)
        await pool.enqueue_job(JOB_NAME, tx_id, _job_id=payout_job_id(tx_id, 1), _defer_by=60)
        running = worker(await make_pool(), queue, burst=False, ctx={SESSION_KEY: client})
        task = asyncio.create_task(running.async_run())
        with caplog.at_level(logging.DEBUG, logger="instax_async.arq"):
            assert await job.result(timeout=5, poll_delay=0.02) == "rescheduled"
        # the result is stored before the job's task ends: closing earlier would cancel it
        await until(lambda: all(t.done() for t in running.tasks.values()))
        await running.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert any("slice 1 is enqueued already" in r.message for r in caplog.records)


async def test_bad_callback_paths_fail_the_job_before_any_poll(
    make_pool: MakePool, queue: str, sandbox: Sandbox, client: AsyncSession
) -> None:
    tx_id = await new_payout(sandbox, client)
    pool = await make_pool()
    for path in (
        "tests.arq.nowhere:f",
        f"{CALLBACKS}:missing",
        f"{CALLBACKS}:NOT_CALLABLE",
    ):
        job = await enqueue_payout_watch(pool, tx_id, on_hash=path, on_failure=path, **FAST)
        assert job is not None
        await run_burst(await make_pool(), queue, ctx={SESSION_KEY: client})
        with pytest.raises(ValidationError) as info:
            await job.result(timeout=1)
        assert info.value.field == "on_hash" and path in str(info.value)
    assert sandbox.state.payouts[tx_id].polls == 0


async def test_instax_shutdown_without_a_session_does_nothing() -> None:
    ctx: dict[str, Any] = {}
    await instax_shutdown(ctx)
    assert ctx == {}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tx_id": ""}, "tx_id"),
        ({"tx_id": None}, "tx_id"),
        ({"on_hash": "myapp.tasks.record_hash"}, "on_hash"),
        ({"on_hash": "myapp:tasks:record"}, "on_hash"),
        ({"on_hash": 3}, "on_hash"),
        ({"on_failure": "not a path"}, "on_failure"),
        ({"deadline": 0}, "deadline"),
        ({"slice_seconds": -1}, "slice_seconds"),
        ({"remember": float("nan")}, "remember"),
        ({"interval": 0}, "interval"),
        ({"interval": 5, "max_interval": 1}, "max_interval"),
        ({"backoff": 0.5}, "backoff"),
        ({"queue_name": ""}, "queue_name"),
        ({"arq_pool": object()}, "arq_pool"),
    ],
)
async def test_enqueue_checks_every_argument_before_reaching_redis(
    kwargs: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {
        "arq_pool": ArqRedis(port=1),  # never connects: nothing reaches Redis
        "tx_id": "wd_1",
        "on_hash": "myapp.tasks:record_hash",
        **kwargs,
    }
    with pytest.raises(ValidationError) as info:
        await enqueue_payout_watch(**arguments)
    assert info.value.field == field


def test_job_ids_and_keys() -> None:
    assert payout_job_id("wd_1") == "instax:payout:wd_1:0"
    assert payout_job_id("wd_1", 7) == "instax:payout:wd_1:7"
    assert watch_key("wd_1") == "instax:payout:wd_1"


# -- faults: a Redis error in any step, a dead watch, a callback that moved, a corrupt key ----


class Intercept:
    """Act on the next ``times`` calls of one kind that a worker's pool makes.

    ``fail`` raises ``redis.exceptions.ConnectionError``, as a connection dropped with the
    command in flight does: before the command reached Redis, or (``after``) once Redis ran
    it and only its answer was lost. ``then`` runs at each intercepted call (sync or async).
    """

    def __init__(
        self,
        pool: ArqRedis,
        method: str,
        when: Callable[..., bool],
        *,
        fail: bool = True,
        after: bool = False,
        times: int = 1,
        then: Callable[[], Any] = lambda: None,
    ) -> None:
        self.left, self.hits = times, 0
        real = getattr(pool, method)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.left == 0 or not when(*args, **kwargs):
                return await real(*args, **kwargs)
            self.left -= 1
            self.hits += 1
            answer = await real(*args, **kwargs) if after or not fail else None
            done = then()
            if inspect.isawaitable(done):
                await done
            if fail:
                raise redis.exceptions.ConnectionError("Connection lost (injected)")
            return answer

        setattr(pool, method, call)


def script(shape: Callable[[tuple[Any, ...]], bool]) -> Callable[..., bool]:
    """Matches an EVALSHA of the watch's scripts whose ARGV has ``shape``."""

    def when(*args: Any, **_: Any) -> bool:
        return args[0] == "EVALSHA" and shape(args[4:])

    return when


# the begin script (ARGV: token, slice, ttl) of slice n, and the end script that writes "done"
def begin_of(n: int) -> Callable[..., bool]:
    return script(lambda argv: len(argv) == 3 and argv[1] == n)


END_DONE = script(lambda argv: len(argv) == 3 and argv[1] == "done")


def enqueue_of(n: int) -> Callable[..., bool]:
    """Matches arq's enqueue of slice n."""
    return lambda *args, **kwargs: kwargs.get("_job_id", "").endswith(f":{n}")


def confirm(sandbox: Sandbox, tx_id: str) -> Callable[[], None]:
    """Makes the payout's hash appear at the next poll (its confirmation_delay has passed)."""

    def now() -> None:
        sandbox.state.payouts[tx_id].settled_at -= 3600

    return now


PENDING = SandboxConfig(confirmation_polls=0, confirmation_delay=3600)


@pytest.mark.parametrize("step", ["begin", "handover", "end"])
async def test_a_redis_error_in_any_step_runs_the_slice_again(
    step: str, make_pool: MakePool, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with Sandbox(PENDING) as sandbox, AsyncSession(base_url=sandbox.url) as client:
        tx_id = await new_payout(sandbox, client)
        pool = await make_pool()
        options = {**FAST, "max_interval": 0.1, "backoff": 2.0}
        await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, on_failure=ON_FAILURE, **options)
        faulty = await make_pool()
        if step == "begin":  # slice 1's begin ran, and its answer was lost
            fault = Intercept(
                faulty, "execute_command", begin_of(1), after=True, then=confirm(sandbox, tx_id)
            )
        elif step == "handover":  # twice in a row (the second retry waits longer)
            ready = confirm(sandbox, tx_id)
            fault = Intercept(
                faulty,
                "enqueue_job",
                enqueue_of(1),
                times=2,
                then=lambda: fault.hits == 2 and ready(),
            )
        else:  # on_hash was called, the "done" mark was not written
            confirm(sandbox, tx_id)()
            fault = Intercept(faulty, "execute_command", END_DONE)
        with caplog.at_level(logging.WARNING, logger="instax_async.arq"):
            ran = await run_burst(faulty, queue, ctx={SESSION_KEY: client})
    assert ran.jobs_retried == fault.hits > 0
    hashes = [s.hash for s in arq_callbacks.HASHES]
    # at least once: a slice that ran on_hash and then met the error calls it again
    assert hashes == [sandbox.state.payouts[tx_id].hash] * (2 if step == "end" else 1)
    assert arq_callbacks.FAILURES == []
    assert await pool.get(watch_key(tx_id)) == b"done"
    assert list((await results(pool, tx_id)).values())[-1] == "confirmed"
    retried = [r.getMessage() for r in caplog.records if "Redis failed" in r.getMessage()]
    assert len(retried) == fault.hits
    assert retried[0].endswith(
        "(ConnectionError: Connection lost (injected)); it runs again in 0.05 s"
    )
    if step == "handover":  # the poll's wait for the second try: interval * backoff
        assert retried[1].endswith("it runs again in 0.1 s")


async def test_enqueue_takes_over_the_key_of_a_watch_arq_gave_up_on(
    make_pool: MakePool, queue: str
) -> None:
    async with Sandbox(PENDING) as sandbox, AsyncSession(base_url=sandbox.url) as client:
        tx_id = await new_payout(sandbox, client)
        pool = await make_pool()
        await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, **FAST)
        # slice 1 begins (its key written), its answer is lost, and arq may not retry it
        faulty = await make_pool()
        Intercept(faulty, "execute_command", begin_of(1), after=True)
        dead = await run_burst(faulty, queue, ctx={SESSION_KEY: client}, max_tries=1)
        assert dead.jobs_failed == 1
        token = (await pool.get(watch_key(tx_id))).split(b":")[0]
        assert await pool.get(watch_key(tx_id)) == token + b":1"  # left behind, no job
        # a new watch takes over; its slices reuse the ids whose results the dead one left
        job = await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, **FAST)
        assert job is not None
        assert await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, **FAST) is None
        watching = await make_pool()
        Intercept(watching, "enqueue_job", enqueue_of(1), fail=False, then=confirm(sandbox, tx_id))
        await run_burst(watching, queue, ctx={SESSION_KEY: client})
    assert [s.tx_id for s in arq_callbacks.HASHES] == [tx_id]
    assert await results(pool, tx_id) == {
        payout_job_id(tx_id, 0): "rescheduled",
        payout_job_id(tx_id, 1): "confirmed",
    }


@pytest.mark.parametrize(
    ("state", "jobs", "watched"),
    [
        ("done", [], True),  # ended less than `remember` ago
        ("t:3", [3], True),  # slice 3 queued, deferred, retried or running
        ("t:3", [4], True),  # slice 3 handed over to slice 4
        ("t:3", [], False),  # dead: no job of the watch is left
        ("t:3", [2, 5], False),
    ],
)
async def test_enqueue_answers_none_only_while_a_job_of_the_watch_is_queued_or_running(
    make_pool: MakePool, state: str, jobs: list[int], watched: bool
) -> None:
    pool = await make_pool()
    await pool.set(watch_key("wd_1"), state)
    for n in jobs:
        await pool.enqueue_job(JOB_NAME, "wd_1", _job_id=payout_job_id("wd_1", n), _defer_by=60)
    job = await enqueue_payout_watch(pool, "wd_1", on_hash=ON_HASH)
    assert (job is None) is watched
    if not watched:
        assert job is not None and job.job_id == payout_job_id("wd_1", 0)


async def test_a_callback_path_that_stops_resolving_ends_the_watch_and_frees_the_tx(
    make_pool: MakePool,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(arq_callbacks, "renamed", arq_callbacks.record_hash, raising=False)
    async with Sandbox(PENDING) as sandbox, AsyncSession(base_url=sandbox.url) as client:
        tx_id = await new_payout(sandbox, client)
        pool = await make_pool()
        on_hash = f"{CALLBACKS}:renamed"
        await enqueue_payout_watch(pool, tx_id, on_hash=on_hash, on_failure=ON_FAILURE, **FAST)
        # a deploy renames the callback while slice 0 hands over to slice 1
        worker_pool = await make_pool()
        Intercept(
            worker_pool,
            "enqueue_job",
            enqueue_of(1),
            fail=False,
            then=lambda: monkeypatch.delattr(arq_callbacks, "renamed"),
        )
        with caplog.at_level(logging.ERROR, logger="instax_async.arq"):
            ran = await run_burst(worker_pool, queue, ctx={SESSION_KEY: client})
    assert ran.jobs_failed == 1  # slice 1, with the ValidationError
    [failure] = arq_callbacks.FAILURES
    assert (failure.tx_id, failure.reason) == (tx_id, PayoutFailureReason.CALLBACK)
    assert failure.message.startswith(f"on_hash: cannot import '{on_hash}'")
    [error] = [r for r in caplog.records if r.name == "instax_async.arq"]
    assert error.levelno == logging.ERROR
    assert error.getMessage().startswith(f"payout {tx_id}: the watch cannot go on: on_hash:")
    assert await pool.exists(watch_key(tx_id)) == 0
    assert await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, **FAST) is not None


@pytest.mark.parametrize(
    ("corrupt", "found"),
    [
        ({"set": "garbage"}, "a string the SDK does not write"),
        ({"set": "abc:12345678901"}, "a string the SDK does not write"),  # slice over 9 digits
        ({"hset": {"token": "x"}}, "a Redis hash"),
    ],
)
async def test_a_watch_key_the_sdk_did_not_write_ends_the_watch_and_blocks_nothing(
    make_pool: MakePool,
    queue: str,
    redis_client: Any,
    caplog: pytest.LogCaptureFixture,
    corrupt: dict[str, Any],
    found: str,
) -> None:
    async def tamper(key: str) -> None:
        await redis_client.delete(key)
        if "set" in corrupt:
            await redis_client.set(key, corrupt["set"])
        else:
            await redis_client.hset(key, mapping=corrupt["hset"])

    async with Sandbox(PENDING) as sandbox, AsyncSession(base_url=sandbox.url) as client:
        tx_id = await new_payout(sandbox, client)
        key = watch_key(tx_id)
        pool = await make_pool()
        await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, on_failure=ON_FAILURE, **FAST)
        worker_pool = await make_pool()  # the key is changed while slice 0 hands over
        Intercept(worker_pool, "enqueue_job", enqueue_of(1), fail=False, then=lambda: tamper(key))
        with caplog.at_level(logging.WARNING, logger="instax_async.arq"):
            await run_burst(worker_pool, queue, ctx={SESSION_KEY: client})
        text = f"the watch key {key} held {found}; the watch ended"
        [failure] = arq_callbacks.FAILURES
        assert (failure.reason, failure.message) == (PayoutFailureReason.CORRUPT, text)
        assert await results(pool, tx_id) == {
            payout_job_id(tx_id, 0): "rescheduled",
            payout_job_id(tx_id, 1): "failed",
        }
        assert await pool.exists(key) == 0
        # found by the next enqueue instead, with no watch running: taken over
        await tamper(key)
        assert await enqueue_payout_watch(pool, tx_id, on_hash=ON_HASH, **FAST) is not None
    warnings = [r for r in caplog.records if r.name == "instax_async.arq"]
    assert [(r.levelno, r.getMessage()) for r in warnings] == [
        (logging.WARNING, f"payout {tx_id}: {text}"),
        (
            logging.WARNING,
            f"payout {tx_id}: the watch key {key} held {found}; deleted, a new watch takes over",
        ),
    ]
