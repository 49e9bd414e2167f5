"""The sandbox's strict mode (the newest API's rules), with the SDK's strict client against it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from instax_async import (
    NEWEST_API_REQUIRED,
    AsyncSession,
    BadRequestError,
    SessionRequest,
    ValidationError,
)
from instax_async.sandbox import Sandbox, SandboxConfig

ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
SENDING = {
    "amountDirection": "sending",
    "fromAmount": 50,
    "fromCurrency": "USD",
    "toCurrency": "USDT-TRON",
}


async def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
        return response.status, json.loads(await response.text())


@pytest.mark.parametrize(
    ("missing", "field"), [("accountRefId", "account_ref_id"), ("address", "address")]
)
async def test_strict_answers_400_naming_the_missing_field(missing: str, field: str) -> None:
    full = {**SENDING, "accountRefId": "merchant-1", "address": ADDRESS}
    body = {key: value for key, value in full.items() if key != missing}
    async with Sandbox(SandboxConfig(strict=True)) as sandbox:
        status, answer = await post(f"{sandbox.url}/api/session", body)
        assert status == 400 and answer["field"] == field
        assert answer["message"].startswith(f"{field}: is required")
        assert "accountRefId and address mandatory" in answer["message"]
        assert sandbox.state.sessions == {}


async def test_strict_sessions_carry_a_checkout_link_on_order() -> None:
    body = {**SENDING, "accountRefId": "merchant-1", "address": ADDRESS}
    async with Sandbox(SandboxConfig(strict=True)) as sandbox:
        status, answer = await post(f"{sandbox.url}/api/session", body)
        assert status == 201
        assert answer["checkoutUrl"] == f"{sandbox.url}/order/{answer['id']}"
        assert answer["merchant_account_id"] == "merchant-1"
        async with aiohttp.ClientSession() as http, http.get(answer["checkoutUrl"]) as page:
            assert page.status == 200 and "text/html" in page.headers["Content-Type"]


async def test_lenient_by_default_and_order_is_served_either_way() -> None:
    async with Sandbox() as sandbox:
        status, answer = await post(f"{sandbox.url}/api/session", SENDING)
        assert status == 201 and "checkoutUrl" not in answer
        async with aiohttp.ClientSession() as http:
            for path in ("order", "embed"):
                async with http.get(f"{sandbox.url}/{path}/{answer['id']}") as page:
                    assert page.status == 200


async def test_the_sdk_against_a_strict_sandbox() -> None:
    request = SessionRequest.sending(
        from_amount="50", from_currency="USD", to_currency="USDT-TRON", address=ADDRESS
    )
    async with Sandbox(SandboxConfig(strict=True)) as sandbox:
        # a client without the rule is told by the API (here, the sandbox)
        async with AsyncSession(base_url=sandbox.url) as lenient:
            with pytest.raises(BadRequestError, match="account_ref_id: is required") as info:
                await lenient.create_session(request)
            assert info.value.status == 400
        # a strict client refuses before sending; with the account id, all is well
        requests_before = sandbox.state.requests
        async with AsyncSession(base_url=sandbox.url, require=NEWEST_API_REQUIRED) as client:
            with pytest.raises(ValidationError, match="account_ref_id"):
                await client.create_session(request)
            assert sandbox.state.requests == requests_before
        async with AsyncSession(
            base_url=sandbox.url, require=NEWEST_API_REQUIRED, account_ref_id="merchant-1"
        ) as client:
            session = await client.create_session(request)
        # the answer's checkout link wins over the client's /embed template
        assert session.iframe_url == f"{sandbox.url}/order/{session.id}"
        assert client.iframe_url(session.id) == f"{sandbox.url}/embed/{session.id}"


def test_strict_is_a_bool() -> None:
    with pytest.raises(ValidationError) as info:
        SandboxConfig(strict="yes")  # type: ignore[arg-type]
    assert info.value.field == "strict"
