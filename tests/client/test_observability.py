"""Running it in production: DEBUG records, request ids, event hooks, with_options, INSTAX_LOG."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable
from types import MappingProxyType
from typing import Any

import pytest
from aiohttp import web

from instax_async import (
    APIConnectionError,
    AsyncSession,
    InstaxError,
    MockTransport,
    NotFoundError,
    Request,
    Response,
    RetryPolicy,
    ServerError,
    SessionRequest,
    ValidationError,
)
from instax_async._logging import configure_from_env
from instax_async.errors import APIStatusError, request_id_from
from tests.conftest import StartServer

API_KEY = "sk_live_observability_secret"
REQUEST = SessionRequest.sending(from_amount="50", from_currency="USD", to_currency="USDT")
FAST = RetryPolicy(max_retries=2, backoff_base=0.0, backoff_max=0.0)


def created(request: Request) -> Response:
    return Response(201, {"x-request-id": "req_created"}, json.dumps({"id": "ps_1"}).encode())


def mock_client(handler: Any = created, **kwargs: Any) -> AsyncSession:
    kwargs.setdefault("retry", FAST)
    return AsyncSession(
        base_url="http://api.test", api_key=API_KEY, transport=MockTransport(handler), **kwargs
    )


def flaky_api(statuses: list[int]) -> web.Application:
    """Answers ``POST /api/session`` with the given statuses in turn, then 201."""
    answers = iter(statuses)

    async def create(request: web.Request) -> web.Response:
        status = next(answers, 201)
        headers = {"x-request-id": f"req_{status}"}
        if status == 201:
            return web.json_response({"id": "ps_1"}, status=201, headers=headers)
        return web.json_response({"message": "try later"}, status=status, headers=headers)

    async def blockchain(request: web.Request) -> web.Response:
        return web.json_response({"txId": request.query["txId"], "hash": "0xabc"})

    app = web.Application()
    app.router.add_post("/api/session", create)
    app.router.add_get("/utils/blockchain-status", blockchain)
    return app


def attempts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "instax_elapsed_ms")]


# -- DEBUG records ---------------------------------------------------------------------------


async def test_a_success_logs_one_debug_record_with_its_fields(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = await start_server(flaky_api([]))
    caplog.set_level(logging.DEBUG, logger="instax_async")
    async with AsyncSession(base_url=url, api_key=API_KEY) as client:
        await client.create_session(REQUEST)
    [record] = attempts(caplog)
    assert record.levelno == logging.DEBUG and record.name == "instax_async"
    assert record.instax_method == "POST"  # type: ignore[attr-defined]
    assert record.instax_path == "/api/session"  # type: ignore[attr-defined]
    assert record.instax_status == 201  # type: ignore[attr-defined]
    assert record.instax_attempt == 1  # type: ignore[attr-defined]
    assert record.instax_request_id == "req_201"  # type: ignore[attr-defined]
    assert record.instax_elapsed_ms >= 0  # type: ignore[attr-defined]
    assert "POST /api/session -> 201" in record.getMessage()
    assert "request id req_201" in record.getMessage()


async def test_a_retry_logs_each_attempt_and_a_warning(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = await start_server(flaky_api([503]))
    caplog.set_level(logging.DEBUG, logger="instax_async")
    async with AsyncSession(base_url=url, api_key=API_KEY, retry=FAST) as client:
        await client.create_session(REQUEST)
    first, second = attempts(caplog)
    assert (first.instax_status, first.instax_attempt) == (503, 1)  # type: ignore[attr-defined]
    assert (second.instax_status, second.instax_attempt) == (201, 2)  # type: ignore[attr-defined]
    assert first.instax_request_id == "req_503"  # type: ignore[attr-defined]
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "retrying POST /api/session" in warning.getMessage()


async def test_a_failure_logs_the_error_and_the_query_never_a_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="instax_async")
    # nothing listens on port 9: the connection is refused
    async with AsyncSession(base_url="http://127.0.0.1:9", api_key=API_KEY, retry=FAST) as client:
        with pytest.raises(APIConnectionError):
            await client.blockchain_status("wd_1")
    records = attempts(caplog)
    assert len(records) == 3
    assert all(r.instax_status is None for r in records)  # type: ignore[attr-defined]
    assert records[0].instax_path == "/utils/blockchain-status?txId=wd_1"  # type: ignore[attr-defined]
    assert "failed after" in records[0].getMessage()


async def test_no_record_at_info_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="instax_async")
    async with mock_client() as client:
        await client.create_session(REQUEST)
    assert attempts(caplog) == []


# -- request ids and response headers --------------------------------------------------------


@pytest.mark.parametrize("name", ["x-request-id", "Request-Id", "CF-RAY"])
async def test_request_id_from_each_header_name(name: str) -> None:
    def not_found(request: Request) -> Response:
        return Response(404, {name: "abc123"}, b'{"message": "no such session"}')

    async with mock_client(not_found) as client:
        with pytest.raises(NotFoundError) as info:
            await client.session_status("ps_1")
    assert info.value.request_id == "abc123"
    assert str(info.value) == (
        'no such session (HTTP 404; request id abc123; body: {"message": "no such session"})'
    )


def test_request_id_prefers_the_most_specific_header() -> None:
    headers = {"cf-ray": "ray", "request-id": "rid", "x-request-id": "xrid"}
    assert request_id_from(headers) == "xrid"
    assert request_id_from({}) is None
    assert APIStatusError("no", status=500).request_id is None
    assert str(APIStatusError("no", status=500)) == "no (HTTP 500)"


async def test_payment_session_carries_read_only_headers() -> None:
    async with mock_client() as client:
        session = await client.create_session(REQUEST)
    assert session.headers["x-request-id"] == "req_created"
    with pytest.raises(TypeError):
        session.headers["x-request-id"] = "changed"  # type: ignore[index]


async def test_payment_session_keeps_a_transports_read_only_headers_as_they_are() -> None:
    frozen = MappingProxyType({"x-request-id": "req_frozen"})

    class FrozenHeaders:
        async def send(self, request: Request) -> Response:
            return Response(status=201, headers=frozen, content=b'{"id":"ps_1"}')

        async def aclose(self) -> None:
            pass

    async with AsyncSession(transport=FrozenHeaders()) as client:
        first = await client.create_session(REQUEST)
        second = await client.create_session(REQUEST)
    assert first.headers is frozen and second.headers is frozen


# -- event hooks -----------------------------------------------------------------------------


async def test_hooks_run_once_per_attempt_in_order(start_server: StartServer) -> None:
    url = await start_server(flaky_api([503]))
    calls: list[Any] = []

    def on_request(request: Request) -> None:
        calls.append(("request", request.method, request.url))

    async def on_response(request: Request, response: Response) -> None:
        calls.append(("response", response.status))

    hooks = {"request": [on_request], "response": [on_response]}
    async with AsyncSession(base_url=url, retry=FAST, event_hooks=hooks) as client:
        await client.create_session(REQUEST)
    assert calls == [
        ("request", "POST", f"{url}/api/session"),
        ("response", 503),
        ("request", "POST", f"{url}/api/session"),
        ("response", 201),
    ]


async def test_event_hooks_is_a_mutable_dict_of_lists() -> None:
    seen: list[int] = []
    async with mock_client() as client:
        assert client.event_hooks == {"request": [], "response": []}
        client.event_hooks["response"].append(lambda request, response: seen.append(1))
        await client.create_session(REQUEST)
        client.event_hooks = {"response": []}
        await client.create_session(REQUEST)
    assert seen == [1]


async def test_a_raising_hook_aborts_the_call_without_a_retry() -> None:
    sent: list[Request] = []

    def handler(request: Request) -> Response:
        sent.append(request)
        return created(request)

    def broken(request: Request) -> None:
        raise KeyError("audit log unavailable")

    async with mock_client(handler, event_hooks={"request": [broken]}) as client:
        with pytest.raises(InstaxError) as info:
            await client.create_session(REQUEST)
    assert "event hook" in str(info.value) and "KeyError" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)
    assert sent == []


async def test_a_hook_raising_an_instax_error_is_not_retried_or_wrapped() -> None:
    calls = 0

    def failing(request: Request, response: Response) -> None:
        nonlocal calls
        calls += 1
        raise APIConnectionError("refused by policy", connect_failed=True)

    async with mock_client(event_hooks={"response": [failing]}) as client:
        with pytest.raises(APIConnectionError, match="refused by policy"):
            await client.create_session(REQUEST)
    assert calls == 1


async def test_sync_and_async_hooks_mixed_run_in_order() -> None:
    calls: list[str] = []

    def sync(name: str) -> Callable[..., None]:
        return lambda *args: calls.append(name)

    def later(name: str) -> Callable[..., Awaitable[None]]:
        async def hook(*args: Any) -> None:
            await asyncio.sleep(0)
            calls.append(name)

        return hook

    hooks = {
        "request": [sync("a"), later("b"), sync("c"), later("d")],
        "response": [later("e"), sync("f")],
    }
    async with mock_client(event_hooks=hooks) as client:
        await client.create_session(REQUEST)
    assert calls == ["a", "b", "c", "d", "e", "f"]


async def test_an_async_hook_that_raises_aborts_the_call_and_later_hooks() -> None:
    calls: list[str] = []

    async def audit(request: Request) -> None:
        raise KeyError("audit log unavailable")

    hooks = {"request": [audit, lambda request: calls.append("after")]}
    async with mock_client(event_hooks=hooks) as client:
        with pytest.raises(InstaxError, match=r"event hook .*audit raised KeyError") as info:
            await client.create_session(REQUEST)
    assert isinstance(info.value.__cause__, KeyError) and calls == []


async def test_an_async_hook_raising_an_instax_error_is_not_wrapped() -> None:
    async def policy(request: Request, response: Response) -> None:
        raise APIConnectionError("refused by policy", connect_failed=True)

    async with mock_client(event_hooks={"response": [policy]}) as client:
        with pytest.raises(APIConnectionError, match="refused by policy"):
            await client.create_session(REQUEST)


async def test_hooks_get_the_request_and_the_response_and_a_snapshot_of_their_list() -> None:
    seen: list[tuple[str, int]] = []

    def first(request: Request) -> None:
        seen.append(("first", 1))
        hooks["request"].remove(first)  # this call still runs the hooks it started with
        hooks["request"].append(added)

    async def second(request: Request) -> None:
        assert isinstance(request, Request)
        seen.append(("second", 1))

    def added(request: Request) -> None:
        seen.append(("added", 1))

    def on_response(request: Request, response: Response) -> None:
        assert isinstance(request, Request) and isinstance(response, Response)
        seen.append(("response", 2))

    async with mock_client(
        event_hooks={"request": [first, second], "response": [on_response]}
    ) as client:
        hooks = client.event_hooks
        await client.create_session(REQUEST)
        assert seen == [("first", 1), ("second", 1), ("response", 2)]
        await client.create_session(REQUEST)
    assert seen[3:] == [("second", 1), ("added", 1), ("response", 2)]


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ([], "expected a mapping"),
        ({"before": []}, "unknown event 'before'"),
        ({"request": print}, "expected a list of callables"),
        ({"request": "print"}, "expected a list of callables"),
        ({"request": [1]}, "expected callables"),
    ],
)
def test_bad_event_hooks_name_the_field(hooks: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        mock_client(event_hooks=hooks)
    assert info.value.field == "event_hooks"


TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)


def tenant_key(request: Request) -> None:
    """A request hook in httpx's idiom: the current tenant's api key, set on the request."""
    key = TENANT.get()
    if key is not None:
        request.headers["x-api-key"] = key  # type: ignore[index]
        request.headers["x-tenant"] = "acme"  # type: ignore[index]


def tenant_api(seen: list[tuple[str | None, str | None]]) -> web.Application:
    """Records each request's key and tenant; answers 503 to the first one, then a status."""

    async def blockchain(request: web.Request) -> web.Response:
        seen.append((request.headers.get("x-api-key"), request.headers.get("x-tenant")))
        if len(seen) == 1:
            return web.json_response({"message": "busy"}, status=503)
        return web.json_response({"txId": request.query["txId"], "hash": "0xabc"})

    app = web.Application()
    app.router.add_get("/utils/blockchain-status", blockchain)
    return app


async def headers_seen_per_call(
    start_server: StartServer, *, traced: bool
) -> list[tuple[str | None, str | None]]:
    """The key and tenant the server saw: a tenant's retried call, a plain call, and two calls
    through a copy without hooks (one of them in the tenant's context)."""
    seen: list[tuple[str | None, str | None]] = []
    url = await start_server(tenant_api(seen))
    hooks = {"request": [tenant_key]}
    client = AsyncSession(base_url=url, api_key=API_KEY, retry=FAST, event_hooks=hooks)
    if not traced:  # the path without OpenTelemetry, whatever an earlier test configured
        client.requester.telemetry = None
    async with client:
        token = TENANT.set("sk_live_tenant_acme")
        try:
            await client.blockchain_status("wd_1")  # 503, then retried: both the tenant's
        finally:
            TENANT.reset(token)
        await client.blockchain_status("wd_1")
        copy = client.with_options(event_hooks={})
        await copy.blockchain_status("wd_1")
        token = TENANT.set("sk_live_tenant_acme")
        try:
            await copy.blockchain_status("wd_1")
        finally:
            TENANT.reset(token)
    return seen


HEADERS_PER_CALL = [
    ("sk_live_tenant_acme", "acme"),
    ("sk_live_tenant_acme", "acme"),
    (API_KEY, None),
    (API_KEY, None),
    (API_KEY, None),
]


async def test_a_hooks_header_change_reaches_its_own_attempt_only(
    start_server: StartServer,
) -> None:
    # with tracing: tests/client/test_tracing.py
    assert await headers_seen_per_call(start_server, traced=False) == HEADERS_PER_CALL


async def test_every_attempt_gets_headers_of_its_own() -> None:
    seen: list[Request] = []

    def keep(request: Request) -> Response:
        seen.append(request)
        return created(request)

    def add_one(request: Request) -> None:
        request.headers["x-seen"] = "1"  # type: ignore[index]

    async with mock_client(keep, event_hooks={"request": [add_one]}) as client:
        await client.create_session(REQUEST)
        copy = client.with_options(event_hooks={})
        await copy.create_session(REQUEST)
    first, second = seen
    assert first.headers["x-seen"] == "1" and "x-seen" not in second.headers
    assert first.headers is not second.headers
    assert isinstance(second.headers, dict)  # a transport's change stays with its request


# -- max_retries and with_options ------------------------------------------------------------


async def test_max_retries_is_a_shortcut_for_a_retry_policy() -> None:
    sent = 0

    def unavailable(request: Request) -> Response:
        nonlocal sent
        sent += 1
        return Response(503, {}, b"")

    client = AsyncSession(
        base_url="http://api.test", transport=MockTransport(unavailable), max_retries=0
    )
    with pytest.raises(ServerError):
        await client.create_session(REQUEST)
    assert sent == 1
    with pytest.raises(ValidationError) as info:
        AsyncSession(retry=RetryPolicy(), max_retries=1)
    assert info.value.field == "max_retries"
    with pytest.raises(ValidationError, match="max_retries"):
        AsyncSession(max_retries=-1)


async def test_with_options_replaces_only_what_is_given() -> None:
    seen: list[float] = []

    def handler(request: Request) -> Response:
        seen.append(request.timeout)
        return created(request)

    hook_calls: list[str] = []
    original = mock_client(
        handler, timeout=10.0, event_hooks={"request": [lambda r: hook_calls.append("orig")]}
    )
    patient = original.with_options(timeout=60.0, max_retries=5)
    assert patient.requester.retry.max_retries == 5 and original.requester.retry == FAST
    patient.event_hooks["request"].append(lambda r: hook_calls.append("copy"))
    await original.create_session(REQUEST)
    await patient.create_session(REQUEST)
    assert seen == [10.0, 60.0]
    assert hook_calls == ["orig", "orig", "copy"]  # the copy's hooks are its own list
    quiet = original.with_options(event_hooks=None, retry=RetryPolicy(max_retries=1))
    assert quiet.event_hooks == {"request": [], "response": []}
    assert quiet.requester.retry.max_retries == 1 and quiet.requester.timeout == 10.0
    assert repr(quiet) == repr(original)
    with pytest.raises(ValidationError):
        original.with_options(timeout=None)  # type: ignore[arg-type]
    await original.aclose()


async def test_closing_a_copy_keeps_the_shared_transport_open(start_server: StartServer) -> None:
    url = await start_server(flaky_api([]))
    async with AsyncSession(base_url=url) as original:
        copy = original.with_options(timeout=5.0)
        await copy.create_session(REQUEST)
        await copy.aclose()
        assert copy.closed and not original.closed
        await original.create_session(REQUEST)  # the shared transport still works
        other = original.with_options()
    assert original.closed and other.closed
    with pytest.raises(InstaxError, match="closed"):
        await other.create_session(REQUEST)
    with pytest.raises(InstaxError, match="closed"):
        original.with_options()


# -- INSTAX_LOG ------------------------------------------------------------------------------


@pytest.mark.subprocess
def test_instax_log_attaches_a_stderr_handler_in_a_fresh_process() -> None:
    code = (
        "import asyncio, json\n"
        "from instax_async import AsyncSession, MockTransport, Response, SessionRequest\n"
        "calls = []\n"
        "def answer(request):\n"
        "    calls.append(request)\n"
        "    if len(calls) == 1:\n"
        "        return Response(503, {'Retry-After': '0'}, b'{}')\n"
        "    return Response(201, {'x-request-id': 'req_9'}, json.dumps({'id': 'ps_9'}).encode())\n"
        "async def main():\n"
        f"    async with AsyncSession(api_key={API_KEY!r}, transport=MockTransport(answer)) as c:\n"
        "        await c.create_session(SessionRequest.sending(\n"
        "            from_amount='5', from_currency='USD', to_currency='USDT'))\n"
        "asyncio.run(main())\n"
    )

    def run(value: str | None) -> str:
        env = {"PATH": "/usr/bin:/bin"}
        if value is not None:
            env["INSTAX_LOG"] = value
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stderr

    debug = run("debug")
    assert "DEBUG instax_async: POST /api/session -> 201" in debug
    assert "WARNING instax_async: retrying POST /api/session in 0.00 s" in debug
    assert "request id req_9" in debug and API_KEY not in debug
    lines = debug.splitlines()
    assert len(lines) == 3 and all(line.count("instax_async") == 1 for line in lines), debug
    # without INSTAX_LOG, Python's last-resort handler shows the WARNING alone, as for any
    # library whose logger nobody configured
    assert run(None) == "retrying POST /api/session in 0.00 s (retry 1 of 2) after HTTP 503\n"
    warning = run("warning")
    assert warning.count("\n") == 1 and warning.count("instax_async") == 1, warning
    assert "INSTAX_LOG='loud' is not one of debug, info, warning" in run("loud")


def test_configure_from_env_attaches_one_handler_only() -> None:
    logger = logging.getLogger("instax_async")
    before = list(logger.handlers)
    level = logger.level
    try:
        first = configure_from_env({"INSTAX_LOG": "INFO"})
        again = configure_from_env({"INSTAX_LOG": "debug"})
        assert first is again and first is not None and first.level == logging.DEBUG
        assert configure_from_env({}) is None
    finally:
        logger.handlers[:] = before
        logger.setLevel(level)


# -- polls, webhooks, and no secret anywhere -------------------------------------------------


async def test_polls_log_each_status_and_the_next_wait_at_debug(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    from instax_async import BlockchainPoller

    polls = 0

    async def blockchain(request: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        body = {"status": "pending"} if polls % 2 else {"status": "confirmed", "hash": "0x1"}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/utils/blockchain-status", blockchain)
    url = await start_server(app)
    caplog.set_level(logging.DEBUG, logger="instax_async")
    async with AsyncSession(base_url=url) as client:
        await client.wait_for_blockchain_hash("wd_7", interval=0.01)
        async with BlockchainPoller(client, interval=0.01) as poller:
            await poller.watch("wd_8")
    messages = [r.getMessage() for r in caplog.records if "next poll" in r.getMessage()]
    assert any("tx 'wd_7': pending; next poll in" in m for m in messages), messages
    assert any("tx 'wd_8': pending; next poll in" in m for m in messages), messages
    assert any("tx 'wd_7': confirmed; done" in r.getMessage() for r in caplog.records)


async def test_a_receiver_logs_each_handled_event_at_info(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    from instax_async.integrations.aiohttp import webhook_handler
    from instax_async.testing import make_webhook

    app = web.Application()
    app.router.add_post("/hook", webhook_handler("whsec_info", lambda event: None))
    url = await start_server(app)
    caplog.set_level(logging.INFO, logger="instax_async")
    import aiohttp

    body, headers = make_webhook("whsec_info", reference="order-1")
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # a delivery and its redelivery
            async with http.post(f"{url}/hook", data=body, headers=headers) as answer:
                assert answer.status == 200
    handled = [r for r in caplog.records if r.levelno == logging.INFO]
    assert [r.instax_status for r in handled] == [200, 200]  # type: ignore[attr-defined]
    assert "answered 200 ok" in handled[0].getMessage()
    assert "answered 200 duplicate" in handled[1].getMessage()
    assert "(completed)" in handled[0].getMessage()


async def test_no_secret_in_any_record_at_debug(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """create, status, poll and webhook — success, retry, refusal and failure — at DEBUG."""
    from instax_async.integrations.aiohttp import webhook_handler
    from instax_async.sandbox import Sandbox, SandboxConfig
    from instax_async.testing import make_webhook

    webhook_secret = "whsec_never_logged_0123456789"
    caplog.set_level(logging.DEBUG)  # every logger: the SDK's and the libraries'
    receiver = web.Application()
    receiver.router.add_post("/hook", webhook_handler(webhook_secret, lambda event: None))
    hook_url = await start_server(receiver)
    config = SandboxConfig(
        webhook_url=f"{hook_url}/hook",
        webhook_secret=webhook_secret,
        api_key=API_KEY,
        confirmation_polls=1,
    )
    signatures: list[str] = []
    async with Sandbox(config) as sandbox:
        async with AsyncSession(base_url=sandbox.url, api_key=API_KEY, retry=FAST) as client:
            session = await client.create_session(REQUEST)
            settled = await sandbox.complete(session.id)
            await client.session_status(session.id)
            await client.wait_for_blockchain_hash(settled["withdraw_tx_id"], interval=0.01)
            with pytest.raises(NotFoundError):
                await client.session_status("ps_unknown")
        async with AsyncSession(base_url=sandbox.url, api_key="sk_wrong_key_logged?") as other:
            with pytest.raises(InstaxError):
                await other.session_status(session.id)
        import aiohttp

        async with aiohttp.ClientSession() as http:
            for secret in (webhook_secret, "whsec_wrong"):
                body, headers = make_webhook(secret, reference="order-9")
                signatures.append(headers["X-InstaXWH-KEY"])
                async with http.post(f"{hook_url}/hook", data=body, headers=headers) as answer:
                    await answer.read()
        for _ in range(200):  # the sandbox's own webhooks, delivered in the background
            if all(d["delivered"] for d in sandbox.state.deliveries):
                break
            await asyncio.sleep(0.01)
    text = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "POST /api/session -> 201" in text and "webhook" in text
    for secret in (API_KEY, "sk_wrong_key_logged?", webhook_secret, *signatures):
        assert secret not in text, secret
