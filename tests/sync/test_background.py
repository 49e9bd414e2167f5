"""The background event loop that runs the SDK's coroutines for synchronous callers."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from instax_async import InstaxError
from instax_async._background import BackgroundLoop

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


async def _echo(value: str) -> tuple[str, str, str]:
    await asyncio.sleep(0)
    return value, REQUEST_ID.get(), threading.current_thread().name


async def _fail() -> None:
    raise LookupError("from the loop")


def test_a_coroutine_runs_on_the_loop_in_the_callers_context() -> None:
    background = BackgroundLoop("test loop")
    assert repr(background) == "<BackgroundLoop 'test loop' idle>"
    REQUEST_ID.set("req-1")
    assert background.run(_echo, "a") == ("a", "req-1", "test loop")
    assert repr(background) == "<BackgroundLoop 'test loop' running>"
    assert background._start() is background._loop  # started once
    # an awaitable made in this thread (an async handler's coroutine)
    assert background.run_awaitable(_echo("b"))[0] == "b"
    with pytest.raises(LookupError, match="from the loop"):
        background.run(_fail)
    background.close()
    assert repr(background) == "<BackgroundLoop 'test loop' closed>"
    with pytest.raises(InstaxError, match="test loop is closed"):
        background.run(_echo, "c")
    background.close()  # twice: nothing


def test_a_loop_closed_before_it_started_refuses_calls() -> None:
    background = BackgroundLoop("unused loop")
    background.close()
    assert background.closed
    with pytest.raises(InstaxError, match="unused loop is closed"):
        background.run(_echo, "a")


def test_the_loop_cannot_wait_for_itself() -> None:
    background = BackgroundLoop("self loop")

    async def call_back() -> None:
        background.run(_echo, "inner")

    async def close_here() -> None:
        background.close()

    with pytest.raises(InstaxError, match="its own event loop thread"):
        background.run(call_back)
    with pytest.raises(InstaxError, match="cannot be closed from its own event loop thread"):
        background.run(close_here)
    background.close()


def test_a_loop_that_ends_leaves_no_task_pending() -> None:
    background = BackgroundLoop("ending loop")
    lingering: list[asyncio.Task[None]] = []

    async def start_lingering() -> None:
        lingering.append(asyncio.get_running_loop().create_task(asyncio.sleep(3600)))

    background.run(start_lingering)
    loop, thread = background._loop, background._thread
    assert loop is not None and thread is not None
    loop.call_soon_threadsafe(loop.stop)  # ended without close(): at exit, say
    thread.join(10)
    assert lingering[0].cancelled() and loop.is_closed()
