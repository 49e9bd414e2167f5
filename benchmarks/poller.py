"""Benchmark 3: ``BlockchainPoller`` watching 10,000 payouts against the stand-in server.

HOOK: this benchmark needs ``instax_async.BlockchainPoller`` (issue 4). Until the package
exports it, :func:`run` returns a result marked ``skipped`` with the reason, and every other
benchmark still runs.

What it does, in a fresh interpreter of its own (``python -m benchmarks.poller --child``), so
that the memory it reports is the poller's and not what earlier benchmarks left behind:

- starts the server (:mod:`benchmarks.server`), which answers
  ``GET /utils/blockchain-status?txId=`` with ``{"txId": …, "status": "pending"}`` for the first
  ``pending_polls`` polls of each id, then with a ``hash``, and records when each poll arrived;
- opens an ``AsyncSession`` (its connection pool warmed by one request), reads VmRSS from
  /proc/self/status, creates ``BlockchainPoller(session, concurrency=…, interval=…,
  rate_limit=…)``, calls ``watch(tx_id)`` for every id, and reads VmRSS again: the RSS added
  per watched id;
- awaits every watch, timing each from ``watch()`` to its hash;
- reads the poll times from the server: the achieved rate against ``rate_limit`` (the mean,
  the busiest 1-second window, which must not exceed the limit, and the slowest full one).

Then the rate limit alone, as the server counts it (:func:`_measure_limit`): ``rate_limit=40``
with the limiter kept busy, and ``rate_limit=20`` while a task blocks the event loop for 40 ms
every 200 ms (``time.sleep(0.04)``: a stand-in for CPU-bound work on the loop). For each: the
most requests in any closed 1-second window ``[t, t + 1]`` at the server, which must not exceed
``rate_limit``, the mean rate and the smallest gap between two requests.

``python -m benchmarks.poller --limits-only`` runs just these scenarios (a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from ._util import REPO_ROOT, median, peak_rss_kib, percentile, rss_kib

NAME = "poller"
TITLE = "BlockchainPoller: watching many payouts at once"


def _parameters(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "ids": 200,
            "pending_polls": 1,
            "concurrency": 16,
            "interval": 0.2,
            "rate_limit": 1000.0,
            "watch_timeout": 60.0,
            "rss_ids": 2_000,
        }
    return {
        "ids": 10_000,
        "pending_polls": 1,
        "concurrency": 32,
        "interval": 0.5,
        "rate_limit": 1000.0,
        "watch_timeout": 120.0,
        #: the memory scenario: RSS added by this many watch() calls, in a fresh interpreter
        "rss_ids": 100_000,
    }


def missing_poller() -> str | None:
    """Why the benchmark cannot run yet, or ``None`` when it can."""
    import instax_async

    if getattr(instax_async, "BlockchainPoller", None) is None:
        return "instax_async.BlockchainPoller does not exist yet (issue 4): skipped"
    return None


#: The rate-limit scenarios: (name, rate_limit, watches, stall every / for (s) or None).
LIMIT_SCENARIOS: list[tuple[str, float, int, tuple[float, float] | None]] = [
    ("steady", 40.0, 200, None),
    ("stalls", 20.0, 100, (0.2, 0.04)),
]


def window_counts(times: list[float], rate_limit: float) -> dict[str, Any]:
    """The busiest and the slowest 1-second window of sorted request ``times`` (seconds).

    Windows are closed, ``[t, t + 1]``, and start at each request (the busiest window of any
    kind starts at a request); the slowest only counts windows that end before the last
    request (full windows).
    """
    if not times:
        return {"requests": 0}
    busiest = 0
    slowest: int | None = None
    end = 0
    last = times[-1]
    for start, t0 in enumerate(times):
        while end < len(times) and times[end] <= t0 + 1.0:
            end += 1
        count = end - start
        busiest = max(busiest, count)
        if t0 + 1.0 <= last:
            slowest = count if slowest is None else min(slowest, count)
    span = last - times[0]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {
        "requests": len(times),
        "span_seconds": round(span, 3),
        # (n - 1) intervals in the span: the rate the requests actually left at
        "mean_rps": round((len(times) - 1) / span, 1) if span > 0 else None,
        "busiest_1s_window": busiest,
        "slowest_full_1s_window": slowest,
        "smallest_gap_ms": round(min(gaps) * 1000, 3) if gaps else None,
        "rate_limit": rate_limit,
        "respects_rate_limit": busiest <= rate_limit,
    }


async def _bench_get(base_url: str, path: str, method: str = "GET") -> dict[str, Any]:
    """Call the server's own ``/_bench/…`` endpoints (not part of what is measured)."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.request(method, base_url + path) as resp:
        resp.raise_for_status()
        data: dict[str, Any] = await resp.json()
        return data


async def _measure(base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    from instax_async import AsyncSession, BlockchainPoller

    ids = [f"wd_{n:06d}" for n in range(params["ids"])]
    loop = asyncio.get_running_loop()
    async with AsyncSession("bench-api-key", base_url=base_url) as client:
        await client.blockchain_status("wd_warmup")  # opens the pool, builds the session
        await _bench_get(base_url, f"/_bench/reset?pending_polls={params['pending_polls']}", "POST")
        gc.collect()
        rss_before = rss_kib()
        poller = BlockchainPoller(
            client,
            concurrency=params["concurrency"],
            interval=params["interval"],
            rate_limit=params["rate_limit"],
            timeout=params["watch_timeout"],
        )
        finished: dict[str, float] = {}

        def on_done(tx_id: str, _future: asyncio.Future[Any]) -> None:
            finished[tx_id] = loop.time()

        async with poller:
            started = loop.time()
            futures = []
            for tx_id in ids:
                future = asyncio.ensure_future(poller.watch(tx_id))
                future.add_done_callback(functools.partial(on_done, tx_id))
                futures.append(future)
            await asyncio.sleep(0)  # a coroutine watch() registers on its first step
            rss_watching = rss_kib()
            outcomes = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), params["watch_timeout"] + 60
            )
            elapsed = loop.time() - started
            rss_done = rss_kib()
        gc.collect()
        rss_closed = rss_kib()
    stats = await _bench_get(base_url, "/_bench/stats")
    hashes = [o for o in outcomes if getattr(o, "hash", None)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    to_hash = [
        finished[tx] - started
        for tx, outcome in zip(ids, outcomes, strict=True)
        if getattr(outcome, "hash", None)
    ]
    added_kib = rss_watching - rss_before
    return {
        "elapsed_seconds": round(elapsed, 3),
        "watched": len(ids),
        "hashes": len(hashes),
        "errors": len(errors),
        "error_examples": sorted({f"{type(e).__name__}: {e}" for e in errors})[:3],
        "server_requests": stats["polls"],
        "expected_requests": len(ids) * (params["pending_polls"] + 1),
        "rate": window_counts(sorted(stats["poll_times"]), params["rate_limit"]),
        "time_to_hash_s": {
            "p50": round(percentile(to_hash, 50), 3),
            "p90": round(percentile(to_hash, 90), 3),
            "p99": round(percentile(to_hash, 99), 3),
            "max": round(max(to_hash), 3) if to_hash else None,
            "mean": round(sum(to_hash) / len(to_hash), 3) if to_hash else None,
            "median": round(median(to_hash), 3),
        },
        "rss_kib": {
            "before": rss_before,
            "after_watch_calls": rss_watching,
            "all_done": rss_done,
            "after_close": rss_closed,
            "peak": peak_rss_kib(),
        },
        "added_rss_kib": added_kib,
        "added_rss_bytes_per_watch": round(added_kib * 1024 / len(ids)),
    }


async def _stall(every: float, block: float) -> None:
    """Block the event loop for ``block`` seconds every ``every`` seconds, as CPU work would."""
    while True:
        await asyncio.sleep(every - block)
        time.sleep(block)  # noqa: ASYNC251 - the point: a loop blocked as CPU work blocks it


async def _measure_limit(
    base_url: str, rate_limit: float, watches: int, stall: tuple[float, float] | None
) -> dict[str, Any]:
    """``watches`` ids, each pending once, through ``rate_limit``: the rate the server saw."""
    from instax_async import AsyncSession, BlockchainPoller

    async with AsyncSession("bench-api-key", base_url=base_url) as client:
        await client.blockchain_status("wd_warmup")
        await _bench_get(base_url, "/_bench/reset?pending_polls=1", "POST")
        staller = asyncio.ensure_future(_stall(*stall)) if stall else None
        try:
            async with BlockchainPoller(
                client, concurrency=10, interval=0.05, max_interval=0.1, rate_limit=rate_limit
            ) as poller:
                outcomes = await asyncio.gather(
                    *(poller.watch(f"wd_{n:06d}") for n in range(watches)),
                    return_exceptions=True,
                )
        finally:
            if staller is not None:
                staller.cancel()
                await asyncio.gather(staller, return_exceptions=True)
    stats = await _bench_get(base_url, "/_bench/stats")
    return {
        "rate_limit": rate_limit,
        "watches": watches,
        "stall": None if stall is None else {"every_s": stall[0], "block_s": stall[1]},
        "errors": sum(isinstance(o, BaseException) for o in outcomes),
        **window_counts(sorted(stats["poll_times"]), rate_limit),
    }


def child_limits(quick: bool) -> list[dict[str, Any]]:
    """The rate-limit scenarios (in the child interpreter), against a server of their own."""
    from .server import ServerProcess

    results = []
    with ServerProcess() as server:
        for name, rate, watches, stall in LIMIT_SCENARIOS:
            count = max(20, watches // 4) if quick else watches
            measured = asyncio.run(_measure_limit(server.url, rate, count, stall))
            results.append({"scenario": name, **measured})
    return results


async def _measure_rss(base_url: str, count: int) -> dict[str, Any]:
    """RSS added by ``count`` ``watch()`` calls, read right after them; then the poller closes.

    Not a run to completion (100,000 watches at 1,000 requests/s would take minutes): the
    memory a watch holds is all allocated by ``watch()``, and a poll replaces, not adds.
    """
    from instax_async import AsyncSession, BlockchainPoller

    ids = [f"wd_{n:06d}" for n in range(count)]  # made before the first reading
    async with AsyncSession("bench-api-key", base_url=base_url) as client:
        await client.blockchain_status("wd_warmup")
        gc.collect()
        rss_before = rss_kib()
        started = time.perf_counter()
        async with BlockchainPoller(client, concurrency=32, rate_limit=1000) as poller:
            futures = [poller.watch(tx_id) for tx_id in ids]
            seconds = time.perf_counter() - started
            gc.collect()
            rss_watching = rss_kib()
            for future in futures:
                future.cancel()
    added = rss_watching - rss_before
    return {
        "watched": count,
        "watch_calls_seconds": round(seconds, 3),
        "rss_before_kib": rss_before,
        "rss_after_watch_calls_kib": rss_watching,
        "added_rss_kib": added,
        "added_rss_bytes_per_watch": round(added * 1024 / count),
    }


def child_rss(count: int) -> dict[str, Any]:
    """The memory scenario (in a child interpreter of its own)."""
    from .server import ServerProcess

    with ServerProcess() as server:
        return asyncio.run(_measure_rss(server.url, count))


def child(quick: bool) -> dict[str, Any]:
    """The measurement itself (in the child interpreter)."""
    from .server import ServerProcess

    params = _parameters(quick)
    with ServerProcess(pending_polls=params["pending_polls"]) as server:
        measured = asyncio.run(_measure(server.url, params))
    return {"parameters": params, **measured, "limits": child_limits(quick)}


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run benchmark 3 in a fresh interpreter and return its results (or why it was skipped)."""
    started = time.perf_counter()
    result: dict[str, Any] = {"name": NAME, "title": TITLE, "quick": quick}
    reason = missing_poller()
    if reason is not None:
        log(f"  {NAME}: {reason}")
        return {**result, "skipped": reason}
    params = _parameters(quick)
    command = [sys.executable, "-m", "benchmarks.poller", "--child"]
    if quick:
        command.append("--quick")
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=params["watch_timeout"] + 180,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"poller benchmark failed ({done.returncode}):\n{done.stderr[-4000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"  {NAME}: {measured['watched']} ids watched in {measured['elapsed_seconds']:.1f} s")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.poller", "--rss", str(params["rss_ids"])],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"poller RSS scenario failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    measured["memory"] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, **measured, "wall_seconds": round(time.perf_counter() - started, 1)}


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    if "skipped" in result:
        return f"### {TITLE}\n\nSkipped: {result['skipped']}."
    p = result["parameters"]
    rate = result["rate"]
    tth = result["time_to_hash_s"]
    verdict = "respected" if rate["respects_rate_limit"] else "**exceeded**"
    slowest = rate.get("slowest_full_1s_window")
    slowest = "n/a (shorter than 1 s)" if slowest is None else f"{slowest:,}"
    lines = [
        f"### {TITLE}",
        "",
        f"{result['watched']:,} tx ids, each `pending` for {p['pending_polls']} poll(s) "
        f"then hashed; `BlockchainPoller(concurrency={p['concurrency']}, "
        f"interval={p['interval']}, rate_limit={p['rate_limit']:g})`.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| ids hashed / errors | {result['hashes']:,} / {result['errors']:,} |",
        f"| requests (expected) | {result['server_requests']:,} "
        f"({result['expected_requests']:,}) |",
        f"| mean req/s (rate_limit {p['rate_limit']:g}) | {rate.get('mean_rps') or 0:,.0f} |",
        f"| busiest 1-s window (limit {verdict}) | {rate.get('busiest_1s_window', 0):,} |",
        f"| slowest full 1-s window | {slowest} |",
        f"| time to hash p50 / p90 / p99 / max (s) | {tth['p50']:.2f} / {tth['p90']:.2f} / "
        f"{tth['p99']:.2f} / {tth['max'] or 0:.2f} |",
        f"| median time to hash / total run time | {tth['median']:.2f} / "
        f"{result['elapsed_seconds']:.2f} s = "
        f"**{tth['median'] / result['elapsed_seconds']:.2f}** (target ≤ 0.60) |",
        f"| added RSS after {result['watched']:,} watch() calls | "
        f"{result['added_rss_kib'] / 1024:.1f} MiB "
        f"({result['added_rss_bytes_per_watch']:,} B per id) |",
        f"| RSS before / all done / after close (MiB) | "
        f"{result['rss_kib']['before'] / 1024:.1f} / {result['rss_kib']['all_done'] / 1024:.1f}"
        f" / {result['rss_kib']['after_close'] / 1024:.1f} |",
        f"| smallest gap between two requests | {rate.get('smallest_gap_ms') or 0:.3f} ms |",
    ]
    memory = result.get("memory")
    if memory:
        verdict = "meets" if memory["added_rss_kib"] * 1024 < 150e6 else "misses"
        lines.append(
            f"| added RSS after {memory['watched']:,} watch() calls (fresh interpreter; read "
            "right after the calls, then the poller is closed, not run to completion) | "
            f"{memory['added_rss_kib'] / 1024:.1f} MiB ({memory['added_rss_bytes_per_watch']:,} B"
            f" per id; {verdict} < 150 MB) |"
        )
    limits = result.get("limits")
    if limits:
        lines += ["", limits_markdown(limits)]
    return "\n".join(lines)


def limits_markdown(limits: list[dict[str, Any]]) -> str:
    """The table of the rate-limit scenarios: what the server counted."""
    lines = [
        "The rate limit as the server counts it: the most requests in any closed 1-s window "
        "`[t, t + 1]` (must be <= `rate_limit`). *stalls*: a task blocks the event loop for "
        "40 ms every 200 ms.",
        "",
        "| scenario | rate_limit | requests | busiest 1-s window | mean req/s "
        "| smallest gap (ms; 1/rate_limit) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for item in limits:
        verdict = "" if item["respects_rate_limit"] else " **exceeded**"
        lines.append(
            f"| {item['scenario']} | {item['rate_limit']:g} | {item['requests']:,} "
            f"| {item['busiest_1s_window']:,}{verdict} | {item['mean_rps'] or 0:,.1f} "
            f"| {item['smallest_gap_ms'] or 0:.1f}; {1000 / item['rate_limit']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.poller [--quick] [--child]`` (``--child``: print JSON only)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.poller")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", action="store_true", help="measure here, print one JSON line")
    parser.add_argument(
        "--limits-only", action="store_true", help="only the rate-limit scenarios, in this process"
    )
    parser.add_argument(
        "--rss",
        type=int,
        metavar="N",
        help="only the memory scenario with N watches: one JSON line",
    )
    args = parser.parse_args(argv)
    if args.rss:
        print(json.dumps(child_rss(args.rss)))
        return
    if args.limits_only:
        limits = child_limits(args.quick)
        print(json.dumps(limits) if args.child else limits_markdown(limits))
        return
    if args.child:
        print(json.dumps(child(args.quick)))
        return
    result = run(args.quick)
    print(markdown(result))


if __name__ == "__main__":
    main()
