"""Instructions per webhook verification and per delivery, counted by valgrind: measures that
the machine's load cannot move.

``python -m benchmarks.webhook_instructions verify`` runs ``webhooks.verify`` and the naive check
(:mod:`benchmarks.webhook_verify`) on each payload in fresh processes under ``valgrind
--tool=cachegrind --cache-sim=no``, twice with different numbers of calls after the same
warm-up, and prints the difference of the instruction counts over the difference of the calls.

``python -m benchmarks.webhook_instructions receiver [--concurrency 10]`` does the same for the
receiver process of :mod:`benchmarks.webhook_receiver` (under valgrind; the load comes from this
process, from ``--concurrency`` worker tasks, 1 by default), once per route: instructions per
delivery, SDK receiver and bare handler.

Slow (valgrind runs Python some 50 times slower, a few minutes in all); not part of
``python -m benchmarks``. C loops over bytes (``translate``, ``replace``) count more here than
they weigh in wall-clock time, and interpreted Python less.
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

import aiohttp

from .session_create import drive
from .webhook_receiver import PATHS, deliveries

REPO = Path(__file__).resolve().parent.parent
VALGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
_ENV = {**os.environ, "PYTHONPATH": str(REPO)}

_CALLS = r"""
import sys
from benchmarks import webhook_verify as wv
from instax_async import webhooks
label, name, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
if label == "documented":
    body, signature, secret = wv.documented_payload()
else:  # "64 KiB" as the sender writes it; "64 KiB py" with json.dumps's number text
    body, secret = wv.large_payload(python_numbers=label.endswith("py")), wv.SECRET
    signature = webhooks.sign(body, secret)
function = {
    "verify": lambda: webhooks.verify(body, signature, secret),
    "naive": lambda: wv.naive_signature(body, secret),
}[name]
for _ in range(3 + calls):
    function()
"""


def _summary(out: Path) -> int:
    found = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
    assert found is not None
    return int(found.group(1))


def _count_calls(label: str, name: str, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cachegrind.out"
        command = [*VALGRIND, f"--cachegrind-out-file={out}", sys.executable, "-c", _CALLS]
        command += [label, name, str(calls)]
        subprocess.run(command, check=True, capture_output=True, env=_ENV, cwd=REPO)
        return _summary(out)


async def _deliver(url: str, count: int, concurrency: int) -> None:
    batch = iter(deliveries(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def deliver() -> None:
            body, headers = next(batch)
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")

        await drive(deliver, count, concurrency)


def _count_deliveries(path: str, count: int, concurrency: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cachegrind.out"
        command = [*VALGRIND, f"--cachegrind-out-file={out}", sys.executable, "-m"]
        command += ["benchmarks.webhook_receiver", "--port", "0"]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_ENV,
            cwd=REPO,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            port = int(process.stdout.readline())
            asyncio.run(_deliver(f"http://127.0.0.1:{port}{path}", count, concurrency))
        finally:
            process.stdin.close()  # the server stops on EOF and writes its counts
            process.wait(timeout=300)
            process.stdout.close()
        return _summary(out)


def main(argv: list[str] | None = None) -> None:
    """Print instructions per call (``verify``) or per delivery (``receiver``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_instructions")
    parser.add_argument("what", choices=["verify", "receiver"])
    parser.add_argument(
        "--concurrency", type=int, default=1, help="receiver: deliveries in flight (default 1)"
    )
    args = parser.parse_args(argv)
    if args.what == "verify":
        for label, (few, many) in {
            "documented": (100, 600),
            "64 KiB": (2, 12),
            "64 KiB py": (2, 12),
        }.items():
            per = {
                name: (_count_calls(label, name, many) - _count_calls(label, name, few))
                / (many - few)
                for name in ("verify", "naive")
            }
            print(
                f"{label:10s} verify {per['verify']:12,.0f}  naive {per['naive']:12,.0f}  "
                f"verify / naive {per['verify'] / per['naive']:.3f}",
                flush=True,
            )
        return
    few, many = 100, 600
    per = {
        name: (
            _count_deliveries(path, many, args.concurrency)
            - _count_deliveries(path, few, args.concurrency)
        )
        / (many - few)
        for name, path in PATHS.items()
    }
    for name, count in per.items():
        print(f"{name:16s} {count:12,.0f} instructions/delivery")
    sdk, bare = per.values()
    print(f"SDK receiver / bare at concurrency {args.concurrency}: {sdk / bare:.3f}")


if __name__ == "__main__":
    main()
