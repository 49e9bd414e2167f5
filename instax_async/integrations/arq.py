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
  optional ``on_failure`` path is called with a :class:`PayoutWatchFailure`; without one, a
  warning is logged on the ``instax_async.arq`` logger.
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

- :func:`enqueue_payout_watch` does nothing (returns ``None``) while the key exists. A kept
  arq result of an earlier watch's slice 0 does not block a new watch once the key is gone.
- Each slice starts with one Lua script: the key absent or holding this watch's token at a
  slice ``<= n`` → it is set to ``{token}:{n}`` and the slice polls; another token (a second
  watch that raced past the check), a later slice (a stale retry), or ``done`` → the slice
  ends at once (``"skipped"``) without polling.
- When the watch ends (hash, failure or deadline), after the callback, the key becomes
  ``done`` for ``remember`` seconds (default one day): enqueueing the tx again then does
  nothing, so a redelivered webhook does not call ``on_hash`` twice.
- A slice that raises (a callback that failed, an import path that does not resolve) deletes
  the key if it is still its own, so the watch can be enqueued again; arq records the failure.
  Raising arq's ``Retry`` from a callback retries the slice instead.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from .._extras import extra_required

with extra_required("arq", "arq", "redis"):
    from arq.connections import ArqRedis
    from arq.constants import job_key_prefix, result_key_prefix
    from arq.jobs import Job
    from arq.worker import Retry, RetryJob

from ..client import AsyncSession
from ..errors import APIStatusError, PollTimeoutError, ValidationError
from ..models import BlockchainStatus
from ..polling import POLL_DEFAULTS, PollOptions, _number, check_id

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

JOB_NAME = "watch_payout"
"""The arq function name of :func:`watch_payout` (register the function under this name)."""
SESSION_KEY = "instax_session"
"""The worker ``ctx`` key where :func:`instax_startup` keeps the shared :class:`AsyncSession`.
"""

_PREFIX = "instax:payout:"
_DONE = "done"
# a watch's key and its jobs outlive the deadline by this much, so a worker that was down for
# a while still finds them and reports the deadline instead of losing the watch
_MARGIN = 86_400.0
_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

# KEYS[1]: the watch key; ARGV: token, slice number, TTL in ms.
# Returns 0 (go on: the key now says token:slice), 1 (done), 2 (another watch), 3 (stale slice).
_BEGIN = """
local v = redis.call('GET', KEYS[1])
if v then
  if v == 'done' then return 1 end
  local sep = string.find(v, ':', 1, true)
  if not sep or string.sub(v, 1, sep - 1) ~= ARGV[1] then return 2 end
  if tonumber(string.sub(v, sep + 1)) > tonumber(ARGV[2]) then return 3 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
return 0
"""
_SKIPPED = {1: "the watch has ended", 2: "another watch owns it", 3: "a later slice is running"}

# KEYS[1]: the watch key; ARGV: token, then "done" and its TTL in ms (end) or nothing (release).
# Only the watch that owns the key may end or release it.
_END = """
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ':' then return 0 end
if ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
"""


class PayoutFailureReason(str, enum.Enum):
    """Why a payout watch ended without a hash."""

    #: The blockchain status says the payout failed (:attr:`BlockchainStatus.is_failed`).
    FAILED = "failed"
    #: The overall deadline passed without a hash.
    DEADLINE = "deadline"
    #: The API answered an error that retrying cannot fix (e.g. 404 for an unknown tx id).
    ERROR = "error"


@attrs.frozen
class PayoutWatchFailure:
    """What ``on_failure`` receives when a watch ends without a hash.

    >>> async def payout_failed(failure: PayoutWatchFailure) -> None:
    ...     await alerts.send(f"payout {failure.tx_id}: {failure.reason.value}: {failure.message}")
    """

    #: The payout's transaction id.
    tx_id: str
    #: Why the watch ended.
    reason: PayoutFailureReason
    #: The last status seen (``None`` if no answer arrived).
    last_status: BlockchainStatus | None
    #: A sentence for logs and alerts.
    message: str


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


def _check_path(value: object, field: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _PATH.match(value):
        raise ValidationError(
            f"{field}: expected an import path 'module:function' such as "
            f"'myapp.tasks:record_hash', got {value!r}",
            field=field,
        )
    return value


def _resolve(path: str, field: str) -> Callable[..., Any]:
    module_name, _, attribute = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(f"{field}: cannot import {path!r}: {exc}", field=field) from exc
    if not callable(target):
        raise ValidationError(
            f"{field}: {path!r} is a {type(target).__name__}, not a function", field=field
        )
    return target  # type: ignore[no-any-return]


async def _call(callback: Callable[..., Any], argument: object) -> None:
    result = callback(argument)
    if inspect.isawaitable(result):
        await result


async def _script(redis: ArqRedis, text: str, key: str, *args: str | int) -> int:
    # EVALSHA, falling back to EVAL once per Redis server (the script is cached there)
    result: Any = await redis.register_script(text)(keys=[key], args=list(args))
    return int(result)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


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
        payout failed, the deadline passed or the API answered an unfixable error; ``None``
        logs a warning instead.
    :param deadline: seconds from now the whole watch may take, across slices and restarts.
    :param slice_seconds: the longest one job polls before handing over to the next slice;
        keep it well below the worker's ``job_timeout``.
    :param interval: the first wait between polls within a slice (see
        :mod:`instax_async.polling`); each slice starts again at ``interval``, and the next
        slice starts ``interval`` seconds after one ends.
    :param max_interval: the longest wait between polls within a slice.
    :param backoff: the factor each wait grows by, up to ``max_interval``.
    :param remember: seconds an ended watch is remembered, during which enqueueing the same tx
        again does nothing.
    :param queue_name: the arq queue (default: the pool's).

    Returns the arq ``Job`` of slice 0, or ``None`` when the tx is already watched (its slice 0
    is queued or running, or the watch key exists: a later slice runs, or the watch ended less
    than ``remember`` seconds ago): enqueueing a tx twice runs one watch.
    Every argument is checked before anything is sent to Redis; a bad one raises
    :class:`~instax_async.ValidationError` naming it.

    >>> job = await enqueue_payout_watch(pool, tx_id, on_hash="myapp.tasks:record_hash")
    ... # doctest: +SKIP
    """
    if not callable(getattr(arq_pool, "enqueue_job", None)):
        raise ValidationError(
            "arq_pool: expected an arq.connections.ArqRedis (from arq.create_pool), "
            f"got {type(arq_pool).__name__}",
            field="arq_pool",
        )
    tx_id = check_id(tx_id, "tx_id")
    _check_path(on_hash, "on_hash")
    _check_path(on_failure, "on_failure", optional=True)
    deadline = _number("deadline", deadline, accepted=" (seconds)")
    slice_seconds = _number("slice_seconds", slice_seconds, accepted=" (seconds)")
    remember = _number("remember", remember, accepted=" (seconds)")
    options = PollOptions(interval=interval, max_interval=max_interval, backoff=backoff)
    if queue_name is not None and (not isinstance(queue_name, str) or not queue_name):
        raise ValidationError(
            f"queue_name: expected a non-empty string or None, got {queue_name!r}",
            field="queue_name",
        )
    if await arq_pool.exists(watch_key(tx_id)):
        logger.debug("payout %s is already watched (or its watch ended recently)", tx_id)
        return None
    job_id = payout_job_id(tx_id, 0)
    job: dict[str, Any] = dict(
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
        _job_id=job_id,
        _queue_name=queue_name,
        _expires=deadline + _MARGIN,
    )
    enqueued = await arq_pool.enqueue_job(JOB_NAME, tx_id, **job)
    if (
        enqueued is None
        and not await arq_pool.exists(job_key_prefix + job_id)
        and await arq_pool.delete(result_key_prefix + job_id)
    ):
        # Slice 0 is neither queued nor running, only the kept result of an earlier watch of
        # this tx (one that failed, or whose `remember` ran out) holds its id: nothing watches
        # the tx now, so that stale result must not refuse the new watch.
        enqueued = await arq_pool.enqueue_job(JOB_NAME, tx_id, **job)
    return enqueued


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
    ``"confirmed"`` (``on_hash`` was called), ``"failed"`` (``on_failure`` was called or a
    warning logged), ``"rescheduled"`` (the next slice is enqueued) or ``"skipped"`` (this tx
    is watched by another job, or its watch has ended).
    """
    redis: ArqRedis = ctx["redis"]
    key = watch_key(tx_id)
    hash_callback = _resolve(on_hash, "on_hash")
    failure_callback = None if on_failure is None else _resolve(on_failure, "on_failure")
    left = deadline_at - time.time()
    begun = await _script(redis, _BEGIN, key, token, slice_number, _ms(max(left, 0.0) + _MARGIN))
    if begun:
        logger.info("payout %s: slice %d skipped: %s", tx_id, slice_number, _SKIPPED[begun])
        return "skipped"

    async def end(outcome: str) -> str:
        await _script(redis, _END, key, token, _DONE, _ms(remember))
        return outcome

    async def fail(reason: PayoutFailureReason, last: BlockchainStatus | None, text: str) -> str:
        failure = PayoutWatchFailure(tx_id=tx_id, reason=reason, last_status=last, message=text)
        if failure_callback is None:
            logger.warning("payout %s: no blockchain hash: %s", tx_id, text)
        else:
            await _call(failure_callback, failure)
        return await end("failed")

    try:
        if left <= 0:
            return await fail(
                PayoutFailureReason.DEADLINE, None, "the deadline passed before this slice ran"
            )
        # the last slice runs up to the deadline: its timeout is the deadline's
        last_slice = left <= slice_seconds
        session: AsyncSession | None = ctx.get(SESSION_KEY)
        own_session = session is None
        if session is None:
            session = AsyncSession()
        try:
            status = await session.wait_for_blockchain_hash(
                tx_id,
                interval=interval,
                max_interval=max_interval,
                backoff=backoff,
                timeout=min(slice_seconds, left),
            )
        except PollTimeoutError as exc:
            if last_slice:
                last = exc.last_status
                seen = "no answer arrived" if last is None else f"last status: {last.status!r}"
                text = f"the deadline passed without a hash ({seen})"
                return await fail(PayoutFailureReason.DEADLINE, last, text)
            return await _enqueue_slice(
                redis,
                tx_id,
                on_hash=on_hash,
                on_failure=on_failure,
                deadline_at=deadline_at,
                slice_seconds=slice_seconds,
                interval=interval,
                max_interval=max_interval,
                backoff=backoff,
                remember=remember,
                token=token,
                slice_number=slice_number + 1,
                queue_name=queue_name,
            )
        except APIStatusError as exc:
            return await fail(PayoutFailureReason.ERROR, None, str(exc))
        finally:
            if own_session:
                await session.aclose()
        if status.hash is None:
            text = f"the payout failed (status {status.status!r})"
            return await fail(PayoutFailureReason.FAILED, status, text)
        await _call(hash_callback, status)
        return await end("confirmed")
    except (Retry, RetryJob):
        raise  # arq runs this slice again: the watch goes on
    except Exception:
        # this watch cannot go on: free the tx, so that it can be enqueued again
        await _script(redis, _END, key, token)
        raise


async def _enqueue_slice(redis: ArqRedis, tx_id: str, **job: Any) -> str:
    left = job["deadline_at"] - time.time()
    enqueued = await redis.enqueue_job(
        JOB_NAME,
        tx_id,
        **job,
        _job_id=payout_job_id(tx_id, job["slice_number"]),
        _queue_name=job["queue_name"],
        _defer_by=max(0.0, min(job["interval"], left)),
        _expires=max(left, 0.0) + _MARGIN,
    )
    if enqueued is None:  # only a retried slice whose successor exists already gets here
        logger.debug("payout %s: slice %d is enqueued already", tx_id, job["slice_number"])
    return "rescheduled"


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
