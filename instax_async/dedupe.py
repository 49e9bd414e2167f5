"""Remembering which webhooks were handled: delivery is at least once, handling once.

A receiver claims an event's key before calling your handler, marks it done after, and releases
it if the handler failed (so the sender's redelivery is processed). The in-memory store serves
one process; several app instances behind a load balancer need a shared store (anything that
implements :class:`DedupeStore`, e.g. on Redis), or a redelivery that lands on another instance
is handled twice.

A store that finds, under an event's key, a value it did not write (a key set by hand or by
another program, a Redis hash where a string belongs) cannot tell whether the event was
handled: it raises :class:`UnreadableEntryError`, and the receiver answers 503, so the event is
neither handled twice nor dropped, but resent until someone clears the key. So that someone
knows, the store logs it at ERROR naming the key, at most once a minute per key.

Synchronous receivers (Django, Flask) call a store's blocking methods, ``claim_sync``,
``mark_done_sync`` and ``release_sync`` (:class:`SyncDedupeStore`), in the request's thread.
:class:`InMemoryDedupeStore` has both kinds, over one memory guarded by a lock, so one store
serves threads and event loops alike; ``RedisDedupeStore`` has the kind of the Redis client it
is given (``redis.Redis`` or ``redis.asyncio.Redis``).
"""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ._validate import check_count, check_number
from .errors import InstaxError

__all__ = [
    "ClaimResult",
    "DedupeStore",
    "InMemoryDedupeStore",
    "SyncDedupeStore",
    "UnreadableEntryError",
]


class ClaimResult(str, enum.Enum):
    """What :meth:`DedupeStore.claim` found.

    A store may answer with the member or with its value (``"done"`` works like
    ``ClaimResult.DONE``); any other answer is a store failure, which receivers answer 503.
    """

    #: Not seen before (or its earlier claim expired): the caller now owns it.
    NEW = "new"
    #: Another delivery of it is being handled right now.
    PROCESSING = "processing"
    #: Already handled successfully.
    DONE = "done"


@runtime_checkable
class DedupeStore(Protocol):
    """Where receivers record handled webhooks. All three methods are async.

    A store that forgets handled keys after a while may say how long in a ``ttl`` attribute
    (seconds, as :class:`InMemoryDedupeStore` and ``RedisDedupeStore`` do): a receiver with a
    ``max_age`` warns when the store forgets sooner than old events are refused. A store whose
    methods of one kind only work says which in a ``synchronous`` attribute (``True``: the
    :class:`SyncDedupeStore` methods; ``False``: these), and receivers of the other kind refuse
    it when they are built.
    """

    async def claim(self, key: str) -> ClaimResult:
        """Atomically claim ``key`` for processing, unless it is claimed or done already.

        Answer a :class:`ClaimResult` (or its value, such as ``"done"``). Raise
        :class:`UnreadableEntryError` (after logging it) when the store holds a value it did
        not write under ``key``; any other error is logged by the receiver. Either way the
        delivery is answered 503.
        """
        ...

    async def mark_done(self, key: str) -> None:
        """Record that ``key`` was handled; later claims return ``DONE`` until it expires."""
        ...

    async def release(self, key: str) -> None:
        """Forget a claim whose handling failed, so the next delivery is processed."""
        ...


@runtime_checkable
class SyncDedupeStore(Protocol):
    """Where synchronous receivers (Django, Flask) record handled webhooks: the blocking
    counterparts of :class:`DedupeStore`'s methods, called in the request's thread.

    Each answers as its async counterpart does (``claim_sync`` a :class:`ClaimResult` or its
    value; :class:`UnreadableEntryError` or any other error makes the delivery a 503). Implement
    these three for a store of your own (on your database, say); a store may implement both
    protocols, as :class:`InMemoryDedupeStore` does.
    """

    def claim_sync(self, key: str) -> ClaimResult:
        """:meth:`DedupeStore.claim`, blocking."""
        ...

    def mark_done_sync(self, key: str) -> None:
        """:meth:`DedupeStore.mark_done`, blocking."""
        ...

    def release_sync(self, key: str) -> None:
        """:meth:`DedupeStore.release`, blocking."""
        ...


class UnreadableEntryError(InstaxError):
    """A dedupe store found a value it did not write under an event's key.

    Receivers answer the delivery 503 without logging it again: the store has logged it at
    ERROR, naming the key, at most once a minute per key. The event is resent, and answered 503
    again, until the key is deleted or expires.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        #: The store's own key (for ``RedisDedupeStore``, the Redis key to delete).
        self.key = key


_NEW = ClaimResult.NEW
_PROCESSING = ClaimResult.PROCESSING
_DONE = ClaimResult.DONE


class InMemoryDedupeStore:
    """A bounded, process-local :class:`DedupeStore` and :class:`SyncDedupeStore`.

    Thread-safe: its async methods (for aiohttp and ASGI receivers) and its ``*_sync`` methods
    (for Django and Flask views, in any number of threads) share one memory under a lock, and
    each check-and-set is atomic.

    :param max_entries: how many keys are remembered; the oldest are forgotten first, even
        before their ``ttl`` ran out.
    :param ttl: seconds a handled key is remembered (default one day).
    :param processing_ttl: seconds a claim lasts if the handler never finishes (a crash),
        after which a redelivery is processed again.
    :param clock: where the store reads the time (``time.monotonic``); tests pass their own.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: float = 86_400.0,
        processing_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = check_count("max_entries", max_entries, minimum=1)
        self._ttl = check_number("ttl", ttl, accepted=" (seconds)")
        self._processing_ttl = check_number("processing_ttl", processing_ttl, accepted=" (seconds)")
        self._clock = clock
        self._entries: OrderedDict[str, tuple[ClaimResult, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ttl(self) -> float:
        """Seconds a handled key is remembered (receivers compare it with their ``max_age``)."""
        return self._ttl

    def __repr__(self) -> str:
        return f"<InMemoryDedupeStore entries={len(self._entries)} max={self._max_entries}>"

    async def claim(self, key: str) -> ClaimResult:
        """Claim ``key`` (atomically: nothing is awaited, and the lock is held)."""
        return self.claim_sync(key)

    async def mark_done(self, key: str) -> None:
        """Remember ``key`` as handled for ``ttl`` seconds."""
        self.mark_done_sync(key)

    async def release(self, key: str) -> None:
        """Forget ``key``."""
        self.release_sync(key)

    def claim_sync(self, key: str) -> ClaimResult:
        """:meth:`claim`, from any thread."""
        with self._lock:
            entries = self._entries
            entry = entries.get(key)
            if entry is not None:
                if entry[1] > self._clock():
                    return entry[0]
                entries.move_to_end(key)  # claimed again: the newest now
            entries[key] = (_PROCESSING, self._clock() + self._processing_ttl)
            while len(entries) > self._max_entries:
                entries.popitem(last=False)
            return _NEW

    def mark_done_sync(self, key: str) -> None:
        """:meth:`mark_done`, from any thread."""
        with self._lock:
            entries = self._entries
            entries[key] = (_DONE, self._clock() + self._ttl)
            entries.move_to_end(key)
            while len(entries) > self._max_entries:
                entries.popitem(last=False)

    def release_sync(self, key: str) -> None:
        """:meth:`release`, from any thread."""
        with self._lock:
            self._entries.pop(key, None)
