"""AsyncSession through real transports against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
import pytest
from aiohttp import web

from instax_async import (
    AiohttpTransport,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncSession,
    BadRequestError,
    RetryPolicy,
    ServerError,
    SessionRequest,
    Transport,
    ValidationError,
)
from instax_async.sandbox import create_app
from instax_async.transports.httpx import HttpxTransport
from tests.conftest import StartServer

FAST = RetryPolicy(max_retries=2, backoff_base=0.0, backoff_max=0.0)
SENDING = SessionRequest.sending(
    from_amount=Decimal("999999999999.123456789012345678"),
    from_currency="USD",
    to_currency="USDT",
    webhook_ref="order-77",
)
RECEIVING = SessionRequest.receiving(to_amount="10", from_currency="EUR", to_currency="USDC")

TRANSPORTS: dict[str, Callable[[], Transport]] = {
    "aiohttp": AiohttpTransport,
    "httpx": HttpxTransport,
}


@pytest.fixture(params=sorted(TRANSPORTS))
async def make_client(request: pytest.FixtureRequest) -> Any:
    made: list[tuple[AsyncSession, Transport]] = []

    def make(base_url: str, **kwargs: Any) -> AsyncSession:
        transport = TRANSPORTS[request.param]()
        kwargs.setdefault("retry", FAST)
        client = AsyncSession(base_url=base_url, transport=transport, **kwargs)
        made.append((client, transport))
        return client

    yield make
    for client, transport in made:
        await client.aclose()
        await transport.aclose()


async def test_end_to_end_creation_against_the_sandbox(
    start_server: StartServer, make_client: Any
) -> None:
    base_url = await start_server(create_app())
    client = make_client(base_url)
    sending, receiving = await asyncio.gather(
        client.create_session(SENDING), client.create_session(RECEIVING)
    )
    assert sending.id.startswith("ps_")
    assert sending.iframe_url == f"{base_url}/embed/{sending.id}"
    assert sending.raw["from_amount"] == Decimal("999999999999.123456789012345678")
    assert sending.raw["payment_direction"] == "sending"
    assert receiving.raw["to_amount"] == Decimal("10")
    assert receiving.raw["from_amount"] > 0
    assert receiving.status == "initiated"


def recording_app(
    responses: list[tuple[int, dict[str, str]]] | None = None, delay: float = 0.0
) -> tuple[web.Application, dict[str, Any]]:
    state: dict[str, Any] = {"calls": 0, "in_flight": 0, "peak": 0, "bodies": [], "headers": []}

    async def handle(request: web.Request) -> web.Response:
        state["calls"] += 1
        number = state["calls"]
        state["in_flight"] += 1
        state["peak"] = max(state["peak"], state["in_flight"])
        try:
            state["bodies"].append(await request.read())
            state["headers"].append(dict(request.headers))
            if delay:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0.001)
            if responses:
                status, headers = responses[min(number, len(responses)) - 1]
                if status != 201:
                    return web.json_response(
                        {"message": f"status {status}"}, status=status, headers=headers
                    )
            return web.json_response({"id": f"ps_{number}"}, status=201)
        finally:
            state["in_flight"] -= 1

    app = web.Application()
    app.router.add_post("/api/session", handle)
    return app, state


async def test_exact_bytes_and_headers_reach_the_server(
    start_server: StartServer, make_client: Any
) -> None:
    app, state = recording_app()
    client = make_client(await start_server(app), api_key="key-1")
    await client.create_session(SENDING)
    assert state["bodies"] == [
        b'{"amountDirection":"sending","fromCurrency":"USD","toCurrency":"USDT",'
        b'"fromAmount":999999999999.123456789012345678,"webhookRef":"order-77"}'
    ]
    headers = state["headers"][0]
    assert headers["Content-Type"] == "application/json"
    assert headers["x-api-key"] == "key-1"
    assert headers["User-Agent"].startswith("instax-async/")


async def test_concurrency_is_bounded_at_the_server(
    start_server: StartServer, make_client: Any
) -> None:
    app, state = recording_app()
    client = make_client(await start_server(app), max_concurrency=10)
    sessions = await asyncio.gather(*(client.create_session(SENDING) for _ in range(500)))
    assert len({s.id for s in sessions}) == 500
    assert state["calls"] == 500
    assert state["peak"] <= 10


async def test_slow_server_times_out(start_server: StartServer, make_client: Any) -> None:
    app, state = recording_app(delay=5)
    client = make_client(await start_server(app), timeout=0.2)
    with pytest.raises(APITimeoutError, match="timed out"):
        await client.create_session(SENDING)
    assert state["calls"] == 1  # a timed-out POST may have been processed: not retried


async def test_closed_port_is_a_connection_error_retried_for_post(
    closed_port_url: str, make_client: Any
) -> None:
    client = make_client(closed_port_url)
    with pytest.raises(APIConnectionError) as info:
        await client.create_session(SENDING)
    assert info.value.connect_failed
    assert not isinstance(info.value, APITimeoutError)


@pytest.mark.parametrize(
    ("status", "headers", "calls", "error"),
    [
        (503, {}, 2, None),
        (429, {"Retry-After": "0"}, 2, None),
        (500, {}, 1, ServerError),
        (502, {}, 1, ServerError),
        (408, {}, 1, None),
        (400, {}, 1, BadRequestError),
    ],
)
async def test_post_retry_rules_seen_at_the_server(
    start_server: StartServer,
    make_client: Any,
    status: int,
    headers: dict[str, str],
    calls: int,
    error: type[Exception] | None,
) -> None:
    app, state = recording_app([(status, headers), (201, {})])
    client = make_client(await start_server(app))
    if calls == 2:
        await client.create_session(SENDING)
    else:
        with pytest.raises(error or Exception):
            await client.create_session(SENDING)
    assert state["calls"] == calls


async def test_get_retry_rules_seen_at_the_server(start_server: StartServer) -> None:
    attempts: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        attempts.append(1)
        if len(attempts) < 3:
            return web.json_response({}, status=[500, 408][len(attempts) - 1])
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/probe", handle)
    base_url = await start_server(app)
    async with AsyncSession(base_url=base_url, retry=FAST) as client:
        response = await client.requester.send("GET", f"{base_url}/probe", idempotent=True)
    assert response.status == 200
    assert len(attempts) == 3


async def test_aiohttp_transport_never_closes_a_callers_session(
    start_server: StartServer,
) -> None:
    app, _ = recording_app()
    base_url = await start_server(app)
    async with aiohttp.ClientSession() as own:
        transport = AiohttpTransport(own)
        assert "shared" in repr(transport)
        async with AsyncSession(base_url=base_url, transport=transport) as client:
            await client.create_session(SENDING)
        await transport.aclose()
        assert not own.closed
        async with own.post(f"{base_url}/api/session", data=b"{}") as response:
            assert response.status == 201


async def test_default_transport_is_created_lazily_and_closed(start_server: StartServer) -> None:
    app, _ = recording_app()
    base_url = await start_server(app)
    client = AsyncSession(base_url=base_url)
    transport = client.requester.shared.transport
    assert isinstance(transport, AiohttpTransport)
    assert transport._session is None
    assert "owned" in repr(transport)
    await client.create_session(SENDING)
    session = transport._session
    assert session is not None and not session.closed
    await client.aclose()
    assert session.closed


def test_default_transport_survives_a_new_event_loop(closed_port_url: str) -> None:
    """A client kept across two ``asyncio.run`` calls starts a fresh aiohttp session."""

    async def main(base_url: str, client: AsyncSession) -> str:
        return (await client.create_session(SENDING)).id

    async def serve_and_call(client: AsyncSession) -> str:
        app, _ = recording_app()
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        client._base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        client._session_url = f"{client._base_url}/api/session"
        try:
            return await main(client._base_url, client)
        finally:
            await runner.cleanup()

    client = AsyncSession(base_url=closed_port_url)
    assert asyncio.run(serve_and_call(client)) == "ps_1"
    assert asyncio.run(serve_and_call(client)) == "ps_1"
    asyncio.run(client.aclose())


def test_aiohttp_transport_rejects_a_bad_limit() -> None:
    with pytest.raises(Exception, match="limit"):
        AiohttpTransport(limit=-1)


async def test_aiohttp_transport_maps_other_client_errors(start_server: StartServer) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"{")
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_post("/api/session", handle)
    base_url = await start_server(app)
    async with AsyncSession(
        base_url=base_url, transport=None, retry=RetryPolicy(max_retries=0)
    ) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.create_session(SENDING)
    assert not info.value.connect_failed


async def test_proxy_and_ssl_options_are_passed(start_server: StartServer) -> None:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.json_response({"id": "ps_proxy"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    proxy_url = await start_server(app)
    transport = AiohttpTransport(proxy=proxy_url, ssl=False)
    async with AsyncSession(base_url="http://api.invalid", transport=transport) as client:
        assert (await client.create_session(SENDING)).id == "ps_proxy"
    await transport.aclose()
    assert seen == ["http://api.invalid/api/session"]
    assert json.dumps(seen)


def path_recording_app(seen: list[tuple[str, str, str | None]]) -> web.Application:
    """Records every request's method, raw path and api key, whatever the path; answers a
    session status, a blockchain status, or 404."""

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path, request.headers.get("x-api-key")))
        if request.path.startswith("/api/session/") and request.path.endswith("/status"):
            return web.json_response({"sessionStatus": "completed"})
        if request.path == "/utils/blockchain-status":
            return web.json_response({"txId": request.query["txId"], "hash": "0x1"})
        return web.json_response({"message": "no such endpoint"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def test_dot_ids_are_refused_and_others_stay_on_their_endpoint(
    start_server: StartServer, make_client: Any
) -> None:
    seen: list[tuple[str, str, str | None]] = []
    client = make_client(await start_server(path_recording_app(seen)), api_key="sk_live_paths")
    for dots in (".", ".."):
        for call in (
            client.session_status,
            client.wait_for_session,
            client.blockchain_status,
            client.wait_for_blockchain_hash,
        ):
            with pytest.raises(ValidationError, match="another endpoint"):
                await call(dots)
        with pytest.raises(ValidationError, match="another endpoint"):
            client.poll_session_status(dots)
        with pytest.raises(ValidationError, match="another endpoint"):
            client.poll_blockchain_status(dots)
    assert seen == []  # nothing was sent
    # ids that only look like dot segments, or hold one, travel as one segment (or one query
    # value) that decodes to the id; yarl may spell the encoding differently, to that effect
    for session_id in ("...", "../..", "a/../..", "%2e%2e", ".%2E", "..\\..", "?x=..#", "/"):
        await client.session_status(session_id)
        await client.blockchain_status(session_id)
        (method, status_path, key), (_, blockchain_path, _) = seen[-2:]
        segments = status_path.split("/")
        assert method == "GET" and key == "sk_live_paths"
        assert segments[:3] == ["", "api", "session"] and segments[4:] == ["status"]
        assert unquote(segments[3]) == session_id
        query = urlsplit(blockchain_path)
        assert query.path == "/utils/blockchain-status"
        assert parse_qs(query.query) == {"txId": [session_id]}


@pytest.mark.parametrize(
    "body",
    ['{"id": ".."}', '{"id": "."}', '{"id": "ps_\\ud800x"}', '{"id": "   "}'],
    ids=["dot-dot", "dot", "lone-surrogate", "blank"],
)
async def test_a_server_answering_a_session_id_no_url_can_carry_is_an_api_error(
    start_server: StartServer, make_client: Any, body: str
) -> None:
    async def create(request: web.Request) -> web.Response:
        return web.Response(text=body, status=201, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/session", create)
    client = make_client(await start_server(app))
    with pytest.raises(APIStatusError, match="session id"):
        await client.create_session(SENDING)


@pytest.mark.parametrize(
    "value",
    ["tenant\x7f", "tenant\nX-Evil: 1", "tenant\x00", "t\u00e9nant", 7, None],
    ids=["DEL", "LF", "NUL", "non-ASCII", "int", "None"],
)
async def test_a_request_that_cannot_be_built_is_never_retried(
    start_server: StartServer, make_client: Any, value: object
) -> None:
    seen: list[tuple[str, str, str | None]] = []
    hook_calls = 0

    def bad_header(request: Any) -> None:
        nonlocal hook_calls
        hook_calls += 1
        request.headers["x-tenant"] = value

    client = make_client(
        await start_server(path_recording_app(seen)),
        api_key="sk_live_never_shown",
        event_hooks={"request": [bad_header]},
    )
    try:
        await client.blockchain_status("wd_1")
    except ValidationError as exc:
        assert exc.field == "request"
        assert "could not be built, so nothing was sent" in str(exc)
        assert seen == []  # nothing reached the server
        chain = [exc, exc.__cause__, exc.__context__]
        assert not any("sk_live_never_shown" in repr(e) for e in chain)
    except BadRequestError:  # h11 sends DEL as it is; the server refuses the request
        assert value == "tenant\x7f"
    else:  # aiohttp sends a non-ASCII value as UTF-8
        assert value == "t\u00e9nant" and len(seen) == 1
    assert hook_calls == 1  # one attempt: never retried


async def test_a_secret_header_a_library_refuses_is_not_shown_escaped(
    start_server: StartServer, make_client: Any
) -> None:
    def tenant_key(request: Any) -> None:
        request.headers["x-api-key"] = "sk_live_tenant\n"

    seen: list[tuple[str, str, str | None]] = []
    client = make_client(
        await start_server(path_recording_app(seen)), event_hooks={"request": [tenant_key]}
    )
    with pytest.raises(ValidationError) as info:
        await client.blockchain_status("wd_1")
    error: BaseException | None = info.value
    while error is not None:
        assert "sk_live_tenant" not in f"{error} {error!r} {error.args!r}"
        error = error.__cause__
    assert seen == []


async def test_10000_poll_attempts_with_distinct_timeouts_leave_the_transport_bounded() -> None:
    from benchmarks.transport_state import CHECKPOINT, poll_attempts, transport_state

    transport = AiohttpTransport()
    fresh = transport_state(transport)
    result = await poll_attempts(10_000, transport)
    assert result["distinct_timeouts"] == 10_000
    first, last = result["state"][str(CHECKPOINT)], result["state"]["10000"]
    assert last == first  # nothing kept per attempt: the same after 100 attempts and 10,000
    assert last["entries"] <= fresh[0] + 2 and last["bytes"] < 4096


async def test_the_origins_a_transport_remembers_are_bounded(
    monkeypatch: pytest.MonkeyPatch, start_server: StartServer
) -> None:
    from instax_async.transports.aiohttp import MAX_ROUTES

    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    app, _ = recording_app()
    base_url = await start_server(app)
    transport = AiohttpTransport()
    async with AsyncSession(base_url=base_url, transport=transport) as client:
        await client.create_session(SENDING)  # opens the session: it reads the environment
        for number in range(3 * MAX_ROUTES):
            route = transport._route(f"https://api{number}.test/api/session")
            assert route["proxy"].port == 9
        routes = transport._routes
        assert routes is not None and len(routes) == MAX_ROUTES
        assert "https://api0.test" not in routes  # the oldest forgotten first
        last = f"https://api{3 * MAX_ROUTES - 1}.test"
        assert transport._route(f"{last}/utils/blockchain-status?txId=1") is routes[last]
    await transport.aclose()


async def test_without_proxy_or_netrc_in_the_environment_nothing_is_looked_up_per_origin(
    monkeypatch: pytest.MonkeyPatch, start_server: StartServer, tmp_path: Any
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    app, state = recording_app()
    transport = AiohttpTransport()
    async with AsyncSession(base_url=await start_server(app), transport=transport) as client:
        await client.create_session(SENDING)
        assert transport._routes is None and transport._route("https://x.test/a") == {}
    await transport.aclose()
    assert state["calls"] == 1
