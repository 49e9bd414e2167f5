"""An event loop on a daemon thread of its own, to which synchronous code hands coroutines.

The synchronous :class:`~instax_async.Client` and the Django and Flask webhook receivers run the
SDK's one async pipeline here (retries, hooks, telemetry, logging and limits are written once,
in :class:`~instax_async.AsyncSession` and the receiver core), rather than a blocking copy of it.
anyio's blocking portal and asgiref's ``async_to_sync`` are the same idea; this one is small
because it serves one purpose, and it survives ``os.fork()``.

- **Started on first use.** Building a :class:`BackgroundLoop` starts nothing; its thread
  starts with the first :meth:`~BackgroundLoop.run` and ends with
  :meth:`~BackgroundLoop.close` (or at interpreter exit). Ending is ``asyncio.run``'s: tasks
  left are cancelled, async generators closed (the aiohttp transport closes its connections
  there), the loop closed.
- **Any thread may call.** :meth:`~BackgroundLoop.run` schedules the coroutine with
  ``call_soon_threadsafe`` and blocks the calling thread until it is done. A thread that runs
  an event loop of its own is blocked as well (as by ``httpx.Client``): no deadlock, since the
  work runs on this loop. Only a call from this loop's own thread (an event hook that calls the
  client) would wait for itself forever: it raises :class:`~instax_async.InstaxError`.
- **The caller's context.** The coroutine runs as a task created in a copy of the calling
  thread's ``contextvars`` context, so an OpenTelemetry span current in the caller parents the
  SDK's spans. (The task is created inside the copied context, which works on Python 3.10,
  where ``create_task`` takes no ``context=``.)
- **Interrupted callers.** An exception raised in the caller while it waits (``Ctrl-C``'s
  ``KeyboardInterrupt``, a signal handler's timeout) cancels the task on the loop, then
  propagates.
- **Fork.** A forked child has the parent's memory but none of its threads: the loop it
  inherits never runs again, and the sockets it holds are the parent's too. Closing them in the
  child is not harmless (an SSL transport's close sends ``close_notify`` on the parent's
  connection; removing a socket from the inherited epoll set removes it from the parent's), so
  after a fork (``os.register_at_fork``) every live loop, and whatever its owner built on it, is
  *abandoned*: kept referenced for the life of the child process so that no finalizer ever runs
  on it, and never used again. The next call builds a new loop, thread and connections.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import functools
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from .errors import InstaxError

__all__ = ["BackgroundLoop", "abandon_after_fork", "keep_forever"]

T = TypeVar("T")

#: Seconds ``close()`` waits for the loop's thread to end (it takes milliseconds).
CLOSE_TIMEOUT = 10.0


class ForkAware(Protocol):
    """An object that lets go of what it built on a background loop, in a forked child."""

    def abandon_in_child(self) -> None:
        """Called in the child after ``os.fork()``: drop (and :func:`keep_forever`) the
        parent's objects, so that the next use builds new ones."""


_LIVE: weakref.WeakSet[ForkAware] = weakref.WeakSet()
# What a forked child inherited and must never finalize (see the module's docstring).
_ABANDONED: list[object] = []


def abandon_after_fork(owner: ForkAware) -> None:
    """Have ``owner.abandon_in_child()`` called in any child forked while ``owner`` lives."""
    _LIVE.add(owner)


def keep_forever(*objects: object) -> None:
    """Keep ``objects`` referenced until the process ends, so that no finalizer runs on them
    (a forked child's share of its parent's loop, sessions and sockets)."""
    _ABANDONED.extend(objects)


def _after_fork_in_child() -> None:
    for owner in list(_LIVE):
        owner.abandon_in_child()


if hasattr(os, "register_at_fork"):  # pragma: no branch - not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


class BackgroundLoop:
    """An event loop in a daemon thread, started on first use, that runs coroutines for
    synchronous callers (see the module's docstring).

    :param name: the thread's name, also used in error messages (``"instax_async.Client"``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ident: int | None = None
        self._closed = False
        #: Counts the forks this loop was abandoned in (see :meth:`abandon_in_child`): an
        #: object made on the loop of an earlier generation belongs to a parent process.
        self.generation = 0
        abandon_after_fork(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._loop is not None else "idle"
        return f"<BackgroundLoop {self.name!r} {state}>"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def in_loop_thread(self) -> bool:
        """True when called from this loop's own thread (by code the loop runs)."""
        return self._ident is not None and threading.get_ident() == self._ident

    def run(self, function: Callable[..., Coroutine[Any, Any, T]], /, *args: Any) -> T:
        """``function(*args)`` as a task on the loop; block until it is done, and return its
        result or raise its exception here.

        :raises InstaxError: the loop is closed (or was closed while the call ran), or this is
            the loop's own thread, where waiting would never end.
        """
        if self._ident is not None and threading.get_ident() == self._ident:
            raise InstaxError(
                f"{self.name} was called from its own event loop thread (by an event hook, or "
                "other code it runs), where waiting for the call would wait forever for itself. "
                "Call it from another thread; in async code on that loop, await an "
                "AsyncSession instead."
            )
        loop = self._loop if self._loop is not None else self._start()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        started: list[asyncio.Task[T]] = []
        coroutine = function(*args)

        def start() -> None:
            task = loop.create_task(coroutine)  # in a copy of the caller's context
            started.append(task)
            task.add_done_callback(functools.partial(_settle, future, self.name))

        context = contextvars.copy_context()
        with self._lock:
            # checked under the lock that close() takes: a call scheduled before close() runs
            # before the loop ends, so it is answered (if only by a "closed" error)
            if self._closed or self._loop is not loop:
                coroutine.close()
                raise self._closed_error()
            loop.call_soon_threadsafe(start, context=context)
        try:
            return future.result()
        except BaseException:
            if not future.done():  # interrupted while waiting: stop the work too
                with contextlib.suppress(RuntimeError):  # the loop has ended meanwhile
                    # after start(), which was scheduled first: the task exists by then
                    loop.call_soon_threadsafe(_cancel, started)
            raise

    def run_awaitable(self, awaitable: Awaitable[T]) -> T:
        """:meth:`run` for an awaitable made already (a coroutine an async handler returned)."""
        result: T = self.run(_await, awaitable)
        return result

    def _closed_error(self) -> InstaxError:
        return InstaxError(
            f"this {self.name} is closed; create a new one (or keep it open with 'with' "
            "around all of its use)"
        )

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise self._closed_error()
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._main, args=(loop, ready), name=self.name, daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def _main(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._ident = threading.get_ident()
        ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                _end(loop)
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def close(
        self, cleanup: Callable[[], Awaitable[None]] | None = None, *, wait: bool = True
    ) -> None:
        """Run ``cleanup()`` on the loop, then end it; later calls raise ``InstaxError``.

        ``wait``: block until the thread has ended (at most :data:`CLOSE_TIMEOUT` seconds).
        Closing twice, or a loop never started, does nothing more.

        :raises InstaxError: waiting, from the loop's own thread.
        """
        if wait and self.in_loop_thread():
            raise InstaxError(
                f"{self.name} cannot be closed from its own event loop thread (an event hook?): "
                "close it from the thread that made it"
            )
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            try:
                # the calls in flight first (their callers get a "closed" InstaxError), then the
                # connections they were using
                here = asyncio.current_task()
                calls = [task for task in asyncio.all_tasks() if task is not here]
                for task in calls:
                    task.cancel()
                await asyncio.gather(*calls, return_exceptions=True)
                if cleanup is not None:
                    await cleanup()
            finally:
                loop.stop()

        with contextlib.suppress(RuntimeError):  # ended already (interpreter exit)
            loop.call_soon_threadsafe(_spawn, loop, shutdown)
        if wait:
            thread.join(CLOSE_TIMEOUT)

    def abandon_in_child(self) -> None:
        """In a forked child: keep the parent's loop and thread referenced forever, unused;
        the next :meth:`run` starts a loop of this process."""
        keep_forever(self._loop, self._thread)
        self._lock = threading.Lock()  # the parent's may have been held by another thread
        self._loop = self._thread = self._ident = None
        self.generation += 1


@atexit.register
def _close_at_exit() -> None:
    """End every loop still running when the interpreter exits, as ``asyncio.run`` would, so
    that connections are closed rather than left to the interpreter's teardown."""
    for owner in list(_LIVE):
        if isinstance(owner, BackgroundLoop):
            with contextlib.suppress(Exception):
                owner.close()


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _spawn(
    loop: asyncio.AbstractEventLoop, function: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    loop.create_task(function())


def _settle(future: concurrent.futures.Future[T], name: str, task: asyncio.Task[T]) -> None:
    """Hand a task's outcome to the caller waiting on ``future``."""
    if task.cancelled():
        future.set_exception(
            InstaxError(f"the call was cancelled: {name} was closed while it was in flight")
        )
        return
    error = task.exception()
    if error is None:
        future.set_result(task.result())
    else:
        future.set_exception(error)


def _cancel(started: list[asyncio.Task[Any]]) -> None:
    """On the loop: cancel the task of a caller that stopped waiting."""
    for task in started:
        task.cancel()


def _end(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does after its main coroutine: cancel what is left, close the
    async generators (the transport's closes its connections), stop the default executor."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
