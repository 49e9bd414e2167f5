"""Durable payout watches across real ``celery worker`` processes: killed, and side by side.

Each worker is ``python -m celery -A tests.celery.celery_app worker`` in a session of its own,
on the test's Redis as broker, polling the sandbox (which runs in this process); the callbacks
record into Redis. The prefork pool's children each make their own Client after the fork.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from instax_async.integrations.celery import enqueue_payout_watch, watch_key
from instax_async.sandbox import Sandbox
from tests.celery.celery_app import BROKER_ENV, QUEUE_ENV, READY, VISIBILITY_ENV, make_app
from tests.celery.celery_callbacks import HASHES, RECORDS_ENV, recorded
from tests.celery.helpers import FAST, ON_HASH, confirm, new_payouts, until

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]
WATCHES = 20


class WorkerProcess:
    """A ``celery worker`` process (and its pool's children) in a session of its own."""

    def __init__(self, name: str, env: dict[str, str], log: Path, *args: str) -> None:
        self.name = name
        self.log = log
        command = [sys.executable, "-m", "celery", "-A", "tests.celery.celery_app", "worker"]
        command += ["-n", f"{name}@%h", "--loglevel=INFO", "--without-heartbeat"]
        command += ["--without-mingle", "--without-gossip", *args]
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, store: redis.Redis, timeout: float = 60.0) -> None:
        """Wait until the worker takes tasks (it said so in Redis, from ``worker_ready``)."""
        ready = lambda: any(  # noqa: E731
            entry.decode().startswith(f"{self.name}@") for entry in store.lrange(READY, 0, -1)
        )
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"{self.name} exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"{self.name} did not start:\n{self.output()}"
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the worker and its children at once, as an OOM killer or a lost machine."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def store(redis_client: Any, redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def workers(
    store: redis.Redis, redis_url: str, instax_sandbox: Sandbox, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts workers on one queue of the test's Redis; every one is killed after the test."""
    queue = f"instax-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        BROKER_ENV: redis_url,
        QUEUE_ENV: queue,
        VISIBILITY_ENV: "2",
        RECORDS_ENV: redis_url,
        "INSTAX_BASE_URL": instax_sandbox.url,
    }
    started: list[WorkerProcess] = []

    def start(name: str, *args: str, visibility: float = 2.0) -> WorkerProcess:
        log = tmp_path / f"{name}.log"
        worker = WorkerProcess(name, {**env, VISIBILITY_ENV: str(visibility)}, log, *args)
        started.append(worker)
        worker.wait_ready(store)
        return worker

    start.queue = queue  # type: ignore[attr-defined]
    yield start
    for worker in started:
        worker.kill()


def test_a_worker_killed_mid_watch_loses_no_watch(
    workers: Callable[..., WorkerProcess],
    store: redis.Redis,
    redis_url: str,
    instax_sandbox: Sandbox,
) -> None:
    # no hash until the test says so: the watches hand over slice after slice meanwhile
    app = make_app(redis_url, workers.queue, visibility=2)  # type: ignore[attr-defined]
    tx_ids = new_payouts(instax_sandbox, WATCHES)
    for tx_id in tx_ids:
        instax_sandbox.state.payouts[tx_id].settled_at += 3600  # pending for now
        assert enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST)
    first = workers("first", "--pool=prefork", "--concurrency=2")
    payouts = instax_sandbox.state.payouts
    # mid-watch: several payouts polled, and some watch is past its first slice
    until(lambda: sum(payouts[tx].polls > 0 for tx in tx_ids) >= 4, timeout=30)
    until(lambda: any(not store.get(watch_key(tx)).endswith(b":0") for tx in tx_ids), timeout=30)
    first.kill()
    killed = time.monotonic()
    assert recorded(redis_url, HASHES) == []
    # slices it had taken and not finished (running, or waiting for their countdown): kombu
    # keeps them, unacknowledged, under "unacked" until they are handed out again
    assert store.hlen("unacked") > 0
    for tx_id in tx_ids:
        confirm(instax_sandbox, tx_id)
    # Redis hands the killed worker's messages to a worker that starts once the visibility
    # timeout has passed since they were delivered
    time.sleep(max(0.0, killed + 2.2 - time.monotonic()))
    workers("second", "--pool=prefork", "--concurrency=2")
    until(lambda: len(recorded(redis_url, HASHES)) >= WATCHES, timeout=60)
    time.sleep(0.5)  # a second call of any on_hash would show by now
    calls = collections.Counter(entry["tx_id"] for entry in recorded(redis_url, HASHES))
    assert calls == dict.fromkeys(tx_ids, 1)
    assert all(store.get(watch_key(tx)) == b"done" for tx in tx_ids)
    until(lambda: store.hlen("unacked") == 0)  # every slice acknowledged


def test_two_workers_run_each_watch_once(
    workers: Callable[..., WorkerProcess],
    store: redis.Redis,
    redis_url: str,
    instax_sandbox: Sandbox,
) -> None:
    app = make_app(redis_url, workers.queue, visibility=10)  # type: ignore[attr-defined]
    tx_ids = new_payouts(instax_sandbox, WATCHES)
    for tx_id in tx_ids:
        # the hash a second after now: some watches hand over to a next slice
        instax_sandbox.state.payouts[tx_id].settled_at += 1.0
        assert enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST)
        # the same tx enqueued twice: one watch
        assert enqueue_payout_watch(app, tx_id, on_hash=ON_HASH, **FAST) is None
    workers("one", "--pool=prefork", "--concurrency=2", visibility=10)
    workers("two", "--pool=prefork", "--concurrency=2", visibility=10)
    until(lambda: len(recorded(redis_url, HASHES)) >= WATCHES, timeout=60)
    time.sleep(0.5)  # a second call of any on_hash would show by now
    entries = recorded(redis_url, HASHES)
    calls = collections.Counter(entry["tx_id"] for entry in entries)
    assert calls == dict.fromkeys(tx_ids, 1)
    assert {entry["hash"] for entry in entries} == {
        instax_sandbox.state.payouts[tx].hash for tx in tx_ids
    }
    # a redelivered webhook enqueues them again: each ended watch is remembered
    assert all(enqueue_payout_watch(app, tx, on_hash=ON_HASH, **FAST) is None for tx in tx_ids)
