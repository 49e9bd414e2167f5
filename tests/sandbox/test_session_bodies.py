"""The sandbox refuses a session body it cannot read, naming the field at fault."""

from __future__ import annotations

from typing import Any

import pytest

from instax_async.sandbox import SandboxConfig, create_app
from tests.conftest import StartServer


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"not json", 400, None),
        (b"[1]", 400, None),
        (b'{"colour": "red"}', 400, "colour"),
        (
            b'{"amountDirection": "sending", "fromCurrency": "USD", "toCurrency": "USDT"}',
            400,
            "from_amount",
        ),
        (
            b'{"amountDirection": "sending", "fromCurrency": "XYZ", "toCurrency": "USDT",'
            b' "fromAmount": 5}',
            400,
            "from_currency",
        ),
    ],
)
async def test_sandbox_rejects_bad_session_bodies(
    start_server: StartServer, body: bytes, status: int, field: str | None
) -> None:
    import aiohttp

    base_url = await start_server(create_app(SandboxConfig()))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/api/session", data=body) as response,
    ):
        assert response.status == status
        data: dict[str, Any] = await response.json()
    assert data["field"] == field
    assert data["message"]
