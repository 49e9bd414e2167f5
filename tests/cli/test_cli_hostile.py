"""The command line against a hostile server: nothing it sends reaches the terminal raw.

A real aiohttp server on 127.0.0.1 answers with terminal escape sequences (window title, clipboard
write, clear screen), a carriage return, one-character C1 controls, DEL and a bidirectional
override in every field, NaN and -Infinity in its JSON, and an error message of 10 MiB. Human
output must show those characters escaped and cut long text with a marker; ``--json`` output
must parse with a strict parser and carry no raw C1 character.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from instax_async.cli import TEXT_LIMIT, main
from instax_async.webhooks import sign

#: OSC 0 (window title), OSC 52 (clipboard write), ESC[2J (clear screen), CR, C1 CSI, DEL, RLO.
EVIL = "\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\rX\x9b31m\x7f\u202e"
#: What a terminal must never receive from the server's text (the CLI's own newlines aside).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]")
#: The window-title sequence as human output must show it: escaped, not obeyed.
SHOWN = "\\x1b]0;owned\\x07"
HUGE = 10 * 1024 * 1024
CUT = f"… [{len(EVIL) + HUGE - TEXT_LIMIT} more characters]"


def assert_inert(text: str) -> None:
    found = RAW_CONTROL.search(text)
    assert found is None, f"raw {found.group()!r} at {found.start()}: {text[:300]!r}"


def reject_constant(name: str) -> Any:
    raise ValueError(f"not strict JSON: {name}")


def strict_json(text: str) -> Any:
    """Parse one JSON document as a strict parser would; no raw C1 or DEL may be in it."""
    assert not re.search("[\x7f-\x9f\u202e]", text), text[:300]
    return json.loads(text, parse_constant=reject_constant)


def texts(value: Any) -> Iterator[str]:
    """Every string in parsed JSON."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)


def hostile_app() -> web.Application:
    """Every field a hostile string; NaN and -Infinity in each body; polls answer in turn."""
    polls: dict[str, int] = {}

    def answer(body: str, status: int = 200) -> web.Response:
        return web.Response(text=body, status=status, content_type="application/json")

    def js(value: object) -> str:
        return json.dumps(value)

    async def create(request: web.Request) -> web.Response:
        return answer(f'{{"id": {js(EVIL + "ps_1")}, "note": {js(EVIL)}, "fee": NaN}}')

    async def session_status(request: web.Request) -> web.Response:
        if request.match_info["session_id"] == "boom":
            return answer(js({"message": EVIL + "x" * HUGE}), status=404)
        fields = {
            "sessionId": EVIL + "ps_1",
            "sessionStatus": EVIL,
            "depositStatus": EVIL,
            "depositStatusReason": EVIL,
            "withdrawStatus": EVIL,
            "withdrawStatusReason": EVIL,
            "fromAmount": "5",
            "fromCurrency": EVIL,
            "toAmount": "4.85",
            "toCurrency": EVIL,
            "withdrawalId": EVIL,
        }
        return answer(js(fields)[:-1] + ', "rate": -Infinity, "fee": NaN}')

    async def blockchain(request: web.Request) -> web.Response:
        tx = request.query["txId"]
        if tx == "boom":
            return answer(js({"message": EVIL + "x" * HUGE}), status=400)
        polls[tx] = polls.get(tx, 0) + 1
        if tx == "wd_wait" and polls[tx] == 1:
            return answer(js({"message": EVIL + "y" * 2 * TEXT_LIMIT}), status=503)
        if tx == "wd_wait" and polls[tx] == 2:
            return answer(f'{{"status": {js(EVIL + "pending")}, "fee": NaN}}')
        if tx == "wd_lone":  # a lone surrogate: valid JSON, but no encoding can write it
            return answer(js({"status": "confirmed", "hash": "0x\ud800abc"}))
        done = {"status": EVIL + "confirmed", "hash": EVIL + "0xabc"}
        return answer(js(done)[:-1] + ', "fee": NaN, "rate": -Infinity}')

    app = web.Application()
    app.router.add_post("/api/session", create)
    app.router.add_get("/api/session/{session_id}/status", session_status)
    app.router.add_get("/utils/blockchain-status", blockchain)
    return app


@pytest.fixture
async def hostile(start_server: Any) -> list[str]:
    url = await start_server(hostile_app())
    return ["--base-url", url, "--api-key", "k", "--timeout", "10"]


async def in_thread(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)


CREATE = ["session", "create", "--amount", "5", "--from", "USD", "--to", "USDT"]
WAIT = ["status", "wd_wait", "--wait", "--interval", "0.01"]


@pytest.mark.parametrize(
    "argv",
    [CREATE, ["session", "status", "ps_1"], ["status", "wd_1"], WAIT],
    ids=["session-create", "session-status", "status", "status-wait"],
)
async def test_human_output_shows_server_controls_escaped(
    argv: list[str], hostile: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await in_thread([*argv, *hostile]) == 0
    captured = capsys.readouterr()
    assert_inert(captured.out)
    assert_inert(captured.err)
    assert SHOWN in captured.out
    assert "\\x9b31m\\x7f\\u202e" in captured.out
    assert "\\r" in captured.out  # a carriage return is shown, not obeyed


async def test_wait_progress_and_poll_failures_are_escaped_and_cut(
    hostile: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await in_thread([*WAIT, *hostile]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3, err
    failed, pending, confirmed = err
    assert failed.startswith(f"instax: poll 1 failed: ServerError: HTTP 503: {SHOWN}")
    assert failed.endswith(f"y… [{len(EVIL) + TEXT_LIMIT} more characters]; trying again")
    assert pending.startswith(f"wd_wait: {SHOWN}")
    assert confirmed.startswith(f"wd_wait: {SHOWN}")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_wait_on_a_terminal_redraws_only_its_own_controls(
    hostile: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert await in_thread([*WAIT, *hostile]) == 0
    shown = terminal.getvalue()
    assert "waiting for wd_wait: " in shown and SHOWN in shown
    assert_inert(shown.replace("\r\x1b[K", ""))  # the live line's own redraw, nothing else
    assert_inert(capsys.readouterr().out)


@pytest.mark.parametrize(
    "argv",
    [["status", "boom"], ["session", "status", "boom"]],
    ids=["status", "session-status"],
)
async def test_a_10_mib_error_message_is_one_short_line(
    argv: list[str], hostile: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await in_thread([*argv, *hostile]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert len(captured.err) < 2 * TEXT_LIMIT
    assert_inert(captured.err)
    assert captured.err.startswith("instax: ") and SHOWN in captured.err
    assert captured.err.endswith(f"x{CUT}\n")


@pytest.mark.parametrize(
    ("argv", "nan_at"),
    [
        (CREATE, ("response", "fee")),
        (["session", "status", "ps_1"], ("response", "fee")),
        (["status", "wd_1"], ("response", "fee")),
        (WAIT, ("response", "fee")),
    ],
    ids=["session-create", "session-status", "status", "status-wait"],
)
async def test_json_output_is_strict_and_escapes_c1(
    argv: list[str],
    nan_at: tuple[str, ...],
    hostile: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await in_thread([*argv, *hostile, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1
    data = strict_json(captured.out)
    assert "\\u009b31m\\u007f\\u202e" in captured.out
    value = data
    for key in nan_at:
        value = value[key]
    assert value is None  # NaN (and -Infinity) become null
    assert EVIL in "".join(texts(data))  # every character is still there
    assert_inert(captured.err)


async def test_a_webhook_receiver_answer_is_escaped(
    start_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async def receiver(request: web.Request) -> web.Response:
        return web.Response(text=EVIL, status=500)

    app = web.Application()
    app.router.add_post("/hook", receiver)
    url = await start_server(app) + "/hook"
    argv = ["webhook", "send", url, "--secret", "s"]
    assert await in_thread(argv) == 1
    out = capsys.readouterr().out
    assert_inert(out)
    assert out.startswith(f"{url} answered HTTP 500: {SHOWN}")
    assert await in_thread([*argv, "--json"]) == 1
    assert strict_json(capsys.readouterr().out) == {"status": 500, "response": EVIL}


def test_a_hostile_webhook_body_is_shown_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps(
        {
            "webhookId": EVIL,
            "reference": EVIL,
            "data": {"status": EVIL, "sessionId": EVIL, "withdraw_tx_ID": EVIL},
        }
    ).encode()
    path = tmp_path / "body.json"
    path.write_bytes(body)
    argv = ["webhook", "verify", "--secret", "s", str(path)]
    assert main([*argv, "--signature", sign(body, "s")]) == 0
    out = capsys.readouterr().out
    assert_inert(out)
    assert out.startswith(f"verified: {SHOWN}") and out.count("\n") == 1
    assert main([*argv, "--signature", sign(body, "s"), "--json"]) == 0
    assert strict_json(capsys.readouterr().out)["reference"] == EVIL


async def test_a_lone_surrogate_is_shown_escaped_in_both_outputs(
    hostile: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await in_thread(["status", "wd_lone", *hostile]) == 0
    assert capsys.readouterr().out == "wd_lone: confirmed  hash=0x\\ud800abc\n"
    assert await in_thread(["status", "wd_lone", *hostile, "--json"]) == 0
    out = capsys.readouterr().out
    out.encode("utf-8")  # writable as it is: not a '?' in place of the character
    assert "0x\\ud800abc" in out and strict_json(out)["hash"] == "0x\ud800abc"


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("argv", "code"),
    [(CREATE, 0), (["status", "boom"], 1), ([*CREATE, "--json"], 0)],
    ids=["session-create", "10-mib-error", "json"],
)
async def test_the_bytes_a_process_writes(argv: list[str], code: int, hostile: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "instax_async",
        *argv,
        *hostile,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == code, err[:300]
    for written in (out, err):
        assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", written), written[:300]
        assert_inert(written.decode("utf-8"))  # C1 controls are two bytes in UTF-8
        assert written.count(b"\n") <= 2 and len(written) < 4 * TEXT_LIMIT
    assert b"\\x1b]0;owned" in out + err or b"\\u001b]0;owned" in out


def test_help_says_how_server_text_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "control characters escaped (ESC as \\x1b)" in shown
    assert f"cut at {TEXT_LIMIT} characters" in shown
    assert "strict JSON (NaN and Infinity as null)" in shown
