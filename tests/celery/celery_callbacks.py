"""Callbacks the Celery payout tests name by import path, as an application's module would.

They record into Redis (``INSTAX_TEST_CELERY_RECORDS``), where the test process can count what
every worker process did.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from celery import current_task

from instax_async import BlockchainStatus
from instax_async.integrations.celery import PayoutWatchFailure

RECORDS_ENV = "INSTAX_TEST_CELERY_RECORDS"
HASHES = "instax-test:hashes"
FAILURES = "instax-test:failures"
#: Not a function: an ``on_hash`` path naming it is refused when the task runs.
NOT_CALLABLE = 42


def _record(key: str, entry: dict[str, Any]) -> None:
    with redis.Redis.from_url(os.environ[RECORDS_ENV]) as connection:
        connection.rpush(key, json.dumps({**entry, "pid": os.getpid()}))


def record_hash(status: BlockchainStatus) -> None:
    """An ``on_hash``."""
    _record(HASHES, {"tx_id": status.tx_id, "hash": status.hash})


def record_failure(failure: PayoutWatchFailure) -> None:
    """An ``on_failure``."""
    last = failure.last_status
    _record(
        FAILURES,
        {
            "tx_id": failure.tx_id,
            "reason": failure.reason.value,
            "message": failure.message,
            "last_status": None if last is None else last.status,
        },
    )


def broken(status: BlockchainStatus) -> None:
    """An ``on_hash`` whose database is down."""
    raise RuntimeError(f"cannot record {status.tx_id}")


def retry_once(status: BlockchainStatus) -> None:
    """An ``on_hash`` that asks Celery to run the slice again the first time."""
    record_hash(status)
    if current_task.request.retries == 0:
        raise current_task.retry(countdown=0.01)


async def async_hash(status: BlockchainStatus) -> None:
    """An ``async def``, which a Celery watch refuses."""


class _AsyncCallable:
    async def __call__(self, status: BlockchainStatus) -> None:
        """An object with an async ``__call__``, refused as well."""


async_object = _AsyncCallable()


class Namespace:
    """Holds a callback one attribute deeper (``module:Namespace.record``)."""

    record = staticmethod(record_hash)


def recorded(url: str, key: str) -> list[dict[str, Any]]:
    """What the callbacks recorded under ``key``, in order."""
    with redis.Redis.from_url(url) as connection:
        return [json.loads(entry) for entry in connection.lrange(key, 0, -1)]
