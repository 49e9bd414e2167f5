"""Benchmark: the synchronous ``Client`` against ``httpx.Client`` and ``requests.Session``.

Every contender makes the same request as in :mod:`benchmarks.session_create` (``POST
/api/session`` with the same bytes and headers, to the same stand-in server in a process of its
own) from plain threads, and reads the session id from the answer:

- ``instax_async.Client``: ``Client(base_url=...)``, then ``create_session(request)`` on a
  prebuilt :class:`~instax_async.SessionRequest` (JSON encoding, the status check and parsing
  into ``PaymentSession`` included), OpenTelemetry off as in the session benchmark's plain row.
  Each call crosses to the client's event loop thread and back;
- ``httpx.Client``: ``json.dumps`` of the payload, ``post(url, content=body, headers=headers)``,
  ``json.loads`` of the body and the id;
- ``requests.Session``: the same with ``post(url, data=body, headers=headers)``.

Each is given a pool of 100 connections and a 30 s timeout. For each thread count (1 and 8) a
round gives every contender a fresh client, a warm-up (which opens the connections), then a
fixed number of requests taken in turn by the threads; the contenders' order rotates between
rounds. Reported per thread count: medians over rounds of requests/s, p50/p99 latency, and the
client process's and the server's CPU time per request (the client's includes its every
thread: ``Client``'s event loop thread too), with the per-round ratios ``Client`` /
``httpx.Client`` as median [min..max]. The load average before and after is part of the result:
the machine is shared, and a busy one moves every figure.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import requests
from requests.adapters import HTTPAdapter

from instax_async import Client

from ._util import median, percentile
from .server import ServerProcess, process_cpu_seconds
from .session_create import API_KEY, HEADERS, PAYLOAD, SESSION_REQUEST, TIMEOUT

NAME = "sync_client"
TITLE = "Synchronous clients from threads (POST /api/session)"

SDK = "instax_async.Client"
HTTPX = "httpx.Client"
REQUESTS = "requests.Session"
#: ``Client``'s throughput over ``httpx.Client``'s that is the target, per thread count.
TARGETS = {1: 0.90, 8: 1.00}
POOL = 100


class Contender(Protocol):
    """One synchronous client: made per round, one request per :meth:`call` (any thread)."""

    name: str

    def start(self, base_url: str) -> None:
        """Create a fresh client."""

    def call(self) -> str:
        """Create one session; return its id."""

    def stop(self) -> None:
        """Close the client."""


class SdkContender:
    """``instax_async.Client`` with its defaults (OpenTelemetry off)."""

    name = SDK

    def __init__(self) -> None:
        self._client: Client | None = None

    def start(self, base_url: str) -> None:
        self._client = Client(API_KEY, base_url=base_url, timeout=TIMEOUT, max_connections=POOL)
        # what the client holds when ``import opentelemetry`` fails (as session_create's row)
        self._client._async()._telemetry = None

    def call(self) -> str:
        assert self._client is not None
        return self._client.create_session(SESSION_REQUEST).id

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class HttpxContender:
    """``httpx.Client`` with the same pool size and timeout."""

    name = HTTPX

    def __init__(self) -> None:
        self._client: httpx.Client | None = None
        self._url = ""

    def start(self, base_url: str) -> None:
        self._url = base_url + "/api/session"
        limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        self._client = httpx.Client(limits=limits, timeout=TIMEOUT)

    def call(self) -> str:
        assert self._client is not None
        body = json.dumps(PAYLOAD, separators=(",", ":")).encode()
        response = self._client.post(self._url, content=body, headers=HEADERS)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        session_id: str = json.loads(response.content)["id"]
        return session_id

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class RequestsContender:
    """``requests.Session`` with a pool of the same size and the same timeout."""

    name = REQUESTS

    def __init__(self) -> None:
        self._session: requests.Session | None = None
        self._url = ""

    def start(self, base_url: str) -> None:
        self._url = base_url + "/api/session"
        self._session = requests.Session()
        self._session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=POOL))

    def call(self) -> str:
        assert self._session is not None
        body = json.dumps(PAYLOAD, separators=(",", ":")).encode()
        response = self._session.post(self._url, data=body, headers=HEADERS, timeout=TIMEOUT)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        session_id: str = json.loads(response.content)["id"]
        return session_id

    def stop(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def contenders() -> list[Contender]:
    """The contenders, ``Client`` first (the order rotates between rounds)."""
    return [SdkContender(), HttpxContender(), RequestsContender()]


def drive(call: Callable[[], object], requests_: int, threads: int) -> list[float]:
    """Make ``requests_`` calls from ``threads`` threads, each taking the next request number
    in turn; return each call's latency (s). The first error is raised once all have ended."""
    latencies: list[float] = []
    numbers = iter(range(requests_))  # next() on a range iterator is atomic under the GIL
    errors: list[BaseException] = []
    start = threading.Barrier(threads)
    clock = time.perf_counter

    def worker() -> None:
        start.wait()
        try:
            for _ in numbers:
                started = clock()
                call()
                latencies.append(clock() - started)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if errors:
        raise errors[0]
    return latencies


def measure(
    contender: Contender,
    base_url: str,
    *,
    requests_: int,
    threads: int,
    warmup: int,
    server_pid: int | None,
) -> dict[str, Any]:
    """One contender, one round, one thread count: a fresh client, a warm-up, the timed run."""
    contender.start(base_url)
    try:
        drive(contender.call, warmup, threads)
        gc.collect()
        server_cpu = process_cpu_seconds(server_pid) if server_pid else 0.0
        cpu = time.process_time()
        started = time.perf_counter()
        latencies = drive(contender.call, requests_, threads)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        server_cpu = (process_cpu_seconds(server_pid) - server_cpu) if server_pid else 0.0
    finally:
        contender.stop()
    done = len(latencies)
    return {
        "contender": contender.name,
        "threads": threads,
        "requests": done,
        "seconds": round(seconds, 4),
        "rps": round(done / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1e3, 3),
        "p99_ms": round(percentile(latencies, 99) * 1e3, 3),
        "client_cpu_us_per_request": round(cpu / done * 1e6, 1),
        "server_cpu_us_per_request": round(server_cpu / done * 1e6, 1),
    }


def _parameters(quick: bool) -> dict[str, Any]:
    if quick:
        return {"rounds": 1, "threads": [1, 8], "requests": {1: 40, 8: 80}, "warmup": 16}
    return {"rounds": 7, "threads": [1, 8], "requests": {1: 1500, 8: 3000}, "warmup": 100}


def _paired(runs: list[dict[str, Any]], threads: int, name: str, key: str) -> list[float]:
    """Per round, ``name``'s ``key`` over ``httpx.Client``'s."""
    ratios = []
    for round_index in sorted({r["round"] for r in runs}):
        pair = {
            r["contender"]: r[key]
            for r in runs
            if r["threads"] == threads and r["round"] == round_index
        }
        if name in pair and pair.get(HTTPX):
            ratios.append(pair[name] / pair[HTTPX])
    return ratios


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def summarize(runs: list[dict[str, Any]], thread_counts: list[int]) -> dict[str, Any]:
    """Medians and ranges over rounds per (threads, contender), and the ratios to httpx."""
    names = list(dict.fromkeys(r["contender"] for r in runs))
    keys = ("rps", "p50_ms", "p99_ms", "client_cpu_us_per_request", "server_cpu_us_per_request")
    table: dict[str, Any] = {}
    for threads in thread_counts:
        per: dict[str, Any] = {}
        for name in names:
            mine = [r for r in runs if r["threads"] == threads and r["contender"] == name]
            per[name] = {key: round(median([r[key] for r in mine]), 3) for key in keys}
            per[name]["rps_range"] = [min(r["rps"] for r in mine), max(r["rps"] for r in mine)]
            per[name]["rps_vs_httpx"] = _spread(_paired(runs, threads, name, "rps"))
            per[name]["cpu_vs_httpx"] = _spread(
                _paired(runs, threads, name, "client_cpu_us_per_request")
            )
        target = TARGETS.get(threads)
        table[str(threads)] = {
            "contenders": per,
            "target_rps_vs_httpx": target,
            "meets_target": None
            if target is None
            else per[SDK]["rps_vs_httpx"]["median"] >= target,
        }
    return table


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not available
        return []


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark and return its results (parameters, every run, the summary)."""
    params = _parameters(quick)
    started = time.perf_counter()
    load_before = _load()
    runs: list[dict[str, Any]] = []
    with ServerProcess() as server:
        everyone = contenders()
        for round_index in range(params["rounds"]):
            for threads in params["threads"]:
                shift = round_index % len(everyone)
                for contender in everyone[shift:] + everyone[:shift]:
                    result = measure(
                        contender,
                        server.url,
                        requests_=params["requests"][threads],
                        threads=threads,
                        warmup=params["warmup"],
                        server_pid=server.pid,
                    )
                    result["round"] = round_index
                    runs.append(result)
            log(f"  {NAME}: round {round_index + 1}/{params['rounds']} done")
    return {
        "name": NAME,
        "title": TITLE,
        "quick": quick,
        "parameters": {
            "rounds": params["rounds"],
            "threads": params["threads"],
            "requests_per_run": {str(k): v for k, v in params["requests"].items()},
            "warmup_per_run": params["warmup"],
            "pool": POOL,
            "timeout_s": TIMEOUT,
        },
        "load_average_before": load_before,
        "load_average_after": _load(),
        "runs": runs,
        "summary": summarize(runs, params["threads"]),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    params = result["parameters"]
    lines = [
        f"### {TITLE}",
        "",
        f"Medians of {params['rounds']} interleaved rounds (order rotated); requests per run: "
        + ", ".join(f"{n} from {t} thread(s)" for t, n in params["requests_per_run"].items())
        + ". `req/s` is followed by its [min..max] over rounds; `/ httpx` is the ratio to "
        "`httpx.Client` in the same round (median [min..max]). Client CPU is the client "
        "process's, all threads (`Client`'s event loop thread included). Load average before / "
        f"after: {result['load_average_before']} / {result['load_average_after']}.",
        "",
        "| threads | client | req/s | p50 ms | p99 ms | client CPU µs/req | server CPU µs/req "
        "| req/s / httpx | CPU / httpx |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def spread(s: dict[str, float]) -> str:
        return f"{s['median']:.3f} [{s['min']:.2f}..{s['max']:.2f}]"

    for threads, row in result["summary"].items():
        for name, numbers in row["contenders"].items():
            mark = ""
            if name == SDK and row["target_rps_vs_httpx"] is not None:
                verdict = "meets" if row["meets_target"] else "misses"
                mark = f" ({verdict} ≥ {row['target_rps_vs_httpx']:.2f})"
            low, high = numbers["rps_range"]
            lines.append(
                f"| {threads} | {name} | {numbers['rps']:,.0f} [{low:,.0f}..{high:,.0f}] "
                f"| {numbers['p50_ms']:.2f} | {numbers['p99_ms']:.2f} "
                f"| {numbers['client_cpu_us_per_request']:.0f} "
                f"| {numbers['server_cpu_us_per_request']:.0f} "
                f"| {spread(numbers['rps_vs_httpx'])}{mark} | {spread(numbers['cpu_vs_httpx'])} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(markdown(run(quick="--quick" in sys.argv[1:])))
