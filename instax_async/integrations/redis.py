"""A :class:`~instax_async.DedupeStore` on Redis, shared by every instance that receives webhooks.

Several app instances behind a load balancer each receive webhooks, and a redelivery may land on
another instance than the first delivery. With one :class:`RedisDedupeStore` on a Redis they all
reach, each event is handled once (install the extra: ``pip install 'instax-async[redis]'``)::

    import redis.asyncio as redis
    from instax_async.integrations.aiohttp import webhook_handler
    from instax_async.integrations.redis import RedisDedupeStore

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=2.0)
    handler = webhook_handler(secret, on_event, dedupe=RedisDedupeStore(client))

The Django and Flask receivers are synchronous: give them a store on the blocking client,
``RedisDedupeStore(redis.Redis.from_url(...))`` (``import redis``), whose ``*_sync`` methods
they call in the request's thread. A store has the kind of its client: the async receivers
refuse one on ``redis.Redis``, the sync ones one on ``redis.asyncio.Redis``, when they are built.

One key per event, ``{prefix}{dedupe key}``, goes through these states:

- absent → ``"processing"`` when a receiver claims it (``SET NX PX processing_ttl``, in one Lua
  script with the read that tells a concurrent claim whether the key is being processed or
  done, so no expiry can slip between the two): exactly one of several simultaneous deliveries
  gets :attr:`~instax_async.ClaimResult.NEW` and calls ``on_event``; the others are answered
  409 (being handled) and are resent by InstaXchange.
- ``"processing"`` → ``"done"`` (``SET PX ttl``) once ``on_event`` returned: redeliveries are
  answered 200 ``duplicate`` for ``ttl`` seconds.
- ``"processing"`` → absent when ``on_event`` raised (a compare-and-delete script, so a late
  release can never erase a ``"done"`` mark), and the redelivery is processed.
- A receiver that crashed mid-way releases nothing: its claim expires after ``processing_ttl``,
  and the next redelivery is processed. Choose ``processing_ttl`` longer than ``on_event`` ever
  takes, or a slow handler's event may be handled twice.

**When Redis cannot be reached, the receiver answers 503.** :meth:`RedisDedupeStore.claim`
raises whatever the Redis client raised (``redis.exceptions.ConnectionError``, a timeout, …) and
the receiver turns that into a 503, so InstaXchange resends the event later: it is neither handled
without deduplication (twice, across instances) nor acknowledged and lost. Give the client a
``socket_timeout``, so that a Redis that hangs is answered 503 promptly rather than keeping the
webhook request open. A failure in :meth:`~RedisDedupeStore.mark_done` after ``on_event``
succeeded is only logged (the event was handled: answering an error would cause a second
handling), as is a failed :meth:`~RedisDedupeStore.release`, whose claim then expires on its own.

**A key holding a value the store did not write is answered 503, and logged.** Anything under an
event's key but ``"processing"`` or ``"done"`` (a value set by hand or by another program, a
Redis hash or list) leaves the store unable to tell whether the event was handled: the claim
raises :class:`~instax_async.UnreadableEntryError` and the receiver answers 503, so the
event is resent rather than handled twice or dropped. The store logs it at ERROR on the
``instax_async.webhooks`` logger, naming the Redis key, at most once a minute per key (in
bounded memory). It lasts until the key is deleted (``redis-cli DEL <key>``) or expires; the next
redelivery is then processed.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from .._extras import extra_required

with extra_required("redis"):
    import redis as _redis_sync
    from redis.asyncio import Redis
    from redis.cluster import RedisCluster as _SyncCluster

from .._logging import ReportThrottle
from .._validate import check_number
from ..dedupe import ClaimResult, UnreadableEntryError
from ..errors import InstaxError, ValidationError

__all__ = ["RedisDedupeStore"]

logger = logging.getLogger("instax_async.webhooks")

_DONE = "done"

# KEYS[1]: the event's key; ARGV[1]: processing_ttl in ms. Returns 0 NEW, 1 PROCESSING, 2 DONE,
# or, for a value this store does not write, what the key holds (never the value itself).
# One script: Redis runs it atomically, so the key cannot expire between the SET and the GET.
_CLAIM = """
if redis.call('SET', KEYS[1], 'processing', 'NX', 'PX', ARGV[1]) then
  return 0
end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'string' then
  return 'a Redis ' .. kind
end
local value = redis.call('GET', KEYS[1])
if value == 'done' then
  return 2
end
if value == 'processing' then
  return 1
end
return 'a string that is neither processing nor done'
"""

# Delete the key only while it still says "processing": a release that arrives after the
# event was marked done (or after its claim expired and another delivery claimed and finished
# it) must not erase the done mark.
_RELEASE = """
if redis.call('TYPE', KEYS[1])['ok'] == 'string'
   and redis.call('GET', KEYS[1]) == 'processing' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_RESULTS = {0: ClaimResult.NEW, 1: ClaimResult.PROCESSING, 2: ClaimResult.DONE}


def _milliseconds(name: str, value: object) -> int:
    seconds = check_number(name, value, accepted=" (seconds)")
    return max(1, math.ceil(seconds * 1000))


class RedisDedupeStore:
    """A :class:`~instax_async.DedupeStore` whose claims and done marks live in Redis.

    :param redis: a ``redis.asyncio.Redis`` client, for the async receivers (aiohttp, ASGI),
        or a ``redis.Redis`` client, for the sync ones (Django, Flask), which call the
        ``*_sync`` methods (``decode_responses`` either way; cluster clients work too). It is
        not closed by the store: it is yours.
    :param prefix: put before every event key, so several apps can share one Redis.
    :param ttl: seconds a handled event is remembered (default one day): redeliveries within
        it are answered 200 ``duplicate`` without calling ``on_event``.
    :param processing_ttl: seconds a claim lasts when its handler never finishes (a crashed
        instance); after it, a redelivery is processed. Longer than ``on_event`` ever takes.

    The key states and the choice of answering 503 when Redis is down are described in
    :mod:`instax_async.integrations.redis`.
    """

    def __init__(
        self,
        redis: Redis | _redis_sync.Redis,
        *,
        prefix: str = "instax:webhook:",
        ttl: float = 86_400.0,
        processing_ttl: float = 300.0,
    ) -> None:
        if not callable(getattr(redis, "register_script", None)) or not callable(
            getattr(redis, "set", None)
        ):
            raise ValidationError(
                "redis: expected a redis.asyncio.Redis or redis.Redis client, "
                f"got {type(redis).__name__}",
                field="redis",
            )
        if not isinstance(prefix, str):
            raise ValidationError(
                f"prefix: expected a string such as 'instax:webhook:', got {prefix!r}",
                field="prefix",
            )
        self._redis: Any = redis
        self._synchronous = isinstance(redis, (_redis_sync.Redis, _SyncCluster))
        self.prefix = prefix
        self._ttl_ms = _milliseconds("ttl", ttl)
        self._processing_ttl_ms = _milliseconds("processing_ttl", processing_ttl)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._unreadable = ReportThrottle()

    def __repr__(self) -> str:
        # the client's repr is left out: its connection details are not this object's to show
        return (
            f"<RedisDedupeStore prefix={self.prefix!r} ttl={self._ttl_ms / 1000:g}s "
            f"processing_ttl={self._processing_ttl_ms / 1000:g}s>"
        )

    @property
    def synchronous(self) -> bool:
        """True when built on ``redis.Redis``: the ``*_sync`` methods work (for Django and Flask
        receivers), the async ones raise. False on ``redis.asyncio.Redis``: the reverse."""
        return self._synchronous

    @property
    def ttl(self) -> float:
        """Seconds a handled event is remembered."""
        return self._ttl_ms / 1000

    @property
    def processing_ttl(self) -> float:
        """Seconds a claim lasts if its handler never finishes."""
        return self._processing_ttl_ms / 1000

    def key(self, key: str) -> str:
        """The Redis key that holds the state of the event whose dedupe key is ``key``."""
        return self.prefix + key

    async def claim(self, key: str) -> ClaimResult:
        """Atomically claim ``key`` unless it is being processed or done (one Lua script).

        Raises the Redis client's error when Redis cannot be reached, and
        :class:`~instax_async.UnreadableEntryError` when the key holds a value this
        store does not write (logged at ERROR, at most once a minute per key); the receiver
        answers 503 to both.
        """
        self._check_kind(synchronous=False)
        redis_key = self.key(key)
        return self._claimed(redis_key, await self._claim(keys=[redis_key], args=self._claim_args))

    async def mark_done(self, key: str) -> None:
        """Record ``key`` as handled for ``ttl`` seconds (``SET key done PX ttl``)."""
        self._check_kind(synchronous=False)
        await self._redis.set(self.key(key), _DONE, px=self._ttl_ms)

    async def release(self, key: str) -> None:
        """Forget the claim on ``key`` if it is still ``processing``; a done mark is kept."""
        self._check_kind(synchronous=False)
        await self._release(keys=[self.key(key)], args=[])

    def claim_sync(self, key: str) -> ClaimResult:
        """:meth:`claim`, blocking, on a ``redis.Redis`` client."""
        self._check_kind(synchronous=True)
        redis_key = self.key(key)
        return self._claimed(redis_key, self._claim(keys=[redis_key], args=self._claim_args))

    def mark_done_sync(self, key: str) -> None:
        """:meth:`mark_done`, blocking, on a ``redis.Redis`` client."""
        self._check_kind(synchronous=True)
        self._redis.set(self.key(key), _DONE, px=self._ttl_ms)

    def release_sync(self, key: str) -> None:
        """:meth:`release`, blocking, on a ``redis.Redis`` client."""
        self._check_kind(synchronous=True)
        self._release(keys=[self.key(key)], args=[])

    @property
    def _claim_args(self) -> list[int]:
        return [self._processing_ttl_ms]

    def _claimed(self, redis_key: str, result: Any) -> ClaimResult:
        """What the claim script answered, as a :class:`ClaimResult` (or the error)."""
        if isinstance(result, int):
            return _RESULTS.get(result, ClaimResult.PROCESSING)
        found = result.decode("utf-8", "replace") if isinstance(result, bytes) else str(result)
        message = (
            f"webhook dedupe key {redis_key!r} holds {found}, which RedisDedupeStore does not "
            "write: deliveries of this event are answered 503 until the key is deleted "
            "(redis-cli DEL <key>) or expires"
        )
        if self._unreadable.due(redis_key):
            logger.error("%s", message)
        raise UnreadableEntryError(message, key=redis_key)

    def _check_kind(self, *, synchronous: bool) -> None:
        if self._synchronous != synchronous:
            built, wanted = (
                ("redis.Redis", "the *_sync methods")
                if self._synchronous
                else ("redis.asyncio.Redis", "the async methods")
            )
            raise InstaxError(
                f"this RedisDedupeStore is built on {built}: use {wanted}, or build a store on "
                "the other kind of client for this receiver"
            )
