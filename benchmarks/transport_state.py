"""What a transport keeps after many poll attempts, each with a timeout of its own.

A poll's attempt may take only the time left before the poll's deadline (``min(timeout, time
left)``), so every attempt of a long-running process asks its transport for a new timeout. A
transport that keeps something per distinct timeout (or URL, or status) grows without end.

``python -m benchmarks.transport_state [--attempts 10000] [--transport aiohttp|httpx]`` polls a
minimal keep-alive HTTP server on 127.0.0.1 (answering ``pending`` at once, so that the attempts
are the client's cost alone) through ``wait_for_blockchain_hash`` with a clock that moves only
when the poll sleeps: ``--attempts`` attempts, each with a distinct timeout. It reports the
transport's state (what :func:`transport_state` finds in its attributes: entries of its
containers and bytes) after the first 100 attempts and after the last. The library objects a
transport holds (the ``aiohttp.ClientSession``, the ``httpx.AsyncClient``, their connection
pools) are counted by their own size only: their growth is the library's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

NAME = "transport_state"
TITLE = "Transport state after many poll attempts with distinct timeouts"
ATTEMPTS, QUICK_ATTEMPTS = 10_000, 1_000
CHECKPOINT = 100
TRANSPORTS = ("aiohttp", "httpx")

_BODY = b'{"txId":"wd_1","status":"pending"}'
_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)


class _Pending(asyncio.Protocol):
    """Answers every request on a kept-alive connection with a pending status, at once."""

    def __init__(self) -> None:
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:  # GET requests: no body
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(_ANSWER)  # type: ignore[attr-defined]


class _Clock:
    """Time that passes only when the poll sleeps: attempts need no real waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def transport_state(transport: object) -> tuple[int, int]:
    """(entries, bytes) of what ``transport`` keeps: its attributes, walked through builtin
    containers and this SDK's objects; any other object counts by its own size only."""
    seen: set[int] = set()
    entries = size = 0

    def walk(value: object) -> None:
        nonlocal entries, size
        if id(value) in seen:
            return
        seen.add(id(value))
        size += sys.getsizeof(value)
        if isinstance(value, dict):
            entries += len(value)
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, (list, tuple, set, frozenset)):
            entries += len(value)
            for item in value:
                walk(item)
        elif type(value).__module__.startswith("instax_async"):
            for name in getattr(value, "__slots__", ()):
                walk(getattr(value, name, None))
            for item in getattr(value, "__dict__", {}).values():
                walk(item)

    walk(transport)
    return entries, size


def make_transport(name: str) -> Any:
    """A fresh transport of that name, with its defaults."""
    if name == "httpx":
        from instax_async.transports.httpx import HttpxTransport

        return HttpxTransport()
    from instax_async import AiohttpTransport

    return AiohttpTransport()


async def poll_attempts(attempts: int, transport: Any) -> dict[str, Any]:
    """Poll ``attempts`` times through ``transport``, each attempt with a distinct timeout;
    the transport's state after the first :data:`CHECKPOINT` attempts and after the last."""
    from instax_async import AsyncSession

    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Pending, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    timeouts: set[float] = set()
    states: dict[int, tuple[int, int]] = {}

    def count(request: Any) -> None:
        timeouts.add(request.timeout)
        if len(timeouts) == CHECKPOINT + 1:  # the first CHECKPOINT attempts are done
            states[CHECKPOINT] = transport_state(transport)

    clock = _Clock()
    # a client timeout longer than any poll: each attempt may take the time left, a new float
    client = AsyncSession(
        base_url=url, transport=transport, timeout=1e9, event_hooks={"request": [count]}
    )
    client.requester.sleep, client.requester.clock = clock.sleep, clock.time
    started = time.perf_counter()
    try:
        await client.wait_for_blockchain_hash(
            "wd_1",
            interval=1.0,
            max_interval=1.0,
            backoff=1.0,
            timeout=1e8,
            until=lambda status: len(timeouts) >= attempts,
        )
        seconds = time.perf_counter() - started
        states[attempts] = transport_state(transport)  # its session still open, as at first
    finally:
        await client.aclose()
        await transport.aclose()
        server.close()
        await server.wait_closed()
    return {
        "attempts": attempts,
        "distinct_timeouts": len(timeouts),
        "seconds": round(seconds, 2),
        "state": {str(n): {"entries": e, "bytes": b} for n, (e, b) in sorted(states.items())},
    }


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Each transport's state after the attempts (fewer when ``quick``)."""
    attempts = QUICK_ATTEMPTS if quick else ATTEMPTS
    results: dict[str, Any] = {}
    for name in TRANSPORTS:
        log(f"  {NAME}: {name}, {attempts} attempts")
        results[name] = asyncio.run(poll_attempts(attempts, make_transport(name)))
    return {"name": NAME, "quick": quick, "attempts": attempts, "transports": results}


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    attempts = result["attempts"]
    lines = [
        f"### {TITLE}",
        "",
        f"`wait_for_blockchain_hash` polling a keep-alive server: {attempts} attempts, each "
        "with a distinct timeout. The transport's state: entries of its containers, and bytes.",
        "",
        f"| transport | after {CHECKPOINT} attempts | after {attempts} | seconds |",
        "|---|---:|---:|---:|",
    ]
    for name, run_result in result["transports"].items():
        first, last = run_result["state"][str(CHECKPOINT)], run_result["state"][str(attempts)]
        lines.append(
            f"| {name} | {first['entries']} entries, {first['bytes']:,} B "
            f"| {last['entries']} entries, {last['bytes']:,} B | {run_result['seconds']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print the state of each transport asked for."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transport_state")
    parser.add_argument("--attempts", type=int, default=ATTEMPTS)
    parser.add_argument("--transport", action="append", choices=TRANSPORTS)
    args = parser.parse_args(argv)
    for name in args.transport or TRANSPORTS:
        result = asyncio.run(poll_attempts(args.attempts, make_transport(name)))
        first, last = result["state"][str(CHECKPOINT)], result["state"][str(args.attempts)]
        print(
            f"{name:8s} after {CHECKPOINT}: {first['entries']} entries, {first['bytes']:,} B; "
            f"after {args.attempts} ({result['distinct_timeouts']} distinct timeouts): "
            f"{last['entries']} entries, {last['bytes']:,} B  ({result['seconds']} s)"
        )


if __name__ == "__main__":
    main()
