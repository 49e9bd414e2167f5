"""The webhook receivers against unauthenticated floods, each in a real server process.

The aiohttp ``webhook_handler`` in an aiohttp ``AppRunner`` and the ASGI ``webhook_app`` under
uvicorn, both with their defaults, started by :class:`benchmarks.webhook_floods.ReceiverProcess`
(the benchmark measures the same figures: ``python -m benchmarks --only webhook_floods``). The
bounds are the documented ones, not tight ones: the measured figures are far below them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from benchmarks.webhook_floods import (
    HOST,
    WRONG_SIGNATURE,
    ReceiverProcess,
    bounded,
    measure_flood,
    measure_latency,
    raise_fd_limit,
    request_head,
    stop,
)
from instax_async.webhooks import RECEIVER_BODY_TIMEOUT

pytestmark = [
    pytest.mark.subprocess,  # the receivers run as server processes of their own
    pytest.mark.skipif(
        not Path("/proc/self/status").exists(), reason="reads the receiver's memory from /proc"
    ),
]


@pytest.fixture(scope="module", autouse=True)
def _many_sockets() -> None:
    raise_fd_limit()


@pytest.mark.parametrize("kind", ["aiohttp", "asgi"])
async def test_a_flood_of_large_unsigned_bodies_leaves_the_receivers_memory_bounded(
    kind: str,
) -> None:
    # 1,000 connections each POST 1 MiB with a wrong signature: 16 KiB at once, the rest a
    # second later. Each is answered 413 from its declared length, and its connection closed
    # before the rest is read. Afterwards the receiver holds what it held before: glibc keeps
    # the freed heap cached (the 16 KiB each connection brought, about 16 MiB, as much with a
    # bare aiohttp handler that answers 413 at once), so what is left is read once the
    # receiver handed that cache back (malloc_trim), as the baseline was.
    with ReceiverProcess(kind) as receiver:
        figures = await measure_flood(receiver, 1000)
    assert figures["warm_up_answers"] == {"200": 1000}, figures
    assert set(figures["flood_answers"]) <= {"413", "closed"}, figures
    assert figures["flood_answers"].get("413", 0) >= 900, figures
    assert figures["peak_over_baseline_mib"] < 64, figures
    assert figures["after_trim_over_baseline_mib"] < 16, figures


async def _trickle(port: int, head: bytes, drip: bytes) -> tuple[bytes, float]:
    """Send ``head``, then ``drip`` once a second; the answer's first line (``b""`` if the
    connection was closed without one) and the seconds it took."""
    async with bounded("connecting to the receiver", 30):
        reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(head)
    started = time.perf_counter()

    async def dripping() -> None:
        while True:
            writer.write(drip)
            await writer.drain()
            await asyncio.sleep(1)

    task = asyncio.ensure_future(dripping())
    try:
        async with bounded("the answer to a body sent a byte a second", 30):
            line = await reader.readline()
    except ConnectionError:
        line = b""
    finally:
        seconds = time.perf_counter() - started
        await stop([task], "sending a byte a second")
        writer.transport.abort()
    return line, seconds


@pytest.mark.parametrize("kind", ["aiohttp", "asgi"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_sent_a_byte_a_second_is_cut_within_body_timeout(
    kind: str, framing: str
) -> None:
    if framing == "chunked":
        head = (
            b"POST /hook HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"X-Instaxwh-Key: " + WRONG_SIGNATURE.encode() + b"\r\n\r\n"
        )
        drip = b"1\r\n \r\n"
    else:
        head, drip = request_head(1000, WRONG_SIGNATURE), b" "
    with ReceiverProcess(kind, body_timeout=1) as receiver:
        line, seconds = await _trickle(receiver.port, head, drip)
    assert seconds < 1 + 1, seconds
    assert line == b"" or line.startswith(b"HTTP/1.1 408 "), line


def test_the_body_timeout_is_10_s_by_default() -> None:
    from instax_async.integrations.aiohttp import webhook_handler
    from instax_async.integrations.asgi import webhook_app

    handler = webhook_handler("s", print)
    assert handler.receiver.body_timeout == RECEIVER_BODY_TIMEOUT == 10  # type: ignore[attr-defined]
    assert webhook_app("s", print).receiver.body_timeout == 10


@pytest.mark.parametrize("kind", ["aiohttp", "asgi"])
async def test_signed_deliveries_are_answered_quickly_among_costly_unsigned_bodies(
    kind: str,
) -> None:
    # 50 connections POST, again and again, bodies of the default maximum size that are among
    # the costliest to verify; genuine deliveries are answered within 2 s (the median of 5).
    from instax_async.integrations.aiohttp import webhook_handler

    default_max_body = webhook_handler("s", print).receiver.max_body  # type: ignore[attr-defined]
    with ReceiverProcess(kind) as receiver:
        figures = await measure_latency(
            receiver.port, attackers=50, deliveries=5, size=default_max_body
        )
    assert figures["answers"] == {"200": 5}, figures
    assert set(figures["hostile_answers"]) <= {"401"}, figures
    assert figures["median_s"] < 2, figures
