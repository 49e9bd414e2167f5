"""A local stand-in for the InstaXchange API, on aiohttp.web, for development and tests.

It validates session requests with the SDK's own rules and answers in the real API's shape::

    from instax_async.sandbox import create_app
    runner = aiohttp.web.AppRunner(create_app())
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import attrs
from aiohttp import web

from ..errors import ValidationError
from ..payloads import AmountDirection, SessionRequest
from ..serialization import dumps, loads

__all__ = ["SandboxConfig", "create_app", "DEFAULT_RATES"]

#: Units of each payout currency one unit of fiat buys, before the fee.
DEFAULT_RATES: Mapping[str, Decimal] = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "AUD": Decimal("0.66"),
    "DKK": Decimal("0.145"),
    "CAD": Decimal("0.73"),
}

_WIRE_TO_FIELD = {
    "amountDirection": "amount_direction",
    "fromCurrency": "from_currency",
    "toCurrency": "to_currency",
    "fromAmount": "from_amount",
    "toAmount": "to_amount",
    "accountRefId": "account_ref_id",
    "address": "address",
    "webhookRef": "webhook_ref",
    "returnUrl": "return_url",
    "method": "method",
    "email": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "country": "country",
}


@attrs.frozen(kw_only=True)
class SandboxConfig:
    """How the sandbox behaves: exchange rates (fiat → USD-pegged payout) and the fee."""

    rates: Mapping[str, Decimal] = attrs.field(factory=lambda: dict(DEFAULT_RATES))
    fee: Decimal = Decimal("0.03")


SESSIONS = web.AppKey("sessions", dict[str, dict[str, Any]])
CONFIG = web.AppKey("config", SandboxConfig)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json")


def _bad_request(message: str, field: str | None) -> web.Response:
    return _json({"message": message, "field": field}, status=400)


def _trim(amount: Decimal) -> Decimal:
    """``48.500000`` → ``48.5``, without switching to exponent notation."""
    return Decimal(format(amount.normalize(), "f"))


def _quote(config: SandboxConfig, request: SessionRequest) -> tuple[Decimal, Decimal]:
    rate = config.rates.get(request.from_currency or "")
    if rate is None:
        raise ValidationError(
            f"from_currency: the sandbox has no rate for {request.from_currency!r}; "
            f"known: {', '.join(sorted(config.rates))}",
            field="from_currency",
        )
    net = rate * (1 - config.fee)
    if request.amount_direction is AmountDirection.SENDING:
        assert request.from_amount is not None
        to_amount = (request.from_amount * net).quantize(Decimal("0.000001"), ROUND_DOWN)
        return request.from_amount, _trim(to_amount)
    assert request.to_amount is not None
    from_amount = (request.to_amount / net).quantize(Decimal("0.01"), ROUND_UP)
    return from_amount, request.to_amount


async def _create_session(request: web.Request) -> web.Response:
    try:
        body = loads(await request.read())
    except ValueError:
        return _bad_request("the body is not valid JSON", None)
    if not isinstance(body, dict):
        return _bad_request("the body must be a JSON object", None)
    unknown = sorted(set(body) - set(_WIRE_TO_FIELD))
    if unknown:
        return _bad_request(f"unknown field {unknown[0]!r}", unknown[0])
    try:
        session_request = SessionRequest(
            **{_WIRE_TO_FIELD[k]: v for k, v in body.items()}, allow_unlisted=True
        )
        from_amount, to_amount = _quote(request.app[CONFIG], session_request)
    except ValidationError as exc:
        return _bad_request(str(exc), exc.field)
    session_id = f"ps_{uuid.uuid4()}"
    record = {
        "id": session_id,
        "from_currency": session_request.from_currency,
        "to_currency": str(session_request.to_currency),
        "from_amount": from_amount,
        "to_amount": to_amount,
        "merchant_account_id": session_request.account_ref_id,
        "method": str(session_request.method or "card"),
        "payment_direction": str(session_request.amount_direction),
        "status": "initiated",
        "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "wallet": session_request.address,
        "return_url": session_request.return_url,
        "webhook_ref": session_request.webhook_ref,
        "deposit_tx_status": None,
        "payout_tx_status": None,
    }
    request.app[SESSIONS][session_id] = record
    return _json(record, status=201)


def create_app(config: SandboxConfig | None = None) -> web.Application:
    """Build the sandbox application (``POST /api/session`` for now)."""
    app = web.Application()
    app[CONFIG] = config or SandboxConfig()
    app[SESSIONS] = {}
    app.router.add_post("/api/session", _create_session)
    return app
