"""Durable payout watches on Celery: a worker in this process, a real Redis, the sandbox.

The worker is Celery's own embedded one (``celery.contrib.testing.worker``, solo pool, in a
thread), on the test's Redis as broker: real messages, countdowns, acknowledgements and
retries, with the faults injected in this process. The guarantees across processes (a worker
killed mid-watch, two workers at once) are in ``test_celery_workers.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import kombu.exceptions
import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from instax_async import ValidationError
from instax_async.integrations import _payout_watch as watch
from instax_async.integrations.celery import (
    MAX_RETRIES,
    TASK_NAME,
    PayoutFailureReason,
    PayoutWatches,
    enqueue_payout_watch,
    install,
    lease_key,
    lease_seconds,
    watch_key,
)
from instax_async.sandbox import Sandbox
from tests.celery import celery_callbacks
from tests.celery.celery_app import make_app
from tests.celery.celery_callbacks import FAILURES, HASHES, RECORDS_ENV, recorded
from tests.celery.helpers import (
    CALLBACKS,
    FAST,
    ON_FAILURE,
    ON_HASH,
    confirm,
    new_payouts,
    until,
)

LOGGER = "instax_async.celery"
PENDING = {"confirmation_polls": 0, "confirmation_delay": 3600}


@pytest.fixture
def store(redis_client: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> redis.Redis:
    """A blocking client on the test's (flushed) Redis, where the callbacks record too."""
    monkeypatch.setenv(RECORDS_ENV, redis_url)
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def app(store: redis.Redis, redis_url: str, instax_sandbox: Sandbox) -> Iterator[Celery]:
    """A Celery app on the test's Redis, its watch task polling the sandbox."""
    app = make_app(
        redis_url,
        f"instax-test-{uuid.uuid4().hex[:8]}",
        visibility=600,
        client_options={"base_url": instax_sandbox.url},
    )
    yield app
    app.tasks[TASK_NAME].instax.close()
    app.close()


@contextlib.contextmanager
def running(app: Celery) -> Iterator[None]:
    """Celery's embedded worker for the app (solo pool), in a thread, while the block runs."""
    with start_worker(
        app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ):
        yield


def hashes(redis_url: str) -> list[tuple[str, str]]:
    return [(entry["tx_id"], entry["hash"]) for entry in recorded(redis_url, HASHES)]


def failures(redis_url: str) -> list[dict[str, Any]]:
    return recorded(redis_url, FAILURES)


@pytest.mark.instax_sandbox(confirmation_polls=2)
def test_a_worker_polls_the_payout_to_its_hash_and_calls_back(
    app: Celery, store: redis.Redis, redis_url: str, instax_sandbox: Sandbox
) -> None:
    [tx_id] = new_payouts(instax_sandbox)
    watch_id = enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, on_failure=ON_FAILURE, **FAST)
    assert isinstance(watch_id, str)
    assert store.get(watch_key(tx_id)) == f"{watch_id}:0".encode()
    assert store.get(lease_key(tx_id)) == b"queued"
    with running(app):
        until(lambda: hashes(redis_url))
        until(lambda: store.get(watch_key(tx_id)) == b"done")
    payout = instax_sandbox.state.payouts[tx_id]
    assert hashes(redis_url) == [(tx_id, payout.hash)]
    assert failures(redis_url) == []
    assert payout.polls == 3  # confirmation_polls=2: the hash comes with the third answer
    assert not store.exists(lease_key(tx_id))
    # every slice of the process polled through one Client
    watches: PayoutWatches = app.tasks[TASK_NAME].instax
    assert watches.client() is watches.client() and not watches.client().closed


def test_the_same_tx_enqueued_twice_at_once_runs_one_watch(
    app: Celery, store: redis.Redis, redis_url: str, instax_sandbox: Sandbox
) -> None:
    [tx_id] = new_payouts(instax_sandbox)
    barrier = threading.Barrier(5)
    answers: list[str | None] = []

    def enqueue() -> None:
        barrier.wait()
        answers.append(enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST))

    threads = [threading.Thread(target=enqueue) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([answer for answer in answers if answer is not None]) == 1
    assert enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST) is None
    with running(app):
        until(lambda: store.get(watch_key(tx_id)) == b"done")
    assert [tx for tx, _ in hashes(redis_url)] == [tx_id]
    assert instax_sandbox.state.payouts[tx_id].polls == 2  # one watch's polls, no more
    # a redelivered webhook enqueues it again: the ended watch is remembered
    assert enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST) is None


def test_a_failed_payout_calls_on_failure_and_frees_the_tx(
    app: Celery, store: redis.Redis, redis_url: str, instax_sandbox: Sandbox
) -> None:
    [tx_id] = new_payouts(instax_sandbox, fail=True)
    enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, on_failure=ON_FAILURE, **FAST)
    with running(app):
        until(lambda: failures(redis_url))
        until(lambda: not store.exists(watch_key(tx_id), lease_key(tx_id)))
    assert hashes(redis_url) == []
    [failure] = failures(redis_url)
    assert (failure["tx_id"], failure["reason"]) == (tx_id, "failed")
    assert failure["last_status"] == "failed"
    assert failure["message"] == "the payout failed (status 'failed')"


def test_an_unknown_tx_ends_the_watch_with_an_error(
    app: Celery, store: redis.Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    enqueue_payout_watch(app, "wd_unknown", on_hash=ON_HASH, on_failure=ON_FAILURE, **FAST)
    with caplog.at_level(logging.ERROR, logger=LOGGER), running(app):
        until(lambda: failures(redis_url))
        until(lambda: not store.exists(watch_key("wd_unknown")))
    [failure] = failures(redis_url)
    assert failure["reason"] == "error" and failure["last_status"] is None
    assert "unknown transaction" in failure["message"]
    [error] = [r for r in caplog.records if r.name == LOGGER]
    assert error.getMessage() == f"payout wd_unknown: no blockchain hash: {failure['message']}"
    # released: it may be watched again; without on_failure, the ending is logged all the same
    assert enqueue_payout_watch(app, "wd_unknown", on_hash=ON_HASH, **FAST) is not None
    with caplog.at_level(logging.ERROR, logger=LOGGER), running(app):
        until(lambda: not store.exists(watch_key("wd_unknown")))
    assert len([r for r in caplog.records if r.name == LOGGER]) == 2
    assert len(failures(redis_url)) == 1


@pytest.mark.instax_sandbox(**PENDING)
def test_the_deadline_ends_the_watch_across_slices_and_is_logged(
    app: Celery,
    store: redis.Redis,
    redis_url: str,
    instax_sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [tx_id] = new_payouts(instax_sandbox)
    # the deadline as a timedelta; the slices follow their queue (not the app's default)
    queue = f"instax-other-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = "nowhere"
    enqueue_payout_watch(
        app,
        tx_id,
        on_hash=ON_HASH,
        on_failure=ON_FAILURE,
        deadline=timedelta(seconds=1.2),
        queue=queue,
        **FAST,
    )
    with (
        caplog.at_level(logging.INFO, logger=LOGGER),
        start_worker(
            app, pool="solo", perform_ping_check=False, loglevel="WARNING", queues=[queue]
        ),
    ):
        until(lambda: failures(redis_url))
    [failure] = failures(redis_url)
    assert failure["reason"] == "deadline"
    messages = {
        # polled before the deadline: the last status is known
        "the deadline passed without a hash (last status: 'pending')",
        # a machine so loaded that the worker's first slice started after the deadline
        "the deadline passed before this slice ran",
    }
    assert failure["message"] in messages
    [error] = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert error.levelno == logging.ERROR
    if "pending" in failure["message"]:
        assert instax_sandbox.state.payouts[tx_id].polls >= 1


def test_a_slice_that_runs_after_the_deadline_reports_it(
    app: Celery, redis_url: str, instax_sandbox: Sandbox
) -> None:
    [tx_id] = new_payouts(instax_sandbox)
    enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, on_failure=ON_FAILURE, deadline=0.01)
    time.sleep(0.05)
    with running(app):
        until(lambda: failures(redis_url))
    [failure] = failures(redis_url)
    assert failure["reason"] == "deadline" and failure["last_status"] is None
    assert failure["message"] == "the deadline passed before this slice ran"
    assert instax_sandbox.state.payouts[tx_id].polls == 0


@pytest.mark.instax_sandbox(**PENDING)
def test_a_failing_callback_frees_the_tx_and_retry_runs_the_slice_again(
    app: Celery, store: redis.Redis, redis_url: str, instax_sandbox: Sandbox
) -> None:
    [tx_id] = new_payouts(instax_sandbox)
    confirm(instax_sandbox, tx_id)
    enqueue_payout_watch(app, tx_id, on_hash=f"{CALLBACKS}:broken", **FAST)
    with running(app):
        until(lambda: not store.exists(watch_key(tx_id)))  # can be watched again
        assert enqueue_payout_watch(app, tx_id, on_hash=f"{CALLBACKS}:retry_once", **FAST)
        until(lambda: store.get(watch_key(tx_id)) == b"done")
    # at least once: the slice Celery ran again called it again
    assert [tx for tx, _ in hashes(redis_url)] == [tx_id, tx_id]


def test_bad_callback_paths_fail_the_task_before_any_poll(
    app: Celery,
    store: redis.Redis,
    redis_url: str,
    instax_sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [tx_id] = new_payouts(instax_sandbox)
    paths = [
        "tests.celery.nowhere:f",
        f"{CALLBACKS}:missing",
        f"{CALLBACKS}:NOT_CALLABLE",
        f"{CALLBACKS}:async_hash",
        f"{CALLBACKS}:async_object",
    ]
    with caplog.at_level(logging.ERROR, logger=LOGGER), running(app):
        for path in paths:
            assert enqueue_payout_watch(app, tx_id, on_hash=path, on_failure=ON_FAILURE, **FAST)
            until(lambda: not store.exists(watch_key(tx_id)))
    errors = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(errors) == len(paths)
    for path, error in zip(paths, errors, strict=True):
        assert error.startswith(f"payout {tx_id}: the watch cannot go on: on_hash: ")
        assert repr(path) in error
    assert "is an async function; a Celery watch calls plain functions (def)" in errors[3]
    assert [f["reason"] for f in failures(redis_url)] == ["callback"] * len(paths)
    assert instax_sandbox.state.payouts[tx_id].polls == 0


@pytest.mark.instax_sandbox(**PENDING)
def test_a_callback_path_that_stops_resolving_ends_the_watch_and_frees_the_tx(
    app: Celery,
    store: redis.Redis,
    redis_url: str,
    instax_sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(celery_callbacks, "renamed", celery_callbacks.record_hash, raising=False)
    [tx_id] = new_payouts(instax_sandbox)
    on_hash = f"{CALLBACKS}:renamed"
    enqueue_payout_watch(app, tx_id, on_hash=on_hash, on_failure=ON_FAILURE, **FAST)
    # a deploy renames the callback while slice 0 hands over to slice 1
    Intercept(
        monkeypatch,
        app.tasks[TASK_NAME],
        "apply_async",
        lambda *args, **kwargs: args[1]["slice_number"] == 1,
        error=None,
        then=lambda: monkeypatch.delattr(celery_callbacks, "renamed"),
    )
    with caplog.at_level(logging.ERROR, logger=LOGGER), running(app):
        until(lambda: failures(redis_url))
        until(lambda: not store.exists(watch_key(tx_id), lease_key(tx_id)))
    [failure] = failures(redis_url)
    assert (failure["tx_id"], failure["reason"]) == (tx_id, "callback")
    assert failure["message"].startswith(f"on_hash: cannot import '{on_hash}'")
    [error] = [r for r in caplog.records if r.name == LOGGER]
    assert error.levelno == logging.ERROR
    assert error.getMessage().startswith(f"payout {tx_id}: the watch cannot go on: on_hash:")
    assert enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST) is not None


# -- faults: a Redis error in any step, a dead watch, a copy delivered twice, a corrupt key --


LOST = redis.exceptions.ConnectionError("Connection lost (injected)")


def sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


def script(text: str, shape: Callable[[tuple[Any, ...]], bool]) -> Callable[..., bool]:
    """Matches an EVALSHA of the script ``text`` whose ARGV has ``shape``."""

    def when(*args: Any, **_: Any) -> bool:
        if args[0] != "EVALSHA" or args[1] != sha(text):
            return False
        return shape(args[3 + args[2] :])

    return when


class Intercept:
    """Act on the next ``times`` calls of ``target.method`` that ``when`` matches.

    ``error`` is raised as a failure with the command in flight does: before the call reached
    Redis, or (``after``) once Redis ran it and only its answer was lost; ``None`` raises
    nothing. ``then`` runs at each intercepted call.
    """

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        target: Any,
        method: str,
        when: Callable[..., bool],
        *,
        error: Exception | None = LOST,
        after: bool = False,
        times: int = 1,
        then: Callable[[], object] = lambda: None,
    ) -> None:
        self.left, self.hits = times, 0
        real = getattr(target, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.left == 0 or not when(*args, **kwargs):
                return real(*args, **kwargs)
            self.left -= 1
            self.hits += 1
            answer = real(*args, **kwargs) if after or error is None else None
            then()
            if error is not None:
                raise error
            return answer

        monkeypatch.setattr(target, method, call)


def retried(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Redis failed" in r.getMessage()]


@pytest.mark.instax_sandbox(**PENDING)
@pytest.mark.parametrize("step", ["begin", "let go", "publish", "hand over", "end"])
def test_a_redis_error_in_any_step_runs_the_slice_again(
    step: str,
    app: Celery,
    store: redis.Redis,
    redis_url: str,
    instax_sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [tx_id] = new_payouts(instax_sandbox)
    options = {**FAST, "max_interval": 0.1, "backoff": 2.0}
    enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, on_failure=ON_FAILURE, **options)
    connection = app.tasks[TASK_NAME].instax.redis()
    ready = lambda: confirm(instax_sandbox, tx_id)  # noqa: E731
    if step == "begin":  # slice 1's begin ran, and its answer was lost
        when = script(watch.BEGIN, lambda argv: argv[1] == 1)
        fault = Intercept(monkeypatch, connection, "execute_command", when, after=True, then=ready)
    elif step == "let go":
        when = script(watch.LET_GO, lambda argv: True)
        fault = Intercept(monkeypatch, connection, "execute_command", when, then=ready)
    elif step == "publish":  # the broker refuses slice 1, twice (the second retry waits longer)
        fault = Intercept(
            monkeypatch,
            app.tasks[TASK_NAME],
            "apply_async",
            lambda *args, **kwargs: args[1]["slice_number"] == 1 and "retries" not in kwargs,
            error=kombu.exceptions.OperationalError("Connection lost (injected)"),
            times=2,
            then=lambda: fault.hits == 2 and ready(),
        )
    elif step == "hand over":  # slice 1 is published; the watch key is not moved on
        when = script(watch.HAND_OVER, lambda argv: True)
        fault = Intercept(monkeypatch, connection, "execute_command", when, then=ready)
    else:  # on_hash was called, the "done" mark was not written
        ready()
        when = script(watch.END, lambda argv: len(argv) == 3)
        fault = Intercept(monkeypatch, connection, "execute_command", when)
    with caplog.at_level(logging.WARNING, logger=LOGGER), running(app):
        until(lambda: store.get(watch_key(tx_id)) == b"done")
    found = [tx for tx, _ in hashes(redis_url)]
    # at least once: a slice that ran on_hash and then met the error calls it again
    assert found == [tx_id] * (2 if step == "end" else 1)
    assert failures(redis_url) == []
    messages = retried(caplog)
    assert len(messages) == fault.hits > 0
    error = "OperationalError" if step == "publish" else "ConnectionError"
    assert messages[0].endswith(f"({error}: Connection lost (injected)); it runs again in 0.05 s")
    if step == "publish":  # the poll's wait for the second try: interval * backoff
        assert messages[1].endswith("it runs again in 0.1 s")
    assert not store.exists(lease_key(tx_id))


@pytest.mark.instax_sandbox(**PENDING)
def test_a_watch_given_up_after_its_retries_is_taken_over_by_the_next_enqueue(
    app: Celery,
    store: redis.Redis,
    redis_url: str,
    instax_sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = app.tasks[TASK_NAME]
    assert task.max_retries == MAX_RETRIES
    monkeypatch.setattr(task, "max_retries", 1)
    [tx_id] = new_payouts(instax_sandbox)
    enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST)
    connection = task.instax.redis()
    # slice 1 begins (its key and lease written), its answer is lost, twice
    when = script(watch.BEGIN, lambda argv: argv[1] == 1)
    Intercept(monkeypatch, connection, "execute_command", when, after=True, times=2)
    with caplog.at_level(logging.INFO, logger=LOGGER), running(app):
        until(lambda: any("given up" in r.getMessage() for r in caplog.records))
        token = store.get(watch_key(tx_id)).split(b":")[0].decode()
        assert store.get(watch_key(tx_id)) == f"{token}:1".encode()  # left behind
        # its lease still lives for a while: the watch counts as alive
        assert enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST) is None
        until(lambda: not store.exists(lease_key(tx_id)))
        watch_id = enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST)
        assert watch_id is not None and watch_id != token
        confirm(instax_sandbox, tx_id)
        until(lambda: store.get(watch_key(tx_id)) == b"done")
    assert [tx for tx, _ in hashes(redis_url)] == [tx_id]
    given_up, taken_over = [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and ("given up" in r.getMessage() or "takes over" in r.getMessage())
    ]
    assert given_up == (
        f"payout {tx_id}: slice 1: Redis failed (ConnectionError: Connection lost (injected)) "
        "2 times in a row; the watch is given up (the next enqueue of the tx takes it over)"
    )
    assert taken_over == f"payout {tx_id}: its last watch's lease ran out; a new watch takes over"


@pytest.mark.instax_sandbox(**PENDING)
def test_copies_of_a_slice_wait_for_its_lease_or_end_as_stale(
    app: Celery,
    store: redis.Redis,
    redis_url: str,
    instax_sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [tx_id] = new_payouts(instax_sandbox)
    task = app.tasks[TASK_NAME]
    watch_id = enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST)
    assert watch_id is not None
    job = {
        "on_hash": ON_HASH,
        "on_failure": None,
        "deadline_at": time.time() + 60,
        "slice_seconds": 0.3,
        "interval": 0.05,
        "max_interval": 0.05,
        "backoff": 1.5,
        "remember": 60.0,
        "token": watch_id,
        "slice_number": 0,
        "queue": None,
    }
    # another run of slice 0 holds the lease (a copy delivered twice, or a run killed) for 0.5 s
    store.set(lease_key(tx_id), "other-task:0", px=500)
    # a second watch that slipped past the claim, and a stale copy of slice 0 of this one
    task.apply_async((tx_id,), {**job, "token": "other"})
    with caplog.at_level(logging.INFO, logger=LOGGER), running(app):
        until(lambda: store.get(watch_key(tx_id)) == f"{watch_id}:1".encode(), timeout=5)
        task.apply_async((tx_id,), job)  # slice 0 again, once slice 1 runs
        confirm(instax_sandbox, tx_id)
        until(lambda: store.get(watch_key(tx_id)) == b"done")
        # an ended watch skips every slice
        task.apply_async((tx_id,), {**job, "slice_number": 7})
        until(lambda: "the watch has ended" in caplog.text)
    assert [tx for tx, _ in hashes(redis_url)] == [tx_id]
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert any(
        m.startswith(f"payout {tx_id}: slice 0 waits ") and "holds its lease" in m for m in messages
    )
    assert f"payout {tx_id}: slice 0 skipped: another watch owns it" in messages
    assert f"payout {tx_id}: slice 0 skipped: a later slice is running" in messages
    assert f"payout {tx_id}: slice 7 skipped: the watch has ended" in messages


@pytest.mark.parametrize(
    "lease",
    [
        ("other-task:0", None),  # a run's lease without a TTL would hold the slice forever
        ("garbage", 60_000),
        ({"not": "ours"}, None),
    ],
)
def test_a_lease_the_sdk_did_not_write_holds_no_slice_up(
    app: Celery,
    store: redis.Redis,
    redis_url: str,
    instax_sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
    lease: tuple[Any, int | None],
) -> None:
    [tx_id] = new_payouts(instax_sandbox)
    enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST)
    value, px = lease
    store.delete(lease_key(tx_id))
    if isinstance(value, dict):
        store.hset(lease_key(tx_id), mapping=value)
    else:
        store.set(lease_key(tx_id), value, px=px)
    with caplog.at_level(logging.INFO, logger=LOGGER), running(app):
        until(lambda: store.get(watch_key(tx_id)) == b"done")
    assert hashes(redis_url) == [(tx_id, instax_sandbox.state.payouts[tx_id].hash)]
    assert "holds its lease" not in caplog.text


@pytest.mark.parametrize(
    ("state", "lease", "watched"),
    [
        ("done", None, True),  # ended less than `remember` ago
        ("t:3", "queued", True),  # slice 3 handed over, or enqueued
        ("t:3", "task-1:0", True),  # slice 3 running
        ("t:3", None, False),  # dead: its lease ran out
        ("t:3", "forever", False),  # a lease without a TTL keeps nothing alive
        ("t:3", {"not": "ours"}, False),  # nor a lease that is not a string
    ],
)
def test_enqueue_answers_none_only_while_the_lease_lives(
    app: Celery, store: redis.Redis, state: str, lease: Any, watched: bool
) -> None:
    store.set(watch_key("wd_1"), state)
    if isinstance(lease, dict):
        store.hset(lease_key("wd_1"), mapping=lease)
    elif lease == "forever":
        store.set(lease_key("wd_1"), "queued")
    elif lease is not None:
        store.set(lease_key("wd_1"), lease, px=60_000)
    watch_id = enqueue_payout_watch(app, "wd_1", on_hash=ON_HASH)
    assert (watch_id is None) is watched
    if not watched:
        assert store.get(watch_key("wd_1")) == f"{watch_id}:0".encode()
        assert store.get(lease_key("wd_1")) == b"queued"


@pytest.mark.parametrize(
    ("corrupt", "found"),
    [
        ({"set": "garbage"}, "a string the SDK does not write"),
        ({"hset": {"token": "x"}}, "a Redis hash"),
    ],
)
@pytest.mark.instax_sandbox(**PENDING)
def test_a_watch_key_the_sdk_did_not_write_ends_the_watch_and_blocks_nothing(
    app: Celery,
    store: redis.Redis,
    redis_url: str,
    instax_sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    corrupt: dict[str, Any],
    found: str,
) -> None:
    def tamper() -> None:
        store.delete(key)
        if "set" in corrupt:
            store.set(key, corrupt["set"])
        else:
            store.hset(key, mapping=corrupt["hset"])

    [tx_id] = new_payouts(instax_sandbox)
    key = watch_key(tx_id)
    enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, on_failure=ON_FAILURE, **FAST)
    # the key is changed while slice 0 hands over
    Intercept(
        monkeypatch,
        app.tasks[TASK_NAME],
        "apply_async",
        lambda *args, **kwargs: args[1]["slice_number"] == 1,
        error=None,
        then=tamper,
    )
    with caplog.at_level(logging.WARNING, logger=LOGGER), running(app):
        until(lambda: failures(redis_url))
        until(lambda: not store.exists(key))
    text = f"the watch key {key} held {found}; the watch ended"
    [failure] = failures(redis_url)
    assert (failure["reason"], failure["message"]) == ("corrupt", text)
    # found by the next enqueue instead, with no watch running: taken over
    tamper()
    assert enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST) is not None
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert [(r.levelno, r.getMessage()) for r in warnings] == [
        (logging.WARNING, f"payout {tx_id}: {text}"),
        (
            logging.WARNING,
            f"payout {tx_id}: the watch key {key} held {found}; deleted, a new watch takes over",
        ),
    ]


def test_a_publish_that_fails_at_enqueue_leaves_the_tx_free(
    app: Celery, store: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    Intercept(
        monkeypatch,
        app.tasks[TASK_NAME],
        "apply_async",
        lambda *args, **kwargs: True,
        error=kombu.exceptions.OperationalError("the broker is down (injected)"),
    )
    with pytest.raises(kombu.exceptions.OperationalError):
        enqueue_payout_watch(app, "wd_1", on_hash=ON_HASH)
    assert not store.exists(watch_key("wd_1"), lease_key("wd_1"))


def test_a_redis_error_at_enqueue_is_raised(app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = app.tasks[TASK_NAME].instax.redis()
    Intercept(monkeypatch, connection, "execute_command", script(watch.CLAIM, lambda argv: True))
    with pytest.raises(redis.exceptions.ConnectionError, match="injected"):
        enqueue_payout_watch(app, "wd_1", on_hash=ON_HASH)


# -- the arguments: checked before anything reaches Redis -------------------------------------


@pytest.fixture
def offline_app() -> Iterator[Celery]:
    """An app whose Redis nothing listens on: a test that reached it would fail."""
    app = make_app("redis://127.0.0.1:1/0", "instax-test-offline", visibility=3600)
    yield app
    app.close()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tx_id": ""}, "tx_id"),
        ({"tx_id": None}, "tx_id"),
        ({"on_hash": "myapp.tasks.record_hash"}, "on_hash"),
        ({"on_hash": "myapp:tasks:record"}, "on_hash"),
        ({"on_hash": 3}, "on_hash"),
        ({"on_failure": "not a path"}, "on_failure"),
        ({"deadline": 0}, "deadline"),
        ({"deadline": timedelta(seconds=-1)}, "deadline"),
        ({"deadline": "1h"}, "deadline"),
        ({"slice_seconds": -1}, "slice_seconds"),
        ({"slice_seconds": 3000}, "slice_seconds"),  # its lease outlasts the visibility timeout
        ({"remember": float("nan")}, "remember"),
        ({"interval": 0}, "interval"),
        ({"interval": 5, "max_interval": 1}, "max_interval"),
        ({"backoff": 0.5}, "backoff"),
        ({"queue": ""}, "queue"),
        ({"app": object()}, "app"),
        ({"app": Celery("not-installed", set_as_current=False)}, "app"),
    ],
)
def test_enqueue_checks_every_argument_before_reaching_redis(
    offline_app: Celery, kwargs: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {
        "app": offline_app,
        "tx_id": "wd_1",
        "on_hash": "myapp.tasks:record_hash",
        **kwargs,
    }
    with pytest.raises(ValidationError) as info:
        enqueue_payout_watch(**arguments)
    assert info.value.field == field


def test_a_lease_must_fit_in_the_visibility_timeout(offline_app: Celery) -> None:
    assert lease_seconds(1700, 30) == 3430.0
    with pytest.raises(ValidationError) as info:
        enqueue_payout_watch(offline_app, "wd_1", on_hash=ON_HASH, slice_seconds=1800)
    assert str(info.value) == (
        "slice_seconds: a slice's lease (2 * slice_seconds + max_interval = 3630 s) must be "
        "shorter than the broker's visibility_timeout (3600 s), or Redis would hand a slice to "
        "a second worker while the first still runs it; lower slice_seconds, or raise "
        "broker_transport_options['visibility_timeout']"
    )


def test_the_watch_keys_live_in_the_broker_unless_told_otherwise(offline_app: Celery) -> None:
    watches: PayoutWatches = offline_app.tasks[TASK_NAME].instax
    assert repr(watches) == "<PayoutWatches of 'instax_tests'>"
    assert watches.redis_url is None
    assert watches.redis().connection_pool.connection_kwargs["port"] == 1
    elsewhere = Celery("elsewhere", broker="amqp://guest:secret@rabbit//", set_as_current=False)
    other = install(elsewhere, redis_url="redis://127.0.0.1:2/3").instax
    assert other.redis().connection_pool.connection_kwargs["db"] == 3
    watches.close()
    other.close()
    watches.close()  # nothing open: nothing to do


def test_a_broker_that_is_not_redis_needs_a_redis_url() -> None:
    app = Celery("rabbit", broker="amqp://guest:secret@rabbit//", set_as_current=False)
    install(app)
    with pytest.raises(ValidationError) as info:
        enqueue_payout_watch(app, "wd_1", on_hash=ON_HASH)
    assert info.value.field == "redis_url"
    assert "('amqp')" in str(info.value) and "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"app": object()}, "app", "app: expected a celery.Celery app, got object"),
        (
            {"redis_url": "http://user:secret@host"},
            "redis_url",
            "redis_url: expected a Redis URL (redis://, rediss:// or unix://) or None, "
            "got 'http://…'",
        ),
        ({"redis_url": 6379}, "redis_url", "got 6379"),
        ({"client_options": ["base_url"]}, "client_options", "got list"),
        (
            {"client_options": {"bse_url": "http://127.0.0.1"}},
            "client_options",
            "unexpected keyword argument 'bse_url'",
        ),
        ({"client_options": {"timeout": -1}}, "timeout", "timeout"),
    ],
)
def test_install_checks_its_arguments(kwargs: dict[str, Any], field: str, message: str) -> None:
    arguments: dict[str, Any] = {"app": Celery("install", set_as_current=False), **kwargs}
    with pytest.raises(ValidationError) as info:
        install(**arguments)
    assert info.value.field == field and message in str(info.value)


def test_install_registers_the_task_once() -> None:
    app = Celery("once", set_as_current=False)
    task = install(app, client_options={"max_retries": 2})
    assert app.tasks[TASK_NAME] is task
    assert (task.acks_late, task.reject_on_worker_lost, task.ignore_result) == (True, True, True)
    assert task.instax.client_options == {"max_retries": 2}
    with pytest.raises(ValidationError, match=r"has a task named 'instax_async\.watch_payout'"):
        install(app)


def test_keys_and_leases() -> None:
    assert watch_key("wd_1") == "instax:celery:payout:wd_1"
    assert lease_key("wd_1") == "instax:celery:lease:wd_1"
    assert lease_seconds(0.3, 0.05) == pytest.approx(0.65)
    assert PayoutFailureReason.CALLBACK.value == "callback"
