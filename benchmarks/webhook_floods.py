"""Benchmark: what unauthenticated floods cost the webhook receivers (aiohttp and ASGI/uvicorn).

Each receiver runs with its defaults in a process of its own (``python -m
benchmarks.webhook_floods --serve aiohttp|asgi``: ``webhook_handler`` in an aiohttp
``AppRunner``, or ``webhook_app`` under uvicorn), and this process talks to it over raw
loopback sockets. Two measures:

- **Memory under a flood**: ``connections`` concurrent small signed deliveries first (the
  baseline is the receiver's resident memory, ``VmRSS``, after them, once glibc's
  ``malloc_trim`` handed back what the allocator merely caches: the process trims itself on
  SIGUSR1); then ``connections`` concurrent POSTs of a 1 MiB body with a well-formed wrong
  signature, each sending its head and first 16 KiB at once and the rest a second later.
  Reported: the receiver's peak resident memory during the flood (``VmHWM``, reset just before
  it) over the baseline, its resident memory half a second after the flood over the baseline,
  then the same once trimmed, and the answers the flood got. The same flood is measured
  against a bare aiohttp handler that answers 413 at once (``aiohttp-bare-413``): what aiohttp
  itself costs, the floor for any aiohttp handler.
- **A genuine delivery's latency under hostile load**: ``attackers`` connections POST, again
  and again, bodies of the receiver's default maximum size that are the costliest to verify
  (``{"a": [0.10, 0.10, …]}``, a well-formed wrong signature); meanwhile signed deliveries of
  the documented event (about 1.5 KB) are sent one after another. Reported: their latency
  (median, min, max), and the same without the attack.

``run`` (``python -m benchmarks --only webhook_floods``) measures both receivers;
``python -m benchmarks.webhook_floods`` prints the same tables. The functions are shared with
the tests (``tests/webhooks/test_receiver_floods.py``), which assert the bounds.

Every wait of this side is bounded, and a stalled step raises :class:`Stalled` naming it
rather than hanging. ``asyncio.wait_for`` is not used: before Python 3.12 it returns the
result of an operation that completes as its caller is cancelled, and the cancellation is
lost; an attacker of :func:`measure_latency`, a loop that runs until it is cancelled, then
kept attacking the receiver, and the measure waited for it forever.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import itertools
import json
import logging
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from instax_async._compat import timeout as deadline
from instax_async.webhooks import RECEIVER_MAX_BODY, SIGNATURE_HEADER, sign

from ._util import median
from .webhook_verify import documented_payload

NAME = "webhook_floods"
TITLE = "Webhook receivers under unauthenticated floods"

RECEIVERS = ("aiohttp", "asgi")
#: Not a receiver: an aiohttp handler that answers 413 at once, what aiohttp costs by itself.
BARE = "aiohttp-bare-413"
SECRET = "bench-flood-secret"
WRONG_SIGNATURE = "0" * 32
HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
FLOOD_BODY = 1024 * 1024
FIRST_PART = 16 * 1024
START_TIMEOUT = 60.0
#: How long tasks told to stop may take to end (each is cancelled again every second).
STOP_TIMEOUT = 10.0

_TEMPLATE, _, _ = documented_payload()
_ID = b'"testcompleteddwebhook"'
_serial = itertools.count(1)


class Stalled(Exception):
    """A step of the load generator did not end in time: raised instead of waiting forever."""


@contextlib.asynccontextmanager
async def bounded(step: str, seconds: float) -> AsyncIterator[None]:
    """``async with bounded("the flood", 120):``: the block is cancelled after ``seconds``, and
    :class:`Stalled` names ``step``."""
    try:
        async with deadline(seconds):
            yield
    except TimeoutError as exc:
        raise Stalled(f"{step}: not done within {seconds:g} s") from exc


async def stop(tasks: Iterable[asyncio.Future[Any]], step: str) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling those still running
    again each second (a cancellation that arrives as an await completes can be lost);
    :class:`Stalled` names ``step`` if some are still running after :data:`STOP_TIMEOUT`."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    loop = asyncio.get_running_loop()
    end = loop.time() + STOP_TIMEOUT
    while pending:
        if loop.time() >= end:
            raise Stalled(
                f"{step}: {len(pending)} of {len(tasks)} still running "
                f"{STOP_TIMEOUT:g} s after they were cancelled"
            )
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1)
    await asyncio.gather(*tasks, return_exceptions=True)  # retrieved: none is logged as lost


def raise_fd_limit(wanted: int = 8192) -> None:
    """Allow this process ``wanted`` open files (up to the hard limit): a flood is many sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# ---------------------------------------------------------------- the receiver process


def _trim_on_sigusr1(loop: asyncio.AbstractEventLoop) -> None:
    """On SIGUSR1, hand the memory the C allocator keeps (freed but cached) back to the system,
    so that the resident memory shows what the process still uses (glibc only)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to trim with
        return
    loop.add_signal_handler(signal.SIGUSR1, trim, 0)


async def _bare_413(request: Any) -> Any:
    """The least an aiohttp handler can do with a body it refuses: 413 and close at once."""
    from aiohttp import web

    response = web.json_response({"error": "body too large"}, status=413)
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


async def _stdin_closed() -> None:
    """Until the parent closes this process's stdin (or exits). Started only once the server
    runs: a receiver that fails to start exits at once, and its parent sees no port."""
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def _serve(kind: str, body_timeout: float | None) -> None:
    # Refusals are logged at WARNING: thousands of lines, and their cost, are not measured here.
    logging.basicConfig(level=logging.ERROR)

    async def on_event(event: object) -> None:
        pass

    options: dict[str, Any] = {} if body_timeout is None else {"body_timeout": body_timeout}
    loop = asyncio.get_running_loop()
    _trim_on_sigusr1(loop)
    if kind in ("aiohttp", BARE):
        from aiohttp import web

        from instax_async.integrations.aiohttp import webhook_handler

        app = web.Application()
        handler = _bare_413 if kind == BARE else webhook_handler(SECRET, on_event, **options)
        app.router.add_post("/hook", handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0, backlog=4096)
        await site.start()
        print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
        await _stdin_closed()
        await runner.cleanup()
        return
    import uvicorn

    from instax_async.integrations.asgi import webhook_app

    config = uvicorn.Config(
        webhook_app(SECRET, on_event, **options),
        lifespan="off",
        log_level="error",
        access_log=False,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it
        await asyncio.sleep(0.01)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    await _stdin_closed()
    server.should_exit = True
    await serving


class ReceiverProcess:
    """``with ReceiverProcess("aiohttp") as receiver:``: a receiver with its defaults (and
    ``body_timeout`` if given) in a process of its own, stopped when the block ends."""

    def __init__(self, kind: str, *, body_timeout: float | None = None) -> None:
        if kind not in (*RECEIVERS, BARE):
            raise ValueError(f"kind: expected one of {(*RECEIVERS, BARE)}, got {kind!r}")
        self.kind = kind
        self.body_timeout = body_timeout
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ReceiverProcess:
        command = [sys.executable, "-m", "benchmarks.webhook_floods", "--serve", self.kind]
        if self.body_timeout is not None:
            command += ["--body-timeout", str(self.body_timeout)]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
        }
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], START_TIMEOUT)
        line = self._process.stdout.readline() if ready else ""
        if not line:
            self._stop()
            raise RuntimeError(f"the {self.kind} receiver did not start within {START_TIMEOUT:g} s")
        self.port = int(json.loads(line)["port"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    @property
    def pid(self) -> int:
        """The receiver process's id."""
        assert self._process is not None
        return self._process.pid

    def status_kib(self, field: str) -> int:
        """A memory figure of the receiver (``VmRSS``, ``VmHWM``) in KiB, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"{field} not in /proc/{self.pid}/status")

    async def trimmed_rss_kib(self) -> int:
        """The receiver's ``VmRSS`` once its C allocator handed back what it keeps cached
        (glibc's ``malloc_trim``; elsewhere the plain ``VmRSS``)."""
        os.kill(self.pid, signal.SIGUSR1)
        await asyncio.sleep(0.2)
        return self.status_kib("VmRSS")

    def reset_peak(self) -> bool:
        """Reset the receiver's ``VmHWM`` to its current RSS (``False`` where Linux does not
        let this process do it)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True


# ---------------------------------------------------------------- the clients


def signed_delivery() -> bytes:
    """A complete request: the documented event with a webhookId of its own, signed."""
    body = _TEMPLATE.replace(_ID, b'"whc_flood_%d"' % next(_serial))
    return request_head(len(body), sign(body, SECRET)) + body


def costly_body(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes that takes about as long to verify as any."""
    count = (size - 16) // 5
    body = b'{"a":[' + b",".join([b"0.10"] * count) + b"]"
    return body + b" " * (size - len(body) - 1) + b"}"


def request_head(length: int, signature: str | None) -> bytes:
    """The head of a webhook POST declaring ``length`` bytes, with ``signature`` if given."""
    lines = [
        b"POST /hook HTTP/1.1",
        b"Host: " + HOST.encode(),
        b"Content-Type: application/json",
        b"Content-Length: %d" % length,
    ]
    if signature is not None:
        lines.append(f"{SIGNATURE_HEADER}: {signature}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def post(
    port: int, parts: list[bytes], *, pause: float = 0.0, timeout: float = 30.0
) -> tuple[int | str, dict[str, str]]:
    """Send ``parts`` on a new connection, ``pause`` seconds apart, reading the answer all the
    while: its status and headers, or ``"refused"`` / ``"closed"`` / ``"timeout"`` when none
    came. Connecting and the answer may take ``timeout`` each, the sending its pauses and 5 s
    more; cancelled, it ends at once and closes its connection."""
    try:
        async with deadline(timeout):
            reader, writer = await asyncio.open_connection(HOST, port)
    except (OSError, TimeoutError):
        return "refused", {}

    async def send() -> None:
        for index, part in enumerate(parts):
            if index and pause:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()

    sending = asyncio.ensure_future(send())
    try:
        try:
            async with deadline(timeout):
                status, headers, _ = await _read_answer(reader)
            answer: tuple[int | str, dict[str, str]] = (status, headers)
        except (asyncio.IncompleteReadError, ConnectionError):
            answer = ("closed", {})
        except TimeoutError:
            answer = ("timeout", {})
        with contextlib.suppress(Exception):
            async with deadline(pause * len(parts) + 5):
                await sending
        return answer
    finally:
        sending.cancel()
        writer.transport.abort()  # never waits, whatever is left unsent


async def small_deliveries(port: int, count: int) -> collections.Counter[int | str]:
    """``count`` concurrent signed deliveries, each on a connection of its own: their answers."""
    async with bounded(f"{count} concurrent signed deliveries", 120):
        answers = await asyncio.gather(*(post(port, [signed_delivery()]) for _ in range(count)))
    return collections.Counter(status for status, _ in answers)


async def flood(
    port: int, count: int, *, size: int = FLOOD_BODY, first: int = FIRST_PART, pause: float = 1.0
) -> collections.Counter[int | str]:
    """``count`` concurrent POSTs of a ``size``-byte body with a wrong signature, each sending
    its head and ``first`` bytes at once and the rest ``pause`` seconds later: their answers."""
    body = b"x" * size
    parts = [request_head(size, WRONG_SIGNATURE) + body[:first], body[first:]]
    async with bounded(f"a flood of {count} POSTs of {size} bytes", 120 + pause):
        answers = await asyncio.gather(*(post(port, parts, pause=pause) for _ in range(count)))
    return collections.Counter(status for status, _ in answers)


async def measure_flood(receiver: ReceiverProcess, connections: int) -> dict[str, Any]:
    """The memory figures of one flood (see the module's docstring), in MiB."""
    warm = await small_deliveries(receiver.port, connections)
    await asyncio.sleep(0.3)
    # What the allocator merely caches is handed back first: a lower baseline, so every
    # figure over it errs on the high side.
    baseline = await receiver.trimmed_rss_kib()
    exact_peak = receiver.reset_peak()
    samples = [baseline]

    async def sample() -> None:  # where the peak cannot be reset: the most seen every 5 ms
        while True:
            samples.append(receiver.status_kib("VmRSS"))
            await asyncio.sleep(0.005)

    sampler = asyncio.ensure_future(sample())
    started = time.perf_counter()
    try:
        answers = await flood(receiver.port, connections)
    finally:
        await stop([sampler], "the memory sampler")
    seconds = time.perf_counter() - started
    peak = receiver.status_kib("VmHWM") if exact_peak else max(samples)
    await asyncio.sleep(0.5)
    after = receiver.status_kib("VmRSS")
    trimmed = await receiver.trimmed_rss_kib()
    return {
        "receiver": receiver.kind,
        "connections": connections,
        "warm_up_answers": {str(k): v for k, v in warm.items()},
        "baseline_mib": round(baseline / 1024, 1),
        "peak_over_baseline_mib": round((peak - baseline) / 1024, 1),
        "after_over_baseline_mib": round((after - baseline) / 1024, 1),
        "after_trim_over_baseline_mib": round((trimmed - baseline) / 1024, 1),
        "peak_exact": exact_peak,
        "flood_answers": {str(k): v for k, v in answers.items()},
        "flood_seconds": round(seconds, 2),
    }


async def measure_latency(
    port: int, *, attackers: int, deliveries: int, size: int = RECEIVER_MAX_BODY
) -> dict[str, Any]:
    """Latency of ``deliveries`` signed deliveries sent one after another while ``attackers``
    connections POST costly ``size``-byte bodies again and again (none when ``attackers`` is
    0); seconds."""
    hostile = [request_head(size, WRONG_SIGNATURE) + costly_body(size)]
    answers: collections.Counter[int | str] = collections.Counter()

    async def attack() -> None:  # until cancelled
        while True:
            status, _ = await post(port, hostile)
            answers[status] += 1

    attack_tasks = [asyncio.ensure_future(attack()) for _ in range(attackers)]
    try:
        if attackers:
            await asyncio.sleep(0.5)  # the attack is in full swing
        latencies = []
        statuses: collections.Counter[int | str] = collections.Counter()
        for _ in range(deliveries):
            started = time.perf_counter()
            status, _ = await post(port, [signed_delivery()])
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            await asyncio.sleep(0.05)
    finally:
        await stop(attack_tasks, f"the {attackers} attackers")
    return {
        "attackers": attackers,
        "hostile_body_bytes": size if attackers else 0,
        "latencies_s": [round(x, 4) for x in latencies],
        "median_s": round(median(latencies), 4),
        "min_s": round(min(latencies), 4),
        "max_s": round(max(latencies), 4),
        "answers": {str(k): v for k, v in statuses.items()},
        "hostile_answers": {str(k): v for k, v in answers.items()},
    }


# ---------------------------------------------------------------- the benchmark


def _parameters(quick: bool) -> dict[str, int]:
    if quick:
        return {"connections": 100, "attackers": 10, "deliveries": 3}
    return {"connections": 1000, "attackers": 50, "deliveries": 9}


async def _run(params: dict[str, int], log: Callable[[str], None]) -> dict[str, Any]:
    raise_fd_limit()
    results: dict[str, Any] = {}
    with ReceiverProcess(BARE) as receiver:
        results[BARE] = {"memory": await measure_flood(receiver, params["connections"])}
    for kind in RECEIVERS:
        with ReceiverProcess(kind) as receiver:
            memory = await measure_flood(receiver, params["connections"])
        log(f"  {NAME}: {kind} flood done")
        with ReceiverProcess(kind) as receiver:
            quiet = await measure_latency(
                receiver.port, attackers=0, deliveries=params["deliveries"]
            )
            loaded = await measure_latency(
                receiver.port, attackers=params["attackers"], deliveries=params["deliveries"]
            )
        log(f"  {NAME}: {kind} hostile load done")
        results[kind] = {"memory": memory, "latency_quiet": quiet, "latency_under_attack": loaded}
    return results


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark and return its results (parameters and figures per receiver)."""
    started = time.perf_counter()
    params = _parameters(quick)
    results = asyncio.run(_run(params, log))
    return {
        "name": NAME,
        "title": TITLE,
        "quick": quick,
        "parameters": {**params, "flood_body_bytes": FLOOD_BODY, "max_body": RECEIVER_MAX_BODY},
        "receivers": results,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The Markdown tables of a :func:`run` result."""
    params = result["parameters"]
    lines = [
        f"### {TITLE}",
        "",
        f"Each receiver with its defaults in a process of its own (aiohttp `webhook_handler`, "
        f"ASGI `webhook_app` under uvicorn). Memory: {params['connections']:,} concurrent "
        f"POSTs of a {params['flood_body_bytes'] / 2**20:g} MiB body with a wrong signature "
        "(head and 16 KiB at once, the rest a second later), against the receiver's RSS after "
        f"{params['connections']:,} concurrent small signed deliveries (trimmed: glibc's "
        "`malloc_trim` handed back what the allocator caches). `aiohttp-bare-413` is no "
        "receiver: an aiohttp handler that answers 413 at once, what aiohttp costs by itself.",
        "",
        "| receiver | RSS after small deliveries | peak over it | after the flood, over it "
        "| the same, trimmed | answers to the flood |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for kind, figures in result["receivers"].items():
        memory = figures["memory"]
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(memory["flood_answers"].items()))
        lines.append(
            f"| {kind} | {memory['baseline_mib']:.1f} MiB "
            f"| {memory['peak_over_baseline_mib']:+.1f} MiB "
            f"| {memory['after_over_baseline_mib']:+.1f} MiB "
            f"| {memory['after_trim_over_baseline_mib']:+.1f} MiB | {answers} |"
        )
    lines += [
        "",
        f"Latency of a signed delivery (the documented event) while {params['attackers']} "
        f"connections POST costly {params['max_body'] // 1024} KiB bodies "
        '(`{"a": [0.10, …]}`, wrong signature) again and again; '
        f"{params['deliveries']} deliveries one after another: "
        "median [min..max].",
        "",
        "| receiver | quiet | under attack | hostile bodies answered |",
        "|---|---:|---:|---|",
    ]

    def spread(figures: dict[str, Any]) -> str:
        return (
            f"{figures['median_s'] * 1e3:.0f} ms "
            f"[{figures['min_s'] * 1e3:.0f}..{figures['max_s'] * 1e3:.0f}]"
        )

    for kind, figures in result["receivers"].items():
        if kind == BARE:
            continue
        loaded = figures["latency_under_attack"]
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(loaded["hostile_answers"].items()))
        lines.append(
            f"| {kind} | {spread(figures['latency_quiet'])} | {spread(loaded)} | {answers} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.webhook_floods [--quick]``, or serve one receiver."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_floods")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", choices=(*RECEIVERS, BARE), help=argparse.SUPPRESS)
    parser.add_argument("--body-timeout", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        raise_fd_limit()
        asyncio.run(_serve(args.serve, args.body_timeout))
        return 0
    print(markdown(run(quick=args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
