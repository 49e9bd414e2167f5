from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from instax_async.cli import main, run_demo


async def test_demo_creates_both_sessions_and_prints_links(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines: list[str] = []
    assert await run_demo(lines) == 0
    text = "\n".join(lines)
    assert "sending   ps_" in text
    assert "receiving ps_" in text
    assert text.count("checkout: http://127.0.0.1:") == 2
    assert "completed" in text and "failed (Do Not Honor)" in text
    assert text.count("verified") == 2
    assert "0x" in text
    assert lines[-1] == "demo ok: every step checked out"
    assert "demo ok" in capsys.readouterr().out


@pytest.mark.subprocess
def test_demo_as_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "instax_async", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "demo ok" in result.stdout


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nonsense"]) == 2
    assert "invalid choice" in capsys.readouterr().err


# -- webhook subcommands ---------------------------------------------------------------------

import io  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from aiohttp import web  # noqa: E402

from instax_async.integrations.aiohttp import webhook_handler  # noqa: E402
from instax_async.webhooks import sign  # noqa: E402

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "signatures.json").read_text())
DOC = next(v for v in VECTORS if v["name"] == "documented_completed")


def run_cli(
    argv: list[str], capsys: pytest.CaptureFixture[str], stdin: bytes | None = None
) -> tuple[int, str, str]:
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code = main(argv)
    finally:
        sys.stdin = sys.__stdin__
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_webhook_sign_from_file_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "body.json"
    body.write_text(DOC["body"])
    code, out, _ = run_cli(["webhook", "sign", "--secret", DOC["secret"], str(body)], capsys)
    assert (code, out.strip()) == (0, DOC["signature"])
    code, out, _ = run_cli(
        ["webhook", "sign", "--secret", DOC["secret"], "--json"], capsys, DOC["body"].encode()
    )
    assert json.loads(out) == {"signature": DOC["signature"]}


def test_webhook_secret_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSTAX_WEBHOOK_SECRET", DOC["secret"])
    body = tmp_path / "body.json"
    body.write_text(DOC["body"])
    code, out, _ = run_cli(
        ["webhook", "verify", "--signature", DOC["signature"], str(body)], capsys
    )
    assert code == 0
    assert out.startswith("verified: completed 3.74 USD -> 0.0421399418187522 LTC")
    assert "reference=your_reference" in out


def test_webhook_verify_json_and_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "body.json"
    body.write_text(DOC["body"])
    args = ["webhook", "verify", "--secret", DOC["secret"], "--json", str(body)]
    code, out, _ = run_cli([*args, "--signature", DOC["signature"]], capsys)
    data = json.loads(out)
    assert code == 0 and data["verified"] is True and data["status"] == "completed"
    assert data["amount_in_crypto"] == "0.0421399418187522"
    code, out, _ = run_cli([*args, "--signature", "0" * 32], capsys)
    assert code == 1
    assert json.loads(out)["reason"] == "signature_mismatch"
    code, out, err = run_cli(
        ["webhook", "verify", "--secret", "s", "--signature", "x", str(body)], capsys
    )
    assert code == 1 and err.startswith("not verified:") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["webhook", "sign", "/nonexistent/body.json", "--secret", "s"], "cannot read"),
        (["webhook", "sign"], "no webhook secret"),
        (["webhook", "verify", "--secret", "s"], "--signature"),
        (["webhook"], "required"),
        (["webhook", "send", "ftp://x", "--secret", "s"], "http://"),
        (["webhook", "send", "http://x", "--secret", "s", "--status", "odd"], "invalid choice"),
        (["webhook", "sign", "--secret", "s", "/dev/null"], "payload"),
        (["bogus"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INSTAX_WEBHOOK_SECRET", raising=False)
    code, _, err = run_cli(argv, capsys, b"")
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_webhook_send_reaches_a_real_receiver(
    capsys: pytest.CaptureFixture[str],
) -> None:
    received: list[Any] = []

    async def scenario() -> tuple[int, int]:
        app = web.Application()
        app.router.add_post("/hook", webhook_handler("cli-secret", received.append))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        try:
            ok = await asyncio.to_thread(
                main,
                [
                    "webhook",
                    "send",
                    url,
                    "--secret",
                    "cli-secret",
                    "--status",
                    "failed",
                    "--reference",
                    "order-9",
                ],
            )
            bad = await asyncio.to_thread(
                main, ["webhook", "send", url, "--secret", "wrong", "--json"]
            )
        finally:
            await runner.cleanup()
        return ok, bad

    ok, bad = asyncio.run(scenario())
    assert (ok, bad) == (0, 1)
    (event,) = received
    assert event.is_failed and event.reference == "order-9"
    assert event.data.status_reason == "Do Not Honor"
    out = capsys.readouterr().out
    assert "answered HTTP 200" in out
    assert '"status": 401' in out


def test_webhook_send_connection_failure_exits_1(
    closed_port_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["webhook", "send", closed_port_url, "--secret", "s"], capsys)
    assert code == 1
    assert "APIConnectionError" in err and err.count("\n") == 1


def test_signing_matches_what_the_receiver_checks() -> None:
    body = b'{"b": 1, "a": "x"}'
    assert sign(body, "k") == sign(b'{"a":"x","b":1}', "k")


# -- session, status and sandbox subcommands ---------------------------------------------------

from instax_async.sandbox import Sandbox, SandboxConfig  # noqa: E402


async def cli_async(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)


async def test_session_create_status_and_payout_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with Sandbox(SandboxConfig(api_key="sk_cli", confirmation_polls=1)) as sandbox:
        base = ["--base-url", sandbox.url]
        code = await cli_async(
            [
                "session",
                "create",
                "--amount",
                "20",
                "--from",
                "usd",
                "--to",
                "USDT",
                "--webhook-ref",
                "cli-1",
                *base,
            ]
        )
        out = capsys.readouterr().out.splitlines()
        assert code == 0 and out[0].startswith("ps_") and out[1].endswith(f"/embed/{out[0]}")
        session_id = out[0]
        code = await cli_async(
            [
                "--json",
                "session",
                "create",
                "--direction",
                "receiving",
                "--amount",
                "10",
                "--from",
                "EUR",
                "--to",
                "LTC",
                "--allow-unlisted",
                *base,
            ]
        )
        created = json.loads(capsys.readouterr().out)
        assert code == 0 and created["response"]["to_currency"] == "LTC"

        code = await cli_async(["session", "status", session_id, "--api-key", "sk_cli", *base])
        assert code == 0
        assert f"{session_id}: initiated" in capsys.readouterr().out
        code = await cli_async(["session", "status", session_id, "--api-key", "bad", *base])
        assert code == 1 and "AuthenticationError" in capsys.readouterr().err

        settled = await sandbox.complete(session_id)
        tx = settled["withdraw_tx_id"]
        code = await cli_async(["status", tx, *base])
        assert code == 0 and "pending" in capsys.readouterr().out
        code = await cli_async(["status", tx, "--wait", "--interval", "0.01", "--json", *base])
        result = json.loads(capsys.readouterr().out)
        assert code == 0 and result["status"] == "confirmed" and result["hash"].startswith("0x")
        code = await cli_async(["status", "wd_unknown", *base])
        assert code == 1 and "NotFoundError" in capsys.readouterr().err


async def test_session_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INSTAX_API_KEY", raising=False)
    code = await cli_async(
        [
            "session",
            "create",
            "--amount",
            "ten",
            "--from",
            "USD",
            "--to",
            "USDT",
            "--base-url",
            "http://127.0.0.1:9",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("instax: --amount: ") and err.count("\n") == 1
    code = await cli_async(["session", "status", "ps_1", "--base-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "api key" in err.lower()
    code = await cli_async(["status", "tx", "--base-url", "not a url"])
    assert code == 2 and "--base-url" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--amount", "1e400"], "--amount: must be greater than 0 and below 1,000,000,000,000"),
        (["--amount", "1E+400", "--direction", "receiving"], "(10**12)"),
        (["--amount", "1e12"], "--amount: "),
        (["--amount", "0.0000000000000000001"], "at most 18 decimal places"),
        (["--amount", "-5"], "--amount: must be greater than 0"),
        (["--amount", "10", "--to", "LTC"], "--to: unknown currency 'LTC'"),
        (["--amount", "10", "--from", "EURO"], "--from: expected a 3-letter ISO 4217 code"),
        (["--amount", "10", "--to", "USDT-TRON", "--address", "T1"], "--address: expected a TRON"),
        (["--amount", "10", "--return-url", "ftp://x"], "--return-url: expected an absolute"),
    ],
)
def test_session_create_names_the_option_at_fault(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["session", "create", "--from", "USD", "--to", "USDT", "--api-key", "k"]
    # The request is refused before any connection: the base URL is never used.
    code, out, err = run_cli([*base, *argv, "--base-url", "http://127.0.0.1:9"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("instax: --") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "from_amount" not in err and "to_amount" not in err


@pytest.mark.subprocess
def test_sandbox_command_serves_and_logs_each_request(tmp_path: Path) -> None:
    import signal
    import urllib.request

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "instax_async",
            "sandbox",
            "--port",
            "0",
            "--secret",
            "s",
            "--webhook-url",
            "http://127.0.0.1:9/hook",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("sandbox listening on http://127.0.0.1:")
        assert "signed" in proc.stdout.readline()
        url = first.split()[-1]
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{url}/embed/ps_missing", timeout=10)
        assert info.value.code == 404
        assert proc.stderr is not None
        logged = proc.stderr.readline()  # written once the response has gone out
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "sandbox stopped" in out
    assert '"GET /embed/ps_missing HTTP/1.1" 404' in logged
    assert "Traceback" not in err
