"""``BlockchainPoller``: the blockchain status of many payouts, polled by one scheduler.

It sits above the client (it polls through an :class:`~instax_async.AsyncSession`) and the poll
engine (:mod:`instax_async.polling`, whose rules each watch follows); neither imports it.

The scheduler keeps a heap of due times and at most ``concurrency`` worker tasks, however many
transactions are watched. With ``rate_limit`` it spaces the requests as the server counts them:
a worker takes its send slot immediately before it hands the request to the transport, measured
from the moment the previous request actually went out, so an event loop that stalled never
releases a burst (see :func:`_send_spacing` for the arithmetic).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import math
import weakref
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

from ._lifecycle import AsyncResource
from ._protocol import blockchain_status_from, blockchain_status_url
from ._telemetry import telemetry
from ._validate import check_callable, check_count, check_id, check_number
from .client import AsyncSession
from .errors import InstaxError, PollTimeoutError, ValidationError
from .models import BlockchainStatus
from .polling import Clock, Sleep, describe_last, poll_options
from .retry import is_transient, retry_after

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .polling import PollPacing

__all__ = ["RATE_CATCH_UP", "RATE_MARGIN", "BlockchainPoller", "check_rate_limit"]

logger = logging.getLogger("instax_async")

#: Seconds added to the 1-s window in which :class:`BlockchainPoller` keeps ``rate_limit``:
#: no ``rate_limit + 1`` requests leave within ``1 + RATE_MARGIN`` s, so the server counts at
#: most ``rate_limit`` in any second even when it sees one request up to this much later than
#: another (loopback and LAN jitter, a busy server or client machine). Costs 2 % of the rate.
RATE_MARGIN = 0.020
#: Seconds a rate-limited request may leave late without delaying the ones after it. Timers
#: run late (the loop wakes them with ~1 ms resolution, later on a busy machine); without this,
#: every late wake-up would lengthen a gap for good and cost up to a tenth of the rate at
#: hundreds of requests/s. Paid for within the window (0.5 % of the rate).
RATE_CATCH_UP = 0.005


def check_rate_limit(value: object) -> float | None:
    """``rate_limit`` (requests per second) as a number > 0, or ``None`` for no limit."""
    if value is None:
        return None
    return check_number("rate_limit", value, accepted=" (requests per second) or None")


class _Watch:
    """One watched payout: its schedule, last status and waiters. Slots keep 10,000 small."""

    __slots__ = ("active", "age", "deadline", "expiring", "interval", "last", "tx_id", "waiters")

    def __init__(self, tx_id: str, deadline: float, interval: float, age: int) -> None:
        self.tx_id = tx_id
        # the order of watch() calls: among due watches the oldest is polled first
        self.age = age
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


class BlockchainPoller(AsyncResource):
    """Poll the blockchain status of many payouts at once, within limits the API can bear.

    One scheduler serves every watched transaction (no task per tx id): a heap of due times
    and at most ``concurrency`` requests in flight.

    With ``rate_limit``, the server counts at most ``rate_limit`` requests in any second (any
    closed window ``[t, t + 1]``; a limit that is not a whole number is rounded up, and a limit
    below 1 allows one request in any ``1 / rate_limit`` s). Requests are spaced evenly, a
    little over ``1 / rate_limit`` apart, each measured from the moment the one before was
    handed to the transport, so a stalled event loop never releases a burst; any
    ``rate_limit + 1`` of them span at least 1 s plus :data:`RATE_MARGIN` (20 ms), which
    absorbs jitter between the client and the server's count. A busy poller averages about
    97.5 % of ``rate_limit``. Up to 250 requests/s, no two leave closer than half of
    ``1 / rate_limit``; above that the event loop's timers (~1 ms resolution) cannot space them
    so finely, and a few may leave together after a stall, still within the limit.
    Each watch follows the poll rules of :mod:`instax_async.polling` (``interval`` growing by
    ``backoff`` up to ``max_interval``, with jitter; transient errors retried; ``Retry-After``
    honoured) and has its own ``timeout`` from the moment it is first watched.

    Leaving the ``async with`` block cancels everything still outstanding and ends every
    :meth:`updates` iterator. ``sleep`` and ``clock`` can be injected for tests.

    ::

        async with BlockchainPoller(client, concurrency=20, rate_limit=10) as poller:
            watches = [poller.watch(tx) for tx in withdraw_tx_ids]
            statuses = await asyncio.gather(*watches)
        for status in statuses:
            print(status.tx_id, status.hash or status.status)

    :param session: the client the polls go through (the poller does not close it).
    :param concurrency: the most requests in flight at once.
    :param rate_limit: the most requests the server may count in any second (``None``: no
        bound beyond ``concurrency``).
    :param options: the pacing of every watch, as :class:`~instax_async.polling.PollPacing`
        has it: ``interval``, ``max_interval``, ``backoff`` and ``timeout`` (counted from the
        first ``watch`` of a tx).
    :param sleep: replaces ``asyncio.sleep``, for tests.
    :param clock: replaces the event loop's clock, for tests.
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        concurrency: int = 10,
        rate_limit: float | None = None,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        **options: Unpack[PollPacing],
    ) -> None:
        if not isinstance(session, AsyncSession):
            raise ValidationError(
                f"session: expected an AsyncSession, got {type(session).__name__}",
                field="session",
            )
        self._requester = session.requester
        self._base_url = session.base_url
        self._telemetry = telemetry()
        self._options = poll_options(options, "BlockchainPoller", callbacks=False)[0]
        self._concurrency = check_count("concurrency", concurrency, minimum=1)
        self._spacing, self._catch_up, self._min_gap = _send_spacing(check_rate_limit(rate_limit))
        check_callable("sleep", sleep)
        check_callable("clock", clock)
        self._sleep: Sleep = sleep or asyncio.sleep
        self._clock_arg = clock
        self._clock: Clock = clock or _no_clock
        self._state = _NEW
        self._watches: dict[str, _Watch] = {}
        # Watches wait in ``_heap`` by due time; once due they move to ``_due``, ordered by age,
        # so a watch that has had its first poll is polled again before younger watches have
        # had theirs: answers come in the order watches were made, not all at the end.
        self._heap: list[tuple[float, int, _Watch]] = []
        self._due: list[tuple[int, _Watch]] = []
        self._order = itertools.count()
        self._ages = itertools.count()
        self._streams: weakref.WeakSet[_StatusUpdates] = weakref.WeakSet()
        self._next_send = self._last_send = -math.inf
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
        self._turn = asyncio.Lock()
        self._state = _OPEN
        self._start(self._dispatch())
        return self

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
        if self._telemetry is not None and watches:
            self._telemetry.watches.add(-len(watches))
        self._heap.clear()
        self._due.clear()
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
            watch = _Watch(
                tx_id,
                self._clock() + self._options.timeout,
                self._options.interval,
                next(self._ages),
            )
            self._watches[tx_id] = watch
            if self._telemetry is not None:
                self._telemetry.watches.add(1)
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
        if self._telemetry is not None:
            self._telemetry.watches.add(-1)

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
                f"{self._options.timeout:g} s ({describe_last(watch.last)})",
                last_status=watch.last,
            ),
        )

    async def _dispatch(self) -> None:
        while True:
            # a free slot first, then the choice: made as late as it can be, the choice sees
            # every watch that became due meanwhile
            await self._slots.acquire()
            watch = await self._next_due()
            if self._idle_workers:
                self._idle_workers -= 1
            else:
                # the semaphore allows a request, and no worker is idle, so fewer than
                # `concurrency` workers exist: start one (workers are only made when needed)
                self._start(self._work())
            self._ready.put_nowait(watch)

    async def _next_due(self) -> _Watch:
        heap, due_now = self._heap, self._due
        while True:
            now = self._clock()
            while heap and heap[0][0] <= now:
                _, _, watch = heapq.heappop(heap)
                if not watch.active:
                    continue
                if watch.expiring:
                    self._expire(watch)
                    continue
                heapq.heappush(due_now, (watch.age, watch))
            while due_now:
                _, watch = heapq.heappop(due_now)
                if watch.active:
                    return watch
            await self._idle(heap[0][0] if heap else math.inf)

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

    def _time_left(self, watch: _Watch, now: float) -> float | None:
        """The seconds ``watch``'s request may take, or ``None`` when it must not be sent."""
        if not watch.active:
            return None
        left = watch.deadline - now
        if left <= 0:
            self._expire(watch)
            return None
        return left

    async def _send_slot(self, watch: _Watch) -> float | None:
        """Wait until ``watch``'s request may leave and take that slot, as :meth:`_time_left`.

        Called by one worker at a time (``_turn``), so slots are taken in order. No slot is
        taken for a watch that was dropped or expired meanwhile.
        """
        while True:
            now = self._clock()
            left = self._time_left(watch, now)
            if left is None:
                return None
            wait = max(self._next_send, self._last_send + self._min_gap) - now
            if wait <= 0:
                break
            await self._sleep(min(wait, left))  # a watch expires on time, not at its slot
        # The next slot is measured from this send, so time lost to a stall or an idle spell is
        # never made up in a burst: only lateness up to `_catch_up` is forgiven, and `_spacing`
        # pays for it, so `rate_limit + 1` sends still span the window and its margin. Catching
        # up never brings two sends closer than `_min_gap`.
        self._next_send = max(self._next_send, now - self._catch_up) + self._spacing
        self._last_send = now
        return left

    async def _work(self) -> None:
        while True:
            watch = await self._ready.get()
            try:
                await self._attempt(watch)
            finally:
                self._slots.release()
            self._idle_workers += 1

    async def _attempt(self, watch: _Watch) -> None:
        if self._spacing:
            await self._turn.acquire()
            try:
                left = await self._send_slot(watch)
            finally:
                self._turn.release()
        else:
            left = self._time_left(watch, self._clock())
        if left is None:
            return
        # Nothing awaits between taking the send slot and this call, so no stall of the loop
        # can come between them: with a pooled connection aiohttp writes the request within
        # this very step, and the slot's time is the time the request goes out.
        tx_id = watch.tx_id
        outcome: BlockchainStatus | Exception
        try:
            response = await self._requester.send(
                "GET",
                blockchain_status_url(self._base_url, tx_id),
                idempotent=True,
                timeout=left,
                retry=False,
            )
            outcome = blockchain_status_from(tx_id, response)
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
        else:
            self._settle(watch, outcome)
            return
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "blockchain status of tx %r: %s; next poll in %.2f s",
                watch.tx_id,
                outcome.status if isinstance(outcome, BlockchainStatus) else outcome,
                wait,
                extra={"instax_tx_id": watch.tx_id},
            )
        self._schedule(watch, wait)


def _send_spacing(rate_limit: float | None) -> tuple[float, float, float]:
    """The spacing ``T`` of sends under ``rate_limit``, the catch-up ``c`` and the least gap.

    Each send's slot is ``max(previous slot, previous send - c) + T``, so any ``n + 1``
    successive sends span at least ``n * T - c``: ``T`` is chosen so that ``rate_limit + 1`` of
    them span ``1 + RATE_MARGIN`` s or more. No two sends are closer than ``T / 2``, as long as
    that is 2 ms or more (up to ~250 requests/s): shorter waits than that are at the mercy of
    the loop's ~1 ms timer resolution, and keeping them would undo the catch-up.
    """
    if rate_limit is None:
        return 0.0, 0.0, 0.0
    spacing = (1.0 + RATE_MARGIN + RATE_CATCH_UP) / rate_limit
    half = spacing / 2
    return spacing, RATE_CATCH_UP, half if half >= 0.002 else 0.0


def _no_clock() -> float:  # pragma: no cover - replaced on entering the 'async with' block
    raise InstaxError("BlockchainPoller is not running")
