"""The command line at its edges: it never shows a traceback.

Closed pipes, Ctrl-C, terminals and logs, unreachable APIs, bad ports, odd arguments and files,
and errors told in the command line's words. Where the behaviour depends on a real process (a
pipe closed by its reader, a signal, a terminal), a real ``python -m instax_async`` runs.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from instax_async import APIConnectionError, __version__
from instax_async.cli import main
from instax_async.cli._core import Interrupted as _Interrupted
from instax_async.cli._core import run as _run
from instax_async.cli._payments import WaitProgress as _WaitProgress
from instax_async.sandbox import Sandbox, SandboxConfig
from instax_async.webhooks import sign

CLI = [sys.executable, "-m", "instax_async"]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def in_thread(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)


def assert_one_line(err: str) -> None:
    assert err.count("\n") == 1, err
    assert "Traceback" not in err and "Unclosed" not in err


async def spawn(*args: str | bytes, **kwargs: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*CLI, *args, **kwargs)


# -- --version, --json everywhere, options that apply -----------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0 and out.startswith(f"instax (instax-async) {__version__}, Python ")


COMMANDS = [
    ["demo"],
    ["session", "create"],
    ["session", "status"],
    ["status"],
    ["sandbox"],
    ["webhook", "sign"],
    ["webhook", "verify"],
    ["webhook", "send"],
    ["doctor"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_offers_json_and_only_the_options_it_uses(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main([*command, "--help"], capsys)
    assert code == 0 and "--json" in out
    uses_api = command[0] in ("session", "status", "doctor")
    assert ("--base-url" in out) is uses_api
    assert ("--api-key" in out) is (uses_api or command == ["sandbox"])
    assert ("--timeout" in out) is (uses_api or command == ["webhook", "send"])


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--base-url", "http://127.0.0.1:9"],
        ["demo", "--api-key", "k"],
        ["--base-url", "http://127.0.0.1:9", "demo"],
        ["sandbox", "--timeout", "3"],
        ["webhook", "sign", "--api-key", "k", "--secret", "s"],
        ["webhook", "verify", "--base-url", "http://x", "--signature", "s"],
    ],
)
def test_options_that_do_not_apply_are_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(argv, capsys)
    if argv[0].startswith("--"):
        assert err.startswith("instax: --base-url goes after the command, e.g. 'instax status")
    else:
        assert code == 2 and "unrecognized arguments" in err
    assert_one_line(err)


def test_json_demo_prints_one_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--json", "demo"], capsys)
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["failed_step"] is None
    paid, declined = report["sessions"]
    assert paid["status"] == "completed" and paid["payout_hash"].startswith("0x")
    assert declined["status"] == "failed" and declined["status_reason"] == "Do Not Honor"
    assert declined["payout_hash"] is None and paid["webhook_verified"] is True


def test_json_demo_reports_a_failed_step(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from instax_async import sandbox

    async def refuse(self: Any) -> str:
        raise sandbox.InstaxError("the sandbox cannot listen on 127.0.0.1:0: refused")

    monkeypatch.setattr(sandbox.Sandbox, "start", refuse)
    code, out, _ = run_main(["demo", "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["failed_step"] == "start the sandbox" and "refused" in report["error"]


# -- human output, errors in the command line's words -----------------------------------------


async def test_human_output_never_prints_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with Sandbox(SandboxConfig(confirmation_polls=5)) as sandbox:
        base = ["--base-url", sandbox.url, "--api-key", "k"]
        create = ["session", "create", "--amount", "5", "--from", "USD", "--to", "USDT"]
        assert await in_thread([*create, *base]) == 0
        session_id = capsys.readouterr().out.split()[0]
        assert await in_thread(["session", "status", session_id, *base]) == 0
        fresh = capsys.readouterr().out
        assert fresh.startswith(f"{session_id}: initiated  5 USD -> 4.85 USDT")
        settled = await sandbox.complete(session_id)
        assert await in_thread(["session", "status", session_id, *base]) == 0
        done = capsys.readouterr().out
        assert "deposit=completed withdraw=completed" in " ".join(done.split())
        assert f"withdraw_tx={settled['withdraw_tx_id']}" in done
        assert await in_thread(["status", settled["withdraw_tx_id"], *base]) == 0
        pending = capsys.readouterr().out
        assert pending.endswith(": pending  hash=-\n")
    sparse = tmp_path / "sparse.json"
    sparse.write_bytes(b'{"webhookId": "wh_1", "data": {"status": "pending"}}')
    signature = sign(sparse.read_bytes(), "s")
    assert main(["webhook", "verify", "--secret", "s", "--signature", signature, str(sparse)]) == 0
    verified = capsys.readouterr().out
    assert verified == "verified: pending\n"
    for out in (fresh, done, pending, verified):
        assert "None" not in out


async def test_api_errors_read_once_in_the_command_lines_words(
    capsys: pytest.CaptureFixture[str], start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INSTAX_API_KEY", raising=False)

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="upstream exploded\nat line 2")

    app = web.Application()
    app.router.add_get("/utils/blockchain-status", broken)
    broken_url = await start_server(app)
    assert await in_thread(["status", "wd_1", "--base-url", broken_url]) == 1
    err = capsys.readouterr().err
    assert err == (
        "instax: ServerError: InstaXchange answered HTTP 500; body: upstream exploded at line 2\n"
    )
    async with Sandbox(SandboxConfig(api_key="right", error_rate=1.0)) as sandbox:
        assert await in_thread(["status", "wd_1", "--base-url", sandbox.url]) == 1
        err = capsys.readouterr().err
        assert err == "instax: ServerError: HTTP 500: sandbox: injected server error\n"
    async with Sandbox(SandboxConfig(api_key="right")) as sandbox:
        argv = ["session", "status", "ps_1", "--base-url", sandbox.url, "--api-key", "wrong"]
        assert await in_thread(argv) == 1
        err = capsys.readouterr().err
        assert err == (
            "instax: AuthenticationError: HTTP 401: missing or wrong x-api-key "
            "(check --api-key or INSTAX_API_KEY)\n"
        )
        assert await in_thread(["session", "status", "ps_1", "--base-url", sandbox.url]) == 2
        err = capsys.readouterr().err
        assert "--api-key" in err and "INSTAX_API_KEY" in err and "AsyncSession" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--amount", "ten"], "instax: --amount: expected a numeric string"),
        (["--amount", "-5"], "instax: --amount: must be greater than 0"),
        (["--amount", "NaN"], "instax: --amount: expected a finite"),
        (["--to", "DOGE"], "(pass --allow-unlisted to send"),
        (["--from", "dollars"], "instax: --from: expected a 3-letter ISO 4217 code"),
        (["--return-url", "javascript:alert(1)"], "instax: --return-url: expected an absolute"),
        (["--email", "nope"], "instax: --email:"),
        (["--timeout", "0"], "argument --timeout: expected seconds > 0, got '0'"),
        (["--timeout", "inf"], "argument --timeout: expected seconds > 0, got 'inf'"),
        (["--base-url", "ftp://x"], "instax: --base-url (or INSTAX_BASE_URL): expected"),
    ],
)
def test_bad_session_input_names_the_option(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["session", "create", "--amount", "5", "--from", "USD", "--to", "USDT"]
    code, _, err = run_main([*base, "--base-url", "http://127.0.0.1:9", *argv], capsys)
    assert code == 2 and expected in err, err
    assert_one_line(err)
    assert "allow_unlisted" not in err and "from_amount" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status", "wd_1", "--interval", "nan"], "--interval: expected seconds > 0"),
        (["status", "wd_1", "--wait-timeout", "-1"], "--wait-timeout: expected seconds > 0"),
        (["status", "wd_1", "--unreachable-timeout", "x"], "--unreachable-timeout: expected"),
        (["status", " "], "instax: TX_ID: expected a non-empty string"),
        (["status", "wd_\udcff"], "instax: TX_ID: not valid UTF-8 text"),
        (
            [
                "session",
                "create",
                "--amount",
                "1",
                "--from",
                "USD",
                "--to",
                "USDT",
                "--email",
                "\udcff",
            ],
            "instax: --email: not valid UTF-8 text",
        ),
        (["sandbox", "--port", "99999"], "expected a port from 0 to 65535"),
        (["sandbox", "--port", "-1"], "expected a port from 0 to 65535"),
        (["sandbox", "--port", "http"], "expected a port from 0 to 65535"),
        (["sandbox", "--confirmation-polls", "-1"], "expected a whole number >= 0"),
        (["sandbox", "--error-rate", "1.5"], "expected a fraction from 0 to 1"),
        (["sandbox", "--latency", "-0.1"], "expected seconds >= 0"),
        (["sandbox", "--retry-after", "nan"], "expected seconds >= 0"),
        (["sandbox", "--webhook-url", "ftp://x"], "instax: --webhook-url: expected an http(s)"),
        ([], "the following arguments are required: command"),
        (["session"], "required"),
    ],
)
def test_odd_arguments_get_one_line_and_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if argv[:1] == ["status"] or argv[:2] == ["session", "create"]:
        argv = [*argv, "--base-url", "http://127.0.0.1:9"]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and expected in err, err
    assert_one_line(err)


def test_a_huge_argument_is_refused_or_sent_never_a_traceback(
    capsys: pytest.CaptureFixture[str], closed_port_url: str
) -> None:
    huge = "x" * 1_000_000
    argv = ["status", huge, "--base-url", closed_port_url, "--timeout", "5"]
    code, _, err = run_main(argv, capsys)
    assert code == 1 and err.startswith("instax: APIConnectionError: ")
    assert_one_line(err)
    assert len(err) < 2000  # the argument is not echoed back in full


# -- the sandbox command: bad and busy ports -------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_sandbox_on_a_busy_port_says_so_in_one_line(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(["sandbox", "--port", str(busy_port)], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"instax: the sandbox cannot listen on 127.0.0.1:{busy_port}: ")
    assert_one_line(err)


@pytest.mark.subprocess
@pytest.mark.parametrize("port", ["99999", "BUSY"])
def test_sandbox_bad_port_as_a_process_leaves_no_warning(port: str, busy_port: int) -> None:
    result = subprocess.run(
        [*CLI, "sandbox", "--port", str(busy_port) if port == "BUSY" else port],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert_one_line(result.stderr)


class _Watched(io.StringIO):
    """A stdout that tells when the sandbox's URL has been printed."""

    def __init__(self) -> None:
        super().__init__()
        self.listening = threading.Event()

    def write(self, text: str) -> int:
        if '"url"' in text:
            self.listening.set()
        return super().write(text)


def _stop_when_listening(listening: threading.Event, signum: int) -> None:
    assert listening.wait(30)
    os.kill(os.getpid(), signum)


def test_sandbox_with_json_and_a_clean_stop(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this (main) thread, as the command runs: SIGTERM and then Ctrl-C stop it cleanly."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        out = _Watched()
        monkeypatch.setattr(sys, "stdout", out)
        stopper = threading.Thread(target=_stop_when_listening, args=(out.listening, signum))
        stopper.start()
        try:
            hooks = ["--webhook-url", "http://127.0.0.1:9"] if signum == signal.SIGTERM else []
            strict = ["--strict"] if signum == signal.SIGINT else []
            code = main(["sandbox", "--port", "0", "--json", "--latency", "0", *hooks, *strict])
        finally:
            stopper.join()
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert code == 0
        assert lines[0]["url"].startswith("http://127.0.0.1:")
        if signum == signal.SIGTERM:
            assert lines[1] == {"webhook_url": "http://127.0.0.1:9", "signed": False}
        else:  # without --webhook-url, the sandbox says that none will be sent
            assert lines[1] == {"webhook_url": None, "signed": False}
            assert lines[2] == {"strict": True}
        assert lines[-1] == {"stopped": True} and len(lines) == 3 + (signum == signal.SIGINT)


# -- status --wait: failures as they happen, a bounded give-up, progress ----------------------


async def test_wait_reports_each_connection_failure_and_gives_up(
    closed_port_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["status", "wd_x", "--wait", "--base-url", closed_port_url, "--interval", "0.05"]
    code = await in_thread([*argv, "--unreachable-timeout", "0.5"])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    failures, verdict = err[:-1], err[-1]
    assert len(failures) >= 2
    for n, line in enumerate(failures, 1):
        assert line.startswith(f"instax: poll {n} failed: APIConnectionError: could not connect")
    assert failures[0].endswith("; trying again") and not failures[-1].endswith("trying again")
    assert verdict.startswith(
        "instax: gave up waiting for wd_x: the API was unreachable for 0.5 s "
        f"(--unreachable-timeout; {len(failures)} failed polls); last error: APIConnectionError: "
    )


def blockchain_app(answers: list[tuple[int, dict[str, Any]]]) -> web.Application:
    """A blockchain-status endpoint that gives ``answers`` in turn, then the last one again."""

    async def status(request: web.Request) -> web.Response:
        code, body = answers.pop(0) if len(answers) > 1 else answers[0]
        return web.json_response(body, status=code)

    app = web.Application()
    app.router.add_get("/utils/blockchain-status", status)
    return app


PENDING = (200, {"status": "pending"})
CONFIRMED = (200, {"status": "confirmed", "hash": "0xabc"})


async def test_wait_goes_on_when_the_api_comes_back(
    closed_port_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = int(closed_port_url.rsplit(":", 1)[1])
    argv = ["status", "wd_x", "--wait", "--base-url", closed_port_url, "--interval", "0.05"]
    waiting = asyncio.create_task(in_thread([*argv, "--unreachable-timeout", "30"]))
    await asyncio.sleep(0.3)  # a few failed polls
    runner = web.AppRunner(blockchain_app([PENDING, CONFIRMED]))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        code = await asyncio.wait_for(waiting, 60)
    finally:
        await runner.cleanup()
    captured = capsys.readouterr()
    assert code == 0 and captured.out == "wd_x: confirmed  hash=0xabc\n"
    lines = captured.err.splitlines()
    assert lines[0] == (
        "instax: poll 1 failed: APIConnectionError: could not connect to "
        f"127.0.0.1:{port}: [Errno 111] Connect call failed ('127.0.0.1', {port}); trying again"
    )
    assert re.fullmatch(r"wd_x: pending \(after \d+ s, \d+ polls\)", lines[-2])
    assert re.fullmatch(r"wd_x: confirmed \(after \d+ s, \d+ polls\)", lines[-1])


async def test_wait_reports_server_errors_as_they_happen(
    start_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    busy = (503, {"message": "maintenance"})
    url = await start_server(blockchain_app([(500, {}), PENDING, busy, CONFIRMED]))
    code = await in_thread(["status", "wd_1", "--wait", "--interval", "0.01", "--base-url", url])
    captured = capsys.readouterr()
    assert code == 0 and captured.out == "wd_1: confirmed  hash=0xabc\n"
    err = [re.sub(r"after \d+ s", "after N s", line) for line in captured.err.splitlines()]
    assert err == [
        "instax: poll 1 failed: ServerError: InstaXchange answered HTTP 500; body: {}; "
        "trying again",
        "wd_1: pending (after N s, 2 polls)",
        "instax: poll 3 failed: ServerError: HTTP 503: maintenance; trying again",
        "wd_1: confirmed (after N s, 4 polls)",
    ]


async def _session(sandbox: Sandbox) -> str:
    from instax_async import AsyncSession, SessionRequest

    async with AsyncSession(base_url=sandbox.url) as client:
        session = await client.create_session(
            SessionRequest.sending(from_amount="5", from_currency="USD", to_currency="USDT")
        )
    return session.id


async def test_wait_off_a_terminal_is_one_line_per_status_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with Sandbox(SandboxConfig(confirmation_polls=3)) as sandbox:
        tx = (await sandbox.complete(await _session(sandbox)))["withdraw_tx_id"]
        argv = ["status", tx, "--wait", "--interval", "0.01", "--base-url", sandbox.url]
        code = await in_thread(argv)
    captured = capsys.readouterr()
    assert code == 0 and captured.out.startswith(f"{tx}: confirmed  hash=0x")
    err = [re.sub(r"after \d+ s", "after N s", line) for line in captured.err.splitlines()]
    assert err == [f"{tx}: pending (after N s, 1 poll)", f"{tx}: confirmed (after N s, 4 polls)"]


async def test_wait_timeout_names_the_option_and_the_last_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with Sandbox(SandboxConfig(confirmation_polls=10_000)) as sandbox:
        tx = (await sandbox.complete(await _session(sandbox)))["withdraw_tx_id"]
        argv = ["status", tx, "--wait", "--interval", "0.05", "--base-url", sandbox.url]
        code = await in_thread([*argv, "--wait-timeout", "0.3"])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[-1].startswith(f"instax: gave up waiting for {tx} after 0.3 s (--wait-timeout; ")
    assert err[-1].endswith("): still pending")


async def test_wait_on_a_failed_payout_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    async with Sandbox() as sandbox:
        tx = (await sandbox.fail(await _session(sandbox)))["withdraw_tx_id"]
        code = await in_thread(["status", tx, "--wait", "--base-url", sandbox.url])
    out = capsys.readouterr().out
    assert code == 1 and out == f"{tx}: failed  hash=-\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_wait_on_a_terminal_redraws_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    config = SandboxConfig(confirmation_polls=0, confirmation_delay=1.5)
    async with Sandbox(config) as sandbox:
        tx = (await sandbox.complete(await _session(sandbox)))["withdraw_tx_id"]
        argv = ["status", tx, "--wait", "--interval", "0.1", "--base-url", sandbox.url]
        code = await in_thread(argv)
    assert code == 0 and capsys.readouterr().out.startswith(f"{tx}: confirmed")
    drawn = [part for part in terminal.getvalue().split("\r\x1b[K") if part]
    assert "\n" not in terminal.getvalue()  # the line is redrawn, never scrolled
    assert drawn[0].startswith(f"waiting for {tx}: ")
    pending = [part for part in drawn if ": pending, " in part]
    polls = {part.rsplit(", ", 1)[1] for part in pending}
    assert len(polls) >= 2  # the line moves although the status does not


def test_wait_progress_line_while_unreachable() -> None:
    now = [0.0]
    terminal = _Terminal()
    progress = _WaitProgress("wd_1", terminal, live=True, clock=lambda: now[0])
    started = progress.poll_started()
    progress.redraw()
    now[0] = 0.2
    progress.failed(started, APIConnectionError("could not connect to x:1: refused"))
    now[0] = 3.4
    assert progress.line() == "waiting for wd_1: no answer yet, 3 s, 1 poll, unreachable for 3 s"
    assert terminal.getvalue() == (
        "\r\x1b[Kwaiting for wd_1: no answer yet, 0 s, 1 poll"
        "\r\x1b[Kinstax: poll 1 failed: APIConnectionError: could not connect to x:1: refused; "
        "trying again\n"
        "\r\x1b[Kwaiting for wd_1: no answer yet, 0 s, 1 poll, unreachable for 0 s"
    )


@pytest.mark.subprocess
async def test_wait_in_a_terminal_process_shows_time_and_polls() -> None:
    """A real terminal (a pty) on stderr: the line moves at least once a second."""
    # the hash comes with the 7th poll: about 4 s at --interval 0.2 growing by 1.5
    config = SandboxConfig(confirmation_polls=6)
    async with Sandbox(config) as sandbox:
        tx = (await sandbox.complete(await _session(sandbox)))["withdraw_tx_id"]
        leader, follower = pty.openpty()
        proc = await spawn(
            "status",
            tx,
            "--wait",
            "--interval",
            "0.2",
            "--base-url",
            sandbox.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=follower,
        )
        os.close(follower)
        out, _ = await proc.communicate()
        screen = await asyncio.to_thread(_drain, leader)
    assert proc.returncode == 0 and out.decode().startswith(f"{tx}: confirmed")
    frames = [part for part in screen.split("\r\x1b[K") if part.strip()]
    assert any(f"waiting for {tx}: pending, 1 s, " in frame for frame in frames), frames
    assert any(f"waiting for {tx}: pending, 2 s, " in frame for frame in frames), frames


def _drain(fd: int) -> str:
    chunks = []
    try:
        while select.select([fd], [], [], 1)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        pass  # EIO: the other side of the pty is closed
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


# -- closed pipes, Ctrl-C, closed stdin, non-UTF-8 input --------------------------------------


async def _closed_pipe_run(argv: list[str], keep_lines: int) -> tuple[int, bytes, bytes]:
    """Run the command with its stdout read by a reader that stops after ``keep_lines``."""
    read_end, write_end = os.pipe()
    proc = await spawn(*argv, stdout=write_end, stderr=asyncio.subprocess.PIPE)
    os.close(write_end)
    kept = b""
    with os.fdopen(read_end, "rb") as reader:
        for _ in range(keep_lines):
            kept += await asyncio.to_thread(reader.readline)
    # the reader is gone: what the command writes from now on meets a closed pipe
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, kept, err


@pytest.mark.subprocess
@pytest.mark.parametrize("keep_lines", [0, 1], ids=["closed-at-once", "head-1"])
async def test_a_closed_pipe_ends_session_create_quietly(keep_lines: int) -> None:
    async with Sandbox() as sandbox:
        argv = ["session", "create", "--amount", "5", "--from", "USD", "--to", "USDT"]
        code, kept, err = await _closed_pipe_run([*argv, "--base-url", sandbox.url], keep_lines)
    assert (code, err) == (0, b"")
    assert kept.startswith(b"ps_") or keep_lines == 0


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("argv", "keep_lines"),
    [(["demo"], 1), (["--help"], 0), (["webhook", "sign", "--secret", "s"], 0)],
    ids=["demo", "help", "webhook-sign"],
)
async def test_a_closed_pipe_ends_other_commands_quietly(
    argv: list[str], keep_lines: int, tmp_path: Path
) -> None:
    if argv[0] == "webhook":
        argv = [*argv, str(_body(tmp_path))]
    code, kept, err = await _closed_pipe_run(argv, keep_lines)
    assert (code, err) == (0, b"")
    assert kept.startswith(b"sandbox   http://127.0.0.1:") or keep_lines == 0


def _body(tmp_path: Path) -> Path:
    path = tmp_path / "body.json"
    path.write_bytes(b'{"webhookId": "wh_1", "data": {"status": "completed"}}')
    return path


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["--version"], 0), (["demo"], 0)],
    ids=["version", "demo"],
)
def test_a_closed_pipe_in_this_process_is_quiet(
    argv: list[str], code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    broken = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", broken)
    try:
        assert main(argv) == code  # the demo stops where the reader left
        broken.write("more")
        broken.flush()  # the descriptor leads to /dev/null now: nothing breaks any more
    finally:
        monkeypatch.undo()
        broken.close()


@pytest.mark.subprocess
async def test_ctrl_c_during_wait_exits_130_quietly() -> None:
    async with Sandbox(SandboxConfig(confirmation_polls=100_000)) as sandbox:
        tx = (await sandbox.complete(await _session(sandbox)))["withdraw_tx_id"]
        proc = await spawn(
            "status",
            tx,
            "--wait",
            "--interval",
            "0.05",
            "--base-url",
            sandbox.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        first = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert first.decode().startswith(f"{tx}: pending (after ")
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130
    assert out == b"" and err == b""


def test_ctrl_c_in_this_process_exits_130(closed_port_url: str) -> None:
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        argv = ["status", "wd_1", "--wait", "--interval", "0.05", "--base-url", closed_port_url]
        assert main(argv) == 130
    finally:
        timer.cancel()


def test_run_turns_sigint_into_interrupted() -> None:
    async def interrupted() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(30)

    with pytest.raises(_Interrupted):
        _run(interrupted())

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        _run(cancelled())


@pytest.mark.subprocess
def test_closed_stdin_gets_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            "sh",
            "-c",
            'exec "$@" <&-',
            "sh",
            *CLI,
            "webhook",
            "verify",
            "--secret",
            "s",
            "--signature",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "instax: no body: standard input is closed; give a FILE\n"


def test_stdin_edge_cases(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    code, _, err = run_main(["webhook", "sign", "--secret", "s"], capsys)
    assert code == 2 and "standard input is closed" in err

    class Keyboard(io.TextIOWrapper):
        def isatty(self) -> bool:
            return True

    body = b'{"webhookId": "wh_1"}'
    monkeypatch.setattr(sys, "stdin", Keyboard(io.BytesIO(body)))
    code, out, err = run_main(["webhook", "sign", "--secret", "s"], capsys)
    assert code == 0 and out.strip() == sign(body, "s")
    assert err == "instax: reading the body from standard input (end it with Ctrl-D)\n"

    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(Broken()))
    code, _, err = run_main(["webhook", "sign", "--secret", "s"], capsys)
    assert code == 2 and err.startswith("instax: cannot read standard input: ")


@pytest.mark.parametrize(
    "body",
    [b'\xff\xfe{"webhookId": 1}', b'{"a": "\xe9t\xe9"}', b"\x00" * 10, b"[" * 100_000],
    ids=["utf16-bom", "latin-1", "nul", "deep"],
)
def test_webhook_files_that_are_not_utf8_json(
    body: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "body.bin"
    path.write_bytes(body)
    code, out, err = run_main(
        ["webhook", "verify", "--secret", "s", "--signature", "0" * 64, str(path)], capsys
    )
    assert code == 1 and out == "" and err.startswith("not verified: ")
    assert_one_line(err)
    code, out, err = run_main(["webhook", "sign", "--secret", "s", str(path)], capsys)
    assert code == 2 and out == "" and err.startswith("instax: ")
    assert_one_line(err)


def test_webhook_files_too_large_or_not_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (2 * 1024 * 1024) + b"{}")
    code, _, err = run_main(["webhook", "sign", "--secret", "s", str(huge)], capsys)
    assert code == 2 and "over 1048576 bytes" in err
    verify = ["webhook", "verify", "--secret", "s", "--signature", "x", str(huge)]
    code, _, err = run_main(verify, capsys)
    assert code == 1 and "over the limit" in err
    code, _, err = run_main(["webhook", "sign", "--secret", "s", str(tmp_path)], capsys)
    assert code == 2 and err.startswith(f"instax: cannot read {tmp_path}: ")


@pytest.mark.subprocess
def test_output_an_encoding_cannot_show(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "demo"],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
    )
    assert result.returncode == 0, result.stderr
    assert b"demo ok" in result.stdout and b"0x" in result.stdout and b"?" in result.stdout
    assert result.stderr == b""


@pytest.mark.subprocess
def test_non_utf8_arguments_as_a_process() -> None:
    result = subprocess.run(
        [*CLI, "status", b"wd_\xff", "--base-url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "instax: TX_ID: not valid UTF-8 text\n"


def test_an_unexpected_error_is_one_line_unless_debugging(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import instax_async.cli._webhooks as cli_webhooks

    def explode(args: Any) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cli_webhooks, "cmd_sign", explode)
    code, _, err = run_main(["webhook", "sign", "--secret", "s", "/dev/null"], capsys)
    assert code == 1 and err.startswith("instax: unexpected RuntimeError: kaboom (a bug in ")
    assert_one_line(err)
    monkeypatch.setenv("INSTAX_DEBUG", "1")
    with pytest.raises(RuntimeError, match="kaboom"):
        main(["webhook", "sign", "--secret", "s", "/dev/null"])


def test_quieting_stdout_copes_with_odd_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    from instax_async.cli import _quiet_closed_stdout

    for stream in (None, io.StringIO()):
        monkeypatch.setattr(sys, "stdout", stream)
        _quiet_closed_stdout()  # nothing to redirect: nothing happens
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["webhook", "sign", "--secret", "s", "/dev/null"]) == 2


def test_argument_types() -> None:
    from argparse import ArgumentTypeError

    from instax_async.cli._core import count as _count
    from instax_async.cli._core import fraction as _fraction
    from instax_async.cli._core import port as _port
    from instax_async.cli._core import seconds as _seconds
    from instax_async.cli._core import seconds_or_zero as _seconds_or_zero

    assert (_seconds("1.5"), _seconds_or_zero("0"), _seconds_or_zero("2")) == (1.5, 0.0, 2.0)
    assert (_fraction("0"), _fraction("0.25"), _fraction("1")) == (0.0, 0.25, 1.0)
    assert (_count("0"), _count("7"), _port("0"), _port("65535")) == (0, 7, 0, 65535)
    for parse, bad in (
        (_seconds, "1e999"),
        (_seconds_or_zero, "-0"),
        (_fraction, "abc"),
        (_fraction, "nan"),
        (_count, "1.5"),
        (_port, "65536"),
    ):
        with pytest.raises(ArgumentTypeError):
            parse(bad)


async def test_wait_ends_at_an_error_that_is_not_transient(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with Sandbox() as sandbox:
        code = await in_thread(["status", "wd_nope", "--wait", "--base-url", sandbox.url])
    err = capsys.readouterr().err
    assert code == 1 and err == "instax: NotFoundError: HTTP 404: unknown transaction\n"


async def test_wait_deadline_cuts_a_hanging_poll(
    start_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")  # pragma: no cover

    app = web.Application()
    app.router.add_get("/utils/blockchain-status", hang)
    url = await start_server(app)
    argv = ["status", "wd_1", "--wait", "--base-url", url, "--wait-timeout", "0.3"]
    assert await in_thread(argv) == 1
    err = capsys.readouterr().err
    assert err == (
        "instax: gave up waiting for wd_1 after 0.3 s (--wait-timeout; 1 poll): no answer\n"
    )


async def test_wait_deadline_after_only_errors_names_the_last(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with Sandbox(SandboxConfig(error_rate=1.0)) as sandbox:
        argv = ["status", "wd_1", "--wait", "--base-url", sandbox.url, "--interval", "0.05"]
        assert await in_thread([*argv, "--wait-timeout", "0.3"]) == 1
    verdict = capsys.readouterr().err.splitlines()[-1]
    assert verdict.startswith("instax: gave up waiting for wd_1 after 0.3 s (--wait-timeout; ")
    assert verdict.endswith(
        "): no answer; last error: ServerError: HTTP 500: sandbox: injected server error"
    )


async def test_unreachable_limit_before_the_wait_deadline(
    closed_port_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # one poll, then a wait (2 s) past the deadline (1 s): the give-up comes at 0.5 s
    argv = ["status", "wd_1", "--wait", "--base-url", closed_port_url, "--interval", "2"]
    code = await in_thread([*argv, "--wait-timeout", "1", "--unreachable-timeout", "0.5"])
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and len(err) == 2
    assert err[1].startswith("instax: gave up waiting for wd_1: the API was unreachable for 0.5 s")


async def test_session_status_with_a_sparse_answer(
    start_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async def status(request: web.Request) -> web.Response:
        return web.json_response({"sessionStatus": "pending"})

    app = web.Application()
    app.router.add_get("/api/session/{session_id}/status", status)
    url = await start_server(app)
    code = await in_thread(["session", "status", "ps_1", "--base-url", url, "--api-key", "k"])
    assert code == 0 and capsys.readouterr().out == "ps_1: pending\n"


def test_an_interrupt_anywhere_exits_130_quietly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import instax_async.cli._webhooks as cli_webhooks

    def interrupted(args: Any) -> int:
        raise KeyboardInterrupt  # e.g. Ctrl-C while reading a body from the terminal

    monkeypatch.setattr(cli_webhooks, "cmd_sign", interrupted)
    code, out, err = run_main(["webhook", "sign", "--secret", "s", "/dev/null"], capsys)
    assert (code, out, err) == (130, "", "")
