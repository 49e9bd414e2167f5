"""``python -m benchmarks [--quick] [--only NAME ...]``: run the benchmarks, write the results.

A full run writes ``benchmarks/results/latest.json`` (every number, per round) and
``benchmarks/results/latest.md`` (the tables, headed by a description of the machine) and prints
the tables. ``--quick`` runs every benchmark for a few seconds only to prove the scripts work:
its numbers mean nothing, and it writes ``quick.json`` / ``quick.md`` so that it never replaces
a real run; ``--only`` runs write ``partial.json`` / ``partial.md``. The exit status is 1 if any
benchmark failed (the others still run and are written).

Compare numbers only within one run: the machine, its load and the versions in the header
all move them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from . import (
    celery_watches,
    import_time,
    instructions,
    poller,
    session_create,
    sync_client,
    transport_state,
    webhook_floods,
    webhook_receiver,
    webhook_verify,
)
from ._util import machine

BENCHMARKS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        import_time,
        webhook_verify,
        session_create,
        sync_client,
        instructions,
        webhook_receiver,
        webhook_floods,
        poller,
        celery_watches,
        transport_state,
    )
}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write(path: Path, text: str) -> None:
    """Write atomically (``*.tmp`` then rename), so a failed run leaves the old file whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def machine_markdown(info: dict[str, Any], quick: bool) -> str:
    """The header of the Markdown results: what the numbers were measured on."""
    wall = info.get("total_wall_seconds")
    lines = [
        "## Benchmark results" + (" (QUICK MODE: not meaningful)" if quick else ""),
        "",
        f"- Date: {info['date']}; git {info['git_commit'] or 'unknown'}",
        f"- Machine: {info['cores']} cores ({info['usable_cores']} usable), "
        f"{info['cpu_model']}; {info['platform']}",
        f"- {info['python']}; {info['event_loop']}",
        f"- aiohttp {info['aiohttp']}, httpx {info['httpx']}, attrs {info['attrs']}, "
        f"cattrs {info['cattrs']}, instax-async {info['instax_async']}",
        f"- Load average at start / end: {info['load_average_at_start']} / "
        f"{info.get('load_average_at_end', [])}"
        + (f"; total wall time {wall:.0f} s" if wall is not None else ""),
        "",
        "Compare numbers only within one run. The client and the stand-in server "
        "(`python -m benchmarks.server`) are separate processes on the same machine.",
    ]
    if quick:
        lines += ["", "**Quick mode: a few requests each, to prove the scripts work.**"]
    return "\n".join(lines)


def run(names: list[str], quick: bool, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Run the named benchmarks; return every result (an ``error`` entry for any that failed)."""
    info = machine()
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for name in names:
        log(f"{name}{' (quick)' if quick else ''} ...")
        begun = time.perf_counter()
        try:
            results[name] = BENCHMARKS[name].run(quick=quick, log=log)
        except Exception as exc:  # one failed benchmark must not lose the others' numbers
            log(traceback.format_exc())
            results[name] = {
                "name": name,
                "quick": quick,
                "error": f"{type(exc).__name__}: {exc}",
            }
        log(f"{name}: {time.perf_counter() - begun:.1f} s")
    with contextlib.suppress(OSError):  # no load average on this platform
        info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    info["total_wall_seconds"] = round(time.perf_counter() - started, 1)
    return {"quick": quick, "machine": info, "benchmarks": results}


def to_markdown(report: dict[str, Any]) -> str:
    """Every benchmark's table under the machine header."""
    parts = [machine_markdown(report["machine"], report["quick"])]
    for name, result in report["benchmarks"].items():
        if "error" in result:
            parts.append(f"### {name}\n\nFailed: `{result['error']}`")
        else:
            parts.append(BENCHMARKS[name].markdown(result))
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds in all: proves the scripts work"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--output-dir", type=Path, default=RESULTS_DIR, help="where the results are written"
    )
    args = parser.parse_args(argv)
    names = [name for name in BENCHMARKS if not args.only or name in args.only]

    report = run(names, args.quick)
    stem = "quick" if args.quick else ("partial" if args.only else "latest")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(report)
    _write(
        args.output_dir / f"{stem}.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    )
    _write(args.output_dir / f"{stem}.md", markdown)
    print(markdown)
    seconds = report["machine"]["total_wall_seconds"]
    _log(f"results: {args.output_dir / stem}.json and .md ({seconds} s)")
    failed = [name for name, result in report["benchmarks"].items() if "error" in result]
    if failed:
        _log(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
