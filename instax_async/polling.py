"""The poll engine behind every "wait until", and :class:`BlockchainPoller` for many payouts.

One set of rules serves :meth:`AsyncSession.poll_blockchain_status`,
:meth:`AsyncSession.wait_for_blockchain_hash`, :meth:`AsyncSession.wait_for_session` and
:class:`BlockchainPoller`:

- The first request goes out at once. After each answer that is not final the poll waits
  ``interval``, then ``interval * backoff``, ``interval * backoff**2``, … capped at
  ``max_interval``; each wait is shortened by a random part of up to 20 % (jitter), so polls
  started together drift apart and no wait is longer than asked for.
- Transient failures (connection errors, timeouts, 408, 429, 5xx) are tried again on the same
  schedule; a ``Retry-After`` on a 429 or 503 is honoured (the poll waits at least that long).
  Any other error is raised.
- ``timeout`` is one deadline across every attempt and every wait. Each attempt may take only
  the time left, and no wait reaches past the deadline: when the next attempt would come too
  late, the poll waits until the deadline and raises :class:`~instax_async.PollTimeoutError`
  carrying the last status seen.
- ``sleep`` and ``clock`` are injectable, so tests never wait for real; cancellation is never
  caught, so a cancelled poll sends no further request.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import math
import random
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import attrs

from .errors import (
    APIConnectionError,
    APIStatusError,
    InstaxError,
    PollTimeoutError,
    RateLimitError,
    ResponseTooLargeError,
    ValidationError,
)
from .models import BlockchainStatus
from .retry import parse_retry_after

if TYPE_CHECKING:
    from .client import AsyncSession

__all__ = ["BlockchainPoller", "PollOptions", "poll"]

logger = logging.getLogger("instax_async")

T = TypeVar("T")

#: An injectable ``asyncio.sleep``.
Sleep = Callable[[float], Awaitable[None]]
#: An injectable monotonic clock, in seconds (the running loop's ``time`` by default).
Clock = Callable[[], float]

#: Each wait is shortened by a random fraction of up to this much.
JITTER = 0.2


# -- validation --------------------------------------------------------------------------------


def _number(
    name: str,
    value: object,
    *,
    minimum: float = 0.0,
    inclusive: bool = False,
    accepted: str = "",
) -> float:
    if value is None and name == "timeout":
        raise ValidationError(
            "timeout: None would poll forever; give the seconds the whole poll may take "
            "(default 600.0)",
            field=name,
        )
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (value < minimum if inclusive else value <= minimum)
    ):
        raise ValidationError(
            f"{name}: expected a finite number {bound}{accepted}, got {value!r}", field=name
        )
    return float(value)


def _check_seconds(
    _instance: object, attribute: attrs.Attribute[float], value: object
) -> None:  # attrs validator
    if attribute.name == "backoff":
        _number("backoff", value, minimum=1.0, inclusive=True, accepted=" (1: a steady interval)")
    else:
        _number(attribute.name, value, accepted=" (seconds)")


def check_id(value: object, field: str) -> str:
    """``value`` as a non-empty id string, or :class:`~instax_async.ValidationError`."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{field}: expected a non-empty string such as 'wd_…' or 'ps_…', got {value!r}",
            field=field,
        )
    return value


def check_concurrency(value: object) -> int:
    """``concurrency`` as an int >= 1, or :class:`~instax_async.ValidationError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(
            f"concurrency: expected an int >= 1, got {value!r}", field="concurrency"
        )
    return value


def check_rate_limit(value: object) -> float | None:
    """``rate_limit`` (requests per second) as a number > 0, or ``None`` for no limit."""
    if value is None:
        return None
    return _number("rate_limit", value, accepted=" (requests per second) or None")


def _check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ValidationError(
            f"{name}: expected a callable or None, got {type(value).__name__}", field=name
        )


@attrs.frozen
class PollOptions:
    """How a poll paces itself: the options every ``poll_…`` / ``wait_for_…`` method takes.

    Every value is checked when built; a bad one raises
    :class:`~instax_async.ValidationError` naming the field.

    >>> PollOptions(interval=1.0, max_interval=10.0, backoff=2.0, timeout=120.0).timeout
    120.0
    """

    #: Seconds to wait after the first answer.
    interval: float = attrs.field(default=2.0, validator=_check_seconds)
    #: The longest wait between two attempts.
    max_interval: float = attrs.field(default=30.0, validator=_check_seconds)
    #: Each wait is the previous one times this (>= 1; 1 polls at a steady ``interval``).
    backoff: float = attrs.field(default=1.5, validator=_check_seconds)
    #: Seconds the whole poll may take: one deadline across every attempt and wait.
    timeout: float = attrs.field(default=600.0, validator=_check_seconds)

    def __attrs_post_init__(self) -> None:
        if self.max_interval < self.interval:
            raise ValidationError(
                f"max_interval: expected a number >= interval ({self.interval:g}), "
                f"got {self.max_interval:g}",
                field="max_interval",
            )

    def step(
        self, current: float, rand: Callable[[], float] = random.random
    ) -> tuple[float, float]:
        """The jittered wait for the ``current`` interval, and the interval after it."""
        return current * (1.0 - JITTER * rand()), min(self.max_interval, current * self.backoff)


# -- what is transient ---------------------------------------------------------------------


def is_transient(error: BaseException) -> bool:
    """True for failures a poll tries again: connection errors, timeouts, 408, 429 and 5xx."""
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, ResponseTooLargeError):
        return False  # whatever its status: the same server would send the same body again
    return isinstance(error, APIStatusError) and (error.status in (408, 429) or error.status >= 500)


def retry_after(error: BaseException) -> float | None:
    """The server's ``Retry-After`` hint carried by a 429 or 503 error, in seconds."""
    if isinstance(error, RateLimitError):
        return error.retry_after
    if isinstance(error, APIStatusError) and error.status == 503:
        return parse_retry_after(error.headers)
    return None


def _describe(last: object) -> str:
    return "no answer arrived" if last is None else f"last status: {last!r}"


# -- the engine ----------------------------------------------------------------------------


async def poll(
    fetch: Callable[[float], Awaitable[T]],
    *,
    stop: Callable[[T], bool],
    options: PollOptions,
    subject: str,
    sleep: Sleep = asyncio.sleep,
    clock: Clock | None = None,
) -> AsyncGenerator[T, None]:
    """Poll ``fetch`` until ``stop`` says so; yield each status that differs from the last.

    ``fetch(seconds_left)`` makes one attempt, which may take at most ``seconds_left``; it
    returns a status or raises. ``subject`` names what is awaited in the timeout message (for
    example ``"a blockchain hash for tx 'wd_1'"``). The rules are in this module's docstring.
    """
    now = clock or asyncio.get_running_loop().time
    deadline = now() + options.timeout
    current = options.interval
    last: T | None = None
    error: Exception | None = None
    while True:
        left = deadline - now()
        if left <= 0:
            # only after an attempt that itself ran up to the deadline
            raise PollTimeoutError(
                f"no {subject} within {options.timeout:g} s ({_describe(last)})",
                last_status=last,
            ) from error
        hint: float | None = None
        try:
            status = await fetch(left)
        except Exception as exc:
            if not is_transient(exc):
                raise
            error, hint = exc, retry_after(exc)
        else:
            error = None
            if last is None or status != last:
                last = status
                yield status
            if stop(status):
                return
        wait, current = options.step(current)
        if hint is not None:
            wait = max(wait, hint)
        if error is not None:
            logger.debug("instax_async: %s: %s; next attempt in %.2f s", subject, error, wait)
        left = deadline - now()
        if wait >= left:
            if left > 0:
                await sleep(left)
            raise PollTimeoutError(
                f"no {subject} within {options.timeout:g} s ({_describe(last)})",
                last_status=last,
            ) from error
        await sleep(wait)


# -- BlockchainPoller ------------------------------------------------------------------------


class _Watch:
    """One watched payout: its schedule, last status and waiters. Slots keep 10,000 small."""

    __slots__ = ("active", "deadline", "expiring", "interval", "last", "tx_id", "waiters")

    def __init__(self, tx_id: str, deadline: float, interval: float) -> None:
        self.tx_id = tx_id
        self.deadline = deadline
        self.interval = interval
        self.last: BlockchainStatus | None = None
        self.active = True
        # the next heap entry of this watch is its deadline, not an attempt
        self.expiring = False
        self.waiters: list[asyncio.Future[BlockchainStatus]] = []


class _StatusUpdates:
    """The async iterator :meth:`BlockchainPoller.updates` returns."""

    __slots__ = ("__weakref__", "_ended", "_poller", "_queue")

    def __init__(self, poller: BlockchainPoller) -> None:
        self._poller = poller
        self._queue: asyncio.Queue[BlockchainStatus | None] = asyncio.Queue()
        self._ended = False

    def __aiter__(self) -> _StatusUpdates:
        return self

    async def __anext__(self) -> BlockchainStatus:
        if self._ended:
            raise StopAsyncIteration
        status = await self._queue.get()
        if status is None:
            self._ended = True
            raise StopAsyncIteration
        return status

    async def aclose(self) -> None:
        """Stop receiving updates."""
        self._ended = True
        self._poller._streams.discard(self)


_NEW, _OPEN, _CLOSED = "new", "open", "closed"


class BlockchainPoller:
    """Poll the blockchain status of many payouts at once, within limits the API can bear.

    One scheduler serves every watched transaction (no task per tx id): a heap of due times,
    at most ``concurrency`` requests in flight, and with ``rate_limit`` at most that many
    requests per second, spaced evenly (one every ``1 / rate_limit`` seconds, never in bursts).
    Each watch follows the poll rules of :mod:`instax_async.polling` (``interval`` growing by
    ``backoff`` up to ``max_interval``, with jitter; transient errors retried; ``Retry-After``
    honoured) and has its own ``timeout`` from the moment it is first watched.

    Leaving the ``async with`` block cancels everything still outstanding and ends every
    :meth:`updates` iterator. ``sleep`` and ``clock`` can be injected for tests.

    ::

        async with BlockchainPoller(client, concurrency=20, rate_limit=10) as poller:
            statuses = await asyncio.gather(*(poller.watch(tx) for tx in withdraw_tx_ids))
        for status in statuses:
            print(status.tx_id, status.hash or status.status)
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        concurrency: int = 10,
        interval: float = 2.0,
        max_interval: float = 30.0,
        timeout: float = 600.0,
        rate_limit: float | None = None,
        backoff: float = 1.5,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
    ) -> None:
        from .client import AsyncSession  # client imports this module: not at the top

        if not isinstance(session, AsyncSession):
            raise ValidationError(
                f"session: expected an AsyncSession, got {type(session).__name__}",
                field="session",
            )
        self._session = session
        self._options = PollOptions(
            interval=interval, max_interval=max_interval, backoff=backoff, timeout=timeout
        )
        self._concurrency = check_concurrency(concurrency)
        limit = check_rate_limit(rate_limit)
        self._spacing = 0.0 if limit is None else 1.0 / limit
        _check_callable("sleep", sleep)
        _check_callable("clock", clock)
        self._sleep: Sleep = sleep or asyncio.sleep
        self._clock_arg = clock
        self._clock: Clock = clock or _no_clock
        self._state = _NEW
        self._watches: dict[str, _Watch] = {}
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._streams: weakref.WeakSet[_StatusUpdates] = weakref.WeakSet()
        self._next_slot = -math.inf
        self._wakeup: asyncio.Future[None] | None = None
        self._wake_at = math.inf
        self._idle_workers = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None

    def __repr__(self) -> str:
        return f"<BlockchainPoller watching={len(self._watches)} {self._state}>"

    @property
    def watching(self) -> int:
        """How many transactions are being polled right now."""
        return len(self._watches)

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> BlockchainPoller:
        if self._state is not _NEW:
            raise InstaxError("a BlockchainPoller serves one 'async with' block; create a new one")
        self._loop = asyncio.get_running_loop()
        self._clock = self._clock_arg or self._loop.time
        self._slots = asyncio.Semaphore(self._concurrency)
        self._ready: asyncio.Queue[_Watch] = asyncio.Queue()
        self._state = _OPEN
        self._start(self._dispatch())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> NoReturn:
        raise TypeError("BlockchainPoller is asynchronous: use 'async with BlockchainPoller(...)'")

    def __exit__(self, *args: object) -> None:  # pragma: no cover - __enter__ always raises
        pass

    async def aclose(self) -> None:
        """Cancel every outstanding watch, end :meth:`updates`, stop the scheduler.

        Awaiting a cancelled watch raises ``asyncio.CancelledError``. Calling it again does
        nothing.
        """
        if self._state is _CLOSED:
            return
        self._state = _CLOSED
        watches = list(self._watches.values())
        self._watches.clear()
        self._heap.clear()
        for watch in watches:
            watch.active = False
            for waiter in watch.waiters:
                waiter.cancel()
        for stream in list(self._streams):
            stream._queue.put_nowait(None)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        # awaited, so no task outlives the block ("Task was destroyed but it is pending")
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        # The scheduler's tasks run until cancelled; one that ends otherwise (an injected sleep
        # or clock that raised) would leave every watch waiting forever, so fail them all.
        if task.cancelled():
            return
        error = task.exception()
        if error is None or self._state is _CLOSED:  # pragma: no cover - tasks never return
            return
        self._failure = error
        failure = InstaxError(f"BlockchainPoller stopped: {type(error).__name__}: {error}")
        failure.__cause__ = error
        for watch in list(self._watches.values()):
            self._settle(watch, failure)

    def _ensure_open(self) -> None:
        if self._state is not _OPEN:
            raise InstaxError(
                "this BlockchainPoller is not running: use watch() and updates() inside "
                "'async with BlockchainPoller(session) as poller:'"
            )
        if self._failure is not None:
            raise InstaxError(
                f"this BlockchainPoller stopped after an error: {self._failure!r}"
            ) from self._failure

    # -- the public API ----------------------------------------------------------------------

    def watch(self, tx_id: str) -> asyncio.Future[BlockchainStatus]:
        """Poll ``tx_id`` until it has a hash or failed; the future resolves with that status.

        It raises :class:`~instax_async.PollTimeoutError` (with ``last_status``) when this
        transaction's ``timeout`` passes, or the error that ended its poll (e.g.
        :class:`~instax_async.NotFoundError`); other watches carry on. Watching an id that is
        already watched shares its poll. Cancelling every future of an id stops its poll.
        Nobody has to await the future: statuses also arrive through :meth:`updates`.

        >>> status = await poller.watch(event.withdraw_tx_id)  # doctest: +SKIP
        """
        tx_id = check_id(tx_id, "tx_id")
        self._ensure_open()
        watch = self._watches.get(tx_id)
        if watch is None:
            watch = _Watch(tx_id, self._clock() + self._options.timeout, self._options.interval)
            self._watches[tx_id] = watch
            self._schedule(watch, 0.0)
        waiter: asyncio.Future[BlockchainStatus] = self._loop.create_future()
        waiter.add_done_callback(functools.partial(self._waiter_done, watch))
        watch.waiters.append(waiter)
        return waiter

    def updates(self) -> AsyncIterator[BlockchainStatus]:
        """Every status change of every watched transaction, as it happens.

        Each iterator gets every change from the moment ``updates()`` is called; it ends when
        the poller closes. Changes are only kept for iterators that exist, so watching without
        reading updates costs nothing.

        ::

            async for status in poller.updates():
                print(status.tx_id, status.status, status.hash)
        """
        self._ensure_open()
        stream = _StatusUpdates(self)
        self._streams.add(stream)
        return stream

    # -- the scheduler -----------------------------------------------------------------------

    def _waiter_done(self, watch: _Watch, waiter: asyncio.Future[BlockchainStatus]) -> None:
        if not waiter.cancelled():
            # read once here, so a watch nobody awaits never logs "exception was never retrieved"
            waiter.exception()
            return
        if not watch.active:
            return
        watch.waiters.remove(waiter)
        if not watch.waiters:  # nobody waits for this tx any more: stop polling it
            self._finish(watch)

    def _finish(self, watch: _Watch) -> None:
        watch.active = False
        del self._watches[watch.tx_id]

    def _settle(self, watch: _Watch, outcome: BlockchainStatus | BaseException) -> None:
        self._finish(watch)
        for waiter in watch.waiters:
            if waiter.done():
                continue
            if isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)

    def _schedule(self, watch: _Watch, delay: float) -> None:
        due = self._clock() + delay
        if due >= watch.deadline:
            # the next attempt would come too late: what is left is the deadline itself
            watch.expiring = True
            due = watch.deadline
        heapq.heappush(self._heap, (due, next(self._order), watch))
        wakeup = self._wakeup
        if wakeup is not None and due < self._wake_at and not wakeup.done():
            wakeup.set_result(None)

    def _expire(self, watch: _Watch) -> None:
        self._settle(
            watch,
            PollTimeoutError(
                f"no blockchain hash for tx {watch.tx_id!r} within "
                f"{self._options.timeout:g} s ({_describe(watch.last)})",
                last_status=watch.last,
            ),
        )

    async def _dispatch(self) -> None:
        while True:
            watch = await self._next_due()
            await self._slots.acquire()
            # spaced after the slot is free, right before the hand-over, so requests leave at
            # the spaced times instead of queueing behind busy workers and then bursting
            await self._pace()
            if self._idle_workers:
                self._idle_workers -= 1
            else:
                # the semaphore allows a request, and no worker is idle, so fewer than
                # `concurrency` workers exist: start one (workers are only made when needed)
                self._start(self._work())
            self._ready.put_nowait(watch)

    async def _next_due(self) -> _Watch:
        heap = self._heap
        while True:
            if not heap:
                await self._idle(math.inf)
                continue
            due, _, watch = heap[0]
            if not watch.active:
                heapq.heappop(heap)
                continue
            if due > self._clock():
                await self._idle(due)
                continue
            heapq.heappop(heap)
            if watch.expiring:
                self._expire(watch)
                continue
            return watch

    async def _idle(self, until: float) -> None:
        """Wait until clock time ``until``, or until a watch due earlier is scheduled."""
        wakeup: asyncio.Future[None] = self._loop.create_future()
        self._wakeup, self._wake_at = wakeup, until
        try:
            if until == math.inf:
                await wakeup
                return
            sleeper = asyncio.ensure_future(self._sleep(until - self._clock()))
            try:
                await asyncio.wait((sleeper, wakeup), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                await asyncio.wait((sleeper,))
            if not sleeper.cancelled():
                sleeper.result()  # an injected sleep that raised stops the scheduler, loudly
        finally:
            self._wakeup, self._wake_at = None, math.inf

    async def _pace(self) -> None:
        if not self._spacing:
            return
        now = self._clock()
        # one slot every 1/rate_limit s; an idle spell earns no credit, so there is no burst
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._spacing
        if slot > now:
            await self._sleep(slot - now)

    async def _work(self) -> None:
        while True:
            watch = await self._ready.get()
            try:
                await self._attempt(watch)
            finally:
                self._slots.release()
            self._idle_workers += 1

    async def _attempt(self, watch: _Watch) -> None:
        if not watch.active:
            return
        left = watch.deadline - self._clock()
        if left <= 0:
            self._expire(watch)
            return
        outcome: BlockchainStatus | Exception
        try:
            outcome = await self._session._fetch_blockchain_status(watch.tx_id, left)
        except Exception as exc:
            outcome = exc
        if not watch.active:  # every waiter was cancelled while the request was out
            return
        wait, watch.interval = self._options.step(watch.interval)
        if isinstance(outcome, BlockchainStatus):
            if outcome != watch.last:
                watch.last = outcome
                for stream in self._streams:
                    stream._queue.put_nowait(outcome)
            if outcome.is_final:
                self._settle(watch, outcome)
                return
        elif is_transient(outcome):
            hint = retry_after(outcome)
            if hint is not None:
                wait = max(wait, hint)
            logger.debug(
                "instax_async: blockchain status of tx %r: %s; next attempt in %.2f s",
                watch.tx_id,
                outcome,
                wait,
            )
        else:
            self._settle(watch, outcome)
            return
        self._schedule(watch, wait)


def _no_clock() -> float:  # pragma: no cover - replaced on entering the 'async with' block
    raise InstaxError("BlockchainPoller is not running")
