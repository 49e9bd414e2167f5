"""Client mistakes against the sandbox, over real loopback HTTP: always a 4xx in its JSON shape.

Every answer checked here is ``{"message": ..., "field": ...}`` with a JSON content type, and
never carries a traceback; ``field`` names the input at fault when there is one.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from instax_async import InstaxError, ValidationError
from instax_async.sandbox import Sandbox, SandboxConfig
from instax_async.sandbox import app as sandbox_app
from instax_async.testing import WebhookRecorder

SENDING = {
    "amountDirection": "sending",
    "fromAmount": 50,
    "fromCurrency": "USD",
    "toCurrency": "USDT",
}
TRACEBACK_WORDS = ("Traceback", 'File "', "InvalidOperation", "RecursionError", "Error:")


async def call(method: str, url: str, **kwargs: Any) -> tuple[int, Any, Any]:
    """One request on a fresh connection; the body decoded when it is JSON."""
    async with aiohttp.ClientSession() as http, http.request(method, url, **kwargs) as response:
        raw = await response.read()
        body: Any = raw.decode("utf-8", "replace")
        if raw and response.content_type == "application/json":
            body = json.loads(raw)
        return response.status, body, response.headers


def assert_error(answer: tuple[int, Any, Any], status: int, field: str | None = None) -> str:
    """The answer is the sandbox's JSON error shape with ``status`` and ``field``."""
    code, body, headers = answer
    assert code == status, body
    assert headers["Content-Type"].startswith("application/json"), body
    assert isinstance(body, dict) and set(body) == {"message", "field"}, body
    assert body["field"] == field, body
    message = body["message"]
    assert isinstance(message, str) and message and len(message) < 400
    assert not any(word in message for word in TRACEBACK_WORDS), message
    return message


def body_with(amount_json: str, key: str = "fromAmount") -> bytes:
    """A session request whose amount is the raw JSON text ``amount_json``."""
    direction = "sending" if key == "fromAmount" else "receiving"
    return (
        f'{{"amountDirection":"{direction}","fromCurrency":"USD","toCurrency":"USDT",'
        f'"{key}":{amount_json}}}'
    ).encode()


@pytest.fixture
async def sandbox() -> Any:
    async with Sandbox() as running:
        yield running


# -- amounts -----------------------------------------------------------------------------------

OUT_OF_RANGE = [
    "1e30",
    '"1e30"',
    "1e400",
    '"1E+400"',
    "1e-400",
    '"1e-400"',
    "1" + "0" * 400,  # 10**400 as a JSON integer
    "1e300",
    "1000000000000",
    '"1e12"',
    "0",
    "-1",
    "-1e400",
    '"0.0000000000000000001"',  # 19 decimal places
]


@pytest.mark.parametrize("key", ["fromAmount", "toAmount"])
@pytest.mark.parametrize("amount", OUT_OF_RANGE)
async def test_amounts_outside_the_bounds_are_400_naming_the_field(
    sandbox: Sandbox, key: str, amount: str
) -> None:
    answer = await call("POST", f"{sandbox.url}/api/session", data=body_with(amount, key))
    field = "from_amount" if key == "fromAmount" else "to_amount"
    message = assert_error(answer, 400, field)
    assert message.startswith(f"{field}: must be greater than 0 and below 1,000,000,000,000")
    assert "(10**12)" in message and "at most 18 decimal places" in message
    assert not sandbox.state.sessions


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("true", "expected an amount"),
        ("[1]", "expected a Decimal, int or numeric str, got list"),
        ('{"a":1}', "got dict"),
        ('"ten"', "expected a numeric string"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ('"' + "9" * 100_000 + '"', "below 1,000,000,000,000"),
        ("[" * 100 + "]" * 100, "got list"),  # within MAX_JSON_DEPTH: the amount rule refuses it
    ],
)
async def test_amounts_of_the_wrong_kind_are_400_naming_the_field(
    sandbox: Sandbox, amount: str, message: str
) -> None:
    answer = await call("POST", f"{sandbox.url}/api/session", data=body_with(amount))
    assert message in assert_error(answer, 400, "from_amount")


async def test_amounts_in_exponent_form_and_at_the_bounds_are_accepted(sandbox: Sandbox) -> None:
    status, created, _ = await call("POST", f"{sandbox.url}/api/session", data=body_with('"1e3"'))
    assert status == 201 and created["from_amount"] == 1000 and created["to_amount"] == 970
    status, created, _ = await call("POST", f"{sandbox.url}/api/session", data=body_with("1E+3"))
    assert status == 201 and created["from_amount"] == 1000
    status, page, _ = await call("GET", f"{sandbox.url}/embed/{created['id']}")
    assert status == 200 and 'title="1000 USD"' in page and ">1,000.00<" in page
    assert "E+" not in page
    largest = "999999999999.999999999999999999"
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sandbox.url}/api/session", data=body_with(largest)) as response,
    ):
        assert response.status == 201
        created = json.loads(await response.read(), parse_float=Decimal)
    assert created["from_amount"] == Decimal(largest)  # all 30 digits, exact
    assert created["to_amount"] == Decimal("969999999999.999999")  # 0.97 of it, rounded down
    status, created, _ = await call(
        "POST",
        f"{sandbox.url}/api/session",
        data=body_with('"0.000000000000000001000"', "toAmount"),
    )
    assert status == 201 and created["from_amount"] == 0.01


async def test_a_quote_outside_the_bounds_is_400_naming_the_given_amount() -> None:
    async with Sandbox(SandboxConfig(rates={"USD": 1, "DKK": "0.145"})) as sandbox:
        receiving = {**SENDING, "amountDirection": "receiving", "fromCurrency": "DKK"}
        del receiving["fromAmount"]
        answer = await call(
            "POST", f"{sandbox.url}/api/session", json={**receiving, "toAmount": 999_999_999_999}
        )
        assert "not below 10**12" in assert_error(answer, 400, "to_amount")
        answer = await call(
            "POST", f"{sandbox.url}/api/session", json={**SENDING, "fromAmount": "0.0000001"}
        )
        assert "too small" in assert_error(answer, 400, "from_amount")
        assert not sandbox.state.sessions


# -- bodies ----------------------------------------------------------------------------------

SETTLE_PATHS = ["/sandbox/sessions/{id}/complete", "/sandbox/sessions/{id}/fail"]


async def settle_urls(sandbox: Sandbox) -> list[str]:
    _, created, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
    return [sandbox.url + path.format(id=created["id"]) for path in SETTLE_PATHS]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000, "the body is not valid JSON"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "the body is not valid JSON"),
        (b"{oops", "the body is not valid JSON: Expecting property name"),
        (b"\xff\xfe\xfa", "the body is not valid JSON"),
        (b'{"firstName":"Zo\xeb"}', "the body is not valid JSON"),  # latin-1, not UTF-8
        (b"[1, 2]", "the body must be a JSON object, got a JSON array"),
        (b'"a string"', "the body must be a JSON object, got a JSON string"),
        (b"12", "the body must be a JSON object, got a JSON number"),
        (b"null", "the body must be a JSON object, got a JSON null"),
        (b"true", "the body must be a JSON object, got a JSON boolean"),
    ],
)
async def test_bodies_that_are_not_a_json_object_are_400(
    sandbox: Sandbox, body: bytes, message: str
) -> None:
    for url in [f"{sandbox.url}/api/session", *await settle_urls(sandbox)]:
        answer = await call("POST", url, data=body)
        assert assert_error(answer, 400).startswith(message)
    assert all(s["status"] == "initiated" for s in sandbox.state.sessions.values())


@pytest.mark.parametrize("failure", [RecursionError, ValueError])
async def test_both_ways_a_too_deep_body_can_fail_to_parse_give_400(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, failure: type[Exception]
) -> None:
    # The JSON decoder may run out of stack or stop at a nesting limit of its own.
    urls = [f"{sandbox.url}/api/session", *await settle_urls(sandbox)]

    def too_deep(_content: bytes | str) -> Any:
        raise failure("JSON nested deeper than the limit")

    monkeypatch.setattr(sandbox_app, "loads", too_deep)
    for url in urls:
        message = assert_error(await call("POST", url, data=b"[[[[]]]]"), 400)
        assert message.startswith("the body is not valid JSON") and "nest" in message


async def test_a_deeply_nested_field_value_is_400_naming_the_field(sandbox: Sandbox) -> None:
    nested = "[" * 120 + "]" * 120  # within MAX_JSON_DEPTH: the field's rule refuses it
    for key, field in (("firstName", "first_name"), ("webhookRef", "webhook_ref")):
        body = json.dumps({**SENDING, key: "x"}).replace('"x"', nested).encode()
        assert_error(await call("POST", f"{sandbox.url}/api/session", data=body), 400, field)
    deeper = "[" * 900 + "]" * 900  # beyond it: refused as JSON, before any rule
    body = json.dumps({**SENDING, "firstName": "x"}).replace('"x"', deeper).encode()
    answer = await call("POST", f"{sandbox.url}/api/session", data=body)
    assert "nested deeper than 128 levels" in assert_error(answer, 400)


async def test_text_that_cannot_be_utf8_is_400_naming_the_field(sandbox: Sandbox) -> None:
    body = json.dumps({**SENDING, "firstName": "x"}).replace('"x"', '"\\ud800"').encode()
    answer = await call("POST", f"{sandbox.url}/api/session", data=body)
    assert "lone surrogate" in assert_error(answer, 400, "first_name")


async def test_unknown_fields_are_400_naming_them(sandbox: Sandbox) -> None:
    answer = await call("POST", f"{sandbox.url}/api/session", json={**SENDING, "x" * 5000: 1})
    assert len(assert_error(answer, 400, "x" * 119 + "…")) < 300
    for url in await settle_urls(sandbox):
        answer = await call("POST", url, json={"reason": "Do Not Honor", "code": 51})
        assert "the only one is 'reason'" in assert_error(answer, 400, "code")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}],
)
async def test_json_is_read_whatever_the_content_type(
    sandbox: Sandbox, headers: dict[str, str]
) -> None:
    status, created, _ = await call(
        "POST",
        f"{sandbox.url}/api/session",
        data=json.dumps(SENDING).encode(),
        headers=headers,
        skip_auto_headers=["Content-Type"],
    )
    assert status == 201 and created["status"] == "initiated"
    complete, _ = await settle_urls(sandbox)
    status, settled, _ = await call(
        "POST", complete, data=b"", headers=headers, skip_auto_headers=["Content-Type"]
    )
    assert status == 200 and settled["status"] == "completed"


async def test_an_empty_session_request_says_what_is_required(sandbox: Sandbox) -> None:
    answer = await call("POST", f"{sandbox.url}/api/session", data=b" \n")
    assert "is required" in assert_error(answer, 400, "amount_direction")


# -- the complete/fail helpers' reason ---------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (5, "got a JSON number"),
        (True, "got a JSON boolean"),
        (["Do Not Honor"], "got a JSON array"),
        ({"text": "x"}, "expected a non-empty string, got a JSON number"),
        ("", "expected a non-empty string"),
        ("   ", "expected a non-empty string"),
        ("x" * 201, "at most 200 characters, got 201"),
        ("x" * 500_000, "at most 200 characters, got 500000"),
    ],
)
async def test_a_bad_reason_is_400_naming_it(
    sandbox: Sandbox, reason: object, message: str
) -> None:
    for url in await settle_urls(sandbox):
        answer = await call("POST", url, json={"reason": reason})
        assert message in assert_error(answer, 400, "reason")
    assert all(s["status"] == "initiated" for s in sandbox.state.sessions.values())


async def test_a_reason_with_a_lone_surrogate_is_400(sandbox: Sandbox) -> None:
    _, fail = await settle_urls(sandbox)
    answer = await call("POST", fail, data=b'{"reason":"Do Not \\udfff"}')
    assert "lone surrogate" in assert_error(answer, 400, "reason")


async def test_a_good_reason_up_to_the_bound_is_kept(sandbox: Sandbox) -> None:
    _, fail = await settle_urls(sandbox)
    reason = "Zoë's card: " + "x" * 188  # 200 characters
    status, settled, _ = await call("POST", fail, json={"reason": reason})
    assert status == 200 and settled["status_reason"] == reason
    _, fail = await settle_urls(sandbox)
    status, settled, _ = await call("POST", fail, json={"reason": None})
    assert status == 200 and settled["status_reason"] == "Do Not Honor"


async def test_the_body_is_checked_before_the_session(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/sandbox/sessions/ps_unknown/fail"
    assert_error(await call("POST", url, json={"reason": 5}), 400, "reason")
    assert "unknown session" in assert_error(await call("POST", url, json={}), 404)


# -- ids in paths and queries ------------------------------------------------------------------

WEIRD_IDS = ["ps_%00", "%ff%fe", "ü-ö", "..%2F..%2Fetc", "a%20b", "<script>", "x" * 5000]


@pytest.mark.parametrize("session_id", WEIRD_IDS)
async def test_weird_session_ids_are_404_json(session_id: str) -> None:
    async with Sandbox(SandboxConfig(api_key="sk")) as sandbox:
        base = sandbox.url
        url = f"{base}/api/session/{session_id}/status"
        answer = await call("GET", url, headers={"x-api-key": "sk"})
        message = assert_error(answer, 404)
        assert message == "unknown session" or message.startswith("no such endpoint")
        for path in SETTLE_PATHS:
            answer = await call("POST", base + path.format(id=session_id), json={})
            message = assert_error(answer, 404)
            assert message == "unknown session" or message.startswith("no such endpoint")
        # the checkout page answers browsers in HTML, with the id escaped
        status, page, headers = await call("GET", f"{base}/embed/{session_id}")
        assert status == 404 and headers["Content-Type"].startswith("text/html")
        assert "<script>" not in page.split("<main>")[1]


@pytest.mark.parametrize("tx_id", ["%00", "%ff", "../../etc/passwd", "ü", "a b", "x" * 200])
async def test_weird_tx_ids_are_404_json(sandbox: Sandbox, tx_id: str) -> None:
    answer = await call("GET", f"{sandbox.url}/utils/blockchain-status?txId={tx_id}")
    assert assert_error(answer, 404) == "unknown transaction"


@pytest.mark.parametrize("length", [201, 8000])
async def test_a_tx_id_longer_than_the_bound_is_400_naming_it(
    sandbox: Sandbox, length: int
) -> None:
    answer = await call(
        "GET", f"{sandbox.url}/utils/blockchain-status", params={"txId": "x" * length}
    )
    assert assert_error(answer, 400, "txId") == (
        f"txId: expected at most 200 characters, got {length}"
    )


async def test_a_request_line_past_aiohttp_s_limit_is_a_plain_400(sandbox: Sandbox) -> None:
    # aiohttp's protocol handler refuses it before any middleware runs: still a 4xx, but text.
    status, body, _ = await call("GET", f"{sandbox.url}/utils/blockchain-status?txId={'x' * 9000}")
    assert status == 400 and "Traceback" not in body


# -- aiohttp's own answers -------------------------------------------------------------------


async def test_unknown_paths_are_404_json(sandbox: Sandbox) -> None:
    for method, path in (("GET", "/"), ("POST", "/api/sessions"), ("GET", "/embed/a/b")):
        answer = await call(method, sandbox.url + path)
        assert assert_error(answer, 404) == f"no such endpoint: {method} {path}"
    answer = await call("GET", f"{sandbox.url}/{'x' * 5000}")
    assert len(assert_error(answer, 404)) < 200
    status, body, _ = await call("HEAD", f"{sandbox.url}/nothing")
    assert status == 404 and body == ""


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/session", "POST"),
        ("DELETE", "/api/session", "POST"),
        ("POST", "/utils/blockchain-status", "GET,HEAD"),
        ("PUT", "/sandbox/sessions/ps_x/complete", "POST"),
        ("POST", "/embed/ps_x", "GET,HEAD"),
    ],
)
async def test_wrong_methods_are_405_json_with_allow(
    sandbox: Sandbox, method: str, path: str, allow: str
) -> None:
    answer = await call(method, sandbox.url + path)
    message = assert_error(answer, 405)
    assert answer[2]["Allow"] == allow
    assert message == f"{method} is not allowed on {path}; allowed: {allow.replace(',', ', ')}"


async def test_bodies_over_the_limit_are_413_json(sandbox: Sandbox) -> None:
    expected = "the body is larger than the 1048576 bytes the sandbox accepts"
    too_big = b" " * (1024 * 1024 + 1)
    for url in [f"{sandbox.url}/api/session", *await settle_urls(sandbox)]:
        assert assert_error(await call("POST", url, data=too_big), 413) == expected
    # counted after decompression: 2 MiB of zeros in a 2 KiB gzip body
    bomb = gzip.compress(b"0" * (2 * 1024 * 1024))
    answer = await call(
        "POST", f"{sandbox.url}/api/session", data=bomb, headers={"Content-Encoding": "gzip"}
    )
    assert assert_error(answer, 413) == expected


async def test_a_body_that_cannot_be_decoded_is_400_json(sandbox: Sandbox) -> None:
    answer = await call(
        "POST",
        f"{sandbox.url}/api/session",
        data=b"not gzip at all",
        headers={"Content-Encoding": "gzip"},
    )
    message = assert_error(answer, 400)
    assert message == "the body cannot be read: Can not decode content-encoding: gzip"
    assert answer[2]["Connection"] == "close"


async def test_unexpected_exceptions_are_json_500_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = Sandbox()

    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("internal detail that must not leak")

    async def custom_400(_request: web.Request) -> web.Response:
        raise web.HTTPBadRequest(text="a reason of its own")

    async def bare_415(_request: web.Request) -> web.Response:
        raise web.HTTPUnsupportedMediaType()

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/sandbox/webhooks")

    sandbox.app.router.add_get("/sandbox/broken", broken)
    sandbox.app.router.add_get("/sandbox/custom-400", custom_400)
    sandbox.app.router.add_get("/sandbox/bare-415", bare_415)
    sandbox.app.router.add_get("/sandbox/redirect", redirect)
    async with sandbox:
        with caplog.at_level(logging.ERROR, logger="instax_async.sandbox"):
            answer = await call("GET", f"{sandbox.url}/sandbox/broken")
        message = assert_error(answer, 500)
        assert "internal detail" not in message and "RuntimeError" not in message
        (record,) = [r for r in caplog.records if r.name == "instax_async.sandbox"]
        assert record.exc_info is not None and "GET /sandbox/broken" in record.getMessage()
        answer = await call("GET", f"{sandbox.url}/sandbox/custom-400")
        assert assert_error(answer, 400) == "a reason of its own"
        answer = await call("GET", f"{sandbox.url}/sandbox/bare-415")
        assert assert_error(answer, 415) == "Unsupported Media Type"
        status, log, _ = await call("GET", f"{sandbox.url}/sandbox/redirect")
        assert status == 200 and log == []  # followed to the delivery log


async def test_injected_faults_use_the_same_shape() -> None:
    async with Sandbox(SandboxConfig(rate_limit_rate=1.0)) as sandbox:
        answer = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
        assert assert_error(answer, 429) == "sandbox: injected rate limit"


# -- the Sandbox helpers and the configuration -------------------------------------------------


async def test_helper_errors_are_instax_errors() -> None:
    sandbox = Sandbox()
    with pytest.raises(InstaxError, match="not started"):
        await sandbox.complete("ps_1")
    async with sandbox:
        _, created, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
        with pytest.raises(InstaxError, match="reason: expected at most 200 characters"):
            await sandbox.fail(created["id"], reason="x" * 201)
        for weird in ("a/b", "a?b=c", "a#b", "ü", "%2F"):
            with pytest.raises(InstaxError, match="HTTP 404: unknown session"):
                await sandbox.complete(weird)
        await sandbox.fail(created["id"], reason="Insufficient funds")
        assert sandbox.state.sessions[created["id"]]["status_reason"] == "Insufficient funds"
        url = sandbox.url
    with pytest.raises(InstaxError, match="the sandbox is not started"):
        await sandbox.complete("ps_1")  # stopped
    sandbox.url = url  # as if it were still running: nothing listens there any more
    with pytest.raises(InstaxError, match="complete of 'ps_1' failed") as info:
        await sandbox.complete("ps_1")
    assert isinstance(info.value.__cause__, aiohttp.ClientError)


async def test_helper_answers_that_are_not_json_are_instax_errors(start_server: Any) -> None:
    async def plain(_request: web.Request) -> web.Response:
        return web.Response(text="not json", status=502)

    async def array(_request: web.Request) -> web.Response:
        return web.json_response([1])

    app = web.Application()
    app.router.add_post("/sandbox/sessions/{id}/complete", plain)
    app.router.add_post("/sandbox/sessions/{id}/fail", array)
    sandbox = Sandbox()
    sandbox.url = await start_server(app)  # a server that is not the sandbox
    with pytest.raises(InstaxError, match="failed"):
        await sandbox.complete("ps_1")
    with pytest.raises(InstaxError, match=r"HTTP 200: \[1\]"):
        await sandbox.fail("ps_1")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rates": {"USD": 0}}, "rates"),
        ({"rates": {"USD": "-1"}}, "rates"),
        ({"rates": {"USD": "x"}}, "rates"),
        ({"rates": {"USD": float("nan")}}, "rates"),
        ({"rates": {"USD": None}}, "rates"),
        ({"rates": {5: 1}}, "rates"),
        ({"rates": [("USD", 1)]}, "rates"),
        ({"fee": 1}, "fee"),
        ({"fee": "-0.01"}, "fee"),
        ({"fee": True}, "fee"),
    ],
)
def test_rates_and_fee_are_validated(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SandboxConfig(**kwargs)
    assert info.value.field == field


def test_rates_and_fee_become_decimals() -> None:
    config = SandboxConfig(rates={"USD": 1, "EUR": 1.08, "GBP": "1.27"}, fee=0.05)
    assert config.rates == {"USD": Decimal(1), "EUR": Decimal("1.08"), "GBP": Decimal("1.27")}
    assert config.fee == Decimal("0.05")


async def test_a_client_that_leaves_mid_body_is_not_a_sandbox_failure(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    # The client announces 100 bytes, sends 5 and goes away: nobody to answer, nothing logged
    # as a sandbox failure, and the sandbox keeps serving.
    host, port = sandbox.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b'POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"a"'
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    status, _, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
    assert status == 201
    assert not [r for r in caplog.records if r.name == "instax_async.sandbox"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /utils/blockchain-status?txId=" + b"x" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"y" * 9000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nx-api-key: sk_live_0123456789\x01\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nx-api-key sk_live_0123456789\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # TLS to an HTTP port
    ],
    ids=[
        "long-request-line",
        "long-header",
        "malformed-header",
        "bad-char-in-a-key",
        "key-without-colon",
        "tls-hello",
    ],
)
@pytest.mark.parametrize("server", ["sandbox", "webhook recorder"])
async def test_requests_that_are_not_http_get_a_400_and_one_log_line(
    request_bytes: bytes, server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="instax_async")
    running = Sandbox() if server == "sandbox" else WebhookRecorder()
    async with running:
        host, port = running.url.removeprefix("http://").split("/")[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request_bytes)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
    assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 "))
    records = [r for r in caplog.records if r.name.startswith(("aiohttp", "instax_async"))]
    assert all(r.exc_info is None and r.levelno <= logging.WARNING for r in records), records
    [warning] = [r for r in records if r.levelno == logging.WARNING] or [None]
    if warning is not None:  # (a TLS hello is logged by aiohttp at DEBUG only)
        assert warning.name == "instax_async.sandbox.server"
        message = warning.getMessage()
        assert message.startswith("refused a request from 127.0.0.1 that is not valid HTTP (400")
        assert len(message) < 250  # the request line itself is not copied into the log
        assert "\n" not in message and "sk_live" not in message and "xxx" not in message
