"""Client instructions per request, counted by valgrind: a measure that the machine's load
cannot move.

``python -m benchmarks.instructions [--concurrency 1] [--repeats 3] [--contender NAME ...]``
runs each contender of :mod:`benchmarks.session_create` in a fresh client process under
``valgrind --tool=cachegrind --cache-sim=no`` twice, with ``--small`` and ``--large`` requests
after the same warm-up, against the stand-in server (its own process, not under valgrind): the
difference of the two instruction counts over the difference of the requests is the client's
instructions per request, with start-up, imports and warm-up cancelled out.

One such pair of runs of one contender agrees with the next within about 2 % (the event loop's
iterations, timer handling and garbage collections depend on when the server's answers
arrive), so each contender is counted ``--repeats`` times, the contenders' runs interleaved
(repeat 1 of every contender, then repeat 2, ...), two runs at a time (``--jobs``); the result
is the median per contender, with the range, and the ratio of two contenders is given for the
medians and, paired by repeat, as a range. Slow (valgrind runs Python some 50 times slower):
``python -m benchmarks`` runs it (the plain SDK, the hooks + WARNING row and bare aiohttp at
concurrency 1 and 100) when valgrind is installed, and skips it in ``--quick`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import session_create
from .server import ServerProcess

REPO = Path(__file__).resolve().parent.parent

NAME = "instructions"
TITLE = "Client instructions per request (valgrind, POST /api/session)"
#: The concurrencies, the contenders and the requests of the two counted runs.
CONCURRENCIES = (1, 100)
CONTENDERS = (session_create.SDK, session_create.SDK_HOOKS, session_create.BARE)
SMALL, LARGE = 200, 2200
#: Pairs of runs per contender (the median is reported) and valgrind processes at a time.
REPEATS, JOBS = 3, 2


def _contender(name: str) -> session_create.Contender:
    for contender in session_create.contenders():
        if contender.name == name:
            return contender
    raise SystemExit(f"no contender {name!r}")


async def _client(name: str, url: str, requests: int, concurrency: int) -> None:
    contender = _contender(name)
    await contender.start(url)
    try:
        await session_create.drive(contender.call, max(50, concurrency), concurrency)
        await session_create.drive(contender.call, requests, concurrency)
    finally:
        await contender.stop()


def _count(name: str, url: str, requests: int, concurrency: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cachegrind.out"
        command = [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--client",
            name,
            "--url",
            url,
            "--requests",
            str(requests),
            "--concurrency",
            str(concurrency),
        ]
        # a fixed hash seed: one source of run-to-run variation less
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"}
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=REPO)
        summary = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        assert summary is not None
        return int(summary.group(1))


def count_runs(
    names: Sequence[str],
    concurrency: int,
    small: int = SMALL,
    large: int = LARGE,
    repeats: int = REPEATS,
    jobs: int = JOBS,
) -> dict[str, list[float]]:
    """Each contender's client instructions per request, once per repeat (in repeat order),
    against one stand-in server; the runs interleaved across contenders."""
    order = [(repeat, name) for repeat in range(repeats) for name in names]
    with ServerProcess() as server, ThreadPoolExecutor(max_workers=jobs) as pool:

        def pair(item: tuple[int, str]) -> float:
            name = item[1]
            first = _count(name, server.url, small, concurrency)
            second = _count(name, server.url, large, concurrency)
            return (second - first) / (large - small)

        counted = list(pool.map(pair, order))
    runs: dict[str, list[float]] = {name: [] for name in names}
    for (_, name), count in zip(order, counted, strict=True):
        runs[name].append(count)
    return runs


def _ratio(runs: dict[str, list[float]], name: str, base: str) -> dict[str, float]:
    """The ratio of the medians, and the range of the ratios paired by repeat."""
    paired = [count / under for count, under in zip(runs[name], runs[base], strict=True)]
    return {
        "median": round(statistics.median(runs[name]) / statistics.median(runs[base]), 3),
        "min": round(min(paired), 3),
        "max": round(max(paired), 3),
    }


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The counts per concurrency, or why there are none (``--quick``, no valgrind)."""
    result: dict[str, Any] = {"name": NAME, "title": TITLE, "quick": quick}
    if quick:
        result["skipped"] = "not in --quick runs (valgrind takes minutes)"
        return result
    if shutil.which("valgrind") is None:
        result["skipped"] = "valgrind is not installed"
        return result
    started = time.perf_counter()
    table: dict[str, Any] = {}
    for concurrency in CONCURRENCIES:
        log(f"  {NAME}: concurrency {concurrency}")
        runs = count_runs(CONTENDERS, concurrency)
        table[str(concurrency)] = {
            "runs": {name: [round(count) for count in counts] for name, counts in runs.items()},
            "per_request": {
                name: round(statistics.median(counts)) for name, counts in runs.items()
            },
            "sdk_vs_bare": _ratio(runs, session_create.SDK, session_create.BARE),
            "hooks_vs_sdk": _ratio(runs, session_create.SDK_HOOKS, session_create.SDK),
            "target_vs_bare": session_create.CPU_TARGETS.get(concurrency),
        }
    result.update(
        parameters={
            "small": SMALL,
            "large": LARGE,
            "repeats": REPEATS,
            "contenders": list(CONTENDERS),
        },
        summary=table,
        wall_seconds=round(time.perf_counter() - started, 1),
    )
    return result


def _verdict(ratio: dict[str, float], target: float) -> str:
    """Met when the median ratio is within the target; "not shown" when the repeats straddle
    it, since then the counts' spread cannot settle it."""
    if ratio["max"] <= target:
        return f"meets ≤ {target:.2f}"
    if ratio["median"] <= target:
        return f"meets ≤ {target:.2f} in the median, not in every repeat"
    return f"misses ≤ {target:.2f}"


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    if "skipped" in result:
        return f"### {TITLE}\n\nSkipped: {result['skipped']}."
    params = result["parameters"]
    lines = [
        f"### {TITLE}",
        "",
        "Counted by `valgrind --tool=cachegrind` in the client process (the server runs "
        "outside valgrind), the difference between runs of "
        f"{params['large']} and {params['small']} requests after the same warm-up: "
        "start-up, imports and warm-up cancel out. The machine's load does not move these "
        "counts much, but one pair of runs differs from the next by up to about 2 % (the event "
        "loop's iterations depend on when the server's answers arrive): each contender is "
        f"counted {params['repeats']} times, the contenders interleaved. The table gives the "
        "median with the range, and each ratio for the medians with the range of the ratios "
        "paired by repeat.",
        "",
        "| concurrency | client | instructions/request [range] | over bare aiohttp "
        "| over plain SDK |",
        "|---:|---|---:|---:|---:|",
    ]
    for concurrency, row in result["summary"].items():
        for name, count in row["per_request"].items():
            runs = row["runs"][name]
            over_bare = over_sdk = ""
            if name == session_create.SDK:
                ratio = row["sdk_vs_bare"]
                over_bare = _ratio_text(ratio)
                if row["target_vs_bare"] is not None:
                    over_bare += f" ({_verdict(ratio, row['target_vs_bare'])})"
            if name == session_create.SDK_HOOKS:
                ratio = row["hooks_vs_sdk"]
                over_sdk = f"{_ratio_text(ratio)} ({_verdict(ratio, session_create.HOOKS_TARGET)})"
            lines.append(
                f"| {concurrency} | {name} | {count:,} [{min(runs):,}..{max(runs):,}] "
                f"| {over_bare} | {over_sdk} |"
            )
    return "\n".join(lines)


def _ratio_text(ratio: dict[str, float]) -> str:
    return f"{ratio['median']:.3f} [{ratio['min']:.3f}..{ratio['max']:.3f}]"


def main(argv: list[str] | None = None) -> None:
    """Print each contender's client instructions per request (and the ratio to bare)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--small", type=int, default=SMALL)
    parser.add_argument("--large", type=int, default=LARGE)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--contender", action="append")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:  # the process under valgrind
        asyncio.run(_client(args.client, args.url, args.requests, args.concurrency))
        return
    names = args.contender or [session_create.SDK, session_create.BARE]
    runs = count_runs(names, args.concurrency, args.small, args.large, args.repeats, args.jobs)
    bare = session_create.BARE if session_create.BARE in runs else None
    for name, counts in runs.items():
        ratio = _ratio_text(_ratio(runs, name, bare)) if bare else "-"
        each = ", ".join(f"{count:,.0f}" for count in counts)
        print(
            f"{name:36s} {statistics.median(counts):10,.0f} instructions/request "
            f"({each})  {ratio} of bare"
        )


if __name__ == "__main__":
    main()
