"""The load generator of the flood tests and benchmark (benchmarks/webhook_floods.py) ends.

Its attackers run until cancelled, so a lost cancellation used to leave one attacking the
receiver while the measure waited for it forever. Before Python 3.12, ``asyncio.wait_for``
loses the cancellation of its caller when the awaited operation completes in the same loop
iteration: these tests make that moment happen on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from benchmarks import webhook_floods
from benchmarks.webhook_floods import Stalled, bounded, measure_latency, post, signed_delivery, stop
from instax_async._compat import timeout


class Silent:
    """A server that reads each connection to its end and answers nothing."""

    def __init__(self) -> None:
        self.port = 0
        #: Each piece a connection sent, as it arrives.
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        #: All that a connection sent, once its client closed it.
        self.closed: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        try:
            while chunk := await reader.read(65536):
                self.received.put_nowait(chunk)
                data += chunk
        except ConnectionError:
            pass
        self.closed.put_nowait(data)
        writer.close()


@pytest.fixture
async def silent() -> AsyncIterator[Silent]:
    server = Silent()
    listening = await asyncio.start_server(server.handle, webhook_floods.HOST, 0)
    server.port = listening.sockets[0].getsockname()[1]
    yield server
    listening.close()


async def test_a_post_cancelled_as_its_connection_opens_ends_and_closes_it(
    silent: Silent, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = asyncio.open_connection
    caller: asyncio.Task[Any] | None = None

    async def opened_as_the_caller_is_cancelled(*args: Any, **kwargs: Any) -> Any:
        connection = await opened(*args, **kwargs)
        assert caller is not None
        caller.cancel()  # the cancellation arrives as the connection opens
        return connection

    monkeypatch.setattr(asyncio, "open_connection", opened_as_the_caller_is_cancelled)
    caller = asyncio.ensure_future(post(silent.port, [signed_delivery()], timeout=5))
    async with timeout(20):
        with pytest.raises(asyncio.CancelledError):
            await caller
        await silent.closed.get()  # and its connection closed


async def test_a_post_cancelled_while_it_awaits_the_answer_closes_its_connection(
    silent: Silent,
) -> None:
    delivery = signed_delivery()
    posting = asyncio.ensure_future(post(silent.port, [delivery], timeout=20))
    async with timeout(20):
        await silent.received.get()  # the delivery arrived: the answer is awaited
        posting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await posting
        assert await silent.closed.get() == delivery


async def test_the_latency_measure_ends_when_an_attacker_loses_its_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost: set[asyncio.Task[Any]] = set()

    async def post_losing_a_cancellation(
        port: int, parts: list[bytes], **kwargs: Any
    ) -> tuple[int | str, dict[str, str]]:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            if task in lost:
                raise
            lost.add(task)  # the first one is lost, as wait_for lost it
        return 401, {}

    monkeypatch.setattr(webhook_floods, "post", post_losing_a_cancellation)
    async with timeout(10):
        figures = await measure_latency(0, attackers=3, deliveries=1)
    assert figures["answers"] == {"401": 1}
    assert len(lost) == 3  # each attacker lost a cancellation, and ended all the same


async def test_tasks_that_do_not_end_are_named_instead_of_awaited_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhook_floods, "STOP_TIMEOUT", 0.3)
    started, release = asyncio.Event(), asyncio.Event()

    async def deaf() -> None:
        started.set()
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # deaf to every cancellation
                await asyncio.sleep(0.01)

    task = asyncio.ensure_future(deaf())
    await started.wait()
    with pytest.raises(Stalled, match=r"^the deaf ones: 1 of 1 still running 0.3 s after"):
        await stop([task], "the deaf ones")
    release.set()
    await task


async def test_a_stalled_step_is_named() -> None:
    with pytest.raises(Stalled, match=r"^reading the answer: not done within 0.05 s$"):
        async with bounded("reading the answer", 0.05):
            await asyncio.sleep(5)
