"""Benchmark: webhook deliveries per second, the SDK's aiohttp receiver against a bare handler.

The receiver is what is measured, so it runs in a process of its own (``python -m
benchmarks.webhook_receiver``, started by :class:`~benchmarks.server.ServerProcess`), one
aiohttp application with two routes:

- ``instax_async``: ``webhook_handler(secret, on_event)`` mounted as ``docs/webhooks.md``
  shows (the default in-memory dedupe store, no ``max_age``): it reads the body (bounded),
  verifies it, deduplicates it, awaits ``on_event`` and answers 200 ``{"status": "ok"}``;
- ``aiohttp (bare)``: what a competent user writes by hand: ``await request.read()``, the
  SDK's ``verify`` (the only correct check there is: a hand-made one signs the wrong text), a
  401 on ``WebhookVerificationError``, ``await on_event(event)`` and a plain 200.

``on_event`` is the same no-op coroutine for both (it counts the events it is given, and the
count is checked: every delivery handled once). OpenTelemetry is as installed: when
``opentelemetry-api`` is importable and no SDK is configured, the receiver's path is the one
it takes without any telemetry work.

The load generator is this process, a plain ``aiohttp.ClientSession``: each delivery is the
documented example event with its own ``webhookId`` (so the dedupe store sees a new event each
time), signed beforehand, POSTed with its ``X-Instaxwh-Key``; any answer but 200 stops the run.
For each concurrency a round gives each route a fresh client, a warm-up (which opens the
connections) and a fixed number of deliveries made by ``concurrency`` worker tasks; the routes'
order alternates between rounds. The receiver's CPU time is read in the receiver process
(``time.process_time()``, through ``GET /_bench/cpu``) before and after each run. Reported per
concurrency: medians over rounds of deliveries/s, p50/p99 latency and receiver CPU µs per
delivery, and the per-round ratios SDK / bare with their [min..max].
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
from aiohttp import web

from instax_async import WebhookVerificationError
from instax_async._telemetry import telemetry
from instax_async.integrations.aiohttp import webhook_handler
from instax_async.webhooks import SIGNATURE_HEADER, sign, verify

from ._util import median, percentile
from .server import ServerProcess, serve
from .session_create import drive
from .webhook_verify import documented_payload

NAME = "webhook_receiver"
TITLE = "Webhook receiver (deliveries/s)"

#: The SDK receiver's deliveries/s over the bare handler's that is the target (issue 15).
TARGET = 0.90

SDK = "instax_async"
BARE = "aiohttp (bare)"
PATHS = {SDK: "/webhooks/sdk", BARE: "/webhooks/bare"}
SECRET = "bench-webhook-secret"
TIMEOUT = 30.0

_TEMPLATE, _, _ = documented_payload()
_ID = b'"testcompleteddwebhook"'
assert _TEMPLATE.count(_ID) == 1


# ---------------------------------------------------------------- the receiver process


def make_app() -> web.Application:
    """The receiver: the SDK's handler and the bare one, and ``GET /_bench/cpu``."""
    handled = 0

    async def on_event(event: object) -> None:
        nonlocal handled
        handled += 1

    async def bare(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = verify(body, request.headers.get(SIGNATURE_HEADER), SECRET)
        except WebhookVerificationError:
            return web.Response(status=401)
        await on_event(event)
        return web.Response()

    async def cpu(_request: web.Request) -> web.Response:
        return web.json_response({"cpu": time.process_time(), "handled": handled})

    app = web.Application()
    app.router.add_post(PATHS[SDK], webhook_handler(SECRET, on_event))
    app.router.add_post(PATHS[BARE], bare)
    app.router.add_get("/_bench/cpu", cpu)
    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.webhook_receiver [--port 0] [--max-seconds 900]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_receiver")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="exit after this long")
    args = parser.parse_args(argv)
    asyncio.run(serve(make_app(), args.port, args.max_seconds))


# ---------------------------------------------------------------- the load generator

_serial = itertools.count(1)


def deliveries(count: int) -> list[tuple[bytes, dict[str, str]]]:
    """``count`` signed deliveries of the documented event, each with a webhookId of its own."""
    out = []
    for _ in range(count):
        body = _TEMPLATE.replace(_ID, b'"whc_bench_%d"' % next(_serial))
        headers = {SIGNATURE_HEADER: sign(body, SECRET), "Content-Type": "application/json"}
        out.append((body, headers))
    return out


async def _receiver_state(session: aiohttp.ClientSession, base_url: str) -> tuple[float, int]:
    async with session.get(base_url + "/_bench/cpu") as response:
        state = await response.json()
    return float(state["cpu"]), int(state["handled"])


async def measure(
    name: str,
    base_url: str,
    *,
    requests: int,
    concurrency: int,
    warmup: int,
    max_seconds: float,
) -> dict[str, Any]:
    """One route, one round, one concurrency: a fresh client, a warm-up, the timed run."""
    url = base_url + PATHS[name]
    batch: Iterator[tuple[bytes, dict[str, str]]] = iter(deliveries(warmup + requests))
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(concurrency, 1)),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
    )

    async def deliver() -> None:
        body, headers = next(batch)
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
        if response.status != 200:
            raise RuntimeError(f"{name}: HTTP {response.status} for a valid delivery")

    try:
        timeout = 10 * max_seconds + 30
        await asyncio.wait_for(drive(deliver, warmup, concurrency, max_seconds), timeout)
        gc.collect()
        cpu, handled = await _receiver_state(session, base_url)
        started = time.perf_counter()
        latencies = await asyncio.wait_for(
            drive(deliver, requests, concurrency, max_seconds), timeout
        )
        seconds = time.perf_counter() - started
        cpu_after, handled_after = await _receiver_state(session, base_url)
    finally:
        await session.close()
    done = len(latencies)
    if handled_after - handled != done:
        raise RuntimeError(f"{name}: {handled_after - handled} events handled for {done} sent")
    return {
        "contender": name,
        "concurrency": concurrency,
        "deliveries": done,
        "time_capped": done < requests,
        "seconds": round(seconds, 4),
        "dps": round(done / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1e3, 3),
        "p99_ms": round(percentile(latencies, 99) * 1e3, 3),
        "receiver_cpu_us_per_delivery": round((cpu_after - cpu) / done * 1e6, 1),
    }


def _parameters(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "rounds": 1,
            "concurrency": [1, 10],
            "requests": {1: 40, 10: 100},
            "warmup": {1: 5, 10: 10},
            "max_seconds_per_run": 0.5,
        }
    return {
        "rounds": 9,
        "concurrency": [1, 10],
        "requests": {1: 1000, 10: 3000},
        "warmup": {1: 40, 10: 100},
        "max_seconds_per_run": 3.0,
    }


async def _run(params: dict[str, Any], log: Callable[[str], None]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    names = [SDK, BARE]
    with ServerProcess(module=__name__) as server:
        for round_index in range(params["rounds"]):
            for concurrency in params["concurrency"]:
                order = names if round_index % 2 == 0 else names[::-1]
                for name in order:
                    result = await measure(
                        name,
                        server.url,
                        requests=params["requests"][concurrency],
                        concurrency=concurrency,
                        warmup=params["warmup"][concurrency],
                        max_seconds=params["max_seconds_per_run"],
                    )
                    result["round"] = round_index
                    runs.append(result)
            log(f"  {NAME}: round {round_index + 1}/{params['rounds']} done")
    return runs


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(median(values), 3),
        "min": round(min(values), 3) if values else math.nan,
        "max": round(max(values), 3) if values else math.nan,
    }


def summarize(runs: list[dict[str, Any]], concurrencies: list[int]) -> dict[str, Any]:
    """Medians over rounds per (concurrency, route), and per-round ratios SDK / bare."""
    keys = ("dps", "p50_ms", "p99_ms", "receiver_cpu_us_per_delivery")
    table: dict[str, Any] = {}
    for concurrency in concurrencies:
        mine = [r for r in runs if r["concurrency"] == concurrency]
        per = {
            name: {
                key: round(median([r[key] for r in mine if r["contender"] == name]), 3)
                for key in keys
            }
            for name in (SDK, BARE)
        }
        ratios: dict[str, list[float]] = {"dps": [], "receiver_cpu_us_per_delivery": []}
        for round_index in sorted({r["round"] for r in mine}):
            pair = {r["contender"]: r for r in mine if r["round"] == round_index}
            if SDK in pair and BARE in pair:
                for key, values in ratios.items():
                    if pair[BARE][key]:
                        values.append(pair[SDK][key] / pair[BARE][key])
        dps, cpu = _spread(ratios["dps"]), _spread(ratios["receiver_cpu_us_per_delivery"])
        table[str(concurrency)] = {
            "contenders": per,
            "dps_vs_bare": dps,
            "cpu_vs_bare": cpu,
            "target_dps_vs_bare": TARGET,
            "meets_target": dps["median"] >= TARGET,
        }
    return table


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark and return its results (parameters, every run, the summary)."""
    started = time.perf_counter()
    params = _parameters(quick)
    runs = asyncio.run(_run(params, log))
    return {
        "name": NAME,
        "title": TITLE,
        "quick": quick,
        "parameters": {
            **{k: v for k, v in params.items() if k not in ("requests", "warmup")},
            "requests_per_run": {str(k): v for k, v in params["requests"].items()},
            "warmup_per_run": {str(k): v for k, v in params["warmup"].items()},
            "body_bytes": len(_TEMPLATE),
            "opentelemetry_api": telemetry() is not None,
        },
        "runs": runs,
        "summary": summarize(runs, params["concurrency"]),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    params = result["parameters"]
    otel = (
        "`opentelemetry-api` importable, no SDK configured"
        if params.get("opentelemetry_api")
        else "`opentelemetry-api` not installed"
    )
    lines = [
        f"### {TITLE}",
        "",
        f"Medians of {params['rounds']} interleaved rounds (order alternated); deliveries per "
        "run: "
        + ", ".join(f"{n} at concurrency {c}" for c, n in params["requests_per_run"].items())
        + f". Each delivery is the documented event ({params['body_bytes']} B) with a "
        "webhookId of its own. The receiver runs in its own process, its CPU time read there; "
        "`instax_async` is `webhook_handler(secret, on_event)` (in-memory dedupe), `aiohttp "
        "(bare)` a handler that reads the body, calls `verify`, awaits the same no-op "
        f"`on_event` and answers 200 ({otel}). Ratios SDK / bare per round: medians, "
        "[min..max] in brackets.",
        "",
        "| concurrency | receiver | deliveries/s | p50 ms | p99 ms | receiver CPU µs/delivery "
        "| deliveries/s / bare | CPU / bare |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]

    def spread(s: dict[str, float]) -> str:
        return f"{s['median']:.3f} [{s['min']:.2f}..{s['max']:.2f}]"

    for concurrency, row in result["summary"].items():
        for name, numbers in row["contenders"].items():
            dps = cpu = "1.000"
            if name == SDK:
                verdict = "meets" if row["meets_target"] else "misses"
                dps = f"{spread(row['dps_vs_bare'])} ({verdict} ≥ {row['target_dps_vs_bare']:.2f})"
                cpu = spread(row["cpu_vs_bare"])
            lines.append(
                f"| {concurrency} | {name} | {numbers['dps']:,.0f} | {numbers['p50_ms']:.2f} "
                f"| {numbers['p99_ms']:.2f} | {numbers['receiver_cpu_us_per_delivery']:.0f} "
                f"| {dps} | {cpu} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
