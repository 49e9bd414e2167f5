"""The plugin's fixtures used in this very suite, and make_webhook through the real receivers."""

from __future__ import annotations

import asyncio
import urllib.request

import aiohttp
import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from starlette.applications import Starlette
from starlette.routing import Route

from instax_async import (
    APIConnectionError,
    AsyncSession,
    AuthenticationError,
    InstaxError,
    ServerError,
    SessionRequest,
    WebhookEvent,
)
from instax_async.integrations.aiohttp import webhook_handler
from instax_async.integrations.asgi import webhook_app
from instax_async.sandbox import Sandbox
from instax_async.testing import WebhookRecorder, make_webhook

PYTEST_ASYNCIO = tuple(int(part) for part in pytest_asyncio.__version__.split(".")[:2])


def order(amount: str, reference: str) -> SessionRequest:
    return SessionRequest.sending(
        from_amount=amount, from_currency="USD", to_currency="USDT", webhook_ref=reference
    )


async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers=headers) as answer,
    ):
        return answer.status


async def test_a_payment_and_a_decline_each_announce_themselves(
    instax_client: AsyncSession, instax_sandbox: Sandbox, instax_webhooks: WebhookRecorder
) -> None:
    paid, declined = await asyncio.gather(
        instax_client.create_session(order("50", "order-paid")),
        instax_client.create_session(order("20", "order-declined")),
    )
    # one waiter is already waiting when its webhook arrives, the other finds it received
    waiting = asyncio.ensure_future(
        instax_webhooks.wait_for(session_id=paid.id, status="completed")
    )
    settled = await instax_sandbox.complete(paid.id)
    await instax_sandbox.fail(declined.id, reason="Insufficient funds")
    completed = await waiting
    await instax_webhooks.wait_for(reference="order-declined", status="pending")
    failed = await instax_webhooks.wait_for(reference="order-declined", status="failed")

    assert (
        completed.reference == "order-paid"
        and completed.withdraw_tx_id == settled["withdraw_tx_id"]
    )
    assert failed.session_id == declined.id and failed.data.status_reason == "Insufficient funds"
    assert instax_webhooks.refused == 0
    statuses = [(e.session_id, str(e.status)) for e in instax_webhooks.events]
    assert statuses.index((paid.id, "pending")) < statuses.index((paid.id, "completed"))
    assert sorted(statuses) == sorted(
        [
            (paid.id, "pending"),
            (paid.id, "completed"),
            (declined.id, "pending"),
            (declined.id, "failed"),
        ]
    )
    # tuned for tests: the hash after one pending answer, no waiting between polls needed
    payout = await instax_client.wait_for_blockchain_hash(settled["withdraw_tx_id"], interval=0.01)
    assert payout.hash is not None and payout.hash.startswith("0x")
    assert instax_client.has_api_key
    status = await instax_client.session_status(paid.id)
    assert status.session_id == paid.id


@pytest.mark.instax_sandbox(error_rate=1.0)
async def test_the_marker_injects_faults(instax_client: AsyncSession) -> None:
    with pytest.raises(ServerError):
        await instax_client.create_session(order("50", "order-1"))


@pytest.mark.instax_sandbox(api_key="sk_test_other", confirmation_polls=3)
async def test_the_marker_replaces_any_default(
    instax_client: AsyncSession, instax_sandbox: Sandbox
) -> None:
    assert instax_sandbox.config.confirmation_polls == 3
    assert instax_sandbox.config.webhook_backoff == 0.01  # the other test defaults stay
    session = await instax_client.create_session(order("50", "order-1"))
    with pytest.raises(AuthenticationError):
        await instax_client.session_status(session.id)


async def test_a_wrongly_signed_delivery_is_refused_and_counted(
    instax_webhooks: WebhookRecorder,
) -> None:
    body, headers = make_webhook("whsec_not_this_one", reference="order-1")
    assert await post(instax_webhooks.url, body, headers) == 401
    assert await post(instax_webhooks.url, b"[]", {"X-InstaXWH-KEY": "0" * 32}) in (400, 401)
    assert (instax_webhooks.refused, instax_webhooks.events) == (2, [])
    with pytest.raises(TimeoutError) as caught:
        await instax_webhooks.wait_for(reference="order-1", timeout=0.05)
    assert str(caught.value) == (
        "no webhook with reference='order-1' arrived within 0.05 s; none arrived; "
        "2 refused (signed with another secret than this recorder's, or malformed)"
    )
    body, headers = make_webhook(instax_webhooks.secret, reference="order-1")
    assert await post(instax_webhooks.url, body, headers) == 200
    assert (await instax_webhooks.wait_for(reference="order-1")).reference == "order-1"
    assert repr(instax_webhooks).endswith("events=1 refused=2>")


async def test_a_timeout_names_the_filters_and_what_did_arrive(
    instax_webhooks: WebhookRecorder,
) -> None:
    for n in range(12):
        body, headers = make_webhook(
            instax_webhooks.secret, status="pending", session_id=f"ps_{n}", reference=f"o-{n}"
        )
        assert await post(instax_webhooks.url, body, headers) == 200
    with pytest.raises(TimeoutError) as caught:
        await instax_webhooks.wait_for(session_id="ps_1", status="completed", timeout=0.05)
    message = str(caught.value)
    assert message.startswith(
        "no webhook with session_id='ps_1', status='completed' arrived within 0.05 s; "
        "12 arrived: (session_id='ps_0', status='pending', reference='o-0'); "
    )
    assert message.endswith("(session_id='ps_9', status='pending', reference='o-9'); and 2 more")


async def test_a_recorder_outside_pytest_fixtures() -> None:
    recorder = WebhookRecorder("whsec_outside")
    with pytest.raises(TimeoutError, match=r"^no webhook arrived within 0.01 s; none arrived$"):
        async with recorder:
            assert recorder.url.startswith("http://127.0.0.1:")
            with pytest.raises(InstaxError, match="already running"):
                await recorder.start()
            await recorder.wait_for(timeout=0.01)
    # stopping wakes a waiter rather than leaving it hanging
    async with WebhookRecorder() as recorder:
        waiting = asyncio.ensure_future(recorder.wait_for(reference="never"))
        await asyncio.sleep(0)
        await recorder.stop()
        with pytest.raises(InstaxError, match="stopped"):
            await waiting
    # a wait cancelled just before the recorder stops ends as cancelled
    async with WebhookRecorder() as recorder:
        waiting = asyncio.ensure_future(recorder.wait_for(reference="order-1"))
        await asyncio.sleep(0)
        waiting.cancel()
        await recorder.stop()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    with pytest.raises(InstaxError, match=r"cannot listen on 203\.0\.113\.1"):
        await WebhookRecorder(host="203.0.113.1").start()


# -- loops: the fixtures' servers run in loops and threads of their own ------------------------


async def test_the_servers_answer_while_the_tests_loop_is_blocked(
    instax_sandbox: Sandbox, instax_webhooks: WebhookRecorder
) -> None:
    # a synchronous client blocks the test's loop: no server of this loop could answer it
    url = f"{instax_sandbox.url}/sandbox/webhooks"
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: ASYNC210
        assert answer.status == 200
    body, headers = make_webhook(instax_webhooks.secret, reference="order-1")
    sent = urllib.request.Request(instax_webhooks.url, data=body, headers=headers)
    with urllib.request.urlopen(sent, timeout=5) as answer:  # noqa: ASYNC210
        assert answer.status == 200
    assert (await instax_webhooks.wait_for(reference="order-1")).reference == "order-1"


async def test_the_servers_stop_and_start_from_the_tests_loop(
    instax_client: AsyncSession, instax_sandbox: Sandbox, instax_webhooks: WebhookRecorder
) -> None:
    waiting = asyncio.ensure_future(instax_webhooks.wait_for(reference="order-1"))
    await asyncio.sleep(0)  # it waits
    await instax_webhooks.stop()
    with pytest.raises(InstaxError, match=r"^the webhook recorder stopped$"):
        await waiting
    assert instax_webhooks.url == ""
    assert (await instax_webhooks.start()).startswith("http://127.0.0.1:")
    await instax_sandbox.stop()
    with pytest.raises(APIConnectionError):
        await instax_client.with_options(max_retries=0).create_session(order("50", "order-1"))
    url = await instax_sandbox.start()
    async with aiohttp.ClientSession() as http, http.get(f"{url}/sandbox/webhooks") as answer:
        assert answer.status == 200


def test_a_synchronous_test_gets_a_client_for_the_sandbox(
    instax_client: AsyncSession, instax_sandbox: Sandbox
) -> None:
    assert instax_client.base_url == instax_sandbox.url and not instax_client.closed


@pytest.mark.skipif(PYTEST_ASYNCIO < (0, 24), reason="loop scopes of their own came in 0.24")
@pytest.mark.asyncio(loop_scope="module")
async def test_a_test_in_a_module_loop_uses_the_fixtures_of_a_function_loop(
    instax_client: AsyncSession, instax_sandbox: Sandbox, instax_webhooks: WebhookRecorder
) -> None:
    session = await instax_client.create_session(order("50", "order-module"))
    await instax_sandbox.complete(session.id)
    event = await instax_webhooks.wait_for(reference="order-module", status="completed")
    assert event.session_id == session.id


async def test_a_waiter_whose_loop_has_closed_loses_no_delivery() -> None:
    # pytest-asyncio before 0.25 closes a test's loop without ending the tasks left in it
    abandoned = asyncio.new_event_loop()

    def wait_in_a_loop_that_closes(recorder: WebhookRecorder) -> asyncio.Task[WebhookEvent]:
        waiting = abandoned.create_task(recorder.wait_for(reference="order-1"))
        abandoned.run_until_complete(asyncio.sleep(0))  # it waits
        abandoned.close()
        return waiting

    async with WebhookRecorder() as recorder:
        waiting = await asyncio.to_thread(wait_in_a_loop_that_closes, recorder)
        body, headers = make_webhook(recorder.secret, reference="order-1")
        assert await post(recorder.url, body, headers) == 200
        assert (await recorder.wait_for(reference="order-1")).reference == "order-1"
    assert not waiting.done()


# -- make_webhook through the receivers a merchant mounts --------------------------------------


@pytest.mark.parametrize("status", ["completed", "failed"])
async def test_make_webhook_is_accepted_by_the_aiohttp_receiver(status: str) -> None:
    events: list[WebhookEvent] = []
    app = web.Application()
    app.router.add_post("/webhooks/instax", webhook_handler("whsec_shop", events.append))
    body, headers = make_webhook("whsec_shop", status=status, reference="order-7")
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/webhooks/instax", data=body, headers=headers)
        assert (response.status, await response.json()) == (200, {"status": "ok"})
        forged, forged_headers = make_webhook("whsec_attacker", reference="order-7")
        response = await client.post("/webhooks/instax", data=forged, headers=forged_headers)
        assert response.status == 401
    assert [(e.reference, str(e.status)) for e in events] == [("order-7", status)]


@pytest.mark.parametrize("status", ["completed", "failed"])
async def test_make_webhook_is_accepted_by_the_asgi_receiver(status: str) -> None:
    events: list[WebhookEvent] = []
    receiver = webhook_app("whsec_shop", events.append)
    app = Starlette(routes=[Route("/webhooks/instax", receiver, methods=["POST"])])
    body, headers = make_webhook("whsec_shop", status=status, session_id="ps_7")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        response = await client.post("/webhooks/instax", content=body, headers=headers)
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert [(e.session_id, str(e.status)) for e in events] == [("ps_7", status)]


@pytest.fixture
def production_checkout_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # a developer's shell, set up for production
    monkeypatch.setenv("INSTAX_CHECKOUT_URL", "https://pay.example/order/{id}")


async def test_the_client_fixture_links_the_sandboxs_checkout_whatever_the_shell_says(
    production_checkout_env: None, instax_client: AsyncSession, instax_sandbox: Sandbox
) -> None:
    session = await instax_client.create_session(order("50", "order-env"))
    assert session.iframe_url == f"{instax_sandbox.url}/embed/{session.id}"
