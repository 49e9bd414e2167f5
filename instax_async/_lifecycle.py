"""What the SDK's long-lived objects share: `async with` closes them, a plain `with` is refused."""

from __future__ import annotations

from types import TracebackType
from typing import NoReturn

__all__ = ["AsyncResource"]


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
