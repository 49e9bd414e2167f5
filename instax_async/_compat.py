"""What Python 3.10 lacks: ``asyncio.timeout``."""

from __future__ import annotations

import asyncio
import sys
from types import TracebackType

__all__ = ["timeout"]

if sys.version_info >= (3, 11):
    timeout = asyncio.timeout
else:  # pragma: no cover - exercised on Python 3.10 only

    class timeout:
        """Cancel the enclosed block after ``delay`` seconds and raise ``TimeoutError``.

        ``asyncio.wait_for`` is not used on 3.10: it can swallow a cancellation that arrives
        as the awaited operation completes, and a cancelled task would then run on.
        """

        def __init__(self, delay: float) -> None:
            self._delay = delay
            self._expired = False
            self._handle: asyncio.TimerHandle | None = None
            self._task: asyncio.Task[object] | None = None

        async def __aenter__(self) -> timeout:
            self._task = asyncio.current_task()
            self._handle = asyncio.get_running_loop().call_later(self._delay, self._expire)
            return self

        def _expire(self) -> None:
            self._expired = True
            if self._task is not None:
                self._task.cancel()

        async def __aexit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None:
            if self._handle is not None:
                self._handle.cancel()
            if self._expired and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc
