"""Benchmark 4: what ``import instax_async`` costs, against ``import aiohttp`` alone.

Each import runs in a fresh interpreter (``python -X importtime -c "import X"``), alternating
between the two, several times; one discarded run first warms the bytecode caches. Bytecode is
cached in a temporary ``PYTHONPYCACHEPREFIX`` even when ``PYTHONDONTWRITEBYTECODE`` is set:
otherwise an editable install recompiles every SDK module on each import while aiohttp's wheel
comes with bytecode, which would charge the SDK ~15 ms that no installed user pays. Reported:
the median cumulative import time of the top-level module, the SDK's own overhead (the
difference: the SDK imports aiohttp itself), and the modules only the SDK's import loads,
by median self time (where the overhead comes from).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ._util import REPO_ROOT, median

NAME = "import_time"
TITLE = "Import time (python -X importtime, fresh interpreter)"
#: What is timed: the floor, the package alone (lazy: it loads little), what users write.
STATEMENTS = {
    "aiohttp": "import aiohttp",
    "instax_async": "import instax_async",
    "from_instax_async": "from instax_async import AsyncSession, SessionRequest",
}
#: The most ``from instax_async import AsyncSession, SessionRequest`` may add over
#: ``import aiohttp`` (ms).
TARGET_MS = 10.0


def import_profile(
    statement: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> dict[str, tuple[int, int, int]]:
    """``{name: (self µs, cumulative µs, depth)}`` for one fresh run of ``statement``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    table: dict[str, tuple[int, int, int]] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        table[name.strip()] = (int(self_us), int(cumulative_us), depth)
    return table


def instruction_count(statement: str, env: dict[str, str], timeout: float = 600.0) -> int:
    """Instructions a fresh interpreter executes for ``python -c statement`` (valgrind)."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-c",
            statement,
        ],
        cwd=REPO_ROOT,
        env={**env, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def total_us(profile: dict[str, tuple[int, int, int]]) -> int:
    """Everything the interpreter imported: the sum of the top-level imports' cumulative
    times (start-up's own imports, the same for every statement, cancel out in differences)."""
    return sum(cumulative for _self, cumulative, depth in profile.values() if depth == 0)


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run benchmark 4 and return its results."""
    started = time.perf_counter()
    runs = 2 if quick else 15
    profiles: dict[str, list[dict[str, tuple[int, int, int]]]] = {k: [] for k in STATEMENTS}
    with tempfile.TemporaryDirectory(prefix="instax-bench-pycache-") as pycache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        for statement in STATEMENTS.values():
            import_profile(statement, env)  # warm-up: writes the bytecode, fills the file cache
        for index in range(runs):
            keys = list(STATEMENTS)
            for key in keys if index % 2 == 0 else keys[::-1]:  # order alternated
                profiles[key].append(import_profile(STATEMENTS[key], env))
        # the same imports in instructions, which the machine's load does not move (the
        # bytecode is warm from the runs above); "pass" is the interpreter's own start-up
        instructions: dict[str, int] = {}
        if not quick and shutil.which("valgrind") is not None:
            log(f"  {NAME}: instruction counts (valgrind)")
            for key, statement in {"pass": "pass", **STATEMENTS}.items():
                instructions[key] = instruction_count(statement, env)
    totals = {k: [total_us(p) for p in profiles[k]] for k in STATEMENTS}
    medians = {k: median(values) for k, values in totals.items()}
    # per run (the statements of one run ran back to back): the SDK's time over aiohttp's
    overheads = {
        key: [sdk - bare for sdk, bare in zip(totals[key], totals["aiohttp"], strict=True)]
        for key in ("instax_async", "from_instax_async")
    }

    # Modules the users' import loads that plain aiohttp's does not, by median self time.
    aiohttp_modules = set().union(*(p.keys() for p in profiles["aiohttp"]))
    self_times: dict[str, list[int]] = defaultdict(list)
    for profile in profiles["from_instax_async"]:
        for name, (self_us, _cumulative, _depth) in profile.items():
            if name not in aiohttp_modules:
                self_times[name].append(self_us)
    extra = sorted(
        ((name, median(values)) for name, values in self_times.items()),
        key=lambda item: -item[1],
    )
    groups: dict[str, float] = defaultdict(float)
    for name, us in extra:
        groups[name.split(".")[0]] += us
    log(f"  {NAME}: {runs} runs of each done")
    return {
        "name": NAME,
        "title": TITLE,
        "quick": quick,
        "parameters": {
            "runs": runs,
            "statements": STATEMENTS,
            "command": 'python -X importtime -c "<statement>"',
            "bytecode": "cached (temporary PYTHONPYCACHEPREFIX, warmed by a discarded run)",
        },
        "total_us": totals,
        "median_us": {k: round(v) for k, v in medians.items()},
        "overhead_us": {
            key: {
                "median": round(median(values)),
                "min": min(values),
                "max": max(values),
            }
            for key, values in overheads.items()
        },
        "target_ms": TARGET_MS,
        "sdk_only_modules_by_package_us": {
            k: round(v) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])
        },
        "sdk_only_modules_top_us": {name: round(us) for name, us in extra[:15]},
        "instructions": instructions,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    medians = result["median_us"]
    over = result["overhead_us"]
    packages = list(result["sdk_only_modules_by_package_us"].items())[:6]

    def spread(key: str) -> str:
        o = over[key]
        return f"{o['median'] / 1000:+.1f} [{o['min'] / 1000:+.1f}..{o['max'] / 1000:+.1f}]"

    met = over["from_instax_async"]["median"] / 1000 <= result["target_ms"]
    lines = [
        f"### {TITLE}",
        "",
        f"Median of {result['parameters']['runs']} fresh interpreters each, the statements "
        "interleaved; everything each statement imported (the top-level imports' cumulative "
        "times). Over aiohttp: per run, [min..max] in brackets.",
        "",
        "| statement | ms | over `import aiohttp` (ms) |",
        "|---|---:|---:|",
        f"| `import aiohttp` | {medians['aiohttp'] / 1000:.1f} | |",
        f"| `import instax_async` (lazy: loads a name on first use) "
        f"| {medians['instax_async'] / 1000:.1f} | {spread('instax_async')} |",
        f"| `from instax_async import AsyncSession, SessionRequest` "
        f"| {medians['from_instax_async'] / 1000:.1f} | {spread('from_instax_async')} "
        f"({'meets' if met else 'misses'} ≤ +{result['target_ms']:g}) |",
        "",
        "Loaded by the `from` import and not by `import aiohttp` (median self time, ms): "
        + ", ".join(f"{name} {us / 1000:.1f}" for name, us in packages)
        + ".",
    ]
    counts = result.get("instructions")
    if counts:
        # this run's rate: aiohttp's import instructions (start-up taken out) per median ms
        per_ms = (counts["aiohttp"] - counts["pass"]) / (medians["aiohttp"] / 1000)
        extra_sdk = counts["from_instax_async"] - counts["aiohttp"]
        estimate = extra_sdk / per_ms
        lines += [
            "",
            "In instructions (valgrind, one fresh interpreter each; the machine's load does not "
            "move them): `import aiohttp` executes "
            f"{(counts['aiohttp'] - counts['pass']) / 1e6:,.1f} M beyond the interpreter's "
            f"start-up, `from instax_async import AsyncSession, SessionRequest` "
            f"{extra_sdk / 1e6:+,.1f} M more: {estimate:+.1f} ms at the rate `import aiohttp` "
            f"ran in this run ({'meets' if estimate <= result['target_ms'] else 'misses'} "
            f"≤ +{result['target_ms']:g}).",
        ]
    return "\n".join(lines)
