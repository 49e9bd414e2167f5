"""A shop's checkout, webhook and payout, tested against the local sandbox: tests/test_checkout.py.

Needs pytest and pytest-asyncio; the instax_* fixtures come with instax-async.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from instax_async import AsyncSession, InstaxError, SessionRequest, WebhookEvent
from instax_async.integrations.aiohttp import webhook_handler
from instax_async.sandbox import Sandbox
from instax_async.testing import WebhookRecorder, make_webhook

# -- the shop (in a real project, a module of its own) ------------------------------------------


def create_shop(instax: AsyncSession, webhook_secret: str) -> web.Application:
    orders: dict[str, dict[str, Any]] = {}

    async def checkout(request: web.Request) -> web.Response:
        form = await request.json()
        try:
            session = await instax.create_session(
                SessionRequest.sending(
                    from_amount=form["amount"],
                    from_currency="USD",
                    to_currency="USDT",
                    webhook_ref=form["order_id"],
                )
            )
        except InstaxError:
            return web.json_response({"error": "payments are unavailable"}, status=503)
        orders[form["order_id"]] = {"status": "awaiting payment", "payout_tx": None, "hash": None}
        return web.json_response({"session_id": session.id, "checkout_url": session.iframe_url})

    async def on_payment(event: WebhookEvent) -> None:
        order = orders.get(event.reference or "")
        if order is not None and event.is_completed:
            order.update(status="paid", payout_tx=event.withdraw_tx_id)
        elif order is not None and event.is_failed:
            order.update(status="declined")

    async def show_order(request: web.Request) -> web.Response:
        order = orders[request.match_info["order_id"]]
        if order["payout_tx"] and not order["hash"]:
            order["hash"] = (await instax.blockchain_status(order["payout_tx"])).hash
        return web.json_response(order)

    app = web.Application()
    app.router.add_post("/checkout", checkout)
    app.router.add_post("/webhooks/instax", webhook_handler(webhook_secret, on_payment))
    app.router.add_get("/orders/{order_id}", show_order)
    return app


# -- its tests ------------------------------------------------------------------------------------

WEBHOOK_SECRET = "whsec_shop_test"
pytestmark = pytest.mark.asyncio  # for pytest-asyncio's strict mode; harmless in auto mode


@pytest_asyncio.fixture
async def shop(instax_client: AsyncSession) -> AsyncIterator[TestClient[Any, Any]]:
    """The shop, talking to the sandbox through the instax_client fixture."""
    async with TestClient(TestServer(create_shop(instax_client, WEBHOOK_SECRET))) as client:
        yield client


async def test_a_paid_order_gets_its_payout_hash(
    shop: TestClient[Any, Any], instax_sandbox: Sandbox, instax_webhooks: WebhookRecorder
) -> None:
    response = await shop.post("/checkout", json={"order_id": "order-1", "amount": "50"})
    checkout = await response.json()
    assert checkout["checkout_url"].startswith(instax_sandbox.url)

    await instax_sandbox.complete(checkout["session_id"])  # the customer pays
    sent = await instax_webhooks.wait_for(session_id=checkout["session_id"], status="completed")
    assert sent.reference == "order-1"

    # that notification, as the shop's webhook endpoint receives it
    body, headers = make_webhook(
        WEBHOOK_SECRET,
        reference="order-1",
        session_id=sent.session_id,
        withdraw_tx_id=sent.withdraw_tx_id,
    )
    assert (await shop.post("/webhooks/instax", data=body, headers=headers)).status == 200

    order = await (await shop.get("/orders/order-1")).json()
    assert order["status"] == "paid"
    assert order["hash"] is None  # the sandbox confirms a payout at the second poll
    order = await (await shop.get("/orders/order-1")).json()
    assert order["hash"].startswith("0x")


async def test_a_declined_order_and_a_forged_webhook(
    shop: TestClient[Any, Any], instax_sandbox: Sandbox, instax_webhooks: WebhookRecorder
) -> None:
    response = await shop.post("/checkout", json={"order_id": "order-2", "amount": "20"})
    session_id = (await response.json())["session_id"]
    await instax_sandbox.fail(session_id)  # declined: "Do Not Honor"
    sent = await instax_webhooks.wait_for(session_id=session_id, status="failed")
    assert sent.data.status_reason == "Do Not Honor"

    forged, headers = make_webhook("whsec_guessed", reference="order-2")
    assert (await shop.post("/webhooks/instax", data=forged, headers=headers)).status == 401
    body, headers = make_webhook(
        WEBHOOK_SECRET, status="failed", reference="order-2", session_id=session_id
    )
    assert (await shop.post("/webhooks/instax", data=body, headers=headers)).status == 200
    assert (await (await shop.get("/orders/order-2")).json())["status"] == "declined"


@pytest.mark.instax_sandbox(error_rate=1.0)  # every API request answered 500
async def test_checkout_while_instaxchange_fails(shop: TestClient[Any, Any]) -> None:
    response = await shop.post("/checkout", json={"order_id": "order-3", "amount": "50"})
    assert response.status == 503
