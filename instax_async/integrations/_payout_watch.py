"""What the arq and Celery payout watches share: the watch's Redis protocol and a slice's rules.

:mod:`instax_async.integrations.arq` and :mod:`instax_async.integrations.celery` each watch a
payout in *slices*: a job polls for a bounded time, then hands over to the next slice, and the
state of the watch lives in Redis. Both adapters do their I/O their own way (``redis.asyncio``
and an :class:`~instax_async.AsyncSession` for arq, blocking redis-py and a
:class:`~instax_async.Client` for Celery); what a watch *is* lives here, once:

- **The watch key** holds ``{token}:{n}``: the watch's random token and its current slice, with
  a TTL past the deadline (:data:`MARGIN`); then ``done`` for ``remember`` seconds once the hash
  was found. Anything else there (a value written by hand, a Redis hash…) is *corrupt*.
- **The lease key** (Celery only) says that a slice of the watch is queued or running, which
  arq knows from its own job keys: ``queued`` (enqueued, or handed over, and not begun yet) or
  ``{celery task id}:{retries}`` (the run that holds the slice), with a TTL of the lease.
- **The scripts**, each one atomic step on those keys, read the watch key through one Lua
  function (:data:`STATE`); their answers are numbers whose meaning is written beside each.
- **A slice's rules**: what its poll's outcome means (:func:`judge`), how long a transient Redis
  error waits before the slice runs again (:func:`retry_delay`), which callbacks a path names
  (:func:`resolve`), and what is logged at which level (:class:`WatchLog`).
"""

from __future__ import annotations

import enum
import importlib
import logging
import re
from collections.abc import Callable
from typing import Any

import attrs
from redis import exceptions as redis_errors

from .._frozen import Frozen
from ..errors import APIStatusError, PollTimeoutError, ValidationError
from ..models import BlockchainStatus

__all__ = [
    "ADOPT",
    "BEGIN",
    "BUSY",
    "CLAIM",
    "DONE",
    "END",
    "HAND_OVER",
    "LET_GO",
    "MARGIN",
    "SKIPPED",
    "STATE",
    "TRANSIENT",
    "PayoutFailureReason",
    "PayoutWatchFailure",
    "WatchLog",
    "check_path",
    "judge",
    "ms",
    "resolve",
    "retry_delay",
    "too_late",
]

DONE = "done"
#: Seconds a watch's key outlives its deadline, so that a worker that was down for a while still
#: finds it and reports the deadline instead of losing the watch.
MARGIN = 86_400.0
_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

#: Redis errors a watch outlives by running the slice again (a failover, a dropped connection);
#: an error in the data (a wrong type, a script error) is not among them.
TRANSIENT = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
)

# What a watch key holds, read once by each script: 'none', 'done', 'watch' with its token and
# slice, or 'corrupt' with what was found there instead (never the value itself: it is not
# ours to log). A slice number of up to 9 digits stays an integer in Lua's string formatting.
STATE = """
local function state(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return 'none' end
  if kind ~= 'string' then return 'corrupt', 'a Redis ' .. kind end
  local value = redis.call('GET', key)
  if value == 'done' then return 'done' end
  local token, n = string.match(value, '^([^:]+):(%d+)$')
  if not token or #n > 9 then return 'corrupt', 'a string the SDK does not write' end
  return 'watch', token, tonumber(n)
end
"""

#: The answer of :data:`BEGIN` when another run of the slice holds the lease (Celery).
BUSY = 4

# KEYS[1]: the watch key; ARGV: token, slice number, TTL in ms. Returns 0 (go on: the key now
# says token:slice), 1 (done), 2 (another watch), 3 (stale slice), or what a corrupt key holds.
# With a lease (Celery): KEYS[2] the lease key, ARGV[4..6] this run's task id, its retries and
# the lease's TTL in ms. The slice goes on only if the lease is free, 'queued', or held by an
# earlier try of this task (a retry takes over from the run that asked for it); else 4 (BUSY:
# another run of this slice, live or killed, holds it until it expires). A lease the SDK did not
# write, or one without a TTL, is free.
BEGIN = (
    STATE
    + """
local s, a, b = state(KEYS[1])
if s == 'done' then return 1 end
if s == 'corrupt' then return a end
if s == 'watch' then
  if a ~= ARGV[1] then return 2 end
  if b > tonumber(ARGV[2]) then return 3 end
end
if KEYS[2] then
  if redis.call('TYPE', KEYS[2])['ok'] == 'string' and redis.call('PTTL', KEYS[2]) > 0 then
    local task, try = string.match(redis.call('GET', KEYS[2]), '^(.+):(%d+)$')
    if task and (task ~= ARGV[4] or tonumber(try) >= tonumber(ARGV[5])) then return 4 end
  end
  redis.call('SET', KEYS[2], ARGV[4] .. ':' .. ARGV[5], 'PX', ARGV[6])
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
return 0
"""
)
#: Why :data:`BEGIN` ended a slice at once, by its answer.
SKIPPED = {1: "the watch has ended", 2: "another watch owns it", 3: "a later slice is running"}

# KEYS[1]: the watch key (KEYS[2]: its lease, deleted with it); ARGV: token, then "done" and its
# TTL in ms (end) or nothing (release). Only the watch that owns the key may end or release it;
# a corrupt key is anyone's to clear. Returns 1 if it did, 0 if not.
END = (
    STATE
    + """
local s, a = state(KEYS[1])
if s ~= 'corrupt' and (s ~= 'watch' or a ~= ARGV[1]) then return 0 end
if ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
if KEYS[2] then redis.call('DEL', KEYS[2]) end
return 1
"""
)

# arq's enqueue. KEYS[1]: the watch key; ARGV[1]: the arq job key of this tx's slices without
# the number. Returns 0 (free), 1 (the watch ended lately), 2 (a job of the watch is queued or
# running), 3 (a dead watch's key: deleted), or what a corrupt key held (deleted).
ADOPT = (
    STATE
    + """
local s, a, b = state(KEYS[1])
if s == 'none' then return 0 end
if s == 'done' then return 1 end
if s == 'watch' and redis.call('EXISTS', ARGV[1] .. b, ARGV[1] .. (b + 1)) > 0 then return 2 end
redis.call('DEL', KEYS[1])
if s == 'corrupt' then return a end
return 3
"""
)

# Celery's enqueue: ADOPT's answers, and the tx claimed for a new watch in the same step (so
# that of two enqueues at once, one gets None). KEYS[1]: the watch key, KEYS[2]: its lease;
# ARGV: token, the key's TTL in ms, the lease's TTL in ms. Returns 0 (free: claimed), 1 (the
# watch ended lately), 2 (the lease lives: a slice is queued or running), 3 (a dead watch's
# key: taken over) or what a corrupt key held (taken over). A lease the SDK did not write (not
# a string, or without a TTL) keeps no watch alive.
CLAIM = (
    STATE
    + """
local s, a = state(KEYS[1])
if s == 'done' then return 1 end
if s == 'watch' and redis.call('TYPE', KEYS[2])['ok'] == 'string'
    and redis.call('PTTL', KEYS[2]) > 0 then return 2 end
redis.call('SET', KEYS[1], ARGV[1] .. ':0', 'PX', ARGV[2])
redis.call('SET', KEYS[2], 'queued', 'PX', ARGV[3])
if s == 'corrupt' then return a end
if s == 'watch' then return 3 end
return 0
"""
)

# Celery's hand-over, step 1, before the next slice is published: the run lets go of its lease
# (it polls no more), so that the next slice may begin at once. KEYS[1]: the lease key; ARGV:
# this run ('{task id}:{retries}'), the lease's TTL in ms. Returns 1, or 0 if another run holds
# the lease (one that took it after this run's ran out: that one is left alone).
LET_GO = """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], 'queued', 'PX', ARGV[2])
return 1
"""

# Celery's hand-over, step 2, once the next slice is published: the watch moves from slice n to
# n + 1, so that any other copy of slice n (a redelivered one; a retried hand-over publishes
# the next slice again) is stale. KEYS[1]: the watch key; ARGV: token, n, the key's TTL in ms.
# Returns 1 (moved), 0 (the watch was not at slice n: the next slice began already, or the
# watch ended).
HAND_OVER = (
    STATE
    + """
local s, a, b = state(KEYS[1])
if s ~= 'watch' or a ~= ARGV[1] or b ~= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. (b + 1), 'PX', ARGV[3])
return 1
"""
)


class PayoutFailureReason(str, enum.Enum):
    """Why a payout watch ended without a hash."""

    #: The blockchain status says the payout failed (:attr:`BlockchainStatus.is_failed`).
    FAILED = "failed"
    #: The overall deadline passed without a hash.
    DEADLINE = "deadline"
    #: The API answered an error that retrying cannot fix (e.g. 404 for an unknown tx id).
    ERROR = "error"
    #: ``on_hash`` no longer resolves to a function (a deploy renamed or removed it).
    CALLBACK = "callback"
    #: The watch's Redis key held a value the SDK does not write (changed by hand, or by
    #: another program using the same key).
    CORRUPT = "corrupt"


@attrs.frozen(repr=False, eq=False)
class PayoutWatchFailure(Frozen):
    """What ``on_failure`` receives when a watch ends without a hash.

    >>> async def payout_failed(failure: PayoutWatchFailure) -> None:
    ...     why = f"{failure.reason.value}: {failure.message}"
    ...     await alerts.send(f"payout {failure.tx_id}: {why}")
    """

    #: The payout's transaction id.
    tx_id: str
    #: Why the watch ended.
    reason: PayoutFailureReason
    #: The last status seen (``None`` if no answer arrived).
    last_status: BlockchainStatus | None
    #: A sentence for logs and alerts.
    message: str


def check_path(value: object, field: str, *, optional: bool = False) -> str | None:
    """``value`` as a callback's import path ``"module:function"``, or ``ValidationError``."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _PATH.match(value):
        raise ValidationError(
            f"{field}: expected an import path 'module:function' such as "
            f"'myapp.tasks:record_hash', got {value!r}",
            field=field,
        )
    return value


def resolve(path: str, field: str) -> Callable[..., Any]:
    """The function ``path`` names, imported now; ``ValidationError`` if it does not resolve."""
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


def ms(seconds: float) -> int:
    """Seconds as the whole milliseconds of a Redis ``PX`` (at least 1)."""
    return max(1, int(seconds * 1000))


def retry_delay(job_try: int, interval: float, max_interval: float, backoff: float) -> float:
    """The poll engine's wait before its ``job_try``-th attempt: ``interval`` grown by
    ``backoff`` each try, at most ``max_interval``."""
    delay = interval
    for _ in range(min(job_try, 100) - 1):
        delay = min(delay * backoff, max_interval)
    return min(delay, max_interval)


def too_late(tx_id: str) -> PayoutWatchFailure:
    """The failure of a slice that runs after the watch's deadline."""
    return PayoutWatchFailure(
        tx_id=tx_id,
        reason=PayoutFailureReason.DEADLINE,
        last_status=None,
        message="the deadline passed before this slice ran",
    )


def judge(
    tx_id: str,
    outcome: BlockchainStatus | PollTimeoutError | APIStatusError,
    *,
    last_slice: bool,
) -> BlockchainStatus | PayoutWatchFailure | None:
    """What a slice's poll means for the watch.

    ``outcome`` is the status the poll ended with, or the error it raised. Returns the status
    (it has the hash: call ``on_hash``, then end the watch), a failure (report it and release
    the tx), or ``None``: no hash within this slice, hand over to the next one.
    """
    if isinstance(outcome, PollTimeoutError):
        if not last_slice:
            return None
        last = outcome.last_status
        seen = "no answer arrived" if last is None else f"last status: {last.status!r}"
        message = f"the deadline passed without a hash ({seen})"
        reason = PayoutFailureReason.DEADLINE
        return PayoutWatchFailure(tx_id=tx_id, reason=reason, last_status=last, message=message)
    if isinstance(outcome, APIStatusError):
        return PayoutWatchFailure(
            tx_id=tx_id, reason=PayoutFailureReason.ERROR, last_status=None, message=str(outcome)
        )
    if outcome.hash is None:
        message = f"the payout failed (status {outcome.status!r})"
        reason = PayoutFailureReason.FAILED
        return PayoutWatchFailure(tx_id=tx_id, reason=reason, last_status=outcome, message=message)
    return outcome


class WatchLog:
    """What a watch logs, at which level, on an integration's logger.

    :param dead: how the integration tells a dead watch, for the log line of a take-over.
    """

    def __init__(self, logger: logging.Logger, *, dead: str) -> None:
        self.logger = logger
        self.dead = dead

    def adopted(self, tx_id: str, key: str, found: int | str) -> bool:
        """Log an enqueue's answer from :data:`ADOPT` or :data:`CLAIM`; ``True`` when a new
        watch starts (the tx was free, or the key of a dead or corrupt watch was taken over)."""
        if found in (1, 2):
            self.logger.debug("payout %s is already watched (or its watch ended recently)", tx_id)
            return False
        if found == 3:
            self.logger.info("payout %s: %s; a new watch takes over", tx_id, self.dead)
        elif isinstance(found, str):
            self.logger.warning(
                "payout %s: the watch key %s held %s; deleted, a new watch takes over",
                tx_id,
                key,
                found,
            )
        return True

    def skipped(self, tx_id: str, number: int, answer: int) -> None:
        """A slice that :data:`BEGIN` ended at once."""
        self.logger.info("payout %s: slice %d skipped: %s", tx_id, number, SKIPPED[answer])

    def retrying(self, tx_id: str, number: int, error: BaseException, delay: float) -> None:
        """A slice that met a transient Redis error, and runs again in ``delay`` seconds."""
        self.logger.warning(
            "payout %s: slice %d: Redis failed (%s: %s); it runs again in %.3g s",
            tx_id,
            number,
            type(error).__name__,
            error,
            delay,
        )

    def cannot_go_on(self, tx_id: str, error: Exception) -> None:
        """A callback path that no longer resolves."""
        self.logger.error("payout %s: the watch cannot go on: %s", tx_id, error)

    def corrupt(self, tx_id: str, key: str, found: str) -> str:
        """A watch key the SDK did not write, found by a slice; returns the failure's text."""
        text = f"the watch key {key} held {found}; the watch ended"
        self.logger.warning("payout %s: %s", tx_id, text)
        return text

    def no_hash(self, failure: PayoutWatchFailure) -> None:
        """A watch that ends without a hash (logged whether or not ``on_failure`` is given)."""
        self.logger.error("payout %s: no blockchain hash: %s", failure.tx_id, failure.message)
