"""The sandbox's checkout page in a real headless Chromium (Debian's /usr/bin/chromium)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from instax_async import AsyncSession, SessionRequest
from instax_async.sandbox import Sandbox
from instax_async.testing import WebhookRecorder

CHROMIUM = os.environ.get("INSTAX_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

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


@pytest.mark.parametrize(
    ("card", "expected_text", "final_status"),
    [
        ("4242 4242 4242 4242", "Payment successful", "completed"),
        ("4000 0000 0000 0002", "Payment declined: Do Not Honor", "failed"),
    ],
)
async def test_checkout_in_chromium(
    browser: Any,
    instax_client: AsyncSession,
    instax_webhooks: WebhookRecorder,
    card: str,
    expected_text: str,
    final_status: str,
    request: pytest.FixtureRequest,
) -> None:
    session = await instax_client.create_session(
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
        final = await instax_webhooks.wait_for(session_id=session.id, status=final_status)
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        raise
    finally:
        await page.close()
    assert final.reference == "order-b"
    assert [e.status for e in instax_webhooks.events] == ["pending", final_status]


async def test_unknown_card_and_unknown_session(
    browser: Any,
    instax_client: AsyncSession,
    instax_sandbox: Sandbox,
    instax_webhooks: WebhookRecorder,
) -> None:
    session = await instax_client.create_session(
        SessionRequest.receiving(to_amount="5", from_currency="EUR", to_currency="USDC")
    )
    page = await browser.new_page()
    try:
        await page.goto(f"{instax_sandbox.url}/order/{session.id}")
        await page.fill("#card", "1111 2222 3333 4444")
        await page.click("#pay")
        await page.wait_for_selector("#result.error")
        assert "test card" in await page.inner_text("#result")
        response = await page.goto(f"{instax_sandbox.url}/embed/ps_nope")
        assert response is not None and response.status == 404
        assert "Session not found" in await page.content()
    finally:
        await page.close()
    assert instax_webhooks.events == []
