"""What the polling tests share: a fake clock, scripted answers, a client and a poller on
them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from instax_async import (
    AsyncSession,
    BlockchainPoller,
    MockTransport,
    Request,
    Response,
    RetryPolicy,
)

NO_RETRY = RetryPolicy(max_retries=0)
PENDING = {"status": "pending"}
DONE = {"status": "completed", "hash": "0xfeed"}


class FakeTime:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # others run first, at the time the sleep began; then the sleeper wakes up later
        await asyncio.sleep(0)
        self.now += max(0.0, seconds)


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, headers or {}, content)


def scripted(*answers: Response | Exception) -> tuple[Callable[[Request], Response], list[Request]]:
    """A handler that answers from a script (the last answer repeats) and records requests."""
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        item = answers[min(len(seen), len(answers)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def make_client(
    handler: Callable[[Request], Any], fake: FakeTime | None = None, **kwargs: Any
) -> AsyncSession:
    kwargs.setdefault("retry", NO_RETRY)
    client = AsyncSession(base_url="http://api.test", transport=MockTransport(handler), **kwargs)
    if fake is not None:
        client.requester.sleep = fake.sleep
        client.requester.clock = fake.clock
    return client


def per_tx(script: dict[str, list[Response]]) -> tuple[Callable[[Request], Response], list[str]]:
    """A handler answering each tx id from its own script (last answer repeats)."""
    from urllib.parse import parse_qs, urlsplit

    asked: list[str] = []

    def handler(request: Request) -> Response:
        tx_id = parse_qs(urlsplit(request.url).query)["txId"][0]
        asked.append(tx_id)
        answers = script[tx_id]
        return answers[min(asked.count(tx_id), len(answers)) - 1]

    return handler, asked


def poller_for(client: AsyncSession, fake: FakeTime, **kwargs: Any) -> BlockchainPoller:
    return BlockchainPoller(client, sleep=fake.sleep, clock=fake.clock, **kwargs)
