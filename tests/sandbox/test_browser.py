"""The sandbox's checkout page in a real headless Chromium (Debian's /usr/bin/chromium).

Screenshots of every width and state are kept in ``tests/artifacts/`` (not in git).
"""

from __future__ import annotations

import asyncio
import html
import os
import shutil
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web

from instax_async import AsyncSession, SessionRequest
from instax_async.sandbox import Sandbox, SandboxConfig
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


@pytest.mark.browser
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
        assert (await page.inner_text("#from")).split() == ["25.00", "USD"]
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


@pytest.mark.browser
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


# -- layout on every width, and the way back to the shop ---------------------------------------

#: The iframe the README recommends: the sandbox flags a checkout needs, and top navigation
#: after the customer's click, so the checkout can send the whole page to the return URL.
README_IFRAME = """<iframe src="{src}"
        allow="clipboard-read; clipboard-write; fullscreen; payment"
        sandbox="{sandbox}"
        referrerpolicy="strict-origin-when-cross-origin"
        width="100%" height="720" style="border:0"></iframe>"""
RECOMMENDED_SANDBOX = (
    "allow-scripts allow-same-origin allow-forms allow-popups "
    "allow-top-navigation-by-user-activation"
)
#: What the README recommended before: no top navigation at all.
STRICT_SANDBOX = "allow-scripts allow-same-origin allow-forms allow-popups"

NO_OVERFLOW = """() => {
  const root = document.documentElement;
  return {scroll: root.scrollWidth, client: root.clientWidth};
}"""
ONE_LINE_CODES = """() => Array.from(document.querySelectorAll(".cur"),
  (el) => [el.textContent, el.getClientRects().length])"""


@pytest.fixture
async def shop(start_server: Any) -> str:
    """A merchant's site on another origin: the checkout in an iframe, and a thank-you page."""

    async def checkout(request: web.Request) -> web.Response:
        frame = README_IFRAME.format(
            src=html.escape(request.query["src"]), sandbox=html.escape(request.query["sandbox"])
        )
        return web.Response(
            content_type="text/html",
            text='<!doctype html><html><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>Shop</title></head><body style="margin:0">{frame}</body></html>',
        )

    async def thanks(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text="<h1>Thank you</h1>")

    app = web.Application()
    app.router.add_get("/checkout", checkout)
    app.router.add_get("/thanks", thanks)
    url: str = await start_server(app)
    return url


async def assert_fits(page_or_frame: Any, label: str) -> None:
    sizes = await page_or_frame.evaluate(NO_OVERFLOW)
    assert sizes["scroll"] <= sizes["client"], f"{label}: scrolls sideways: {sizes}"


async def snapshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def checkout_at(
    browser: Any, sandbox: Sandbox, shop: str, width: int, *, framed: bool, pay: bool
) -> None:
    """One customer at one width: the page fits before and after paying, then goes back."""
    async with AsyncSession(base_url=sandbox.url) as client:
        session = await client.create_session(
            SessionRequest.sending(
                from_amount="12345.67",
                from_currency="EUR",
                to_currency="USDC_POLYGON",
                return_url=f"{shop}/thanks?width={width}",
            )
        )
    assert session.raw["to_amount"] == Decimal("12933.323892")
    name = f"checkout-{'iframe' if framed else 'alone'}-{width}"
    page = await browser.new_page(viewport={"width": width, "height": 900})
    try:
        if framed:
            query = urlencode({"src": session.iframe_url, "sandbox": RECOMMENDED_SANDBOX})
            await page.goto(f"{shop}/checkout?{query}")
            frame = page.frame_locator("iframe")
            checkout = next(f for f in page.frames if f.url == session.iframe_url)
            await checkout.wait_for_selector("#pay")
        else:
            await page.goto(session.iframe_url)
            frame, checkout = page, page.main_frame
        assert (await checkout.inner_text("#from")).split() == ["12,345.67", "EUR"]
        assert (await checkout.inner_text("#to")).split() == ["12,933.323892", "USDC_POLYGON"]
        assert await checkout.get_attribute("#to", "title") == "12933.323892 USDC_POLYGON"
        assert await checkout.evaluate(ONE_LINE_CODES) == [["EUR", 1], ["USDC_POLYGON", 1]]
        await assert_fits(checkout, f"{name} checkout")
        await assert_fits(page, f"{name} page")
        await snapshot(page, f"{name}-1-open")
        await frame.locator("#card").fill("4242 4242 4242 4242" if pay else "4000 0000 0000 0002")
        await frame.locator("#pay").click()
        await checkout.wait_for_selector("#result.success, #result.failure")
        await checkout.wait_for_selector("#return:not([hidden])")
        assert "Returning you to 127.0.0.1" in await checkout.inner_text("#return")
        await assert_fits(checkout, f"{name} result")
        await snapshot(page, f"{name}-2-result")
        await page.wait_for_url(f"{shop}/thanks?width={width}", timeout=10_000)
        assert await page.inner_text("h1") == "Thank you"
    except BaseException:
        await snapshot(page, f"{name}-failed")
        raise
    finally:
        await page.close()


@pytest.mark.browser
@pytest.mark.parametrize("framed", [False, True], ids=["alone", "iframe"])
async def test_checkout_fits_every_width_and_returns_to_the_shop(
    browser: Any, shop: str, framed: bool
) -> None:
    async with Sandbox() as sandbox:
        # three customers at once: the result's short pause before the redirect overlaps
        await asyncio.gather(
            checkout_at(browser, sandbox, shop, 320, framed=framed, pay=True),
            checkout_at(browser, sandbox, shop, 390, framed=framed, pay=False),
            checkout_at(browser, sandbox, shop, 1280, framed=framed, pay=True),
        )


@pytest.mark.browser
async def test_a_frame_that_may_not_navigate_the_page_offers_a_link(
    browser: Any, shop: str
) -> None:
    async with Sandbox() as sandbox:
        async with AsyncSession(base_url=sandbox.url) as client:
            session = await client.create_session(
                SessionRequest.sending(
                    from_amount="20",
                    from_currency="USD",
                    to_currency="USDT-TRON",
                    return_url=f"{shop}/thanks?strict=1",
                )
            )
        page = await browser.new_page(viewport={"width": 390, "height": 900})
        try:
            query = urlencode({"src": session.iframe_url, "sandbox": STRICT_SANDBOX})
            await page.goto(f"{shop}/checkout?{query}")
            frame = page.frame_locator("iframe")
            await frame.locator("#card").fill("4242 4242 4242 4242")
            await frame.locator("#pay").click()
            link = frame.locator("#return-link")
            await link.filter(has_text="Continue to 127.0.0.1").wait_for(timeout=10_000)
            assert await link.get_attribute("target") == "_blank"
            await snapshot(page, "checkout-strict-iframe-390")
            async with page.context.expect_page() as opened:
                await link.click()
            thanks = await opened.value
            await thanks.wait_for_load_state()
            assert thanks.url == f"{shop}/thanks?strict=1"
            await thanks.close()
            assert page.url.startswith(f"{shop}/checkout")  # the shop's page stayed
        finally:
            await page.close()


@pytest.mark.browser
async def test_without_a_return_url_the_page_stays(browser: Any, shop: str) -> None:
    async with Sandbox() as sandbox:
        async with AsyncSession(base_url=sandbox.url) as client:
            session = await client.create_session(
                SessionRequest.sending(from_amount="5", from_currency="GBP", to_currency="USDC")
            )
        page = await browser.new_page(viewport={"width": 320, "height": 700})
        try:
            await page.goto(session.iframe_url)
            await page.fill("#card", "4242 4242 4242 4242")
            await page.click("#pay")
            await page.wait_for_selector("#result.success")
            assert await page.locator("#return").count() == 0
            assert page.url == session.iframe_url
            await assert_fits(page, "no return url")
        finally:
            await page.close()


# -- attacks from other pages ------------------------------------------------------------------

#: A page that, once opened, posts a ``text/plain`` form (no preflight) to the sandbox: its one
#: field, named ``{"reason":"x`` with the value ``"}``, makes the JSON body ``{"reason":"x="}``.
FORM_ATTACK = """<!doctype html><html><body>
<form id="attack" method="POST" enctype="text/plain" action="{action}">
<input name='{{"reason":"x' value='"}}'></form>
<script>document.getElementById("attack").submit()</script></body></html>"""


@pytest.mark.browser
async def test_a_page_on_another_port_cannot_settle_a_session(
    browser: Any, start_server: Any
) -> None:
    async with Sandbox() as sandbox:
        async with AsyncSession(base_url=sandbox.url) as client:
            session = await client.create_session(
                SessionRequest.sending(from_amount="5", from_currency="USD", to_currency="USDT")
            )
        action = f"{sandbox.url}/sandbox/sessions/{session.id}/complete"

        async def attack(request: web.Request) -> web.Response:
            return web.Response(
                content_type="text/html", text=FORM_ATTACK.format(action=html.escape(action))
            )

        app = web.Application()
        app.router.add_get("/", attack)
        evil = await start_server(app)  # 127.0.0.1 too, another port: the same site
        page = await browser.new_page()
        try:
            async with page.expect_response(action) as answered:
                await page.goto(evil)
            response = await answered.value
            assert response.status == 403
            assert (await response.json())["message"].startswith("cross-origin POST refused")
        finally:
            await page.close()
        assert sandbox.state.sessions[session.id]["status"] == "initiated"
        assert sandbox.state.deliveries == []


@pytest.mark.browser
async def test_a_rebound_name_gets_nothing_from_the_sandbox() -> None:
    # Chromium resolves rebound.test to 127.0.0.1, as an attacker's DNS would after rebinding.
    rule = "--host-resolver-rules=MAP rebound.test 127.0.0.1, MAP proxy.test 127.0.0.1"
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, rule]
        )
        try:
            async with Sandbox(SandboxConfig(allowed_hosts=["proxy.test"])) as sandbox:
                port = sandbox.url.rsplit(":", 1)[1]
                page = await browser.new_page()
                response = await page.goto(f"http://rebound.test:{port}/sandbox/webhooks")
                assert response is not None and response.status == 421
                response = await page.goto(f"http://proxy.test:{port}/sandbox/webhooks")
                assert response is not None and response.status == 200
        finally:
            await browser.close()
