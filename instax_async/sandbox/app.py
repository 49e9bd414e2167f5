"""The sandbox application: a local stand-in for the InstaXchange API on aiohttp.web.

Every client mistake gets a 4xx in one JSON shape, ``{"message": ..., "field": ...}`` (``field``
is ``null`` unless one input is at fault): bodies that are not a JSON object, too deep, too large
or undecodable; amounts outside the SDK's range (the sandbox validates with
:class:`~instax_async.SessionRequest` itself); unknown paths and wrong methods. aiohttp's own
404/405/413/400 answers are plain text, so a middleware rewrites them, keeping their status and
headers such as ``Allow``; an unexpected exception is logged on ``instax_async.sandbox`` and
answered with a JSON 500 that carries no traceback. The one other shape is the checkout page's
HTML 404, meant for browsers.

Before any endpoint, the ``_access`` module's rules refuse a ``Host`` that does not name this
machine (421) and a write sent by another origin's page (403), in the same JSON shape.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timezone
from decimal import ROUND_DOWN, ROUND_UP, Decimal, localcontext
from typing import Any

import aiohttp
import attrs
from aiohttp import web

from .._frozen import Frozen
from .._validate import check_count, check_number
from ..errors import ValidationError
from ..payloads import (
    AMOUNT_LIMIT,
    NEWEST_API_REQUIRED,
    WIRE_FIELDS,
    AmountDirection,
    SessionRequest,
    check_required,
)
from ..serialization import dumps, loads
from ..webhooks import SIGNATURE_HEADER, sign
from ._access import SAFE_METHODS, allowed_host_names, cross_origin, host_name, refused_host
from .events import webhook_payload
from .page import checkout_page, not_found_page

__all__ = [
    "DEFAULT_RATES",
    "MAX_BODY_BYTES",
    "MAX_REASON_CHARS",
    "MAX_TX_ID_CHARS",
    "SandboxConfig",
    "SandboxState",
    "create_app",
]

logger = logging.getLogger("instax_async.sandbox")

DEFAULT_RATES: Mapping[str, Decimal] = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "AUD": Decimal("0.66"),
    "CAD": Decimal("0.73"),
    "DKK": Decimal("0.145"),
}
"""How much of a USD-pegged payout currency one unit of each fiat currency buys, before the fee.
"""

_STRICT_WHY = (
    "(the sandbox runs strict, as the newest API marks accountRefId and address mandatory)"
)

# The wire names SessionRequest itself uses, read back: one naming rule for both sides.
_WIRE_TO_FIELD = {wire: name for name, wire in WIRE_FIELDS}

#: The largest request body the sandbox reads (aiohttp's default); larger ones get a JSON 413.
MAX_BODY_BYTES = 1024 * 1024

#: The longest ``reason`` the ``fail`` helper takes (a card network's decline text is short).
MAX_REASON_CHARS = 200

#: The longest ``txId`` the blockchain-status endpoint looks up (the sandbox's own are 39).
MAX_TX_ID_CHARS = 200


def _fraction(_instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    check_number(
        attribute.name, value, inclusive=True, maximum=1.0, expected="a fraction from 0 to 1"
    )


def _seconds(_instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    check_number(attribute.name, value, inclusive=True, expected="seconds >= 0")


def _count(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_count(attribute.name, value)


def _rates(value: object) -> Mapping[str, Decimal]:
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"rates: expected a mapping of currency code to Decimal, got {type(value).__name__}",
            field="rates",
        )
    rates: dict[str, Decimal] = {}
    for code, rate in value.items():
        number = _decimal_or_none(rate)
        if not isinstance(code, str) or number is None or number <= 0:
            raise ValidationError(
                f"rates: expected a positive number for each currency code, got {code!r}: {rate!r}",
                field="rates",
            )
        rates[code] = number
    return rates


def _fee(value: object) -> Decimal:
    number = _decimal_or_none(value)
    if number is None or not 0 <= number < 1:
        raise ValidationError(
            f"fee: expected a fraction from 0 to below 1, got {value!r}", field="fee"
        )
    return number


def _decimal_or_none(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def _flag(_instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(
            f"{attribute.name}: expected True or False, got {value!r}", field=attribute.name
        )


def _optional_url(_instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None and (
        not isinstance(value, str) or not value.startswith(("http://", "https://"))
    ):
        raise ValidationError(
            f"{attribute.name}: expected an http(s) URL, got {value!r}", field=attribute.name
        )


@attrs.frozen(kw_only=True, repr=False, eq=False)
class SandboxConfig(Frozen):
    """How the sandbox behaves. Change one with ``attrs.evolve``.

    :ivar webhook_url: where completed and failed payments are announced (``None``: nowhere).
    :ivar webhook_secret: signs webhooks (``X-Instaxwh-Key``); never shown in reprs.
    :ivar api_key: the key ``GET /api/session/{id}/status`` requires; ``None`` accepts any
        non-empty ``x-api-key``.
    :ivar rates: units of the payout currency per unit of each fiat currency, before ``fee``
        (each a positive ``Decimal``, ``int``, numeric ``str`` or ``float``).
    :ivar fee: the fraction the sandbox keeps, from 0 to below 1.
    :ivar confirmation_polls: blockchain-status answers that say ``pending`` after a payout
        before the hash appears; ``confirmation_delay``: seconds that must pass as well.
    :ivar error_rate: fraction of API requests answered 500; ``rate_limit_rate``: fraction
        answered 429 with ``Retry-After: retry_after``; ``latency``: seconds added to each.
        Fault injection leaves the checkout page and ``/sandbox/`` helpers alone.
    :ivar webhook_attempts: deliveries tried per webhook until one gets a 2xx, waiting
        ``webhook_backoff * 2**n`` seconds between them.
    :ivar allowed_hosts: host names (no scheme or port) the sandbox answers for besides
        ``localhost``, loopback addresses and the address it listens on: the name of a proxy or
        tunnel in front of it. Any other ``Host`` gets a 421, which stops DNS rebinding.
    :ivar strict: the newest API's rules: ``POST /api/session`` answers 400 naming the field
        when ``accountRefId`` or ``address`` is missing (:data:`~instax_async.
        NEWEST_API_REQUIRED`), and each created session's answer carries its checkout URL,
        ``checkoutUrl``, on ``/order/{id}`` (as the newest pages say the API issues the
        iframe's URL). ``/embed/{id}`` and ``/order/{id}`` are served either way.
    """

    webhook_url: str | None = attrs.field(default=None, validator=_optional_url)
    webhook_secret: str | None = attrs.field(default=None, repr=False)
    api_key: str | None = attrs.field(default=None, repr=False)
    rates: Mapping[str, Decimal] = attrs.field(
        factory=lambda: dict(DEFAULT_RATES), converter=_rates
    )
    fee: Decimal = attrs.field(default=Decimal("0.03"), converter=_fee)
    confirmation_polls: int = attrs.field(default=2, validator=_count)
    confirmation_delay: float = attrs.field(default=0.0, validator=_seconds)
    error_rate: float = attrs.field(default=0.0, validator=_fraction)
    rate_limit_rate: float = attrs.field(default=0.0, validator=_fraction)
    retry_after: float = attrs.field(default=1.0, validator=_seconds)
    latency: float = attrs.field(default=0.0, validator=_seconds)
    webhook_attempts: int = attrs.field(default=5, validator=_count)
    webhook_backoff: float = attrs.field(default=0.2, validator=_seconds)
    seed: int | None = None
    allowed_hosts: tuple[str, ...] = attrs.field(default=(), converter=allowed_host_names)
    strict: bool = attrs.field(default=False, validator=_flag)


@attrs.define
class Payout:
    """A payout's progress towards a blockchain hash."""

    tx_id: str
    status: str
    settled_at: float
    polls: int = 0
    hash: str | None = None


@attrs.define
class SandboxState:
    """Everything the sandbox remembers (in memory: gone when it stops)."""

    sessions: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    payouts: dict[str, Payout] = attrs.field(factory=dict)
    deliveries: list[dict[str, Any]] = attrs.field(factory=list)
    requests: int = 0


CONFIG = web.AppKey("instax_sandbox_config", SandboxConfig)
STATE = web.AppKey("instax_sandbox_state", SandboxState)


class _Deliveries:
    """What delivering webhooks needs while the app runs: its HTTP client and pending tasks.

    One object per app, made with it and filled on each start, so that an app started again
    after a stop does not change the state of an application aiohttp has frozen.
    """

    def __init__(self) -> None:
        self.http: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()


DELIVERIES = web.AppKey("instax_sandbox_deliveries", _Deliveries)
RANDOM = web.AppKey("instax_sandbox_random", random.Random)
HOST_NAMES: web.AppKey[frozenset[str]] = web.AppKey("instax_sandbox_host_names")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=dumps(data), status=status, content_type="application/json", headers=headers
    )


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    return _json({"message": message, "field": field}, status=status)


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
    # An amount has up to 30 digits (12 + 18 places), more than the default context's 28.
    with localcontext() as context:
        context.prec = 80
        net = rate * (1 - config.fee)
        if request.amount_direction is AmountDirection.SENDING:
            given, field = request.from_amount, "from_amount"
            assert given is not None
            computed = given * net
            step, rounding = Decimal("0.000001"), ROUND_DOWN
            have, get = request.from_currency, request.to_currency
        else:
            given, field = request.to_amount, "to_amount"
            assert given is not None
            computed = given / net
            step, rounding = Decimal("0.01"), ROUND_UP
            have, get = request.to_currency, request.from_currency
        # The quote obeys the amount rules too: below the limit, and not rounded away to 0.
        if computed >= AMOUNT_LIMIT:
            raise ValidationError(
                f"{field}: {given} {have} would be {computed:.2f} {get}, which is not below 10**12",
                field=field,
            )
        computed = computed.quantize(step, rounding)
    if not computed:
        raise ValidationError(
            f"{field}: {given} {have} is too small: it would be 0 {get} at the sandbox's rate",
            field=field,
        )
    if field == "from_amount":
        return given, _trim(computed)
    return computed, given


# -- middleware ------------------------------------------------------------------------------


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# aiohttp's own answer headers that describe its plain-text body, not the JSON one.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    if isinstance(exc, web.HTTPNotFound):
        message = f"no such endpoint: {request.method} {_clip(request.path)}"
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"{exc.method} is not allowed on {_clip(request.path)}; allowed: {allowed}"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        message = f"the body is larger than the {MAX_BODY_BYTES} bytes the sandbox accepts"
    elif exc.text and exc.text != f"{exc.status}: {exc.reason}":
        message = _clip(exc.text, 300)
    else:
        message = exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
    return _json({"message": message, "field": None}, status=exc.status, headers=headers)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer every error in the sandbox's JSON shape: aiohttp's own ones and unexpected ones."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        # Routing (404, 405) and body reading (413, 400) raise these as plain-text responses.
        if exc.status < 400:
            raise
        return _from_http_exception(request, exc)
    except web.RequestPayloadError as exc:
        # A body aiohttp cannot decode (a broken gzip stream, a bad chunk): the client's fault.
        detail = getattr(exc.__cause__, "message", None) or "malformed body"
        answer = _error(400, f"the body cannot be read: {_clip(str(detail))}")
        answer.force_close()  # the rest of the body cannot be skipped: a new connection it is
        return answer
    except ConnectionError:
        raise  # the client went away: nobody to answer
    except Exception:
        logger.exception("sandbox: %s %s failed", request.method, _clip(request.path))
        return _error(500, "sandbox: internal error (the sandbox's log has the details)")


@web.middleware
async def _guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Refuse foreign hosts (DNS rebinding) and other origins' writes (see ``_access``)."""
    refused = refused_host(request, request.app[HOST_NAMES])
    if refused is not None:
        status, message = refused
        logger.warning("sandbox: refused %s %s: %s", request.method, _clip(request.path), message)
        return _error(status, message)
    if request.method not in SAFE_METHODS:
        reason = cross_origin(request)
        if reason is not None:
            logger.warning(
                "sandbox: refused a cross-origin %s %s: %s",
                request.method,
                _clip(request.path),
                reason,
            )
            return _error(
                403,
                f"cross-origin {request.method} refused: {reason}. The sandbox takes writes "
                "from its own pages and from clients that are not browsers (the SDK, curl)",
            )
    return await handler(request)


_FAULT_FREE = ("/sandbox/", "/embed/", "/order/")


@web.middleware
async def _faults(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    config = request.app[CONFIG]
    request.app[STATE].requests += 1
    if request.path.startswith(_FAULT_FREE):
        return await handler(request)
    if config.latency:
        await asyncio.sleep(config.latency)
    roll = request.app[RANDOM].random()
    if roll < config.error_rate:
        return _error(500, "sandbox: injected server error")
    if roll < config.error_rate + config.rate_limit_rate:
        return _json(
            {"message": "sandbox: injected rate limit", "field": None},
            status=429,
            headers={"Retry-After": f"{config.retry_after:g}"},
        )
    return await handler(request)


# -- the API ---------------------------------------------------------------------------------


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The body as a JSON object, or the 400 answer saying why it is not one.

    Any ``Content-Type`` is accepted (as with ``curl -d``); an empty body is an empty object.
    """
    raw = await request.read()  # past MAX_BODY_BYTES: HTTPRequestEntityTooLarge, a JSON 413
    if not raw.strip():
        return {}
    try:
        body = loads(raw)
    except RecursionError:
        return _error(400, "the body is not valid JSON: it is nested too deeply")
    except ValueError as exc:  # also UnicodeDecodeError, and a nesting limit loads may apply
        return _error(400, f"the body is not valid JSON: {_clip(str(exc), 200)}")
    if not isinstance(body, dict):
        return _error(400, f"the body must be a JSON object, got a JSON {_json_type(body)}")
    return body


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"


async def _create_session(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    unknown = sorted(set(body) - set(_WIRE_TO_FIELD))
    if unknown:
        return _error(400, f"unknown field {_clip(repr(unknown[0]))}", _clip(unknown[0]))
    try:
        session_request = SessionRequest(
            **{_WIRE_TO_FIELD[k]: v for k, v in body.items()}, allow_unlisted=True
        )
        config = request.app[CONFIG]
        if config.strict:
            check_required(session_request, NEWEST_API_REQUIRED, _STRICT_WHY)
        from_amount, to_amount = _quote(config, session_request)
    except ValidationError as exc:
        return _error(400, str(exc), exc.field)
    session_id = f"ps_{uuid.uuid4()}"
    record: dict[str, Any] = {
        "id": session_id,
        "from_currency": session_request.from_currency,
        "to_currency": str(session_request.to_currency),
        "merchant_account_id": session_request.account_ref_id,
        "from_amount": from_amount,
        "to_amount": to_amount,
        "method": str(session_request.method or "card"),
        "payment_direction": str(session_request.amount_direction),
        "quote_direction": str(session_request.amount_direction),
        "status": "initiated",
        "created_at": _now(),
        "wallet": session_request.address,
        "next_step": "payment",
        "customer_details": {
            "first_name": session_request.first_name,
            "last_name": session_request.last_name,
            "email": session_request.email,
            "country": session_request.country,
        },
        "deposit_tx_status": None,
        "payout_tx_status": None,
        "return_url": session_request.return_url,
        "webhook_ref": session_request.webhook_ref,
    }
    request.app[STATE].sessions[session_id] = record
    if config.strict:
        # the origin the client reached the sandbox at, so that the link works from there
        return _json({**record, "checkoutUrl": f"{request.url.origin()}/order/{session_id}"}, 201)
    return _json(record, status=201)


def _session_or_none(request: web.Request) -> dict[str, Any] | None:
    return request.app[STATE].sessions.get(request.match_info["session_id"])


async def _checkout(request: web.Request) -> web.Response:
    session = _session_or_none(request)
    if session is None:
        return web.Response(
            text=not_found_page(request.match_info["session_id"]),
            status=404,
            content_type="text/html",
        )
    return web.Response(text=checkout_page(session), content_type="text/html")


async def _session_status(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    given = request.headers.get("x-api-key", "")
    if not given or (config.api_key is not None and given != config.api_key):
        return _error(401, "missing or wrong x-api-key")
    session = _session_or_none(request)
    if session is None:
        return _error(404, "unknown session")
    return _json(_status_body(session))


def _status_body(session: dict[str, Any]) -> dict[str, Any]:
    return {
        "sessionId": session["id"],
        "webhookRef": session["webhook_ref"],
        "address": session["wallet"],
        "sessionStatus": session["status"],
        "depositId": session.get("deposit_id"),
        "depositStatus": session["deposit_tx_status"],
        "depositStatusReason": session.get("status_reason"),
        "withdrawalID": session.get("withdraw_id"),
        "withdrawStatus": session["payout_tx_status"],
        "withdrawStatusReason": session.get("status_reason"),
        "fromAmount": session["from_amount"],
        "toAmount": session["to_amount"],
        "fromCurrency": session["from_currency"],
        "toCurrency": session["to_currency"],
        "createdAt": session["created_at"],
        "updatedAt": session.get("updated_at", session["created_at"]),
    }


async def _blockchain_status(request: web.Request) -> web.Response:
    tx_id = request.query.get("txId", "")
    if not tx_id:
        return _error(400, "txId is required", "txId")
    if len(tx_id) > MAX_TX_ID_CHARS:
        return _error(
            400, f"txId: expected at most {MAX_TX_ID_CHARS} characters, got {len(tx_id)}", "txId"
        )
    payout = request.app[STATE].payouts.get(tx_id)
    if payout is None:
        return _error(404, "unknown transaction")
    if payout.status == "failed":
        return _json({"txId": tx_id, "status": "failed"})
    payout.polls += 1
    config = request.app[CONFIG]
    confirmed = (
        payout.polls > config.confirmation_polls
        and time.monotonic() - payout.settled_at >= config.confirmation_delay
    )
    if not confirmed:
        return _json({"txId": tx_id, "status": "pending"})
    if payout.hash is None:
        payout.hash = "0x" + hashlib.sha256(tx_id.encode()).hexdigest()
        payout.status = "confirmed"
    return _json({"txId": tx_id, "status": "confirmed", "hash": payout.hash})


# -- test helpers ----------------------------------------------------------------------------


def _settle_reason(body: dict[str, Any]) -> str | web.Response | None:
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        return _error(
            400,
            f"unknown field {_clip(repr(unknown[0]))}; the only one is 'reason'",
            _clip(unknown[0]),
        )
    reason = body.get("reason")
    if reason is None:
        return None
    if not isinstance(reason, str) or not reason.strip():
        return _error(
            400, f"reason: expected a non-empty string, got a JSON {_json_type(reason)}", "reason"
        )
    if len(reason) > MAX_REASON_CHARS:
        return _error(
            400,
            f"reason: expected at most {MAX_REASON_CHARS} characters, got {len(reason)}",
            "reason",
        )
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError:
        return _error(
            400, "reason: must be valid Unicode text (it holds a lone surrogate)", "reason"
        )
    return reason


async def _settle(request: web.Request, outcome: str) -> web.Response:
    # The body is checked before the session: a malformed request is told so, whatever the id.
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    reason = _settle_reason(body)
    if isinstance(reason, web.Response):
        return reason
    session = _session_or_none(request)
    if session is None:
        return _error(404, "unknown session")
    if session["status"] != "initiated":
        return _error(409, f"the session is already {session['status']}")
    state = request.app[STATE]
    deposit_id = f"dp_{uuid.uuid4()}"
    withdraw_id = f"wd_{uuid.uuid4()}"
    session.update(deposit_id=deposit_id, withdraw_id=withdraw_id, updated_at=_now())
    payloads = [_event(session, "pending")]
    if outcome == "completed":
        session.update(status="completed", deposit_tx_status="completed")
        session.update(payout_tx_status="completed", status_reason=None)
        state.payouts[withdraw_id] = Payout(withdraw_id, "pending", time.monotonic())
    else:
        reason = reason or "Do Not Honor"
        session.update(status="failed", deposit_tx_status="failed")
        session.update(payout_tx_status="failed", status_reason=reason)
        state.payouts[withdraw_id] = Payout(withdraw_id, "failed", time.monotonic())
    payloads.append(_event(session, outcome))
    _deliver_in_background(request.app, payloads)
    return _json(
        {
            "id": session["id"],
            "status": session["status"],
            "status_reason": session.get("status_reason"),
            "deposit_tx_id": deposit_id,
            "withdraw_tx_id": withdraw_id,
        }
    )


def _event(session: dict[str, Any], status: str) -> dict[str, Any]:
    return webhook_payload(
        status=status,
        reference=session["webhook_ref"],
        session_id=session["id"],
        amount_in_fiat=session["from_amount"],
        fiat_currency=session["from_currency"],
        amount_in_crypto=session["to_amount"],
        crypto_currency=session["to_currency"],
        wallet_address=session["wallet"] or "sandbox-wallet",
        deposit_tx_id=session["deposit_id"],
        withdraw_tx_id=session["withdraw_id"],
        status_reason=session.get("status_reason") if status == "failed" else None,
    )


async def _complete(request: web.Request) -> web.Response:
    return await _settle(request, "completed")


async def _fail(request: web.Request) -> web.Response:
    return await _settle(request, "failed")


async def _deliveries(request: web.Request) -> web.Response:
    return _json(request.app[STATE].deliveries)


def _deliver_in_background(app: web.Application, payloads: list[dict[str, Any]]) -> None:
    config = app[CONFIG]
    if config.webhook_url is None:
        return
    task = asyncio.get_running_loop().create_task(_deliver_all(app, payloads))
    tasks = app[DELIVERIES].tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _deliver_all(app: web.Application, payloads: list[dict[str, Any]]) -> None:
    for payload in payloads:  # in order: pending before the final status
        await _deliver(app, payload)


async def _deliver(app: web.Application, payload: dict[str, Any]) -> None:
    config = app[CONFIG]
    assert config.webhook_url is not None
    body = dumps(payload)
    headers = {"Content-Type": "application/json", "User-Agent": "instax-sandbox"}
    if config.webhook_secret:
        headers[SIGNATURE_HEADER] = sign(body, config.webhook_secret)
    record: dict[str, Any] = {
        "webhook_id": payload["webhookId"],
        "session_id": payload["data"]["sessionId"],
        "status": payload["data"]["status"],
        "attempts": [],
        "delivered": False,
    }
    app[STATE].deliveries.append(record)
    http = app[DELIVERIES].http
    assert http is not None  # (deliveries run only while the app does: cleanup cancels them)
    for attempt in range(config.webhook_attempts):
        if attempt:
            await asyncio.sleep(config.webhook_backoff * 2 ** (attempt - 1))
        try:
            async with http.post(config.webhook_url, data=body, headers=headers) as answer:
                await answer.read()
                record["attempts"].append(answer.status)
                if 200 <= answer.status < 300:
                    record["delivered"] = True
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            record["attempts"].append(f"{type(exc).__name__}")
        logger.info(
            "webhook %s to %s: attempt %d failed (%s)",
            payload["webhookId"],
            config.webhook_url,
            attempt + 1,
            record["attempts"][-1],
        )
    logger.warning(
        "webhook %s was not delivered after %d attempts",
        payload["webhookId"],
        config.webhook_attempts,
    )


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    deliveries = app[DELIVERIES]
    deliveries.http = http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    yield
    pending = list(deliveries.tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    deliveries.http = None
    await http.close()


def create_app(config: SandboxConfig | None = None, *, host: str | None = None) -> web.Application:
    """Build the sandbox application. Run it with ``aiohttp.web`` or :class:`Sandbox`.

    :param host: the host name the app is served on, answered as a ``Host`` besides
        ``localhost``, loopback addresses, the address a request arrives on and
        ``config.allowed_hosts`` (:class:`Sandbox` passes the one it listens on).
    """
    config = config or SandboxConfig()
    app = web.Application(
        middlewares=[_json_errors, _guard, _faults], client_max_size=MAX_BODY_BYTES
    )
    app[CONFIG] = config
    served_as = host_name(host) if host else None
    app[HOST_NAMES] = frozenset(config.allowed_hosts) | ({served_as} if served_as else set())
    app[STATE] = SandboxState()
    app[RANDOM] = random.Random(config.seed)
    app[DELIVERIES] = _Deliveries()
    app.cleanup_ctx.append(_http_client)
    app.router.add_post("/api/session", _create_session)
    app.router.add_get("/api/session/{session_id}/status", _session_status)
    app.router.add_get("/utils/blockchain-status", _blockchain_status)
    app.router.add_get("/embed/{session_id}", _checkout)
    app.router.add_get("/order/{session_id}", _checkout)
    app.router.add_post("/sandbox/sessions/{session_id}/complete", _complete)
    app.router.add_post("/sandbox/sessions/{session_id}/fail", _fail)
    app.router.add_get("/sandbox/webhooks", _deliveries)
    return app
