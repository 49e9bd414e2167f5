"""What the SDK's long-lived objects share: `async with` closes them, a plain `with` is refused.

The servers (the sandbox, the webhook recorder) also belong to the event loop they were started
in: :func:`elsewhere` and :func:`run_in` let their ``start``/``stop`` be called from another
loop, as the pytest fixtures need (they run the servers in a thread of their own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, NoReturn, TypeVar

from .errors import InstaxError

__all__ = ["AsyncResource", "elsewhere", "run_in"]

T = TypeVar("T")


class AsyncResource:
    """A base for objects used as ``async with X(...) as x:`` and closed by ``await x.aclose()``.

    Leaving the block awaits :meth:`aclose`; a plain ``with`` raises a ``TypeError`` that says
    what to write instead, rather than an ``AttributeError`` about ``__enter__``.
    """

    async def aclose(self) -> None:
        """Release what the object holds."""
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> NoReturn:
        name = type(self).__name__
        raise TypeError(f"{name} is asynchronous: use 'async with {name}(...)'")

    def __exit__(self, *args: object) -> None:  # pragma: no cover - __enter__ always raises
        pass


def elsewhere(home: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop | None:
    """``home`` when a server whose loop it is must be driven from there, not from this loop.

    ``None`` for a server never started, or whose loop is this one or has closed (it is then
    started afresh in this loop).
    """
    if home is None or home.is_closed() or home is asyncio.get_running_loop():
        return None
    return home


async def run_in(home: asyncio.AbstractEventLoop, call: Coroutine[Any, Any, T], owner: str) -> T:
    """Run ``call`` in ``home``, a loop running in another thread, and wait for it in this one.

    :raises InstaxError: ``home`` is not running: it is a loop of this thread that waits for its
        turn, so waiting for it here would never end.
    """
    if not home.is_running():
        call.close()
        raise InstaxError(
            f"{owner} runs in another event loop, which is not running now: start and stop it "
            "from the loop it was started in"
        )
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, home))
