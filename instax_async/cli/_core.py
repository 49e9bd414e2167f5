"""What every command shares: its two errors, the argument parser's class, the option types,
and :func:`run`, which runs a command's coroutine with Ctrl-C handled."""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

__all__ = [
    "CommandFailed",
    "Interrupted",
    "Parser",
    "UsageError",
    "count",
    "fraction",
    "port",
    "run",
    "seconds",
    "seconds_or_zero",
]

T = TypeVar("T")


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class CommandFailed(Exception):
    """The command could not do its job (the cause is in the message): exit status 1."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are a :class:`UsageError` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


#: The most characters of one server-provided value that human output shows.


# -- option types ------------------------------------------------------------------------------


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def seconds_or_zero(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    try:
        return seconds(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}") from None


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:  # also false for nan
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}")
    return value


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 0 to 65535 (0 picks a free one), got {text!r}"
        )
    return value


# -- running a coroutine -------------------------------------------------------------------------


class Interrupted(Exception):
    """Ctrl-C (SIGINT) arrived while a command was running."""


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, where Ctrl-C cancels the coroutine so it cleans up after itself.

    The same on every Python (3.10's ``asyncio.run`` lets ``KeyboardInterrupt`` tear through
    whatever is running): the cancelled command closes its connections, then ``main`` exits
    with status 130 without a traceback.
    """

    async def guarded() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        interrupted = False

        def on_sigint() -> None:
            nonlocal interrupted
            interrupted = True
            assert task is not None  # a coroutine run by asyncio.run is a task
            task.cancel()

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
            handled = True
        except (NotImplementedError, RuntimeError, ValueError):
            handled = False  # not the main thread (tests), or no signals here
        try:
            return await coro
        except asyncio.CancelledError:
            if interrupted:
                raise Interrupted from None
            raise
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(guarded())
