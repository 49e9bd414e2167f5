"""Benchmark: payout watches on Celery, 1,000 at once, across 2 ``celery worker`` processes.

What it does, each piece in a process of its own on loopback ports:

- a throwaway ``redis-server`` (no persistence), the Celery broker and the watch keys' home;
- the sandbox (``python -m instax_async sandbox``), whose payouts have their hash at the fourth
  blockchain-status poll (``--confirmation-polls 3``);
- two workers, ``celery -A benchmarks.celery_watches worker --pool=threads --concurrency=N``
  (each process polls through its one ``Client``, shared by its N threads), with Celery's
  worker heartbeat on, as by default: it is what wakes a threads worker's event loop to take
  the next message once its prefetched ones are done (``--without-heartbeat`` left the workers
  idle for up to 10 s at a time here, kombu 5.6).

The benchmark settles ``watches`` sandbox payments, starts the workers and waits until both take
tasks, then enqueues one watch per payout with ``enqueue_payout_watch`` (``interval=0.5``,
``max_interval=0.5``, ``slice_seconds=1``: most watches hand over to a second slice before their
hash). Each ``on_hash`` records the moment it ran in Redis. Reported: the time from the first
enqueue to the last hash, the median and p99 time from a watch's enqueue to its hash, the hashes
per second, how many ``on_hash`` calls were made (one per payout is right), and per worker
process its peak RSS (VmHWM) with the RSS it had once ready, its CPU time and the hashes it
found. The machine is shared: the load average before and after is in the result.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._util import REPO_ROOT, median, percentile
from .server import process_cpu_seconds

NAME = "celery_watches"
TITLE = "Payout watches on Celery: many at once, across 2 worker processes"

BROKER_ENV = "INSTAX_BENCH_CELERY_BROKER"
QUEUE = "instax-bench"
HASHES = "instax-bench:hashes"
READY = "instax-bench:ready"
#: The pace of every watch: a poll every 0.5 s, slices of 1 s.
WATCH = {"interval": 0.5, "max_interval": 0.5, "slice_seconds": 1.0}
CONFIRMATION_POLLS = 3


def _parameters(quick: bool) -> dict[str, Any]:
    if quick:
        return {"watches": 50, "workers": 2, "concurrency": 10, "timeout": 120.0}
    return {"watches": 1000, "workers": 2, "concurrency": 50, "timeout": 600.0}


# -- the worker side: `celery -A benchmarks.celery_watches worker` ----------------------------


def record_hash(status: Any) -> None:
    """The watches' ``on_hash``: when it ran, for which payout, in which process."""
    import redis

    with redis.Redis.from_url(os.environ[BROKER_ENV]) as connection:
        connection.rpush(HASHES, f"{time.time()} {status.tx_id} {os.getpid()}")


def _make_app(broker: str) -> Any:
    from celery import Celery

    from instax_async.integrations.celery import install

    app = Celery("instax_bench", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
    )
    install(app)  # each worker's Client: INSTAX_BASE_URL (the sandbox)
    return app


if BROKER_ENV in os.environ:  # a worker process
    app = _make_app(os.environ[BROKER_ENV])

    from celery.signals import worker_ready

    @worker_ready.connect
    def _ready(sender: Any, **_: Any) -> None:
        import redis

        with redis.Redis.from_url(os.environ[BROKER_ENV]) as connection:
            connection.rpush(READY, f"{sender.hostname} {os.getpid()}")


# -- the benchmark side -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found for process {pid}")


def _until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@contextmanager
def _redis_server(binary: str, directory: str) -> Iterator[str]:
    port = _free_port()
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory]
    process = subprocess.Popen(
        [binary, "--port", str(port), *options, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        def answers() -> bool:
            try:
                with redis.Redis.from_url(url, socket_connect_timeout=0.2) as connection:
                    return bool(connection.ping())
            except redis.RedisError:
                return False

        _until(answers, 10, "redis-server")
        yield url
    finally:
        _stop(process)


@contextmanager
def _sandbox() -> Iterator[str]:
    port = _free_port()
    polls = ["--confirmation-polls", str(CONFIRMATION_POLLS)]
    process = subprocess.Popen(
        [sys.executable, "-m", "instax_async", "sandbox", "--port", str(port), *polls],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False

        _until(answers, 30, "the sandbox")
        yield url
    finally:
        _stop(process)


async def _settled_payouts(base_url: str, count: int) -> list[str]:
    """``count`` paid sandbox sessions' payout tx ids (50 at a time)."""
    import aiohttp

    from instax_async import AsyncSession, SessionRequest

    request = SessionRequest.sending(from_amount="20", from_currency="USD", to_currency="USDT")
    tx_ids: list[str] = []
    async with AsyncSession(base_url=base_url) as client, aiohttp.ClientSession() as http:

        async def one() -> str:
            session = await client.create_session(request)
            url = f"{base_url}/sandbox/sessions/{session.id}/complete"
            async with http.post(url, json={}) as answer:
                answer.raise_for_status()
                settled: dict[str, Any] = await answer.json()
            return str(settled["withdraw_tx_id"])

        while len(tx_ids) < count:
            batch = min(50, count - len(tx_ids))
            tx_ids += await asyncio.gather(*(one() for _ in range(batch)))
    return tx_ids


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not available
        return []


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark and return its results (parameters, per worker, the summary)."""
    params = _parameters(quick)
    binary = shutil.which("redis-server")
    base = {"name": NAME, "title": TITLE, "quick": quick, "parameters": {**params, **WATCH}}
    if binary is None:
        return {**base, "skipped": "no redis-server on PATH (apt-get install redis-server)"}
    import redis

    from instax_async.integrations.celery import enqueue_payout_watch

    load_before = _load()
    with (
        tempfile.TemporaryDirectory(prefix="instax-bench-celery-") as directory,
        _redis_server(binary, directory) as broker,
        _sandbox() as sandbox_url,
    ):
        tx_ids = asyncio.run(_settled_payouts(sandbox_url, params["watches"]))
        log(f"  {NAME}: {len(tx_ids)} payouts settled")
        env = {**os.environ, BROKER_ENV: broker, "INSTAX_BASE_URL": sandbox_url}
        workers: list[subprocess.Popen[bytes]] = []
        store = redis.Redis.from_url(broker)
        try:
            for n in range(params["workers"]):
                command = [sys.executable, "-m", "celery", "-A", "benchmarks.celery_watches"]
                command += ["worker", "-n", f"bench{n}@%h", "--pool=threads", "-Q", QUEUE]
                command += [f"--concurrency={params['concurrency']}", "--loglevel=WARNING"]
                command += ["--without-mingle", "--without-gossip"]
                log_file = Path(directory) / f"worker{n}.log"
                with log_file.open("wb") as output:
                    workers.append(
                        subprocess.Popen(
                            command,
                            cwd=REPO_ROOT,
                            env=env,
                            stdin=subprocess.DEVNULL,
                            stdout=output,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
            _until(lambda: store.llen(READY) == len(workers), 120, "the workers")
            ready_rss = {pid: _status_kib(pid, "VmRSS") for pid in (w.pid for w in workers)}
            cpu_before = {w.pid: process_cpu_seconds(w.pid) for w in workers}
            app = _make_app(broker)
            enqueued: dict[str, float] = {}
            started = time.time()
            for tx_id in tx_ids:
                enqueued[tx_id] = time.time()
                enqueue_payout_watch(app, tx_id, on_hash=f"{__name__}:record_hash", **WATCH)
            enqueue_seconds = time.time() - started
            _until(lambda: store.llen(HASHES) >= len(tx_ids), params["timeout"], "the hashes")
            time.sleep(1.0)  # a second on_hash call of any payout would show by now
            per_worker = [
                {
                    "pid": w.pid,
                    "rss_ready_mib": round(ready_rss[w.pid] / 1024, 1),
                    "peak_rss_mib": round(_status_kib(w.pid, "VmHWM") / 1024, 1),
                    "cpu_seconds": round(process_cpu_seconds(w.pid) - cpu_before[w.pid], 2),
                }
                for w in workers
            ]
            entries = [entry.decode().split() for entry in store.lrange(HASHES, 0, -1)]
            app.tasks["instax_async.watch_payout"].instax.close()
            app.close()
        except Exception:
            for n in range(len(workers)):
                log((Path(directory) / f"worker{n}.log").read_text(errors="replace")[-3000:])
            raise
        finally:
            for worker in workers:
                _stop(worker)
            store.close()
    hashed = {tx: float(at) for at, tx, _ in entries}
    latencies = [hashed[tx] - enqueued[tx] for tx in tx_ids]
    by_pid = {str(w["pid"]): 0 for w in per_worker}
    for _, _, pid in entries:
        by_pid[pid] = by_pid.get(pid, 0) + 1
    last = max(hashed.values()) - started
    for worker in per_worker:
        worker["hashes"] = by_pid.get(str(worker["pid"]), 0)
    return {
        **base,
        "load_average_before": load_before,
        "load_average_after": _load(),
        "summary": {
            "enqueue_seconds": round(enqueue_seconds, 2),
            "seconds_to_last_hash": round(last, 2),
            "hashes_per_second": round(len(tx_ids) / last, 1),
            "watch_p50_seconds": round(median(latencies), 2),
            "watch_p99_seconds": round(percentile(latencies, 99), 2),
            "on_hash_calls": len(entries),
            "payouts_hashed": len(hashed),
        },
        "workers": per_worker,
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    params = result["parameters"]
    if "skipped" in result:
        return f"### {TITLE}\n\nSkipped: {result['skipped']}"
    summary = result["summary"]
    lines = [
        f"### {TITLE}",
        "",
        f"{params['watches']:,} watches, {params['workers']} workers "
        f"(`--pool=threads --concurrency={params['concurrency']}` each), a poll every "
        f"{params['interval']} s in slices of {params['slice_seconds']} s, each hash at the "
        f"{CONFIRMATION_POLLS + 1}th poll. Load average before / after: "
        f"{result['load_average_before']} / {result['load_average_after']}.",
        "",
        "| enqueue all | first enqueue → last hash | hashes/s | watch p50 / p99 | on_hash calls |",
        "|---:|---:|---:|---:|---:|",
        f"| {summary['enqueue_seconds']} s | {summary['seconds_to_last_hash']} s "
        f"| {summary['hashes_per_second']} | {summary['watch_p50_seconds']} s / "
        f"{summary['watch_p99_seconds']} s | {summary['on_hash_calls']:,} for "
        f"{summary['payouts_hashed']:,} payouts |",
        "",
        "| worker | RSS once ready | peak RSS | CPU | hashes |",
        "|---|---:|---:|---:|---:|",
    ]
    for n, worker in enumerate(result["workers"]):
        lines.append(
            f"| {n} | {worker['rss_ready_mib']} MiB | {worker['peak_rss_mib']} MiB "
            f"| {worker['cpu_seconds']} s | {worker['hashes']:,} |"
        )
    return "\n".join(lines)
