"""One ``AsyncSession`` from several threads, each with an event loop of its own.

The pattern the issue found in Flask views: ``asyncio.run(client.create_session(...))`` per
request, in 8 request threads. Loops that take turns share the session's connections as before;
a loop that comes while another still runs gets an ``InstaxError`` pointing to ``Client``,
before anything is sent, never an ``APIConnectionError`` (which would leave the caller unsure
whether a payment session was created).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from instax_async import AsyncSession, InstaxError, PaymentSession
from instax_async.transports.httpx import HttpxTransport
from tests.sync.conftest import REQUEST, ThreadServer

POINTER = "use instax_async.Client"


def _calls_from_threads(
    client: AsyncSession, threads: int, calls: int
) -> list[PaymentSession | BaseException]:
    outcomes: list[PaymentSession | BaseException] = []
    start = threading.Barrier(threads)

    def request_thread() -> None:
        start.wait()
        for _ in range(calls):
            try:
                outcomes.append(asyncio.run(client.create_session(REQUEST)))
            except BaseException as exc:
                outcomes.append(exc)

    workers = [threading.Thread(target=request_thread) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return outcomes


def test_asyncio_run_per_request_in_8_threads_fails_clearly_and_sends_nothing_twice(
    server: ThreadServer,
) -> None:
    server.delay = 0.005
    client = AsyncSession(base_url=server.url)
    outcomes = _calls_from_threads(client, threads=8, calls=5)
    assert len(outcomes) == 40
    created = [o for o in outcomes if isinstance(o, PaymentSession)]
    refused = [o for o in outcomes if not isinstance(o, PaymentSession)]
    for error in refused:
        assert type(error) is InstaxError, repr(error)  # never an APIConnectionError
        assert "two event loops at once" in str(error) and POINTER in str(error)
        assert "nothing was sent" in str(error)
    assert created  # at least the first loop's calls
    # every request the server saw was answered to its caller: a refused call sent nothing
    assert len(server.seen) == len(created)
    assert len({session.id for session in created}) == len(created)


def test_a_second_loop_is_refused_while_the_first_runs_and_served_after_it(
    server: ThreadServer,
) -> None:
    server.held = True
    client = AsyncSession(base_url=server.url)
    first: list[PaymentSession] = []
    thread = threading.Thread(
        target=lambda: first.append(asyncio.run(client.create_session(REQUEST)))
    )
    thread.start()
    while not server.seen:  # the first loop's request is at the server, held there
        time.sleep(0.005)
    with pytest.raises(InstaxError, match=POINTER):
        asyncio.run(client.create_session(REQUEST))
    server.release()
    thread.join(10)
    assert first[0].id == "ps_1"
    # that loop has ended: this one starts afresh, as successive asyncio.run calls always did
    assert asyncio.run(client.create_session(REQUEST)).id == "ps_2"
    assert len(server.seen) == 2
    asyncio.run(client.aclose())


def test_an_httpx_transport_in_another_thread_points_to_client(server: ThreadServer) -> None:
    transport = HttpxTransport()
    client = AsyncSession(base_url=server.url, transport=transport)
    server.held = True
    thread = threading.Thread(target=lambda: asyncio.run(client.create_session(REQUEST)))
    thread.start()
    while not server.seen:
        time.sleep(0.005)
    with pytest.raises(InstaxError, match=POINTER) as info:
        asyncio.run(client.create_session(REQUEST))
    assert "nothing was sent" in str(info.value)
    server.release()
    thread.join(10)
    assert len(server.seen) == 1


def test_a_max_concurrency_client_refuses_a_second_loop_before_its_bound(
    server: ThreadServer,
) -> None:
    # the bound is a semaphore of one loop: it cannot hold across two running at once, so the
    # second loop is refused before it waits on it, whatever the transport
    server.held = True
    client = AsyncSession(base_url=server.url, max_concurrency=1)
    thread = threading.Thread(target=lambda: asyncio.run(client.create_session(REQUEST)))
    thread.start()
    while not server.seen:
        time.sleep(0.005)
    with pytest.raises(InstaxError, match=POINTER) as info:
        asyncio.run(client.create_session(REQUEST))
    assert "nothing was sent" in str(info.value) and type(info.value) is InstaxError
    server.release()
    thread.join(10)
    assert len(server.seen) == 1
    assert asyncio.run(client.create_session(REQUEST)).id == "ps_2"  # that loop has ended
    asyncio.run(client.aclose())
