"""The Celery app of the tests: ``celery -A tests.celery.celery_app worker`` in the worker
processes they start (configured from the environment), :func:`make_app` in the test process."""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_ready

from instax_async.integrations.celery import install

BROKER_ENV = "INSTAX_TEST_CELERY_BROKER"
QUEUE_ENV = "INSTAX_TEST_CELERY_QUEUE"
VISIBILITY_ENV = "INSTAX_TEST_CELERY_VISIBILITY"
#: The list each worker process adds its name to once it is ready to take tasks.
READY = "instax-test:ready"


def make_app(broker: str, queue: str, visibility: float, **install_options: Any) -> Celery:
    """An app on ``broker`` whose tasks go to ``queue``, with the watch task installed."""
    app = Celery("instax_tests", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        broker_transport_options={"visibility_timeout": visibility},
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
    )
    install(app, **install_options)
    return app


if BROKER_ENV in os.environ:  # a worker process: its Client is configured from INSTAX_BASE_URL
    app = make_app(os.environ[BROKER_ENV], os.environ[QUEUE_ENV], float(os.environ[VISIBILITY_ENV]))

    @worker_ready.connect
    def _ready(sender: Any, **_: Any) -> None:
        with redis.Redis.from_url(os.environ[BROKER_ENV]) as connection:
            connection.rpush(READY, sender.hostname)
