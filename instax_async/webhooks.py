"""Webhook signatures (``X-Instaxwh-Key``), verification and parsing — pure functions, no I/O.

InstaXchange signs each webhook with
``md5(JSON.stringify(body with its top-level keys sorted) + ":" + secret)``, computed by its
TypeScript code. A receiver only has the raw body, so :func:`verify` rebuilds that exact string
with :mod:`instax_async.jsjson` (JavaScript's number and string formatting, property order and
UTF-16 key sort) before comparing in constant time.

>>> body = b'{"webhookId": "whc_1", "transactionId": "dp_1", "data": {"status": "completed"}}'
>>> key = sign(body, "s3cret")
>>> verify(body, key, "s3cret").is_completed
True
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import cattrs

from . import jsjson
from .errors import ValidationError, WebhookVerificationError
from .models import WebhookEvent
from .serialization import converter, dumps
from .serialization import loads as loads_exact

__all__ = [
    "DEFAULT_MAX_BODY",
    "SIGNATURE_HEADER",
    "VerificationFailure",
    "dedupe_key",
    "parse",
    "sign",
    "verify",
]

#: The header that carries the signature (HTTP header names are case-insensitive).
SIGNATURE_HEADER = "X-Instaxwh-Key"
#: Bodies larger than this are refused before any parsing (1 MiB).
DEFAULT_MAX_BODY = 1024 * 1024

_HEX = frozenset("0123456789abcdef")


class VerificationFailure(str, enum.Enum):
    """Why :func:`verify` refused a webhook (``WebhookVerificationError.reason``)."""

    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    SIGNATURE_MISMATCH = "signature_mismatch"
    INVALID_BODY = "invalid_body"
    TOO_LARGE = "too_large"
    NO_SECRET = "no_secret"


def _failure(reason: VerificationFailure, message: str) -> WebhookVerificationError:
    return WebhookVerificationError(message, reason=reason)


def _as_bytes(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError:
            raise _failure(
                VerificationFailure.INVALID_BODY, "the body is not valid UTF-8 text"
            ) from None
    raise _failure(
        VerificationFailure.INVALID_BODY,
        f"the body must be bytes or str, got {type(body).__name__}",
    )


def _signature_of(obj: dict[str, Any], secret: str) -> str:
    return hashlib.md5(jsjson.signature_base(obj, secret), usedforsecurity=False).hexdigest()


def sign(payload: Mapping[str, Any] | bytes | str, secret: str) -> str:
    """The ``X-Instaxwh-Key`` InstaXchange sends with ``payload``: lowercase md5 hex.

    ``payload`` is the raw JSON body (bytes or str), or a mapping, which is signed as the JSON
    it would be sent as (``Decimal`` amounts exactly). Use it to sign test webhooks.

    :raises ValidationError: the payload is not a JSON object, or the secret is not a string.
    """
    if not isinstance(secret, str):
        raise ValidationError(
            f"secret: expected a str, got {type(secret).__name__}", field="secret"
        )
    if isinstance(payload, Mapping):
        payload = dumps(payload)
    if not isinstance(payload, (bytes, str)):
        raise ValidationError(
            "payload: expected a mapping, or a JSON object as bytes or str, got "
            f"{type(payload).__name__}",
            field="payload",
        )
    try:
        obj = jsjson.loads(payload)
    except ValueError as exc:
        raise ValidationError(f"payload: not valid JSON ({exc})", field="payload") from None
    if not isinstance(obj, dict):
        raise ValidationError("payload: the JSON must be an object", field="payload")
    return _signature_of(obj, secret)


def verify(
    body: bytes | str,
    signature: str | None,
    secret: str,
    *,
    max_body: int = DEFAULT_MAX_BODY,
) -> WebhookEvent:
    """Check a webhook's ``X-Instaxwh-Key`` against its raw body, then parse it.

    Pass the body exactly as received (never a re-serialized one). Hex case and surrounding
    whitespace in the header are tolerated; the comparison takes constant time.

    :raises WebhookVerificationError: for a missing, empty, malformed or wrong signature, a
        body that is not a JSON object, invalid UTF-8, a body over ``max_body`` bytes, or no
        secret — and no other exception, whatever the input. ``error.reason`` is a
        :class:`VerificationFailure`.
    """
    if not isinstance(secret, str) or not secret:
        raise _failure(
            VerificationFailure.NO_SECRET,
            "no webhook secret configured: set the secret from your InstaXchange dashboard",
        )
    raw = _as_bytes(body)
    if len(raw) > max_body:
        raise _failure(
            VerificationFailure.TOO_LARGE,
            f"the body is {len(raw)} bytes, over the limit of {max_body}",
        )
    if signature is None or (isinstance(signature, str) and not signature.strip()):
        raise _failure(
            VerificationFailure.MISSING_SIGNATURE, f"the {SIGNATURE_HEADER} header is missing"
        )
    if not isinstance(signature, str):
        raise _failure(
            VerificationFailure.MALFORMED_SIGNATURE,
            f"the {SIGNATURE_HEADER} header must be a string",
        )
    given = signature.strip().lower()
    if len(given) != 32 or not _HEX.issuperset(given):
        raise _failure(
            VerificationFailure.MALFORMED_SIGNATURE,
            f"the {SIGNATURE_HEADER} header is not 32 hex digits",
        )
    try:
        obj = jsjson.loads(raw)
    except ValueError:
        raise _failure(
            VerificationFailure.INVALID_BODY, "the body is not valid UTF-8 JSON"
        ) from None
    except RecursionError:
        raise _failure(VerificationFailure.INVALID_BODY, "the body is nested too deeply") from None
    if not isinstance(obj, dict):
        raise _failure(VerificationFailure.INVALID_BODY, "the body is not a JSON object")
    try:
        expected = _signature_of(obj, secret)
    except RecursionError:  # pragma: no cover - only within ~2 levels of the recursion limit
        # A body nested just short of the limit parses, but re-serializing it goes deeper.
        raise _failure(VerificationFailure.INVALID_BODY, "the body is nested too deeply") from None
    if not hmac.compare_digest(expected, given):
        raise _failure(
            VerificationFailure.SIGNATURE_MISMATCH,
            f"the {SIGNATURE_HEADER} header does not match the body and secret",
        )
    try:
        return parse(raw)
    except ValidationError as exc:
        raise _failure(VerificationFailure.INVALID_BODY, str(exc)) from None


def parse(body: bytes | str | Mapping[str, Any]) -> WebhookEvent:
    """Parse a webhook body into a :class:`~instax_async.WebhookEvent` without verifying it.

    For tests and for input you already trust; a webhook from the network goes through
    :func:`verify`. Amounts become ``Decimal`` equal to the wire text; unknown statuses stay
    plain strings.

    :raises ValidationError: the body is not a JSON object shaped like a webhook.
    """
    if isinstance(body, Mapping):
        data: Any = body
    else:
        try:
            data = loads_exact(body)
        except (ValueError, RecursionError) as exc:
            raise ValidationError(f"body: not valid JSON ({exc})", field="body") from None
    if not isinstance(data, Mapping):
        raise ValidationError("body: the webhook must be a JSON object", field="body")
    try:
        return converter.structure(data, WebhookEvent)
    except (cattrs.BaseValidationError, ValueError, TypeError, AttributeError) as exc:
        detail = "; ".join(_describe(exc)) or str(exc)
        raise ValidationError(
            f"body: not shaped like an InstaXchange webhook ({detail})", field="body"
        ) from None


def _describe(exc: BaseException) -> list[str]:
    if isinstance(exc, cattrs.BaseValidationError):
        return cattrs.transform_error(exc)
    return []


def dedupe_key(event: WebhookEvent) -> str:
    """The key that identifies one delivery of one event: webhookId, transactionId, status.

    A redelivery of the same event has the same key; a new status of the same transaction
    (``pending`` then ``completed``) has a new one.
    """
    return f"{event.webhook_id}|{event.transaction_id}|{event.status}"
