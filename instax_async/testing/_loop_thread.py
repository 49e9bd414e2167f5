"""An event loop in a thread of its own, where the pytest fixtures run their servers.

pytest-asyncio may run a fixture in one event loop and the test in another (a fixture loop scope
of ``session``, a test marked ``loop_scope="module"``): a server started in the fixture's loop
would then never answer, as that loop waits while the test's runs. A server in a loop of its own,
in another thread, answers whichever loop the test runs in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol, TypeVar

from ..errors import InstaxError

__all__ = ["LoopThread", "serve_in_thread"]

T = TypeVar("T")

# How long starting the thread may take before it is reported as broken (it takes milliseconds).
_START_TIMEOUT = 10.0


class LoopThread:
    """An event loop that runs in a daemon thread from :meth:`start` until :meth:`stop`.

    Its end is ``asyncio.run``'s: tasks left are cancelled, async generators closed, the loop
    closed; :meth:`stop` waits for that without blocking the caller's loop.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ended: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread and wait (briefly) until its loop runs."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=self.name, daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):  # pragma: no cover - a thread that cannot start
            raise InstaxError(f"the {self.name} thread did not start")

    def _main(self, ready: threading.Event) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            ready.set()
            await self._stopping.wait()

        try:
            asyncio.run(run())
        finally:
            self._ended.set_result(None)

    async def run(self, call: Coroutine[Any, Any, T]) -> T:
        """Run ``call`` in the thread's loop; its result or exception comes back here."""
        assert self._loop is not None, "start() first"
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, self._loop))

    async def stop(self) -> None:
        """End the loop and wait for the thread to finish."""
        assert self._thread is not None and self._loop is not None and self._stopping is not None
        self._loop.call_soon_threadsafe(self._stopping.set)
        await asyncio.wrap_future(self._ended)
        self._thread.join()  # at once: its last step was to say it had ended


class _Server(Protocol):
    async def start(self) -> str: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)


@contextlib.asynccontextmanager
async def serve_in_thread(server: S, name: str) -> AsyncIterator[S]:
    """Start ``server`` in a :class:`LoopThread` of its own; stop both on leaving."""
    thread = LoopThread(name)
    thread.start()
    try:
        await thread.run(server.start())
        try:
            yield server
        finally:
            await thread.run(server.stop())
    finally:
        await thread.stop()
