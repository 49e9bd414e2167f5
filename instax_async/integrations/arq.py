"""Durable payout polling on arq: watches that survive worker restarts and never hog a worker.

A web app that polls payouts in-process forgets them when it restarts. Here each payout is
watched by an `arq <https://arq-docs.helpmanual.io/>`_ job (install the extra:
``pip install 'instax-async[arq]'``): the job polls with the SDK's poll engine for one bounded
*slice* of time, and if no hash appeared, enqueues its next slice (deferred) and ends. The
state of a watch lives in Redis, so a worker that restarts, or another worker, carries on::

    # in the web app (e.g. a webhook handler)
    await enqueue_payout_watch(arq_pool, event.withdraw_tx_id, on_hash="myapp.tasks:record_hash")

    # myapp/tasks.py
    async def record_hash(status: BlockchainStatus) -> None:
        await payouts.save_hash(status.tx_id, status.hash)

    class WorkerSettings:                       # arq myapp.tasks.WorkerSettings
        functions = [watch_payout]
        on_startup = instax_startup             # one AsyncSession for every job
        on_shutdown = instax_shutdown

How a watch goes:

- Each slice polls for ``min(slice_seconds, time left to the deadline)``; the deadline is an
  absolute (epoch) time fixed when the watch was enqueued and handed from slice to slice.
- A hash: the callback ``on_hash`` (a ``"module:function"`` import path, so it survives
  restarts; sync or async) is called with the final :class:`~instax_async.BlockchainStatus`.
- A failed payout, the deadline, or an API error that retrying cannot fix (e.g. 404): the
  watch ends with an ERROR on the ``instax_async.arq`` logger, and the optional ``on_failure``
  path is called with a :class:`PayoutWatchFailure`.
- Callbacks run at least once: a worker that dies during a callback runs that slice again,
  which finds the hash again. Make them idempotent (an upsert of the hash).

**One watch per transaction.** Slice ``n`` of the watch of ``tx_id`` is the arq job
``instax:payout:{tx_id}:{n}``. :func:`enqueue_payout_watch` always enqueues slice 0, so arq
refuses a second enqueue while slice 0 is queued or running, atomically. A running slice
cannot re-enqueue its own id (arq still holds it), so the next slice has the next number.
Once the watch has moved past slice 0, arq alone would accept slice 0 again (as soon as its
kept result expires); the Redis key ``instax:payout:{tx_id}`` closes that gap. It holds
``{token}:{n}``: the watch's random token and the slice running now, with a TTL past the
deadline.

- :func:`enqueue_payout_watch` first runs one Lua script on that key. Absent: slice 0 is
  enqueued. ``done``: nothing (``None``). ``{token}:{n}`` while arq still holds the job of
  slice ``n`` or ``n + 1`` (arq keeps ``arq:job:{id}`` while a job is queued, deferred, retried
  or running): nothing (``None``). ``{token}:{n}`` with neither job there is the key of a dead
  watch (arq gave up on it, or it failed without freeing the tx): the script deletes it and a
  new watch is enqueued. A kept arq result of an earlier watch's slice never blocks a new one.
- Each slice starts with one Lua script: the key absent or holding this watch's token at a
  slice ``<= n`` → it is set to ``{token}:{n}`` and the slice polls; another token (a second
  watch that raced past the check), a later slice (a stale retry), or ``done`` → the slice
  ends at once (``"skipped"``) without polling.
- When the watch found its hash, after ``on_hash``, the key becomes ``done`` for ``remember``
  seconds (default one day): enqueueing the tx again then does nothing, so a redelivered
  webhook does not call ``on_hash`` twice. A watch that ends without a hash (after
  ``on_failure``) deletes the key instead: nothing is left to block a new watch.

**Faults.** Every step of a slice is safe to run twice: the begin script accepts the slice's
own token again, a slice enqueued already is not enqueued twice, a callback runs at least once.
So:

- A Redis error the watch can outlive (connection lost, a timeout, a read-only replica or a
  loading server during a failover), in any step, raises arq's ``Retry``: arq runs the slice
  again after the poll's wait for that try (``interval * backoff ** (try - 1)``, at most
  ``max_interval``). After arq's ``max_tries`` (default 5; raise it with
  ``arq.worker.func(watch_payout, max_tries=…)``) arq fails the job: the watch is dead, and the
  next :func:`enqueue_payout_watch` of the tx takes over its key.
- A watch that cannot go on: a callback path that no longer resolves (a deploy renamed it) is
  logged at ERROR, ``on_failure`` is called if it still resolves
  (:attr:`PayoutFailureReason.CALLBACK`), the key is deleted and the job fails, so the tx can
  be enqueued again once the path is fixed. A callback that raises fails the job and deletes
  the key too; raising arq's ``Retry`` from a callback runs the slice again instead.
- A key holding a value the SDK does not write (not ``{token}:{n}`` or ``done``, or not a
  string at all: a hash, a list…) is logged at WARNING naming the key. The slice that finds it
  ends the watch (``on_failure`` with :attr:`PayoutFailureReason.CORRUPT`) and deletes the key;
  :func:`enqueue_payout_watch` finding it deletes it and starts a new watch.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from .._extras import extra_required

with extra_required("arq", "arq", "redis"):
    from arq.connections import ArqRedis
    from arq.constants import job_key_prefix, result_key_prefix
    from arq.jobs import Job
    from arq.worker import Retry, RetryJob

    from . import _payout_watch as watch

from .._validate import check_id, check_number
from ..client import AsyncSession
from ..errors import APIStatusError, PollTimeoutError, ValidationError
from ..models import BlockchainStatus
from ..polling import POLL_DEFAULTS, PollOptions
from ._payout_watch import PayoutFailureReason, PayoutWatchFailure

__all__ = [
    "JOB_NAME",
    "SESSION_KEY",
    "PayoutFailureReason",
    "PayoutWatchFailure",
    "enqueue_payout_watch",
    "instax_startup",
    "instax_shutdown",
    "payout_job_id",
    "watch_key",
    "watch_payout",
]

logger = logging.getLogger("instax_async.arq")
_log = watch.WatchLog(logger, dead="no job of its last watch is left")

JOB_NAME = "watch_payout"
"""The arq function name of :func:`watch_payout` (register the function under this name)."""
SESSION_KEY = "instax_session"
"""The worker ``ctx`` key where :func:`instax_startup` keeps the shared :class:`AsyncSession`.
"""

_PREFIX = "instax:payout:"


def payout_job_id(tx_id: str, slice_number: int = 0) -> str:
    """The arq job id of slice ``slice_number`` of the watch of ``tx_id``.

    >>> payout_job_id("wd_1")
    'instax:payout:wd_1:0'
    """
    return f"{_PREFIX}{tx_id}:{slice_number}"


def watch_key(tx_id: str) -> str:
    """The Redis key that records the watch of ``tx_id`` (``{token}:{slice}`` or ``done``).

    >>> watch_key("wd_1")
    'instax:payout:wd_1'
    """
    return f"{_PREFIX}{tx_id}"


async def _call(callback: Callable[..., Any], argument: object) -> None:
    result = callback(argument)
    if inspect.isawaitable(result):
        await result


async def _script(redis: ArqRedis, text: str, key: str, *args: str | int) -> int | str:
    """Run a script (EVALSHA, falling back to EVAL once per server): its number, or its text."""
    result: Any = await redis.register_script(text)(keys=[key], args=list(args))
    # arq's pools answer bytes (it unpickles its jobs): no decode_responses to allow for
    return result.decode("utf-8", "replace") if isinstance(result, bytes) else int(result)


async def _enqueue(redis: ArqRedis, tx_id: str, job_id: str, **job: Any) -> Job | None:
    """Enqueue a slice unless arq holds a job of that id; a kept result alone does not count."""
    enqueued = await redis.enqueue_job(JOB_NAME, tx_id, **job, _job_id=job_id)
    if (
        enqueued is None
        and not await redis.exists(job_key_prefix + job_id)
        and await redis.delete(result_key_prefix + job_id)
    ):
        # The id is neither queued nor running, only the kept result of an earlier watch of
        # this tx (one that failed, or whose `remember` ran out) holds it: nothing watches
        # the tx with that slice now, so that stale result must not refuse this one.
        enqueued = await redis.enqueue_job(JOB_NAME, tx_id, **job, _job_id=job_id)
    return enqueued


async def enqueue_payout_watch(
    arq_pool: ArqRedis,
    tx_id: str,
    *,
    on_hash: str,
    on_failure: str | None = None,
    deadline: float = 3600.0,
    slice_seconds: float = 60.0,
    interval: float = POLL_DEFAULTS.interval,
    max_interval: float = POLL_DEFAULTS.max_interval,
    backoff: float = POLL_DEFAULTS.backoff,
    remember: float = 86_400.0,
    queue_name: str | None = None,
) -> Job | None:
    """Watch the payout ``tx_id`` on an arq worker until it has a hash; ``None`` if already.

    :param arq_pool: an ``arq.connections.ArqRedis`` (from ``arq.create_pool``).
    :param tx_id: the payout's transaction id (:attr:`WebhookEvent.withdraw_tx_id`).
    :param on_hash: ``"module:function"`` called with the final
        :class:`~instax_async.BlockchainStatus` once it has a hash (sync or async).
    :param on_failure: ``"module:function"`` called with a :class:`PayoutWatchFailure` when the
        watch ends without a hash (the payout failed, the deadline passed, the API answered an
        unfixable error, ``on_hash`` no longer resolves, the watch's key was corrupted). Each of
        these is logged at ERROR (a corrupt key at WARNING) whether or not it is given.
    :param deadline: seconds from now the whole watch may take, across slices and restarts.
    :param slice_seconds: the longest one job polls before handing over to the next slice;
        keep it well below the worker's ``job_timeout``.
    :param interval: the first wait between polls within a slice (see
        :mod:`instax_async.polling`); each slice starts again at ``interval``, and the next
        slice starts ``interval`` seconds after one ends.
    :param max_interval: the longest wait between polls within a slice.
    :param backoff: the factor each wait grows by, up to ``max_interval``.
    :param remember: seconds a watch that found its hash is remembered, during which
        enqueueing the same tx again does nothing (a watch that ends without one is not).
    :param queue_name: the arq queue (default: the pool's).

    Returns the arq ``Job`` of slice 0, or ``None`` when the tx is already watched (a job of its
    watch is queued or running) or its watch found the hash less than ``remember`` seconds ago:
    enqueueing a tx twice runs one watch. The key of a watch that died (no job of it is left)
    is taken over, as is a key holding a value the SDK does not write (logged at WARNING).
    Every argument is checked before anything is sent to Redis; a bad one raises
    :class:`~instax_async.ValidationError` naming it. A Redis error is raised as the Redis
    client raised it.

    >>> job = await enqueue_payout_watch(
    ...     pool, tx_id, on_hash="myapp.tasks:record_hash"
    ... )  # doctest: +SKIP
    """
    if not callable(getattr(arq_pool, "enqueue_job", None)):
        raise ValidationError(
            "arq_pool: expected an arq.connections.ArqRedis (from arq.create_pool), "
            f"got {type(arq_pool).__name__}",
            field="arq_pool",
        )
    tx_id = check_id(tx_id, "tx_id")
    watch.check_path(on_hash, "on_hash")
    watch.check_path(on_failure, "on_failure", optional=True)
    deadline = check_number("deadline", deadline, accepted=" (seconds)")
    slice_seconds = check_number("slice_seconds", slice_seconds, accepted=" (seconds)")
    remember = check_number("remember", remember, accepted=" (seconds)")
    options = PollOptions(interval=interval, max_interval=max_interval, backoff=backoff)
    if queue_name is not None and (not isinstance(queue_name, str) or not queue_name):
        raise ValidationError(
            f"queue_name: expected a non-empty string or None, got {queue_name!r}",
            field="queue_name",
        )
    key = watch_key(tx_id)
    jobs = job_key_prefix + payout_job_id(tx_id, 0)[:-1]
    found = await _script(arq_pool, watch.ADOPT, key, jobs)
    if not _log.adopted(tx_id, key, found):
        return None
    return await _enqueue(
        arq_pool,
        tx_id,
        payout_job_id(tx_id, 0),
        on_hash=on_hash,
        on_failure=on_failure,
        deadline_at=time.time() + deadline,
        slice_seconds=slice_seconds,
        interval=options.interval,
        max_interval=options.max_interval,
        backoff=options.backoff,
        remember=remember,
        token=uuid.uuid4().hex,
        slice_number=0,
        queue_name=queue_name,
        _queue_name=queue_name,
        _expires=deadline + watch.MARGIN,
    )


async def watch_payout(
    ctx: dict[Any, Any],
    tx_id: str,
    *,
    on_hash: str,
    on_failure: str | None,
    deadline_at: float,
    slice_seconds: float,
    interval: float,
    max_interval: float,
    backoff: float,
    remember: float,
    token: str,
    slice_number: int,
    queue_name: str | None,
) -> str:
    """The arq job behind :func:`enqueue_payout_watch`: one slice of a payout's watch.

    Register it in the worker's ``functions``; enqueue it only through
    :func:`enqueue_payout_watch`. It uses the :class:`~instax_async.AsyncSession` in
    ``ctx["instax_session"]`` (see :func:`instax_startup`), or else one of its own for the
    slice, configured from ``INSTAX_API_KEY`` / ``INSTAX_BASE_URL``. Returns what happened:
    ``"confirmed"`` (``on_hash`` was called), ``"failed"`` (the watch ended without a hash:
    logged, and ``on_failure`` called), ``"rescheduled"`` (the next slice is enqueued) or
    ``"skipped"`` (this tx is watched by another job, or its watch has ended). A Redis error it
    can outlive raises arq's ``Retry``, so that arq runs the slice again.
    """
    job = dict(
        on_hash=on_hash,
        on_failure=on_failure,
        deadline_at=deadline_at,
        slice_seconds=slice_seconds,
        interval=interval,
        max_interval=max_interval,
        backoff=backoff,
        remember=remember,
        token=token,
        slice_number=slice_number,
        queue_name=queue_name,
    )
    try:
        return await _Slice(ctx, tx_id, job).run()
    except watch.TRANSIENT as exc:
        delay = watch.retry_delay(int(ctx.get("job_try") or 1), interval, max_interval, backoff)
        _log.retrying(tx_id, slice_number, exc, delay)
        raise Retry(defer=delay) from exc


class _Slice:
    """One run of one slice: the steps of :func:`watch_payout`, each a short method."""

    def __init__(self, ctx: dict[Any, Any], tx_id: str, job: dict[str, Any]) -> None:
        self.ctx = ctx
        self.redis: ArqRedis = ctx["redis"]
        self.tx_id = tx_id
        self.key = watch_key(tx_id)
        self.job = job
        self.token: str = job["token"]
        self.number: int = job["slice_number"]
        self.on_failure: Callable[..., Any] | None = None

    async def run(self) -> str:
        left = self.job["deadline_at"] - time.time()
        ttl = watch.ms(max(left, 0.0) + watch.MARGIN)
        begun = await _script(self.redis, watch.BEGIN, self.key, self.token, self.number, ttl)
        if isinstance(begun, int) and begun:
            _log.skipped(self.tx_id, self.number, begun)
            return "skipped"
        try:
            if isinstance(begun, str):
                return await self.corrupt(begun)
            try:
                on_hash = self.resolve("on_hash")
            except ValidationError as exc:
                with contextlib.suppress(ValidationError):  # logged; on_hash's error is raised
                    self.resolve_on_failure()
                await self.report(self.failure(PayoutFailureReason.CALLBACK, str(exc)))
                raise
            self.resolve_on_failure()
            return await self.poll(on_hash, left)
        except (Retry, RetryJob, *watch.TRANSIENT):
            raise  # arq runs this slice again: the watch goes on
        except Exception:
            # this watch cannot go on: free the tx, so that it can be enqueued again
            await self.release("failed")
            raise

    def resolve(self, field: str) -> Callable[..., Any]:
        """The callback named by ``field``; one that does not resolve ends the watch."""
        try:
            return watch.resolve(self.job[field], field)
        except ValidationError as exc:
            _log.cannot_go_on(self.tx_id, exc)
            raise

    def resolve_on_failure(self) -> None:
        if self.job["on_failure"] is not None:
            self.on_failure = self.resolve("on_failure")

    def failure(self, reason: PayoutFailureReason, message: str) -> PayoutWatchFailure:
        return PayoutWatchFailure(
            tx_id=self.tx_id, reason=reason, last_status=None, message=message
        )

    async def corrupt(self, found: str) -> str:
        text = _log.corrupt(self.tx_id, self.key, found)
        self.resolve_on_failure()
        await self.report(self.failure(PayoutFailureReason.CORRUPT, text))
        return await self.release("failed")

    async def poll(self, on_hash: Callable[..., Any], left: float) -> str:
        job = self.job
        if left <= 0:
            return await self.fail(watch.too_late(self.tx_id))
        session: AsyncSession | None = self.ctx.get(SESSION_KEY)
        own_session = session is None
        if session is None:
            session = AsyncSession()
        outcome: BlockchainStatus | PollTimeoutError | APIStatusError
        try:
            outcome = await session.wait_for_blockchain_status(
                self.tx_id,
                interval=job["interval"],
                max_interval=job["max_interval"],
                backoff=job["backoff"],
                timeout=min(job["slice_seconds"], left),
            )
        except (PollTimeoutError, APIStatusError) as exc:
            outcome = exc
        finally:
            if own_session:
                await session.aclose()
        # the last slice runs up to the deadline: its timeout is the deadline's
        verdict = watch.judge(self.tx_id, outcome, last_slice=left <= job["slice_seconds"])
        if verdict is None:
            return await self.hand_over()
        if isinstance(verdict, PayoutWatchFailure):
            return await self.fail(verdict)
        await _call(on_hash, verdict)
        return await self.end("confirmed")

    async def hand_over(self) -> str:
        job = {**self.job, "slice_number": self.number + 1}
        left = job["deadline_at"] - time.time()
        enqueued = await _enqueue(
            self.redis,
            self.tx_id,
            payout_job_id(self.tx_id, self.number + 1),
            **job,
            _queue_name=job["queue_name"],
            _defer_by=max(0.0, min(job["interval"], left)),
            _expires=max(left, 0.0) + watch.MARGIN,
        )
        if enqueued is None:  # only a retried slice whose successor exists already gets here
            logger.debug("payout %s: slice %d is enqueued already", self.tx_id, self.number + 1)
        return "rescheduled"

    async def report(self, failure: PayoutWatchFailure) -> None:
        if self.on_failure is not None:
            await _call(self.on_failure, failure)

    async def fail(self, failure: PayoutWatchFailure) -> str:
        _log.no_hash(failure)
        await self.report(failure)
        return await self.release("failed")

    async def end(self, outcome: str) -> str:
        """Mark the watch ``done`` for ``remember`` seconds."""
        remember = watch.ms(self.job["remember"])
        await _script(self.redis, watch.END, self.key, self.token, watch.DONE, remember)
        return outcome

    async def release(self, outcome: str) -> str:
        """Delete the key (if still this watch's, or corrupt): the tx may be watched again."""
        await _script(self.redis, watch.END, self.key, self.token)
        return outcome


async def instax_startup(ctx: dict[Any, Any]) -> None:
    """An arq ``on_startup``: one :class:`~instax_async.AsyncSession` for every job.

    It is configured from ``INSTAX_API_KEY`` / ``INSTAX_BASE_URL``. To configure it yourself,
    put your own in ``ctx["instax_session"]`` from your ``on_startup`` instead.
    """
    ctx[SESSION_KEY] = AsyncSession()


async def instax_shutdown(ctx: dict[Any, Any]) -> None:
    """An arq ``on_shutdown``: close the session :func:`instax_startup` opened."""
    session = ctx.pop(SESSION_KEY, None)
    if session is not None:
        await session.aclose()
