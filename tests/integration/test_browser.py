"""The sandbox's checkout page in a real headless Chromium (Debian's /usr/bin/chromium)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from instax_async import AsyncSession, SessionRequest, WebhookEvent
from instax_async.integrations.aiohttp import webhook_handler
from instax_async.sandbox import Sandbox, SandboxConfig

CHROMIUM = os.environ.get("INSTAX_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SECRET = "browser-secret"

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM),
    reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)",
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def flow(start_server: Any) -> AsyncIterator[tuple[Sandbox, list[WebhookEvent]]]:
    events: list[WebhookEvent] = []
    receiver = web.Application()
    receiver.router.add_post("/hook", webhook_handler(SECRET, events.append))
    receiver_url = await start_server(receiver)
    config = SandboxConfig(webhook_url=f"{receiver_url}/hook", webhook_secret=SECRET)
    async with Sandbox(config) as sandbox:
        yield sandbox, events


async def wait_for(predicate: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize(
    ("card", "expected_text", "final_status"),
    [
        ("4242 4242 4242 4242", "Payment successful", "completed"),
        ("4000 0000 0000 0002", "Payment declined: Do Not Honor", "failed"),
    ],
)
async def test_checkout_in_chromium(
    browser: Any,
    flow: tuple[Sandbox, list[WebhookEvent]],
    card: str,
    expected_text: str,
    final_status: str,
    request: pytest.FixtureRequest,
) -> None:
    sandbox, events = flow
    async with AsyncSession(base_url=sandbox.url) as client:
        session = await client.create_session(
            SessionRequest.sending(
                from_amount="25", from_currency="USD", to_currency="USDT", webhook_ref="order-b"
            )
        )
    page = await browser.new_page()
    try:
        await page.goto(session.iframe_url)
        assert "25 USD" in (await page.inner_text("#from")).replace("\n", " ")
        await page.fill("#card", card)
        await page.click("#pay")
        await page.wait_for_selector("#result.success, #result.failure", timeout=10_000)
        assert await page.inner_text("#result") == expected_text
        await wait_for(lambda: any(e.status == final_status for e in events))
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        raise
    finally:
        await page.close()
    final = next(e for e in events if e.status == final_status)
    assert final.reference == "order-b"
    assert final.session_id == session.id
    assert [e.status for e in events] == ["pending", final_status]


async def test_unknown_card_and_unknown_session(
    browser: Any, flow: tuple[Sandbox, list[WebhookEvent]]
) -> None:
    sandbox, events = flow
    async with AsyncSession(base_url=sandbox.url) as client:
        session = await client.create_session(
            SessionRequest.receiving(to_amount="5", from_currency="EUR", to_currency="USDC")
        )
    page = await browser.new_page()
    try:
        await page.goto(f"{sandbox.url}/order/{session.id}")
        await page.fill("#card", "1111 2222 3333 4444")
        await page.click("#pay")
        await page.wait_for_selector("#result.error")
        assert "test card" in await page.inner_text("#result")
        response = await page.goto(f"{sandbox.url}/embed/ps_nope")
        assert response is not None and response.status == 404
        assert "Session not found" in await page.content()
    finally:
        await page.close()
    assert events == []
