"""``python -m benchmarks.hostile_bodies``: what hostile response bodies cost a client.

Not part of ``python -m benchmarks``: it measures a defence, not speed. A server in a process of
its own answers ``GET /utils/blockchain-status?txId=<kind>`` with a hostile body; for each
transport and kind, a fresh client process calls ``blockchain_status(kind)`` once (timeout 3 s,
no retries, default ``max_response_bytes``) and reports the error it got, how long that took
and how much its peak resident memory (``VmHWM``) grew over the resident memory it had just
before the call (after one ordinary request, so imports and the connection pool are counted
out).

Kinds:

- ``endless``: a chunked body that never ends, 64 KiB chunks as fast as the socket takes them;
- ``gzip-bomb``: about 1 MiB of gzip that inflates to 1 GiB (``Content-Length`` true);
- ``deflate-bomb``: the same as a zlib ``deflate`` body;
- ``huge-length``: ``Content-Length: 10 GiB``, then zeros;
- ``drip``: a chunked body of one byte every 10 ms, forever (only the timeout can end it).

``--transport`` and ``--kind`` narrow the run; ``--timeout`` changes the client's timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
KINDS = ("endless", "gzip-bomb", "deflate-bomb", "huge-length", "drip")
TRANSPORTS = ("aiohttp", "httpx")
INFLATED = 1024 * 1024 * 1024  # what the bombs inflate to
_CHUNK = 64 * 1024


def _bomb(wbits: int) -> bytes:
    """1 GiB of zeros, compressed as gzip (``wbits=31``) or zlib (``wbits=15``)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(INFLATED // len(block))]
    parts.append(compressor.flush())
    return b"".join(parts)


# -- the server (its own process) ------------------------------------------------------------


async def _serve() -> None:
    from aiohttp import web

    gzip_bomb, deflate_bomb = _bomb(31), _bomb(15)
    zeros = bytes(_CHUNK)

    async def handle(request: web.Request) -> web.StreamResponse:
        kind = request.query.get("txId", "")
        if kind == "ok":
            return web.json_response({"txId": "ok", "status": "pending"})
        if kind in ("gzip-bomb", "deflate-bomb"):
            body = gzip_bomb if kind == "gzip-bomb" else deflate_bomb
            encoding = "gzip" if kind == "gzip-bomb" else "deflate"
            return web.Response(
                body=body,
                headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
            )
        headers = {"Content-Type": "application/json"}
        if kind == "huge-length":
            headers["Content-Length"] = str(10 * INFLATED)
        response = web.StreamResponse(headers=headers)
        if kind != "huge-length":
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            while True:
                if kind == "drip":
                    await response.write(b" ")
                    await asyncio.sleep(0.01)
                else:
                    await response.write(zeros)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        return response

    app = web.Application()
    app.router.add_get("/utils/blockchain-status", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await runner.cleanup()


# -- one client measurement (its own process) ------------------------------------------------


def _status_kib(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} not in /proc/self/status")  # pragma: no cover


async def _measure(port: int, transport_name: str, kind: str, timeout: float) -> dict[str, Any]:
    from instax_async import AiohttpTransport, AsyncSession, InstaxError, RetryPolicy

    if transport_name == "httpx":
        from instax_async.transports.httpx import HttpxTransport

        transport: Any = HttpxTransport()
    else:
        transport = AiohttpTransport()
    async with AsyncSession(
        base_url=f"http://127.0.0.1:{port}",
        transport=transport,
        timeout=timeout,
        retry=RetryPolicy(max_retries=0),
    ) as client:
        await client.blockchain_status("ok")
        before = _status_kib("VmRSS")
        start = time.perf_counter()
        try:
            await client.blockchain_status(kind)
            outcome = "no error"
        except InstaxError as exc:
            outcome = type(exc).__name__
        seconds = time.perf_counter() - start
        peak = _status_kib("VmHWM")
    await transport.aclose()
    return {
        "transport": transport_name,
        "kind": kind,
        "error": outcome,
        "seconds": round(seconds, 3),
        "peak_growth_mib": round(max(0, peak - before) / 1024, 1),
    }


# -- the driver ------------------------------------------------------------------------------


def _run_case(port: int, transport: str, kind: str, timeout: float) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO_ROOT)])),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.hostile_bodies",
            "--client",
            str(port),
            "--transport",
            transport,
            "--kind",
            kind,
            "--timeout",
            str(timeout),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout + 120,
        check=False,
    )
    if done.returncode != 0:
        return {
            "transport": transport,
            "kind": kind,
            "error": f"crashed: {done.stderr[-500:]}",
            "seconds": None,
            "peak_growth_mib": None,
        }
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print a table (or, internally, serve or measure one case)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile_bodies")
    parser.add_argument("--transport", choices=TRANSPORTS, action="append")
    parser.add_argument("--kind", choices=KINDS, action="append")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve())
        return 0
    if args.client:
        result = asyncio.run(_measure(args.client, args.transport[0], args.kind[0], args.timeout))
        print(json.dumps(result))
        return 0
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.hostile_bodies", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        results = [
            _run_case(port, transport, kind, args.timeout)
            for transport in args.transport or TRANSPORTS
            for kind in args.kind or KINDS
        ]
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    print(f"timeout {args.timeout:g} s, default max_response_bytes; peak RSS growth of the client")
    print(f"{'transport':<9} {'body':<13} {'error':<22} {'seconds':>8} {'peak MiB':>9}")
    for row in results:
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.2f}"
        growth = "-" if row["peak_growth_mib"] is None else f"{row['peak_growth_mib']:.1f}"
        print(
            f"{row['transport']:<9} {row['kind']:<13} {row['error'][:22]:<22} "
            f"{seconds:>8} {growth:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
