"""``instax doctor``: offline by default, ``--online`` against the sandbox, a dead port and odd
servers; secrets never printed."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from instax_async.cli import main
from instax_async.sandbox import Sandbox

KEY = "sk_live_0123456789abcdefDOCTOR"
SECRET = "whsec_doctor_never_printed"
GOOD = {
    "INSTAX_API_KEY": KEY,
    "INSTAX_BASE_URL": "https://instaxchange.com",
    "INSTAX_WEBHOOK_SECRET": SECRET,
    "INSTAX_ACCOUNT_REF_ID": "merchant-42",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*GOOD, "INSTAX_CHECKOUT_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def doctor(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["doctor", *argv])
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err
    assert SECRET not in captured.out + captured.err
    return code, captured.out


def report(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code, out = doctor([*argv, "--json"], capsys)
    assert out.count("\n") == 1
    data = json.loads(out)
    return code, data


def statuses(data: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in data["checks"]}


def test_offline_by_default_and_passing(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in GOOD.items():
        environment.setenv(name, value)
    code, data = report([], capsys)
    assert code == 0 and data["ok"] is True and data["online"] is False
    assert statuses(data) == {
        "account_ref_id": "ok",
        "api_key": "ok",
        "base_url": "ok",
        "webhook_secret": "ok",
        "checkout_url": "ok",
        "reachable": "skip",
        "clock": "skip",
    }
    code, out = doctor([], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[-1].startswith("doctor: 5 passed, 0 failed, 2 skipped")
    assert any(line.startswith("skip  reachable") and "--online" in line for line in lines)
    assert "/order/{id}" in out  # the default checkout URL comes with the newer pages' note


def test_nothing_configured_fails_and_says_what_to_set(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = report([], capsys)
    assert code == 1 and data["ok"] is False
    failed = {c["name"]: c["detail"] for c in data["checks"] if c["status"] == "fail"}
    assert set(failed) == {"account_ref_id", "api_key", "webhook_secret"}
    assert "INSTAX_ACCOUNT_REF_ID" in failed["account_ref_id"]
    assert "INSTAX_API_KEY" in failed["api_key"]
    assert "INSTAX_WEBHOOK_SECRET" in failed["webhook_secret"]
    assert statuses(data)["base_url"] == "ok"  # the production default


@pytest.mark.parametrize(
    ("argv", "name", "words"),
    [
        (["--api-key", "sk live key with spaces"], "api_key", "character 3"),
        (["--api-key", "short"], "api_key", "does not look like an api key"),
        (["--api-key", "your-api-key-goes-here"], "api_key", "placeholder"),
        (["--api-key", f" {KEY} "], "api_key", "blanks around it"),
        (["--base-url", "http://api.example"], "base_url", "use https"),
        (["--base-url", "ftp://api.example"], "base_url", "absolute http(s) URL"),
        (["--base-url", "https://user:hunter2@api.example"], "base_url", "not shown"),
        (["--secret", f"{SECRET}\n"], "webhook_secret", "blanks around it"),
        (["--checkout-url", "https://c.example/order"], "checkout_url", "exactly once"),
        (["--checkout-url", "http://c.example/{id}"], "checkout_url", "https is required"),
        (["--account-ref-id", "   "], "account_ref_id", "non-empty"),
    ],
)
def test_each_bad_setting_fails_its_check(
    argv: list[str],
    name: str,
    words: str,
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for variable, value in GOOD.items():
        environment.setenv(variable, value)
    code, data = report(argv, capsys)
    failed = [c for c in data["checks"] if c["status"] == "fail"]
    assert code == 1 and [c["name"] for c in failed] == [name]
    assert words in failed[0]["detail"]
    assert "hunter2" not in json.dumps(data)


def test_a_bad_base_url_skips_what_depends_on_it(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = report(["--base-url", "not a url", "--online"], capsys)
    assert code == 1
    assert statuses(data)["checkout_url"] == statuses(data)["reachable"] == "skip"


async def run_doctor(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = await asyncio.to_thread(main, ["doctor", *argv, "--json"])
    out = capsys.readouterr().out
    assert KEY not in out and SECRET not in out
    return code, json.loads(out)


def good_options(url: str) -> list[str]:
    return [
        "--base-url",
        url,
        "--api-key",
        KEY,
        "--secret",
        SECRET,
        "--account-ref-id",
        "merchant-42",
        "--checkout-url",
        "{base_url}/order/{id}",
    ]


async def test_online_against_the_sandbox_passes(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Sandbox() as sandbox:
        url = sandbox.url
        code, data = await run_doctor([*good_options(url), "--online"], capsys)
    assert code == 0 and data["online"] is True, data
    checks = {c["name"]: c["detail"] for c in data["checks"] if c["status"] == "ok"}
    assert "answered HTTP 404" in checks["reachable"]  # any answer: the API is reachable
    assert "within 60 s" in checks["clock"]
    assert "loopback" in checks["base_url"]
    assert checks["checkout_url"].startswith(f"{url}/order/{{id}}")


async def test_online_against_a_dead_port_fails(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_port_url: str
) -> None:
    code, data = await run_doctor(
        [*good_options(closed_port_url), "--online", "--timeout", "5"], capsys
    )
    assert code == 1
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["reachable"]["status"] == "fail"
    assert "could not connect" in checks["reachable"]["detail"], checks["reachable"]
    assert checks["clock"]["status"] == "skip"
    # offline, the same configuration passes: nothing is sent
    code, data = await run_doctor(good_options(closed_port_url), capsys)
    assert code == 0 and statuses(data)["reachable"] == "skip"


def recording_app(seen: list[dict[str, str]], answer: Any) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        return answer(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def test_online_sends_no_credential_and_follows_no_redirect(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], start_server: Any
) -> None:
    environment.setenv("INSTAX_API_KEY", KEY)
    seen: list[dict[str, str]] = []

    def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "https://elsewhere.example/\x9b2J"})

    url = await start_server(recording_app(seen, redirect))
    code = await asyncio.to_thread(main, ["doctor", "--base-url", url, "--online"])
    out = capsys.readouterr().out
    (headers,) = seen  # one request, and the redirect was not followed
    assert not {"x-api-key", "authorization", "cookie"} & {name.lower() for name in headers}
    assert KEY not in json.dumps(headers)
    assert "HTTP 302" in out and "not followed" in out
    assert "\x9b" not in out and "\\x9b2J" in out  # server text shown escaped
    assert code == 1  # the secret and account id are not set


@pytest.mark.parametrize(
    ("date", "status", "words"),
    [
        (timedelta(minutes=-10), "fail", "ahead of the API"),
        (timedelta(minutes=10), "fail", "behind the API"),
        (timedelta(seconds=0), "ok", "within 60 s"),
        (None, "skip", "no Date header"),
        ("yesterday-ish", "skip", "unclear"),
    ],
)
async def test_the_clock_against_the_apis_date(
    date: timedelta | str | None,
    status: str,
    words: str,
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    start_server: Any,
) -> None:
    def answer(request: web.Request) -> web.StreamResponse:
        response = web.Response(text="ok")
        if isinstance(date, timedelta):
            response.headers["Date"] = format_datetime(
                datetime.now(timezone.utc) + date, usegmt=True
            )
        elif date is not None:
            response.headers["Date"] = date
        return response

    url = await start_server(recording_app([], answer))
    if date is None:  # aiohttp adds a Date of its own unless one is there: remove it

        async def no_date(request: web.Request, response: web.StreamResponse) -> None:
            response.headers.popall("Date", None)

        app = recording_app([], answer)
        app.on_response_prepare.append(no_date)
        url = await start_server(app)
    code, data = await run_doctor([*good_options(url), "--online"], capsys)
    clock = next(c for c in data["checks"] if c["name"] == "clock")
    assert clock["status"] == status and words in clock["detail"], clock
    assert code == (1 if status == "fail" else 0)
