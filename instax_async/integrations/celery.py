"""Durable payout polling on Celery: watches that survive worker crashes and never hog a worker.

The Celery counterpart of :mod:`instax_async.integrations.arq`, for apps whose workers are
Celery's, with a Redis broker (install the extra: ``pip install 'instax-async[celery]'``).
Each payout is watched in *slices*: a task polls with the SDK's poll engine for a bounded time
and, if no hash appeared, publishes its next slice (with a countdown) and ends. The state of a
watch lives in Redis, not in Celery's result backend, so a worker that restarts, or another
worker, carries on::

    # proj/celery.py
    app = Celery("proj", broker="redis://localhost:6379/0")
    install(app)                  # registers the task "instax_async.watch_payout"

    # in the web app (e.g. a webhook view)
    enqueue_payout_watch(app, event.withdraw_tx_id, on_hash="shop.payouts:record_hash")

    # shop/payouts.py
    def record_hash(status: BlockchainStatus) -> None:
        Payout.objects.filter(tx_id=status.tx_id).update(hash=status.hash)

How a watch goes (as on arq): each slice polls for ``min(slice_seconds, time left to the
deadline)``; the deadline is an absolute (epoch) time fixed at the enqueue and handed from slice
to slice. A hash: ``on_hash`` (a ``"module:function"`` path: a plain function) is called with
the final :class:`~instax_async.BlockchainStatus`, and the watch key says ``done`` for
``remember`` seconds. A failed payout, the deadline, or an API error that retrying cannot fix:
an ERROR on the ``instax_async.celery`` logger, ``on_failure`` with a
:class:`PayoutWatchFailure`, and the keys are deleted. Callbacks run at least once: make them
idempotent.

Every worker process polls through one :class:`~instax_async.Client` (its retries,
``max_concurrency`` and connection pool shared by every watch of the process), made on the
process's first slice, after Celery's prefork pool forked; ``install(app,
client_options={...})`` configures it (by default from ``INSTAX_API_KEY`` / ``INSTAX_BASE_URL``).

**Keys.** The watch key ``instax:celery:payout:{tx_id}`` holds ``{token}:{n}`` (the watch's
random token, which :func:`enqueue_payout_watch` returns as the watch's id, and its current
slice) with a TTL of the time left to the deadline plus a day, then ``done`` for ``remember``
seconds; it is arq's layout under its own prefix (a tx watched by arq and by Celery is two
watches). Celery keeps no key per task in Redis, so a second key says that a slice of the watch
is queued or running: the *lease* ``instax:celery:lease:{tx_id}``, ``queued`` (enqueued or
handed over, not begun) or ``{task id}:{retries}`` (the run that holds the slice), with a TTL
of ``2 * slice_seconds + max_interval`` (:func:`lease_seconds`) from the moment it is written.

- :func:`enqueue_payout_watch` runs one Lua script on both keys: the watch key ``done``, or
  ``{token}:{n}`` with its lease alive → ``None``; absent, a dead watch's (its lease ran out: no
  slice of it is queued or running) or a value the SDK does not write → the tx is claimed for
  a new watch in the same step (``{token}:0``, lease ``queued``) and slice 0 is published. Of
  two enqueues at once, one returns ``None``.
- Each slice begins with one Lua script: the watch key absent or this watch's at a slice
  ``<= n``, and the lease free, ``queued``, or held by an earlier try of this very task → the
  slice takes the lease and polls. Another watch's token, a later slice or ``done`` → it ends
  at once (``"skipped"``). The lease held by another run of the slice → it is published again
  for when that lease runs out, and ends (``"deferred"``): a copy delivered twice waits, one
  whose holder was killed carries on once the holder's lease has run out.
- Handing over: the run lets go of its lease (``queued``), publishes the next slice, then
  moves the watch key to ``{token}:{n + 1}``, which makes every other copy of slice ``n``
  stale.

**At-least-once delivery.** The task is registered with ``acks_late=True`` and
``reject_on_worker_lost=True``: a message is acknowledged only once its slice ran, so a worker
killed mid-slice (SIGKILL, OOM) loses nothing. A prefork child that dies has its message
requeued at once; a whole worker that dies leaves its messages unacknowledged, and Redis hands
them to another worker once the broker's ``visibility_timeout`` has passed (kombu 5.6 checks
when a worker starts, then about every 100 s). The slice then runs again: its begin script
accepts it once the killed run's lease has run out. A restart thus loses at most one slice's
progress.
The visibility timeout (``broker_transport_options={"visibility_timeout": ...}``, 3600 s by
default) must be longer than a lease, or Redis would hand a slice to a second worker while the
first still runs it: :func:`enqueue_payout_watch` refuses a ``slice_seconds`` whose lease
would not fit.

**Faults.** A Redis error the watch can outlive (connection lost, a timeout, a read-only
replica or a loading server during a failover), in any step, or the broker refusing the next
slice (kombu's ``OperationalError``), runs the slice again through Celery's retry, after the
poll's wait for that try (``interval * backoff ** retries``, at most ``max_interval``), up to
the task's ``max_retries`` (:data:`MAX_RETRIES`; change it with Celery's ``task_annotations``);
after that the watch is dead, and the next :func:`enqueue_payout_watch` of the tx takes it over
once its lease has run out. A callback path that no longer resolves (or names an ``async
def``) ends the watch: ERROR, ``on_failure`` if it resolves
(:attr:`PayoutFailureReason.CALLBACK`), the keys deleted, and the task fails, so that the tx
can be enqueued again once the path is fixed. A callback that raises
fails the task and deletes the keys too. A watch key holding a value the SDK does not write
ends the watch (:attr:`PayoutFailureReason.CORRUPT`, a WARNING naming the key).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from .._extras import extra_required

with extra_required("celery", "celery", "kombu", "redis"):
    import celery
    import redis
    from celery.exceptions import Retry
    from kombu.exceptions import OperationalError

    from . import _payout_watch as watch

from .._validate import check_id, check_number
from ..errors import APIStatusError, PollTimeoutError, ValidationError
from ..models import BlockchainStatus
from ..polling import POLL_DEFAULTS, PollOptions
from ..sync_client import Client
from ._payout_watch import PayoutFailureReason, PayoutWatchFailure

__all__ = [
    "MAX_RETRIES",
    "TASK_NAME",
    "PayoutFailureReason",
    "PayoutWatchFailure",
    "PayoutWatches",
    "enqueue_payout_watch",
    "install",
    "lease_key",
    "lease_seconds",
    "watch_key",
]

logger = logging.getLogger("instax_async.celery")
_log = watch.WatchLog(logger, dead="its last watch's lease ran out")

TASK_NAME = "instax_async.watch_payout"
"""The Celery name of the watch task :func:`install` registers (for ``task_routes``, say)."""
MAX_RETRIES = 20
"""How many times a slice runs again after a transient Redis error before the watch is given up
(the task's ``max_retries``)."""

_PREFIX = "instax:celery:payout:"
_LEASE_PREFIX = "instax:celery:lease:"
_REDIS_URL = ("redis://", "rediss://", "unix://")
# Redis errors a watch outlives, and the broker failing to take a message (kombu's error, once
# its own retries of the publish are spent): the slice runs again
_TRANSIENT = (*watch.TRANSIENT, OperationalError)
# kombu's Redis transport's default
_VISIBILITY_TIMEOUT = 3600.0
# a Redis that hangs is a transient error after this long, not a slice that never ends
_REDIS_TIMEOUT = 10.0


def watch_key(tx_id: str) -> str:
    """The Redis key that records the watch of ``tx_id`` (``{token}:{slice}`` or ``done``).

    >>> watch_key("wd_1")
    'instax:celery:payout:wd_1'
    """
    return f"{_PREFIX}{tx_id}"


def lease_key(tx_id: str) -> str:
    """The Redis key that says a slice of the watch of ``tx_id`` is queued or running.

    >>> lease_key("wd_1")
    'instax:celery:lease:wd_1'
    """
    return f"{_LEASE_PREFIX}{tx_id}"


def lease_seconds(slice_seconds: float, max_interval: float) -> float:
    """How long a lease lasts from when it is written: ``2 * slice_seconds + max_interval``.

    Long enough for a run's poll, its callbacks and the countdown to the next slice; short
    enough that a killed run holds up its slice's redelivery for no longer.

    >>> lease_seconds(60, 30)
    150.0
    """
    return 2.0 * slice_seconds + max_interval


class PayoutWatches:
    """What :func:`install` sets up on a Celery app; the watch task keeps it as ``instax``.

    It holds the settings, and the connections that each process opens on first use (after a
    fork, new ones): a blocking ``redis.Redis`` for the watch keys, and the
    :class:`~instax_async.Client` the slices poll through. Both are thread-safe, so a worker
    with the ``threads`` pool shares them too.

    :param app: the ``celery.Celery`` app.
    :param redis_url: :func:`install`'s ``redis_url``.
    :param client_options: :func:`install`'s ``client_options``.
    """

    def __init__(self, app: Any, redis_url: str | None, client_options: Mapping[str, Any]) -> None:
        #: The Celery app whose watch task this is.
        self.app = app
        #: The Redis that holds the watch keys (``None``: the app's broker).
        self.redis_url = redis_url
        #: The keyword arguments of the process's :class:`~instax_async.Client`.
        self.client_options = dict(client_options)
        self._lock = threading.Lock()
        self._redis: redis.Redis | None = None
        self._client: Client | None = None

    def __repr__(self) -> str:
        return f"<PayoutWatches of {self.app.main!r}>"

    def redis(self) -> redis.Redis:
        """This process's Redis client for the watch keys (made on first use)."""
        with self._lock:
            if self._redis is None:
                self._redis = redis.Redis.from_url(
                    self._url(),
                    socket_timeout=_REDIS_TIMEOUT,
                    socket_connect_timeout=_REDIS_TIMEOUT,
                )
            return self._redis

    def client(self) -> Client:
        """This process's :class:`~instax_async.Client` (made on first use)."""
        with self._lock:
            if self._client is None:
                self._client = Client(**self.client_options)
            return self._client

    def close(self) -> None:
        """Close this process's connections; the next use opens new ones."""
        with self._lock:
            client, self._client = self._client, None
            connection, self._redis = self._redis, None
        if client is not None:
            client.close()
        if connection is not None:
            connection.close()

    def _url(self) -> str:
        if self.redis_url is not None:
            return self.redis_url
        broker = self.app.conf.broker_url
        if isinstance(broker, str) and broker.startswith(_REDIS_URL):
            return broker
        scheme = broker.partition("://")[0] if isinstance(broker, str) else type(broker).__name__
        # the URL itself is not shown: it may hold a password
        raise ValidationError(
            f"redis_url: the Celery app's broker is not Redis ({scheme!r}); pass the Redis that "
            "holds the watch keys: install(app, redis_url='redis://...')",
            field="redis_url",
        )


def install(
    app: Any, *, redis_url: str | None = None, client_options: Mapping[str, Any] | None = None
) -> Any:
    """Register the payout watch task (:data:`TASK_NAME`) on the Celery ``app``; return it.

    Call it where the app is made, so that both the web processes (which enqueue) and the
    workers (which run the slices) have it::

        app = Celery("proj", broker="redis://localhost:6379/0")
        install(app)

    :param app: a ``celery.Celery``.
    :param redis_url: the Redis that holds the watch keys (``redis://``, ``rediss://`` or
        ``unix://``); by default the app's broker.
    :param client_options: keyword arguments of the workers' :class:`~instax_async.Client`
        (``api_key``, ``base_url``, ``timeout``, ``max_concurrency`` …); by default it is
        configured from ``INSTAX_API_KEY`` / ``INSTAX_BASE_URL``.

    The task is registered with ``acks_late=True``, ``reject_on_worker_lost=True``,
    ``ignore_result=True`` and ``max_retries`` :data:`MAX_RETRIES`. A bad argument, or a second
    ``install`` on the same app, raises :class:`~instax_async.ValidationError`.
    """
    if not isinstance(app, celery.Celery):
        raise ValidationError(
            f"app: expected a celery.Celery app, got {type(app).__name__}", field="app"
        )
    if redis_url is not None and (
        not isinstance(redis_url, str) or not redis_url.startswith(_REDIS_URL)
    ):
        shown = redis_url.partition("://")[0] + "://…" if isinstance(redis_url, str) else redis_url
        raise ValidationError(
            "redis_url: expected a Redis URL (redis://, rediss:// or unix://) or None, "
            f"got {shown!r}",
            field="redis_url",
        )
    options = _client_options(client_options)
    watches = PayoutWatches(app, redis_url, options)
    task = app.task(
        _watch_payout,
        bind=True,
        name=TASK_NAME,
        shared=False,  # this app's only
        lazy=False,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        max_retries=MAX_RETRIES,
        instax=watches,
    )
    if getattr(task, "instax", None) is not watches:
        raise ValidationError(
            f"app: {app.main!r} has a task named {TASK_NAME!r} already (install(app) was "
            "called before); install it once, where the app is made",
            field="app",
        )
    return task


def _client_options(options: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``options``, checked now by building (and closing) a Client with them: a mistake shows
    in the process that calls :func:`install`, not in a worker's log on its first slice."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValidationError(
            f"client_options: expected a dict of Client arguments, got {type(options).__name__}",
            field="client_options",
        )
    try:
        Client(**options).close()  # starts nothing: its thread starts with the first call
    except TypeError as exc:
        raise ValidationError(
            f"client_options: {exc} (the keys are Client's arguments: api_key, base_url, "
            "timeout, max_concurrency …)",
            field="client_options",
        ) from None
    return options


def _task(app: Any) -> Any:
    task = app.tasks.get(TASK_NAME) if isinstance(app, celery.Celery) else None
    if not isinstance(getattr(task, "instax", None), PayoutWatches):
        raise ValidationError(
            "app: expected the celery.Celery app that install(app) was called on (from "
            "instax_async.integrations.celery), got "
            + (f"{app.main!r}" if isinstance(app, celery.Celery) else type(app).__name__),
            field="app",
        )
    return task


def _script(connection: redis.Redis, text: str, keys: list[str], *args: str | int) -> int | str:
    """Run a script (EVALSHA, falling back to EVAL once per server): its number, or its text."""
    result: Any = connection.register_script(text)(keys=keys, args=list(args))
    return result.decode("utf-8", "replace") if isinstance(result, bytes) else int(result)


def _route(queue: str | None) -> dict[str, Any]:
    return {} if queue is None else {"queue": queue}


def enqueue_payout_watch(
    app: Any,
    tx_id: str,
    *,
    on_hash: str,
    on_failure: str | None = None,
    deadline: float | timedelta = timedelta(hours=24),
    slice_seconds: float = 60.0,
    interval: float = POLL_DEFAULTS.interval,
    max_interval: float = POLL_DEFAULTS.max_interval,
    backoff: float = POLL_DEFAULTS.backoff,
    remember: float = 86_400.0,
    queue: str | None = None,
) -> str | None:
    """Watch the payout ``tx_id`` on a Celery worker until it has a hash; ``None`` if already.

    :param app: the ``celery.Celery`` app :func:`install` was called on.
    :param tx_id: the payout's transaction id (:attr:`WebhookEvent.withdraw_tx_id`).
    :param on_hash: ``"module:function"`` called with the final
        :class:`~instax_async.BlockchainStatus` once it has a hash (a plain function: it runs
        in the worker, where the Django ORM works).
    :param on_failure: ``"module:function"`` called with a :class:`PayoutWatchFailure` when the
        watch ends without a hash (the payout failed, the deadline passed, the API answered an
        unfixable error, ``on_hash`` no longer resolves, the watch's key was corrupted). Each of
        these is logged at ERROR (a corrupt key at WARNING) whether or not it is given.
    :param deadline: how long the whole watch may take, across slices and restarts: seconds,
        or a ``timedelta``.
    :param slice_seconds: the longest one task polls before handing over to the next slice;
        keep it below the task's time limits, if you set any. A slice's lease
        (:func:`lease_seconds`) must be shorter than the broker's ``visibility_timeout``.
    :param interval: the first wait between polls within a slice (see
        :mod:`instax_async.polling`); each slice starts again at ``interval``, and the next
        slice starts ``interval`` seconds after one ends.
    :param max_interval: the longest wait between polls within a slice.
    :param backoff: the factor each wait grows by, up to ``max_interval``.
    :param remember: seconds a watch that found its hash is remembered, during which
        enqueueing the same tx again does nothing (a watch that ends without one is not).
    :param queue: the Celery queue of every slice (default: the app's routing).

    Returns the watch's id (the token in its Redis key), or ``None`` when the tx is already
    watched (a slice of its watch is queued or running: its lease lives) or its watch found the
    hash less than ``remember`` seconds ago: enqueueing a tx twice runs one watch. The key of a
    watch that died (its lease ran out) is taken over, as is a key holding a value the SDK does
    not write (logged at WARNING). Every argument is checked before anything is sent to Redis;
    a bad one raises :class:`~instax_async.ValidationError` naming it. A Redis or broker error
    is raised as the client raised it (and nothing is left claimed).

    >>> watch_id = enqueue_payout_watch(
    ...     app, tx_id, on_hash="shop.payouts:record_hash"
    ... )  # doctest: +SKIP
    """
    task = _task(app)
    tx_id = check_id(tx_id, "tx_id")
    watch.check_path(on_hash, "on_hash")
    watch.check_path(on_failure, "on_failure", optional=True)
    if isinstance(deadline, timedelta):
        deadline = deadline.total_seconds()
    deadline = check_number("deadline", deadline, accepted=" (seconds) or a timedelta")
    slice_seconds = check_number("slice_seconds", slice_seconds, accepted=" (seconds)")
    remember = check_number("remember", remember, accepted=" (seconds)")
    options = PollOptions(interval=interval, max_interval=max_interval, backoff=backoff)
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise ValidationError(
            f"queue: expected a non-empty string or None, got {queue!r}", field="queue"
        )
    lease = lease_seconds(slice_seconds, options.max_interval)
    visibility = _visibility_timeout(app)
    if lease >= visibility:
        raise ValidationError(
            f"slice_seconds: a slice's lease (2 * slice_seconds + max_interval = {lease:g} s) "
            f"must be shorter than the broker's visibility_timeout ({visibility:g} s), or Redis "
            "would hand a slice to a second worker while the first still runs it; lower "
            "slice_seconds, or raise broker_transport_options['visibility_timeout']",
            field="slice_seconds",
        )
    watches: PayoutWatches = task.instax
    connection = watches.redis()
    keys = [watch_key(tx_id), lease_key(tx_id)]
    token = uuid.uuid4().hex
    claim = (token, watch.ms(deadline + watch.MARGIN), watch.ms(lease))
    if not _log.adopted(tx_id, keys[0], _script(connection, watch.CLAIM, keys, *claim)):
        return None
    job = {
        "on_hash": on_hash,
        "on_failure": on_failure,
        "deadline_at": time.time() + deadline,
        "slice_seconds": slice_seconds,
        "interval": options.interval,
        "max_interval": options.max_interval,
        "backoff": options.backoff,
        "remember": remember,
        "token": token,
        "slice_number": 0,
        "queue": queue,
    }
    try:
        task.apply_async((tx_id,), job, **_route(queue))
    except BaseException:
        # nothing was published: free the tx (if Redis lets us), so that the next enqueue of
        # it does not wait for the lease to run out
        with contextlib.suppress(redis.RedisError):
            _script(connection, watch.END, keys, token)
        raise
    return token


def _visibility_timeout(app: Any) -> float:
    options = app.conf.broker_transport_options or {}
    value = options.get("visibility_timeout", _VISIBILITY_TIMEOUT)
    return float(value) if isinstance(value, (int, float)) else _VISIBILITY_TIMEOUT


def _watch_payout(
    task: Any,
    tx_id: str,
    *,
    on_hash: str,
    on_failure: str | None,
    deadline_at: float,
    slice_seconds: float,
    interval: float,
    max_interval: float,
    backoff: float,
    remember: float,
    token: str,
    slice_number: int,
    queue: str | None,
) -> str:
    """One slice of a payout's watch (the task :func:`install` registers; enqueue it only
    through :func:`enqueue_payout_watch`).

    Returns what happened: ``"confirmed"`` (``on_hash`` was called), ``"failed"`` (the watch
    ended without a hash: logged, and ``on_failure`` called), ``"rescheduled"`` (the next slice
    is published), ``"skipped"`` (this tx is watched by another watch, a later slice, or its
    watch has ended) or ``"deferred"`` (another run of this slice holds its lease). A Redis
    error it can outlive runs the slice again through Celery's retry.
    """
    job = {
        "on_hash": on_hash,
        "on_failure": on_failure,
        "deadline_at": deadline_at,
        "slice_seconds": slice_seconds,
        "interval": interval,
        "max_interval": max_interval,
        "backoff": backoff,
        "remember": remember,
        "token": token,
        "slice_number": slice_number,
        "queue": queue,
    }
    try:
        return _Slice(task, tx_id, job).run()
    except _TRANSIENT as exc:
        retries = task.request.retries or 0
        if task.max_retries is not None and retries >= task.max_retries:
            logger.error(
                "payout %s: slice %d: Redis failed (%s: %s) %d times in a row; the watch is "
                "given up (the next enqueue of the tx takes it over)",
                tx_id,
                slice_number,
                type(exc).__name__,
                exc,
                retries + 1,
            )
            raise
        delay = watch.retry_delay(retries + 1, interval, max_interval, backoff)
        _log.retrying(tx_id, slice_number, exc, delay)
        raise task.retry(countdown=delay, exc=exc) from exc


def _is_async(function: object) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class _Slice:
    """One run of one slice: the steps of the watch task, each a short method."""

    def __init__(self, task: Any, tx_id: str, job: dict[str, Any]) -> None:
        self.task = task
        self.watches: PayoutWatches = task.instax
        self.redis = self.watches.redis()
        self.tx_id = tx_id
        self.keys = [watch_key(tx_id), lease_key(tx_id)]
        self.job = job
        self.token: str = job["token"]
        self.number: int = job["slice_number"]
        self.lease = watch.ms(lease_seconds(job["slice_seconds"], job["max_interval"]))
        request = task.request
        self.retries: int = request.retries or 0
        # the lease's holder: this task's message, at this try
        self.run_id = f"{request.id or uuid.uuid4().hex}:{self.retries}"
        self.on_failure: Callable[..., Any] | None = None

    def script(self, text: str, *args: str | int, keys: list[str] | None = None) -> int | str:
        return _script(self.redis, text, self.keys if keys is None else keys, *args)

    def run(self) -> str:
        left = self.job["deadline_at"] - time.time()
        ttl = watch.ms(max(left, 0.0) + watch.MARGIN)
        task_id = self.run_id.rpartition(":")[0]
        begun = self.script(
            watch.BEGIN, self.token, self.number, ttl, task_id, self.retries, self.lease
        )
        if begun == watch.BUSY:
            return self.defer()
        if isinstance(begun, int) and begun:
            _log.skipped(self.tx_id, self.number, begun)
            return "skipped"
        try:
            if isinstance(begun, str):
                return self.corrupt(begun)
            try:
                on_hash = self.resolve("on_hash")
            except ValidationError as exc:
                with contextlib.suppress(ValidationError):  # logged; on_hash's error is raised
                    self.resolve_on_failure()
                self.report(self.failure(PayoutFailureReason.CALLBACK, str(exc)))
                raise
            self.resolve_on_failure()
            return self.poll(on_hash, left)
        except (Retry, *_TRANSIENT):
            raise  # Celery runs this slice again: the watch goes on
        except Exception:
            # this watch cannot go on: free the tx, so that it can be enqueued again
            self.release("failed")
            raise

    def defer(self) -> str:
        """Publish this slice again for when the lease another run holds runs out."""
        wait = max(self.redis.pttl(self.keys[1]), 0) / 1000
        self.task.apply_async(
            (self.tx_id,),
            self.job,
            countdown=wait,
            retries=self.retries,
            **_route(self.job["queue"]),
        )
        logger.info(
            "payout %s: slice %d waits %.3g s: another run of it holds its lease (a copy "
            "delivered twice, or a run that was killed)",
            self.tx_id,
            self.number,
            wait,
        )
        return "deferred"

    def resolve(self, field: str) -> Callable[..., Any]:
        """The callback named by ``field``; one that does not resolve ends the watch."""
        path = self.job[field]
        try:
            function = watch.resolve(path, field)
            if _is_async(function):
                raise ValidationError(
                    f"{field}: {path!r} is an async function; a Celery watch calls plain "
                    "functions (def)",
                    field=field,
                )
        except ValidationError as exc:
            _log.cannot_go_on(self.tx_id, exc)
            raise
        return function

    def resolve_on_failure(self) -> None:
        if self.job["on_failure"] is not None:
            self.on_failure = self.resolve("on_failure")

    def failure(self, reason: PayoutFailureReason, message: str) -> PayoutWatchFailure:
        return PayoutWatchFailure(
            tx_id=self.tx_id, reason=reason, last_status=None, message=message
        )

    def corrupt(self, found: str) -> str:
        text = _log.corrupt(self.tx_id, self.keys[0], found)
        self.resolve_on_failure()
        self.report(self.failure(PayoutFailureReason.CORRUPT, text))
        return self.release("failed")

    def poll(self, on_hash: Callable[..., Any], left: float) -> str:
        job = self.job
        if left <= 0:
            return self.fail(watch.too_late(self.tx_id))
        outcome: BlockchainStatus | PollTimeoutError | APIStatusError
        try:
            outcome = self.watches.client().wait_for_blockchain_status(
                self.tx_id,
                interval=job["interval"],
                max_interval=job["max_interval"],
                backoff=job["backoff"],
                timeout=min(job["slice_seconds"], left),
            )
        except (PollTimeoutError, APIStatusError) as exc:
            outcome = exc
        # the last slice runs up to the deadline: its timeout is the deadline's
        verdict = watch.judge(self.tx_id, outcome, last_slice=left <= job["slice_seconds"])
        if verdict is None:
            return self.hand_over()
        if isinstance(verdict, PayoutWatchFailure):
            return self.fail(verdict)
        on_hash(verdict)
        return self.end("confirmed")

    def hand_over(self) -> str:
        left = self.job["deadline_at"] - time.time()
        self.script(watch.LET_GO, self.run_id, self.lease, keys=self.keys[1:])
        self.task.apply_async(
            (self.tx_id,),
            {**self.job, "slice_number": self.number + 1},
            countdown=max(0.0, min(self.job["interval"], left)),
            **_route(self.job["queue"]),
        )
        ttl = watch.ms(max(left, 0.0) + watch.MARGIN)
        if not self.script(watch.HAND_OVER, self.token, self.number, ttl, keys=self.keys[:1]):
            # a copy of this slice ran (a redelivery): its successor has begun already
            logger.debug("payout %s: slice %d has moved on already", self.tx_id, self.number)
        return "rescheduled"

    def report(self, failure: PayoutWatchFailure) -> None:
        if self.on_failure is not None:
            self.on_failure(failure)

    def fail(self, failure: PayoutWatchFailure) -> str:
        _log.no_hash(failure)
        self.report(failure)
        return self.release("failed")

    def end(self, outcome: str) -> str:
        """Mark the watch ``done`` for ``remember`` seconds (and drop its lease)."""
        self.script(watch.END, self.token, watch.DONE, watch.ms(self.job["remember"]))
        return outcome

    def release(self, outcome: str) -> str:
        """Delete the keys (if still this watch's, or corrupt): the tx may be watched again."""
        self.script(watch.END, self.token)
        return outcome
