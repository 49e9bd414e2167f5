"""The stand-in InstaXchange server the benchmarks talk to, always in a process of its own.

Run it by hand with ``python -m benchmarks.server --port 0``: it prints the port it bound on
stdout (one line) and serves until SIGTERM/SIGINT, until its stdin is closed (so it never
outlives a benchmark that died), or until ``--max-seconds`` have passed.

Routes (all on 127.0.0.1):

- ``POST /api/session``: reads the body and answers 200 with a small JSON session
  ``{"id": "ps_<n>", ...}``, like the real API.
- ``GET /utils/blockchain-status?txId=…``: ``{"txId": …, "status": "pending"}`` for the first
  ``pending_polls`` polls of each id, then ``{"txId": …, "status": "completed", "hash": …}``.
  The monotonic time of every such request is recorded.
- ``GET /_bench/stats``: request counts and the recorded blockchain-status times
  (``time.monotonic()``, which is system-wide on Linux, so comparable with the client's clock).
- ``POST /_bench/reset?pending_polls=N``: forgets every id and time, sets ``pending_polls``.
  With ``watch_lag=1`` the server also watches its own lateness until the next reset: a task
  wakes every 2 ms, and ``/_bench/stats`` reports the most it woke late (``max_lag``, seconds),
  so that a caller can tell a server that stalled (and time-stamped requests late) from a client
  that sent them late.

:class:`ServerProcess` starts and stops it from a benchmark (``with ServerProcess() as server:``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

_SESSION_TEMPLATE = (
    b'{"id":"ps_%d","status":"initiated","amountDirection":"sending","fromAmount":50.00,'
    b'"fromCurrency":"USD","toAmount":49.12,"toCurrency":"USDT-TRON",'
    b'"address":"TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t","webhookRef":"order-1001",'
    b'"createdAt":"2024-05-22T19:58:54.097Z"}'
)


class _State:
    """Everything the server remembers between requests."""

    def __init__(self, pending_polls: int) -> None:
        self.pending_polls = pending_polls
        self.session_ids = itertools.count(1)
        self.sessions = 0
        self.polls: dict[str, int] = {}
        self.poll_times: list[float] = []
        self.max_lag = 0.0
        self.lag_watch: asyncio.Task[None] | None = None

    async def watch_lag(self) -> None:
        """Record in ``max_lag`` the most the event loop wakes late (ends when cancelled)."""
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.002)
            self.max_lag = max(self.max_lag, time.monotonic() - started - 0.002)


def make_app(pending_polls: int = 1) -> web.Application:
    """The aiohttp application (exposed for tests and for running in-process if ever needed)."""
    state = _State(pending_polls)
    json_type = "application/json"

    async def create_session(request: web.Request) -> web.Response:
        await request.read()
        state.sessions += 1
        body = _SESSION_TEMPLATE % next(state.session_ids)
        return web.Response(body=body, content_type=json_type)

    async def blockchain_status(request: web.Request) -> web.Response:
        state.poll_times.append(time.monotonic())
        tx_id = request.query.get("txId", "")
        seen = state.polls.get(tx_id, 0)
        state.polls[tx_id] = seen + 1
        answer: dict[str, Any] = {"txId": tx_id, "status": "pending"}
        if seen >= state.pending_polls:
            answer["status"] = "completed"
            answer["hash"] = f"0x{abs(hash(tx_id)):064x}"[:66]
        return web.Response(body=json.dumps(answer).encode(), content_type=json_type)

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "sessions": state.sessions,
                "polls": len(state.poll_times),
                "ids": len(state.polls),
                "pending_polls": state.pending_polls,
                "poll_times": state.poll_times,
                "max_lag": state.max_lag,
            }
        )

    async def reset(request: web.Request) -> web.Response:
        state.pending_polls = int(request.query.get("pending_polls", state.pending_polls))
        state.polls = {}
        state.poll_times = []
        state.max_lag = 0.0
        if state.lag_watch is not None:
            state.lag_watch.cancel()
            state.lag_watch = None
        if request.query.get("watch_lag") == "1":
            state.lag_watch = asyncio.create_task(state.watch_lag())
        return web.json_response({"pending_polls": state.pending_polls})

    app = web.Application()
    app.router.add_post("/api/session", create_session)
    app.router.add_get("/utils/blockchain-status", blockchain_status)
    app.router.add_get("/_bench/stats", stats)
    app.router.add_post("/_bench/reset", reset)
    return app


async def serve(app: web.Application, port: int, max_seconds: float) -> None:
    """Serve ``app`` on ``HOST:port``, print the bound port, and stop on SIGTERM/SIGINT, on EOF
    of stdin or after ``max_seconds`` (what every benchmark server process does)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        # EOF on stdin: the parent closed it or died; either way it is time to go.
        try:
            data = os.read(stdin, 65536)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)
            stop.set()

    # /dev/null and the like cannot be watched: then only signals and --max-seconds stop it
    with contextlib.suppress(OSError, ValueError, NotImplementedError):
        loop.add_reader(stdin, on_stdin)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port, backlog=1024)
        await site.start()
        bound = runner.addresses[0][1]
        print(bound, flush=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max_seconds)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.server [--port 0] [--pending-polls 1] [--max-seconds 900]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--pending-polls", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="exit after this long")
    args = parser.parse_args(argv)
    asyncio.run(serve(make_app(args.pending_polls), args.port, args.max_seconds))


class ServerProcess:
    """Start ``python -m benchmarks.server`` in a subprocess; stop it on exit, whatever happens.

    ::

        with ServerProcess() as server:
            ...  # server.url is http://127.0.0.1:<port>

    ``module`` names another server module with the same command line (``--port``,
    ``--max-seconds``; the stand-in server also takes ``--pending-polls``) and protocol.
    """

    def __init__(
        self,
        *,
        pending_polls: int = 1,
        max_seconds: float = 900.0,
        start_timeout: float = 20.0,
        module: str = "benchmarks.server",
    ) -> None:
        self._args = [
            sys.executable,
            "-m",
            module,
            "--port",
            "0",
            "--max-seconds",
            str(max_seconds),
        ]
        if module == "benchmarks.server":
            self._args += ["--pending-polls", str(pending_polls)]
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (to read its CPU time from /proc)."""
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            self._args,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert self._proc.stdout is not None
            ready, _, _ = select.select([self._proc.stdout], [], [], self._start_timeout)
            line = self._proc.stdout.readline() if ready else b""
            if not line.strip().isdigit():
                raise RuntimeError(
                    f"benchmark server did not start within {self._start_timeout:g} s "
                    f"(exit code {self._proc.poll()}, said {line!r})"
                )
        except BaseException:
            self.stop()
            raise
        self.url = f"http://{HOST}:{int(line)}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Ask the server to stop (stdin EOF, then SIGTERM), kill it if it lingers; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a (still running) process has used, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)


if __name__ == "__main__":
    main()
