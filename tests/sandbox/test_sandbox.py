"""The sandbox's endpoints, fault injection and webhook delivery, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from instax_async import InstaxError, ValidationError, WebhookEvent
from instax_async.integrations.aiohttp import webhook_handler
from instax_async.sandbox import Sandbox, SandboxConfig
from instax_async.webhooks import SIGNATURE_HEADER, verify

SECRET = "sandbox-secret"
SENDING = {
    "amountDirection": "sending",
    "fromAmount": 50,
    "fromCurrency": "USD",
    "toCurrency": "USDT",
    "webhookRef": "order-1",
    "address": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
}


async def call(method: str, url: str, **kwargs: Any) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kwargs) as response:
        text = await response.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return response.status, body, response.headers


async def wait_for(predicate: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_session_creation_in_the_real_shape() -> None:
    async with Sandbox() as sandbox:
        status, body, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
        assert status == 201
        assert body["id"].startswith("ps_")
        assert body["status"] == "initiated"
        assert body["payment_direction"] == "sending"
        assert Decimal(str(body["from_amount"])) == 50
        assert Decimal(str(body["to_amount"])) == Decimal("48.5")  # rate 1, fee 3 %
        assert body["wallet"] == SENDING["address"]
        status, body, _ = await call(
            "POST",
            f"{sandbox.url}/api/session",
            json={**SENDING, "amountDirection": "receiving", "toAmount": 10},
        )
        assert status == 400 and body["field"] == "from_amount"
        status, body, _ = await call(
            "POST",
            f"{sandbox.url}/api/session",
            json={
                "amountDirection": "receiving",
                "toAmount": 10,
                "fromCurrency": "EUR",
                "toCurrency": "USDC",
            },
        )
        assert status == 201 and Decimal(str(body["from_amount"])) == Decimal("9.55")


async def test_status_endpoint_needs_the_api_key() -> None:
    async with Sandbox(SandboxConfig(api_key="sk_test")) as sandbox:
        _, created, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
        url = f"{sandbox.url}/api/session/{created['id']}/status"
        assert (await call("GET", url))[0] == 401
        assert (await call("GET", url, headers={"x-api-key": "wrong"}))[0] == 401
        status, body, _ = await call("GET", url, headers={"x-api-key": "sk_test"})
        assert status == 200
        assert body["sessionId"] == created["id"]
        assert body["sessionStatus"] == "initiated"
        assert body["webhookRef"] == "order-1"
        missing = f"{sandbox.url}/api/session/ps_nope/status"
        assert (await call("GET", missing, headers={"x-api-key": "sk_test"}))[0] == 404


async def test_completion_delivers_signed_webhooks_and_confirms_the_payout(
    start_server: Any,
) -> None:
    events: list[WebhookEvent] = []
    receiver = web.Application()
    receiver.router.add_post("/hook", webhook_handler(SECRET, events.append))
    hook_url = f"{await start_server(receiver)}/hook"
    config = SandboxConfig(webhook_url=hook_url, webhook_secret=SECRET, confirmation_polls=3)
    async with Sandbox(config) as sandbox:
        _, created, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
        settled = await sandbox.complete(created["id"])
        assert settled["status"] == "completed"
        await wait_for(lambda: len(events) == 2)
        pending, completed = events
        assert pending.status == "pending" and completed.is_completed
        assert completed.reference == "order-1"
        assert completed.session_id == created["id"]
        assert completed.withdraw_tx_id == settled["withdraw_tx_id"]
        assert completed.data.amount_in_fiat == Decimal(50)
        tx = settled["withdraw_tx_id"]
        answers = [
            (await call("GET", f"{sandbox.url}/utils/blockchain-status", params={"txId": tx}))[1]
            for _ in range(5)
        ]
        assert [a["status"] for a in answers] == ["pending"] * 3 + ["confirmed"] * 2
        assert answers[3]["hash"].startswith("0x") and answers[3]["hash"] == answers[4]["hash"]
        assert answers[0] == {"txId": tx, "status": "pending"}
        status, body, _ = await call(
            "GET", f"{sandbox.url}/utils/blockchain-status", params={"txId": "wd_unknown"}
        )
        assert status == 404 and body["message"] == "unknown transaction"
        assert (await call("GET", f"{sandbox.url}/utils/blockchain-status"))[0] == 400
        with pytest.raises(InstaxError, match="already completed"):
            await sandbox.complete(created["id"])
        status, log, _ = await call("GET", f"{sandbox.url}/sandbox/webhooks")
        assert [d["status"] for d in log] == ["pending", "completed"]
        assert all(d["delivered"] and d["attempts"] == [200] for d in log)


async def test_failure_webhook_and_failed_payout(start_server: Any) -> None:
    bodies: list[tuple[bytes, str | None]] = []

    async def capture(request: web.Request) -> web.Response:
        bodies.append((await request.read(), request.headers.get(SIGNATURE_HEADER)))
        return web.json_response({})

    receiver = web.Application()
    receiver.router.add_post("/hook", capture)
    config = SandboxConfig(
        webhook_url=f"{await start_server(receiver)}/hook", webhook_secret=SECRET
    )
    async with Sandbox(config) as sandbox:
        _, created, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
        settled = await sandbox.fail(created["id"])
        assert settled["status_reason"] == "Do Not Honor"
        await wait_for(lambda: len(bodies) == 2)
        event = verify(bodies[1][0], bodies[1][1], SECRET)
        assert event.is_failed and event.data.status_reason == "Do Not Honor"
        assert event.invoice_data is not None
        assert event.invoice_data.withdraw_tx_status == "failed"
        _, answer, _ = await call(
            "GET",
            f"{sandbox.url}/utils/blockchain-status",
            params={"txId": settled["withdraw_tx_id"]},
        )
        assert answer["status"] == "failed"
        with pytest.raises(InstaxError, match="unknown session"):
            await sandbox.fail("ps_nope")


@pytest.mark.parametrize(
    ("session_id", "reason", "field"),
    [
        ("..", None, "session_id"),
        (".", None, "session_id"),
        ("  ", None, "session_id"),
        (42, None, "session_id"),
        ("ps_1", 42, "reason"),
    ],
)
async def test_settling_helpers_refuse_what_is_not_an_id(
    session_id: Any, reason: Any, field: str
) -> None:
    # ".." would post to /sandbox/sessions/complete, another endpoint
    async with Sandbox() as sandbox:
        with pytest.raises(ValidationError) as info:
            if reason is None:
                await sandbox.complete(session_id)
            else:
                await sandbox.fail(session_id, reason)
    assert info.value.field == field and field in str(info.value)


async def test_webhooks_are_redelivered_until_a_2xx(start_server: Any) -> None:
    answers = [500, 503]
    received: list[bytes] = []

    async def flaky(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({}, status=answers.pop(0) if answers else 200)

    receiver = web.Application()
    receiver.router.add_post("/hook", flaky)
    config = SandboxConfig(
        webhook_url=f"{await start_server(receiver)}/hook",
        webhook_secret=SECRET,
        webhook_backoff=0.01,
    )
    async with Sandbox(config) as sandbox:
        _, created, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
        await sandbox.complete(created["id"])
        await wait_for(
            lambda: len(sandbox.state.deliveries) == 2 and sandbox.state.deliveries[1]["delivered"]
        )
        first, second = sandbox.state.deliveries
        assert first["attempts"] == [500, 503, 200]
        assert second["attempts"] == [200]
        assert len(set(received[:3])) == 1  # the same body each time


async def test_delivery_gives_up_after_bounded_attempts(closed_port_url: str) -> None:
    config = SandboxConfig(
        webhook_url=f"{closed_port_url}/hook", webhook_attempts=3, webhook_backoff=0.0
    )
    async with Sandbox(config) as sandbox:
        _, created, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
        await sandbox.complete(created["id"])
        await wait_for(
            lambda: (
                len(sandbox.state.deliveries) == 2
                and len(sandbox.state.deliveries[1]["attempts"]) == 3
            )
        )
        assert not any(d["delivered"] for d in sandbox.state.deliveries)
        assert sandbox.state.deliveries[0]["attempts"][0] == "ClientConnectorError"


async def test_fault_injection() -> None:
    always_500 = SandboxConfig(error_rate=1.0, seed=1)
    async with Sandbox(always_500) as sandbox:
        status, body, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
        assert status == 500 and "injected" in body["message"]
        # the checkout page and the helpers are never faulted
        status, _, _ = await call("GET", f"{sandbox.url}/embed/ps_nope")
        assert status == 404
    always_429 = SandboxConfig(rate_limit_rate=1.0, retry_after=2, latency=0.01)
    async with Sandbox(always_429) as sandbox:
        status, _, headers = await call("GET", f"{sandbox.url}/utils/blockchain-status")
        assert status == 429 and headers["Retry-After"] == "2"
    mixed = SandboxConfig(error_rate=0.3, rate_limit_rate=0.3, seed=7)
    async with Sandbox(mixed) as sandbox:
        statuses = [
            (await call("POST", f"{sandbox.url}/api/session", json=SENDING))[0] for _ in range(40)
        ]
        assert {500, 429, 201} == set(statuses)
        assert sandbox.state.requests == 40


async def test_bad_helper_bodies_and_pages() -> None:
    async with Sandbox() as sandbox:
        assert "not started" not in repr(sandbox)
        _, created, _ = await call("POST", f"{sandbox.url}/api/session", json=SENDING)
        url = f"{sandbox.url}/sandbox/sessions/{created['id']}/complete"
        status, _, _ = await call("POST", url, data=b"{oops")
        assert status == 400
        status, page, _ = await call("GET", f"{sandbox.url}/embed/{created['id']}")
        text = " ".join(re.sub("<[^>]+>", "", page).split())
        assert status == 200 and "50.00 USD" in text and "48.5 USDT" in text
        assert "<script src" not in page and "http" not in page.split("<script>")[1]
        await sandbox.complete(created["id"])
        status, page, _ = await call("GET", f"{sandbox.url}/order/{created['id']}")
        assert "Payment already completed" in page and "disabled" in page


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"rate_limit_rate": -0.1}, "rate_limit_rate"),
        ({"latency": -1}, "latency"),
        ({"confirmation_polls": -1}, "confirmation_polls"),
        ({"webhook_url": "ftp://x"}, "webhook_url"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SandboxConfig(**kwargs)
    assert info.value.field == field


def test_config_repr_hides_secrets() -> None:
    text = repr(SandboxConfig(webhook_secret="whsec_hidden", api_key="sk_hidden"))
    assert "whsec_hidden" not in text and "sk_hidden" not in text


async def test_port_in_use_is_a_clear_error() -> None:
    async with Sandbox() as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(InstaxError, match="cannot listen"):
            await Sandbox(port=port).start()
