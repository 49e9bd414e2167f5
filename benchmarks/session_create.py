"""Benchmark 1: session creation through the SDK against bare aiohttp (the floor) and httpx.

Every contender sends the same bytes with the same headers to ``POST /api/session`` of the
stand-in server (:mod:`benchmarks.server`, a separate process, so client and server never share
an event loop or a core's time slice) and reads the session id from the answer:

- ``instax_async``: ``AsyncSession(base_url=...)`` with its default transport, then
  ``create_session(request)`` on a prebuilt :class:`~instax_async.SessionRequest` (JSON
  encoding, the status check and parsing into ``PaymentSession`` included), with OpenTelemetry
  off: the client's telemetry handle is ``None``, the path it takes when ``opentelemetry-api``
  cannot be imported (the benchmark's environment has it installed, so that is how "absent" is
  simulated: the same code path, not a second interpreter without the package);
- ``instax_async (OTel API, no SDK)``: the same with ``opentelemetry-api`` importable and no
  OpenTelemetry SDK configured (no-op tracer and meter providers);
- ``instax_async (hooks, WARNING)``: OTel off, one no-op sync request hook and one no-op sync
  response hook, and the ``instax_async`` logger at WARNING;
- ``aiohttp (bare)``: ``json.dumps`` of the payload, ``ClientSession.post(url, data=body,
  headers=headers)``, ``read()``, ``json.loads`` and the id: what a hand-rolled client has to
  do at the very least for the same request;
- ``httpx``: the same with ``AsyncClient.post(url, content=body, headers=headers)`` and
  ``.json()``.

For each concurrency a round gives every contender a fresh client, a warm-up (which also opens
the connections), then a fixed number of requests made by ``concurrency`` worker tasks. The
contenders' order rotates between rounds. Reported per concurrency: the median over rounds of
requests/s, of the per-round p50 and p99 latency, of the client's and the server's CPU time per
request, and the ratio SDK / bare aiohttp of the median throughputs.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import time
import timeit
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
import httpx

from instax_async import AsyncSession, SessionRequest
from instax_async._protocol import user_agent
from instax_async._telemetry import telemetry
from instax_async.serialization import dumps

from ._util import median, percentile
from .server import ServerProcess, process_cpu_seconds

NAME = "session_create"
TITLE = "Session creation (POST /api/session)"

#: The SDK's throughput over bare aiohttp's that is the target, per concurrency.
TARGETS = {1: 0.97, 100: 0.97}
#: The most client CPU per request the SDK may cost, over bare aiohttp's, per concurrency.
CPU_TARGETS = {1: 1.00, 100: 1.00}
#: The most the hooks + WARNING row may cost over the plain SDK (client CPU per request).
HOOKS_TARGET = 1.01

SDK = "instax_async"
SDK_OTEL = "instax_async (OTel API, no SDK)"
SDK_HOOKS = "instax_async (hooks, WARNING)"
BARE = "aiohttp (bare)"

API_KEY = "bench-api-key"
#: One prebuilt request: building it (validation) is not part of what is measured.
REQUEST_FIELDS: dict[str, str] = {
    "from_amount": "50",
    "from_currency": "USD",
    "to_currency": "USDT-TRON",
    "address": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
    "webhook_ref": "order-1001",
    "return_url": "https://shop.example/thanks",
    "email": "ada@example.com",
}
SESSION_REQUEST = SessionRequest.sending(**REQUEST_FIELDS)
#: The bytes the SDK sends for SESSION_REQUEST; the other contenders send exactly these.
BODY = dumps(SESSION_REQUEST.to_payload())
#: The payload as a hand-rolled client holds it: encoded per request with ``json.dumps``.
PAYLOAD: dict[str, Any] = json.loads(BODY)
assert json.dumps(PAYLOAD, separators=(",", ":")).encode() == BODY
#: The headers the SDK sends (aiohttp/httpx add Host, Content-Length, Accept-Encoding, ...).
HEADERS = {
    "User-Agent": user_agent(),
    "Accept": "application/json",
    "x-api-key": API_KEY,
    "Content-Type": "application/json",
}
POOL_LIMIT = 100  # the SDK's default connection pool size, given to every contender
TIMEOUT = 30.0  # the SDK's default timeout, given to every contender


class Contender(Protocol):
    """One way of creating a session: a client per round, one request per :meth:`call`."""

    name: str

    async def start(self, base_url: str) -> None:
        """Create a fresh client."""

    async def call(self) -> str:
        """Create one session; return its id."""

    async def stop(self) -> None:
        """Close the client."""


def _no_op_request_hook(request: object) -> None:
    """A request hook that does nothing (the cost measured is the SDK's, not the hook's)."""


def _no_op_response_hook(request: object, response: object) -> None:
    """A response hook that does nothing."""


class SdkContender:
    """This SDK with its default transport; OTel off unless ``otel``; hooks if ``hooks``."""

    def __init__(self, *, otel: bool = False, hooks: bool = False) -> None:
        self._client: AsyncSession | None = None
        self._otel = otel
        self._hooks = hooks
        self.name = SDK_OTEL if otel else SDK_HOOKS if hooks else SDK

    async def start(self, base_url: str) -> None:
        hooks = (
            {"request": [_no_op_request_hook], "response": [_no_op_response_hook]}
            if self._hooks
            else None
        )
        self._client = AsyncSession(API_KEY, base_url=base_url, timeout=TIMEOUT, event_hooks=hooks)
        if self._otel:
            if self._client.requester.telemetry is None:
                raise RuntimeError("opentelemetry-api is not importable: no OTel row")
        else:
            # what the client holds when ``import opentelemetry`` fails (see the module doc)
            self._client.requester.telemetry = None
        # WARNING is the default level of an unconfigured logger tree; said explicitly here
        logging.getLogger("instax_async").setLevel(logging.WARNING)

    async def call(self) -> str:
        assert self._client is not None
        return (await self._client.create_session(SESSION_REQUEST)).id

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class BareAiohttpContender:
    """The floor: the least a hand-rolled aiohttp client must do for the same request."""

    name = "aiohttp (bare)"

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._url = ""

    async def start(self, base_url: str) -> None:
        self._url = base_url + "/api/session"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_LIMIT),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        )

    async def call(self) -> str:
        assert self._session is not None
        body = json.dumps(PAYLOAD, separators=(",", ":")).encode()
        async with self._session.post(self._url, data=body, headers=HEADERS) as response:
            content = await response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        session_id: str = json.loads(content)["id"]
        return session_id

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxContender:
    """``httpx.AsyncClient`` with the same pool size and timeout."""

    name = "httpx"

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._url = ""

    async def start(self, base_url: str) -> None:
        self._url = base_url + "/api/session"
        limits = httpx.Limits(max_connections=POOL_LIMIT, max_keepalive_connections=POOL_LIMIT)
        self._client = httpx.AsyncClient(limits=limits, timeout=TIMEOUT)

    async def call(self) -> str:
        assert self._client is not None
        body = json.dumps(PAYLOAD, separators=(",", ":")).encode()
        response = await self._client.post(self._url, content=body, headers=HEADERS)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        session_id: str = response.json()["id"]
        return session_id

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def contenders() -> list[Contender]:
    """The contenders, SDK first (the order rotates between rounds)."""
    everyone: list[Contender] = [SdkContender(), BareAiohttpContender()]
    if telemetry() is not None:
        everyone.append(SdkContender(otel=True))
    everyone += [SdkContender(hooks=True), HttpxContender()]
    return everyone


async def drive(
    call: Callable[[], Awaitable[object]],
    requests: int,
    concurrency: int,
    max_seconds: float = float("inf"),
) -> list[float]:
    """Make ``requests`` calls from ``concurrency`` worker tasks; return each one's latency (s).

    After ``max_seconds`` no new call starts (the calls in flight finish): a slow contender
    then makes fewer calls, and its throughput is what it made in that time. If one call
    fails, the other workers are cancelled and the error is raised.
    """
    latencies: list[float] = []
    indices = iter(range(requests))  # shared: each worker takes the next request number
    clock = time.perf_counter
    deadline = clock() + max_seconds

    async def worker() -> None:
        for _ in indices:
            started = clock()
            await call()
            finished = clock()
            latencies.append(finished - started)
            if finished > deadline:
                return

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, requests))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


async def measure(
    contender: Contender,
    base_url: str,
    *,
    requests: int,
    concurrency: int,
    warmup: int,
    max_seconds: float,
    server_pid: int | None,
) -> dict[str, Any]:
    """One contender, one round, one concurrency: a fresh client, a warm-up, the timed run."""
    await contender.start(base_url)
    try:
        # the warm-up opens the connections; a hung server cannot stall the run for long
        timeout = 10 * max_seconds + 30
        await asyncio.wait_for(drive(contender.call, warmup, concurrency, max_seconds), timeout)
        gc.collect()
        server_cpu = process_cpu_seconds(server_pid) if server_pid else 0.0
        cpu = time.process_time()
        started = time.perf_counter()
        latencies = await asyncio.wait_for(
            drive(contender.call, requests, concurrency, max_seconds), timeout
        )
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        server_cpu = (process_cpu_seconds(server_pid) - server_cpu) if server_pid else 0.0
    finally:
        await contender.stop()
    done = len(latencies)
    return {
        "contender": contender.name,
        "concurrency": concurrency,
        "requests": done,
        "time_capped": done < requests,
        "seconds": round(seconds, 4),
        "rps": round(done / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1e3, 3),
        "p99_ms": round(percentile(latencies, 99) * 1e3, 3),
        "client_cpu_us_per_request": round(cpu / done * 1e6, 1),
        "server_cpu_us_per_request": round(server_cpu / done * 1e6, 1),
    }


def request_costs(quick: bool) -> dict[str, float]:
    """What the table leaves out, per request: building (validating) a ``SessionRequest``, and
    encoding its body as ``create_session`` does (best of 5 ``timeit`` repeats, µs)."""
    number = 200 if quick else 5000

    def best(function: Callable[[], object]) -> float:
        return round(min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6, 2)

    return {
        "build_session_request_us": best(lambda: SessionRequest.sending(**REQUEST_FIELDS)),
        "encode_body_us": best(SESSION_REQUEST.to_json),
    }


def _parameters(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "rounds": 1,
            "concurrency": [1, 10, 100],
            "requests": {1: 30, 10: 100, 100: 200},
            "warmup": {1: 5, 10: 10, 100: 100},
            "max_seconds_per_run": 0.5,
        }
    return {
        "rounds": 7,
        "concurrency": [1, 10, 100],
        "requests": {1: 400, 10: 1200, 100: 1600},
        # at concurrency c the warm-up opens c connections (one request per worker) and more
        "warmup": {1: 20, 10: 50, 100: 100},
        "max_seconds_per_run": 1.0,
    }


async def _run(params: dict[str, Any], log: Callable[[str], None]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    with ServerProcess() as server:
        base_url = server.url
        everyone = contenders()
        for round_index in range(params["rounds"]):
            for concurrency in params["concurrency"]:
                shift = round_index % len(everyone)
                order = everyone[shift:] + everyone[:shift]
                for contender in order:
                    result = await measure(
                        contender,
                        base_url,
                        requests=params["requests"][concurrency],
                        concurrency=concurrency,
                        warmup=params["warmup"][concurrency],
                        max_seconds=params["max_seconds_per_run"],
                        server_pid=server.pid,
                    )
                    result["round"] = round_index
                    runs.append(result)
            log(f"  {NAME}: round {round_index + 1}/{params['rounds']} done")
    return runs


def _paired(
    runs: list[dict[str, Any]], concurrency: int, name: str, base: str, key: str
) -> list[float]:
    """Per round, ``name``'s ``key`` over ``base``'s (rounds where both ran)."""
    ratios = []
    for round_index in sorted({r["round"] for r in runs}):
        pair = {
            r["contender"]: r[key]
            for r in runs
            if r["concurrency"] == concurrency and r["round"] == round_index
        }
        if name in pair and base in pair and pair[base]:
            ratios.append(pair[name] / pair[base])
    return ratios


def _spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of per-round ratios."""
    return {
        "median": round(median(values), 3),
        "min": round(min(values), 3) if values else math.nan,
        "max": round(max(values), 3) if values else math.nan,
    }


def summarize(runs: list[dict[str, Any]], concurrencies: list[int]) -> dict[str, Any]:
    """Medians over rounds per (concurrency, contender), and per-round paired ratios.

    Every ratio is the median (with min and max) over rounds of the ratio within one round,
    where the contenders ran back to back: ``cpu`` is a contender's client CPU per request over
    bare aiohttp's (lower is better), ``rps`` its throughput over bare aiohttp's (higher is
    better); ``hooks_cpu_over_sdk`` compares the hooks row with the plain SDK.
    """
    names = list(dict.fromkeys(r["contender"] for r in runs))
    keys = ("rps", "p50_ms", "p99_ms", "client_cpu_us_per_request", "server_cpu_us_per_request")
    cpu = "client_cpu_us_per_request"
    table: dict[str, Any] = {}
    for concurrency in concurrencies:
        per: dict[str, Any] = {}
        for name in names:
            mine = [r for r in runs if r["concurrency"] == concurrency and r["contender"] == name]
            per[name] = {key: round(median([r[key] for r in mine]), 3) for key in keys}
            per[name]["cpu_vs_bare"] = _spread(_paired(runs, concurrency, name, BARE, cpu))
            per[name]["rps_vs_bare"] = _spread(_paired(runs, concurrency, name, BARE, "rps"))
        sdk = per[SDK]
        target, cpu_target = TARGETS.get(concurrency), CPU_TARGETS.get(concurrency)
        entry: dict[str, Any] = {
            "contenders": per,
            "target_rps_vs_bare": target,
            "target_cpu_vs_bare": cpu_target,
            "meets_rps_target": None if target is None else sdk["rps_vs_bare"]["median"] >= target,
            "meets_cpu_target": None
            if cpu_target is None
            else sdk["cpu_vs_bare"]["median"] <= cpu_target,
            "client_cpu_overhead_us_per_request": round(sdk[cpu] - per[BARE][cpu], 1),
        }
        for name in (SDK_OTEL, SDK_HOOKS):
            if name in per:
                entry[f"{name} cpu over sdk"] = _spread(_paired(runs, concurrency, name, SDK, cpu))
        table[str(concurrency)] = entry
    return table


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run benchmark 1 and return its results (parameters, every run, the summary)."""
    params = _parameters(quick)
    result = _run_with(params, quick, log, asyncio.new_event_loop, "asyncio")
    loop_factory = _uvloop_factory()
    if loop_factory is not None and not quick:
        log(f"  {NAME}: the same with uvloop")
        result["uvloop"] = _run_with(params, quick, log, loop_factory, "uvloop")
    return result


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _run_with(
    params: dict[str, Any],
    quick: bool,
    log: Callable[[str], None],
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    loop_name: str,
) -> dict[str, Any]:
    started = time.perf_counter()
    loop = loop_factory()
    try:
        runs = loop.run_until_complete(_run(params, log))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    return {
        "loop": loop_name,
        "name": NAME,
        "title": TITLE,
        "quick": quick,
        "parameters": {
            **{k: v for k, v in params.items() if k not in ("requests", "warmup")},
            "requests_per_run": {str(k): v for k, v in params["requests"].items()},
            "warmup_per_run": {str(k): v for k, v in params["warmup"].items()},
            "body_bytes": len(BODY),
            "pool_limit": POOL_LIMIT,
            "timeout_s": TIMEOUT,
        },
        "runs": runs,
        "summary": summarize(runs, params["concurrency"]),
        "request_costs": request_costs(quick),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    params = result["parameters"]
    lines = [
        f"### {TITLE}" + (", uvloop" if result.get("loop") == "uvloop" else ""),
        "",
        f"Medians of {params['rounds']} interleaved rounds (order rotated); requests per run: "
        + ", ".join(f"{n} at concurrency {c}" for c, n in params["requests_per_run"].items())
        + ". `CPU / bare` is this client's CPU time per request (measured in the client "
        "process) over bare aiohttp's in the same round, `req/s / bare` the same for "
        "throughput: medians over rounds, [min..max] in brackets. The plain `instax_async` row "
        "runs with OpenTelemetry off (the client's path when `opentelemetry-api` is not "
        "importable); the `hooks, WARNING` row adds one no-op sync request and response hook, "
        "with the logger at WARNING. The bare contenders `json.dumps` the same payload per "
        "request.",
        "",
        "| concurrency | client | req/s | p50 ms | p99 ms | client CPU µs/req "
        "| server CPU µs/req | CPU / bare | req/s / bare |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def spread(s: dict[str, float]) -> str:
        return f"{s['median']:.3f} [{s['min']:.2f}..{s['max']:.2f}]"

    for concurrency, row in result["summary"].items():
        for name, numbers in row["contenders"].items():
            cpu_mark = rps_mark = ""
            if name == SDK and row["target_cpu_vs_bare"] is not None:
                verdict = "meets" if row["meets_cpu_target"] else "misses"
                cpu_mark = f" ({verdict} ≤ {row['target_cpu_vs_bare']:.2f})"
            if name == SDK and row["target_rps_vs_bare"] is not None:
                verdict = "meets" if row["meets_rps_target"] else "misses"
                rps_mark = f" ({verdict} ≥ {row['target_rps_vs_bare']:.2f})"
            lines.append(
                f"| {concurrency} | {name} | {numbers['rps']:,.0f} | {numbers['p50_ms']:.2f} "
                f"| {numbers['p99_ms']:.2f} | {numbers['client_cpu_us_per_request']:.0f} "
                f"| {numbers['server_cpu_us_per_request']:.0f} "
                f"| {spread(numbers['cpu_vs_bare'])}{cpu_mark} "
                f"| {spread(numbers['rps_vs_bare'])}{rps_mark} |"
            )
    extra = []
    for concurrency, row in result["summary"].items():
        for name in (SDK_OTEL, SDK_HOOKS):
            key = f"{name} cpu over sdk"
            if key in row:
                mark = ""
                if name == SDK_HOOKS:
                    ok = row[key]["median"] <= HOOKS_TARGET
                    mark = f" ({'meets' if ok else 'misses'} ≤ {HOOKS_TARGET:.2f})"
                extra.append(f"| {concurrency} | {name} | {spread(row[key])}{mark} |")
    if extra:
        lines += [
            "",
            "Client CPU per request over the plain SDK's, same round:",
            "",
            "| concurrency | client | CPU / plain SDK |",
            "|---:|---|---:|",
            *extra,
        ]
    costs = result.get("request_costs")
    if costs:
        lines += [
            "",
            "Not in the table (the SDK contender reuses one prebuilt `SessionRequest`): building "
            f"and validating a `SessionRequest` costs {costs['build_session_request_us']:.1f} µs, "
            f"and `create_session` spends {costs['encode_body_us']:.1f} µs of its time encoding "
            "the body (`timeit`, no I/O).",
        ]
    if "uvloop" in result:
        lines += ["", markdown(result["uvloop"])]
    return "\n".join(lines)
