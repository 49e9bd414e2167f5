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
MODULES = ("instax_async", "aiohttp")


def import_profile(
    module: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> dict[str, tuple[int, int, int]]:
    """``{name: (self µs, cumulative µs, depth)}`` for one fresh ``import module``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
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
    if module not in table:
        raise RuntimeError(f"'import {module}' did not report its own import time")
    return table


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run benchmark 4 and return its results."""
    started = time.perf_counter()
    runs = 2 if quick else 9
    profiles: dict[str, list[dict[str, tuple[int, int, int]]]] = {m: [] for m in MODULES}
    with tempfile.TemporaryDirectory(prefix="instax-bench-pycache-") as pycache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        for module in MODULES:
            import_profile(module, env)  # warm-up: writes the bytecode, fills the file cache
        for _ in range(runs):
            for module in MODULES:
                profiles[module].append(import_profile(module, env))
    cumulative = {m: [p[m][1] for p in profiles[m]] for m in MODULES}
    medians = {m: median(values) for m, values in cumulative.items()}

    # Modules the SDK's import loads that plain aiohttp's does not, by median self time.
    aiohttp_modules = set().union(*(p.keys() for p in profiles["aiohttp"]))
    self_times: dict[str, list[int]] = defaultdict(list)
    for profile in profiles["instax_async"]:
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
            "command": 'python -X importtime -c "import <module>"',
            "bytecode": "cached (temporary PYTHONPYCACHEPREFIX, warmed by a discarded run)",
        },
        "cumulative_us": cumulative,
        "median_us": {m: round(v) for m, v in medians.items()},
        "sdk_overhead_us": round(medians["instax_async"] - medians["aiohttp"]),
        "ratio_sdk_over_aiohttp": round(medians["instax_async"] / medians["aiohttp"], 3),
        "sdk_only_modules_by_package_us": {
            k: round(v) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])
        },
        "sdk_only_modules_top_us": {name: round(us) for name, us in extra[:15]},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    medians = result["median_us"]
    packages = list(result["sdk_only_modules_by_package_us"].items())[:6]
    lines = [
        f"### {TITLE}",
        "",
        f"Median of {result['parameters']['runs']} fresh interpreters each.",
        "",
        "| import | cumulative ms |",
        "|---|---:|",
        f"| `import aiohttp` | {medians['aiohttp'] / 1000:.1f} |",
        f"| `import instax_async` (imports aiohttp) | {medians['instax_async'] / 1000:.1f} |",
        f"| instax_async's own overhead | {result['sdk_overhead_us'] / 1000:.1f} |",
        "",
        "Loaded only by `import instax_async` (median self time, ms): "
        + ", ".join(f"{name} {us / 1000:.1f}" for name, us in packages)
        + ".",
    ]
    return "\n".join(lines)
