"""Profile session creation: where does the SDK spend time that bare aiohttp does not?

``python -m benchmarks.profile_session [--concurrency 1] [--requests 3000] [--top 30]``
profiles (cProfile, in this process) the SDK contender and the bare-aiohttp contender of
:mod:`benchmarks.session_create` against the stand-in server (its own process), then prints,
for each, the functions with the most own time, and the own time per request summed by package
(``instax_async``, ``aiohttp``, ``asyncio``, ``json``, …). The difference between the two
columns is the SDK's cost. cProfile inflates code that makes many small calls, so read it for
where the time goes, and measure any change without the profiler (``python -m benchmarks``).
``--output DIR`` also writes the ``.prof`` files (for ``snakeviz`` or ``pstats``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import session_create
from .server import ServerProcess


def _package(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    path = filename.replace("\\", "/")
    for marker in ("/instax_async/", "/aiohttp/", "/multidict/", "/yarl/", "/attr/", "/cattrs/"):
        if marker in path:
            return marker.strip("/")
    if "/asyncio/" in path:
        return "asyncio"
    if "/json/" in path:
        return "json"
    if "/benchmarks/" in path:
        return "benchmarks (driver)"
    return "other: " + Path(path).name


def by_package(stats: pstats.Stats, requests: int) -> dict[str, float]:
    """Own (tottime) microseconds per request, summed by package."""
    totals: dict[str, float] = defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        totals[_package(filename)] += tottime
    return {k: v / requests * 1e6 for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


async def _profile(
    contender: session_create.Contender, base_url: str, requests: int, concurrency: int
) -> cProfile.Profile:
    await contender.start(base_url)
    try:
        await session_create.drive(contender.call, max(concurrency, 50), concurrency)
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            await session_create.drive(contender.call, requests, concurrency)
        finally:
            profiler.disable()
    finally:
        await contender.stop()
    return profiler


def main(argv: list[str] | None = None) -> None:
    """Profile the SDK and bare aiohttp at one concurrency and print where the time goes."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_session")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--output", type=Path, help="write <contender>-c<N>.prof files here")
    args = parser.parse_args(argv)

    contenders: list[session_create.Contender] = [
        session_create.SdkContender(),
        session_create.BareAiohttpContender(),
    ]
    profiles: dict[str, cProfile.Profile] = {}
    with ServerProcess() as server:
        for contender in contenders:
            profiles[contender.name] = asyncio.run(
                _profile(contender, server.url, args.requests, args.concurrency)
            )

    packages: dict[str, dict[str, float]] = {}
    for name, profiler in profiles.items():
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        packages[name] = by_package(stats, args.requests)
        stats.sort_stats("tottime").print_stats(args.top)
        print(f"==== {name}, concurrency {args.concurrency}, {args.requests} requests ====")
        print(out.getvalue())
        if args.output is not None:
            args.output.mkdir(parents=True, exist_ok=True)
            slug = name.split()[0]
            profiler.dump_stats(args.output / f"{slug}-c{args.concurrency}.prof")

    names = list(packages)
    keys = sorted(
        {k for table in packages.values() for k in table},
        key=lambda k: -max(t.get(k, 0.0) for t in packages.values()),
    )
    print(f"own time per request (µs, under cProfile), concurrency {args.concurrency}")
    print(f"{'package':<28}" + "".join(f"{n:>18}" for n in names) + f"{'difference':>14}")
    rows = [(key, [packages[n].get(key, 0.0) for n in names]) for key in keys]
    rows.append(("total", [sum(packages[n].values()) for n in names]))
    for key, values in rows:
        cells = "".join(f"{v:>18.1f}" for v in values)
        print(f"{key:<28}{cells}{values[0] - values[-1]:>14.1f}")


if __name__ == "__main__":
    main()
