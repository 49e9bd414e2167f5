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
    assert text.count("/embed/ps_") == 2
    assert lines[-1] == "demo ok"
    assert "demo ok" in capsys.readouterr().out


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

VECTORS = json.loads((Path(__file__).parent / "vectors" / "signatures.json").read_text())
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
