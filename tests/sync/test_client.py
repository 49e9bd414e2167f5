"""``Client``: the blocking client, against the sandbox and a stand-in server on real sockets."""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
import time
import types
import weakref
from collections.abc import Iterator

import attrs
import pytest

from instax_async import (
    NEWEST_API_REQUIRED,
    APIConnectionError,
    AsyncSession,
    BlockchainStatus,
    Client,
    InstaxError,
    NotFoundError,
    PaymentSession,
    PollTimeoutError,
    Request,
    Response,
    RetryPolicy,
    ValidationError,
)
from instax_async.sandbox import Sandbox, SandboxConfig
from instax_async.sync_client import StatusIterator
from tests.doc_fixtures import BackgroundSandbox
from tests.sync.conftest import REQUEST, ThreadServer

FAST = RetryPolicy(max_retries=2, backoff_base=0.0, backoff_max=0.0)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with BackgroundSandbox(SandboxConfig(confirmation_polls=1)) as running:
        yield running


def test_the_payment_flow_blocking_against_the_sandbox(sandbox: Sandbox) -> None:
    with Client(base_url=sandbox.url, api_key="sk_test") as client:
        session = client.create_session(REQUEST)
        assert isinstance(session, PaymentSession) and session.id.startswith("ps_")
        assert session.iframe_url == f"{sandbox.url}/embed/{session.id}"
        assert client.iframe_url(session.id) == session.iframe_url
        assert not client.session_status(session.id).is_terminal
        tx_id = asyncio.run(sandbox.complete(session.id))["withdraw_tx_id"]
        assert client.wait_for_session(session.id, interval=0.01).is_completed
        assert client.wait_for_session_status(session.id, interval=0.01).is_completed
        pending = client.blockchain_status(tx_id)
        assert isinstance(pending, BlockchainStatus)
        final = client.wait_for_blockchain_hash(tx_id, interval=0.01)
        assert final.hash is not None
        assert client.wait_for_blockchain_status(tx_id, interval=0.01) == final
        # the same exceptions as AsyncSession's
        with pytest.raises(NotFoundError):
            client.session_status("ps_nowhere")
        with pytest.raises(ValidationError, match="tx_id"):
            client.blockchain_status("..")
    assert client.closed


def test_the_going_live_settings_work_as_async_sessions_do() -> None:
    # the strict sandbox wants accountRefId and address, and answers a checkout URL of its own
    with (
        BackgroundSandbox(SandboxConfig(strict=True)) as strict,
        Client(
            base_url=strict.url,
            account_ref_id="acct_9",
            checkout_url="{base_url}/order/{id}",
            default_headers={"Authorization": "Bearer sk_test_bearer"},
            require=NEWEST_API_REQUIRED,
        ) as client,
    ):
        assert client.account_ref_id == "acct_9" and client.require == NEWEST_API_REQUIRED
        assert client.checkout_url == f"{strict.url}/order/{{id}}"  # {base_url} resolved
        with pytest.raises(ValidationError) as refused:
            client.create_session(REQUEST)  # no address: refused before anything is sent
        assert refused.value.field == "address"
        session = client.create_session(attrs.evolve(REQUEST, address="0xabc"))
        assert session.iframe_url == f"{strict.url}/order/{session.id}"
        assert client.iframe_url("ps_1") == f"{strict.url}/order/ps_1"
    with pytest.raises(ValidationError) as bad:
        Client(checkout_url="https://checkout.example/order")  # no {id}
    assert bad.value.field == "checkout_url"


def test_poll_iterators_yield_each_status_and_stop(server: ThreadServer) -> None:
    server.pending_polls = 2
    with Client(base_url=server.url, api_key="sk_test") as client:
        statuses = client.poll_blockchain_status("wd_1", interval=0.01)
        assert isinstance(statuses, StatusIterator)
        assert iter(statuses) is statuses
        seen = [status.hash for status in statuses]
        assert seen == [None, "0xwd_1"]  # two pending answers are one status: it did not change
        attempts: list[tuple[int, object]] = []
        final = client.wait_for_blockchain_status(
            "wd_1", interval=0.01, on_attempt=lambda a: attempts.append((a.number, a.error))
        )
        assert final.hash == "0xwd_1" and attempts == [(1, None)]  # the options pass through
        assert list(statuses) == []  # ended
        sessions = list(client.poll_session_status("ps_1", interval=0.01))
        assert [s.is_completed for s in sessions] == [True]
        # checked at the call, before any request
        with pytest.raises(ValidationError, match="interval"):
            client.poll_blockchain_status("wd_2", interval=-1)
        with pytest.raises(ValidationError, match="until"):
            client.poll_session_status("ps_1", until="done")  # type: ignore[arg-type]


def test_a_poll_left_early_stops_polling(server: ThreadServer) -> None:
    server.pending_polls = 10**6
    with Client(base_url=server.url) as client:
        with client.poll_blockchain_status("wd_1", interval=0.01) as statuses:
            first = next(statuses)
        assert first.hash is None
        polls = len(server.seen)
        time.sleep(0.1)
        assert len(server.seen) == polls  # closed: no more requests
        statuses.close()  # twice: nothing more
        with pytest.raises(StopIteration):
            next(statuses)
        # dropped without closing: asyncio's finalizer closes it on the client's loop
        dropped = client.poll_blockchain_status("wd_2", interval=0.01)
        next(dropped)
        del dropped
        gc.collect()
        # a poll that raises has ended
        timing_out = client.poll_blockchain_status("wd_3", interval=0.01, timeout=0.05)
        with pytest.raises(PollTimeoutError):
            list(timing_out)
        assert list(timing_out) == []
        orphan = client.poll_blockchain_status("wd_4", interval=0.01)
        unstarted = client.poll_blockchain_status("wd_5", interval=0.01)
    with pytest.raises(InstaxError, match="Client is closed"):
        next(orphan)  # its client is closed
    unstarted.close()  # nothing to stop on a closed client's loop


def test_with_options_copies_share_the_thread_and_close_alone(server: ThreadServer) -> None:
    client = Client(base_url=server.url, timeout=5.0)
    calls: list[str] = []
    patient = client.with_options(
        max_retries=5, event_hooks={"request": [lambda r: calls.append("copy")]}
    )
    again = patient.with_options(timeout=2.0)  # keeps the copy's retry policy and hooks
    other = patient.with_options(retry=FAST)  # a policy replaces the inherited max_retries
    assert patient.create_session(REQUEST).id == "ps_1"
    assert again.create_session(REQUEST).id == "ps_2"
    assert other.create_session(REQUEST).id == "ps_3"
    assert client.create_session(REQUEST).id == "ps_4"
    assert calls == ["copy", "copy", "copy"]  # the original has no hooks
    patient.close()
    with pytest.raises(InstaxError, match="closed"):
        patient.create_session(REQUEST)
    assert again.create_session(REQUEST).id == "ps_5"
    client.close()
    for closed in (client, again, other):
        assert closed.closed
        with pytest.raises(InstaxError, match="Client is closed"):
            closed.create_session(REQUEST)
    with pytest.raises(InstaxError, match="closed"):
        client.with_options(timeout=1.0)
    with pytest.raises(InstaxError, match="closed"), client:
        pass
    client.close()  # twice: nothing


def test_options_are_checked_when_the_client_is_built() -> None:
    async def async_hook(request: Request) -> None:  # pragma: no cover - refused, never called
        pass

    class AsyncCallable:
        async def __call__(self, request: Request) -> None:  # pragma: no cover - refused
            pass

    for hooks in ({"request": [async_hook]}, {"response": [AsyncCallable()]}):
        with pytest.raises(ValidationError, match="async function") as info:
            Client(event_hooks=hooks)
        assert info.value.field == "event_hooks"
    with pytest.raises(ValidationError, match="event_hooks"):
        Client(event_hooks={"request": "not a list"})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="event_hooks"):
        Client(event_hooks=["not a mapping"])  # type: ignore[arg-type]
    for bad, field in [
        ({"timeout": None}, "timeout"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"max_response_bytes": -1}, "max_response_bytes"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": True}, "max_connections"),
        ({"trust_env": "yes"}, "trust_env"),
    ]:
        with pytest.raises(ValidationError) as info:
            Client(**bad)
        assert info.value.field == field
    client = Client(base_url="http://api.test", api_key="sk_live_secret")
    with pytest.raises(ValidationError, match="async function"):
        client.with_options(event_hooks={"request": [async_hook]})
    with pytest.raises(ValidationError, match="async function"):
        client.event_hooks = {"request": [async_hook]}
    assert "sk_live_secret" not in repr(client) and "api_key=set" in repr(client)
    assert client.has_api_key and client.base_url == "http://api.test"
    client.close()  # never started: nothing to stop
    assert "closed" in repr(client)


def test_hooks_run_on_the_clients_thread_and_cannot_call_it(server: ThreadServer) -> None:
    threads: list[str] = []
    client = Client(base_url=server.url)

    def note(request: Request, response: Response) -> None:
        threads.append(threading.current_thread().name)

    def call_back(request: Request) -> None:
        client.create_session(REQUEST)  # would wait for itself forever

    def close_from_hook(request: Request) -> None:
        client.close()

    client.event_hooks["response"].append(note)
    assert client.create_session(REQUEST).id == "ps_1"
    assert threads == ["instax_async.Client"]
    client.event_hooks = {"request": [call_back]}
    with pytest.raises(InstaxError, match="its own event loop thread") as info:
        client.create_session(REQUEST)
    assert "event hook" in str(info.value)
    client.event_hooks = {"request": [close_from_hook]}
    with pytest.raises(InstaxError, match="cannot be closed from its own event loop thread"):
        client.create_session(REQUEST)
    assert len(server.seen) == 1  # neither of those sent anything
    client.event_hooks = {}
    assert client.create_session(REQUEST).id == "ps_2"
    client.close()


def test_usable_from_inside_a_running_event_loop(server: ThreadServer) -> None:
    client = Client(base_url=server.url)

    async def view() -> str:
        return client.create_session(REQUEST).id  # blocks this loop, as httpx.Client does

    assert asyncio.run(view()) == "ps_1"
    assert asyncio.run(view()) == "ps_2"
    client.close()


async def test_usable_from_an_async_test_too(server: ThreadServer) -> None:
    with Client(base_url=server.url) as client:
        assert client.create_session(REQUEST).id == "ps_1"


def test_sixteen_threads_share_one_client_and_its_pool(server: ThreadServer) -> None:
    server.delay = 0.002
    client = Client(base_url=server.url, max_connections=4)
    ids: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        for _ in range(25):
            try:
                ids.append(client.create_session(REQUEST).id)
            except BaseException as exc:  # pragma: no cover - reported by the assert below
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    client.close()
    assert errors == []
    assert len(ids) == len(set(ids)) == 400
    assert len(server.seen) == 400
    assert 1 <= server.peak_connections <= 4


def test_a_keyboard_interrupt_in_the_caller_cancels_the_call(server: ThreadServer) -> None:
    server.held = True
    client = Client(base_url=server.url)
    answered: list[int] = []
    client.event_hooks["response"].append(lambda request, response: answered.append(1))

    def interrupt_when_sent() -> None:
        while not server.seen:
            time.sleep(0.005)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_when_sent)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        client.create_session(REQUEST)
    interrupter.join()
    server.release()
    # the request was cancelled on the client's loop: its connection is closed, not pooled
    for _ in range(1000):
        if server.open_connections() == 0:
            break
        time.sleep(0.01)
    assert server.open_connections() == 0
    assert answered == []
    assert client.create_session(REQUEST).id == "ps_2"
    client.close()


def test_a_client_dropped_unclosed_stops_its_thread(server: ThreadServer) -> None:
    client = Client(base_url=server.url)
    client.create_session(REQUEST)
    thread = client._engine.loop._thread
    assert thread is not None and thread.is_alive()
    copy = client.with_options(timeout=3.0)
    del client
    gc.collect()
    assert thread.is_alive()  # a copy still uses it
    assert copy.create_session(REQUEST).id == "ps_2"
    reference = weakref.ref(copy)
    del copy
    gc.collect()
    assert reference() is None
    thread.join(10)
    assert not thread.is_alive()


def test_calls_in_flight_when_the_client_closes_are_told_so(server: ThreadServer) -> None:
    server.held = True
    client = Client(base_url=server.url)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.create_session(REQUEST)
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while not server.seen:
        time.sleep(0.005)
    client.close()
    caller.join(10)
    server.release()
    assert len(outcome) == 1
    error = outcome[0]
    assert type(error) is InstaxError and "closed while it was in flight" in str(error)


def test_the_same_exceptions_and_retries_as_async_session(server: ThreadServer) -> None:
    closed = server.url.rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    with Client(base_url=closed, retry=FAST, timeout=2.0) as client:
        with pytest.raises(APIConnectionError) as info:
            client.create_session(REQUEST)
        assert info.value.connect_failed
    with Client(base_url=server.url) as client, pytest.raises(ValidationError, match="api_key"):
        client.session_status("ps_1")  # the endpoint needs a key: refused before sending


def test_one_pipeline_the_client_runs_an_async_session() -> None:
    # the blocking methods are AsyncSession's own, run on the client's loop: one copy of the
    # retry, hook, telemetry, logging and limit logic
    client = Client(base_url="http://api.test")
    assert isinstance(client._async(), AsyncSession)
    client.close()


def test_the_fork_hooks_abandon_and_restart_in_this_process(server: ThreadServer) -> None:
    # What a forked child does (tests/sync/test_fork.py forks for real), run here: the loop,
    # session and transport are kept, unused, and the next call builds new ones.
    from instax_async import _background

    client = Client(base_url=server.url)
    copy = client.with_options(timeout=4.0, event_hooks={"request": [lambda r: None]})
    assert client.create_session(REQUEST).id == "ps_1"
    with client.poll_blockchain_status("wd_1", interval=0.01) as old_poll:
        next(old_poll)
        loop = client._engine.loop
        old_session = client._async()
        kept = len(_background._ABANDONED)
        old_thread = loop._thread
        _background._after_fork_in_child()  # what os.fork() calls in the child
        assert loop._thread is None
        assert any(thing is old_thread for thing in _background._ABANDONED[kept:])
        assert any(thing is old_session for thing in _background._ABANDONED[kept:])
        assert loop.generation == 1
        assert client.create_session(REQUEST).id == "ps_2"
        assert client._async() is not old_session
        assert copy.create_session(REQUEST).id == "ps_3"
        assert len(copy.event_hooks["request"]) == 1
        with pytest.raises(InstaxError, match=r"before os\.fork"):
            next(old_poll)
    # the iterator of the "parent" is kept, not closed on the new loop
    unfinished = client.poll_blockchain_status("wd_2", interval=0.01)
    next(unfinished)
    loop.abandon_in_child()
    client._engine.abandon_in_child()
    del unfinished
    gc.collect()
    assert isinstance(_background._ABANDONED[-1], types.AsyncGeneratorType)
    client._engine.abandon_in_child()  # a child of the child, before any call
    client.close()  # nothing of this process to close
    # what this test abandoned: stop it, as the parent would have
    for thing in _background._ABANDONED[kept:]:
        if isinstance(thing, asyncio.AbstractEventLoop) and not thing.is_closed():
            thing.call_soon_threadsafe(thing.stop)
    del _background._ABANDONED[kept:]


def test_close_at_exit_ends_every_running_loop(server: ThreadServer) -> None:
    from instax_async import _background

    client = Client(base_url=server.url)
    client.create_session(REQUEST)
    thread = client._engine.loop._thread
    _background._close_at_exit()
    assert thread is not None and not thread.is_alive()
    assert client.closed
    client.close()
