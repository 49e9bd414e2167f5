"""Client instructions per request, counted by valgrind: a measure that the machine's load
cannot move.

``python -m benchmarks.instructions [--concurrency 1] [--contender NAME ...]`` runs each
contender of :mod:`benchmarks.session_create` in a fresh client process under
``valgrind --tool=cachegrind --cache-sim=no`` twice, with ``--small`` and ``--large`` requests
after the same warm-up, against the stand-in server (its own process, not under valgrind), and
prints the difference of the two instruction counts over the difference of the requests: the
client's instructions per request, with start-up, imports and warm-up cancelled out. Slow
(valgrind runs Python some 50 times slower): ``python -m benchmarks`` runs it (the plain SDK,
the hooks + WARNING row and bare aiohttp at concurrency 1 and 100) when valgrind is installed,
and skips it in ``--quick`` runs. Repeated runs of one contender agree within about 2 %
(event-loop iterations depend on when the server's answers arrive).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
SMALL, LARGE = 200, 1200


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


def count_per_request(
    names: tuple[str, ...] | list[str], concurrency: int, small: int = SMALL, large: int = LARGE
) -> dict[str, float]:
    """Each contender's client instructions per request, against one stand-in server."""
    per: dict[str, float] = {}
    with ServerProcess() as server:
        for name in names:
            first = _count(name, server.url, small, concurrency)
            second = _count(name, server.url, large, concurrency)
            per[name] = (second - first) / (large - small)
    return per


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
        per = count_per_request(CONTENDERS, concurrency)
        bare = per[session_create.BARE]
        sdk = per[session_create.SDK]
        table[str(concurrency)] = {
            "per_request": {name: round(count) for name, count in per.items()},
            "sdk_vs_bare": round(sdk / bare, 3),
            "hooks_vs_sdk": round(per[session_create.SDK_HOOKS] / sdk, 3),
            "target_vs_bare": session_create.CPU_TARGETS.get(concurrency),
        }
    result.update(
        parameters={"small": SMALL, "large": LARGE, "contenders": list(CONTENDERS)},
        summary=table,
        wall_seconds=round(time.perf_counter() - started, 1),
    )
    return result


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
        "counts; repeated runs of one contender agree within about 2 % (the event loop's "
        "iterations depend on when the server's answers arrive).",
        "",
        "| concurrency | client | instructions/request | over bare aiohttp | over plain SDK |",
        "|---:|---|---:|---:|---:|",
    ]
    for concurrency, row in result["summary"].items():
        bare = row["per_request"][session_create.BARE]
        sdk = row["per_request"][session_create.SDK]
        for name, count in row["per_request"].items():
            over_bare = f"{count / bare:.3f}"
            over_sdk = ""
            if name == session_create.SDK and row["target_vs_bare"] is not None:
                ok = row["sdk_vs_bare"] <= row["target_vs_bare"]
                over_bare += f" ({'meets' if ok else 'misses'} ≤ {row['target_vs_bare']:.2f})"
            if name == session_create.SDK_HOOKS:
                ok = row["hooks_vs_sdk"] <= session_create.HOOKS_TARGET
                verdict = "meets" if ok else "misses"
                over_sdk = f"{count / sdk:.3f} ({verdict} ≤ {session_create.HOOKS_TARGET:.2f})"
            lines.append(f"| {concurrency} | {name} | {count:,} | {over_bare} | {over_sdk} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print each contender's client instructions per request (and the ratio to bare)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--small", type=int, default=SMALL)
    parser.add_argument("--large", type=int, default=LARGE)
    parser.add_argument("--contender", action="append")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:  # the process under valgrind
        asyncio.run(_client(args.client, args.url, args.requests, args.concurrency))
        return
    names = args.contender or [session_create.SDK, session_create.BARE]
    per = count_per_request(names, args.concurrency, args.small, args.large)
    bare = per.get(session_create.BARE)
    for name, count in per.items():
        ratio = f"{count / bare:.3f}" if bare else "-"
        print(f"{name:36s} {count:10,.0f} instructions/request  {ratio} of bare")


if __name__ == "__main__":
    main()
