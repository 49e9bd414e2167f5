"""Client instructions per request, counted by valgrind: a measure that the machine's load
cannot move.

``python -m benchmarks.instructions [--concurrency 1] [--contender NAME ...]`` runs each
contender of :mod:`benchmarks.session_create` in a fresh client process under
``valgrind --tool=cachegrind --cache-sim=no`` twice, with ``--small`` and ``--large`` requests
after the same warm-up, against the stand-in server (its own process, not under valgrind), and
prints the difference of the two instruction counts over the difference of the requests: the
client's instructions per request, with start-up, imports and warm-up cancelled out. Slow
(valgrind runs Python some 50 times slower); not part of ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from . import session_create
from .server import ServerProcess

REPO = Path(__file__).resolve().parent.parent


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
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=REPO)
        summary = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        assert summary is not None
        return int(summary.group(1))


def main(argv: list[str] | None = None) -> None:
    """Print each contender's client instructions per request (and the ratio to bare)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--contender", action="append")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:  # the process under valgrind
        asyncio.run(_client(args.client, args.url, args.requests, args.concurrency))
        return
    names = args.contender or [session_create.SDK, session_create.BARE]
    per: dict[str, float] = {}
    with ServerProcess() as server:
        for name in names:
            small = _count(name, server.url, args.small, args.concurrency)
            large = _count(name, server.url, args.large, args.concurrency)
            per[name] = (large - small) / (args.large - args.small)
    bare = per.get(session_create.BARE)
    for name, count in per.items():
        ratio = f"{count / bare:.3f}" if bare else "-"
        print(f"{name:36s} {count:10,.0f} instructions/request  {ratio} of bare")


if __name__ == "__main__":
    main()
