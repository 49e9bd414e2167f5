"""Webhook signatures (``X-Instaxwh-Key``), verification and parsing — pure functions, no I/O.

InstaXchange signs each webhook with
``md5(JSON.stringify(body with its top-level keys sorted) + ":" + secret)``, computed by its
TypeScript code. A receiver only has the raw body, so :func:`verify` rebuilds that exact string
with :mod:`instax_async.jsjson` (JavaScript's number and string formatting, property order and
UTF-16 key sort) before comparing in constant time.

A verified event holds exactly what was signed: it is read from that rebuilt string, so every
number is the one JavaScript read from the body (``3.74000000000000000009`` is
``Decimal("3.74")``) and a member the sender's code dropped (a top-level ``__proto__``) is not
in it. The signature carries no time: :func:`verify`'s ``max_age`` refuses a captured webhook
replayed later, by the event's own ``createdAt``.

>>> body = b'{"webhookId": "whc_1", "transactionId": "dp_1", "data": {"status": "completed"}}'
>>> key = sign(body, "s3cret")
>>> verify(body, key, "s3cret").is_completed
True
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from . import jsjson
from ._validate import check_count
from .errors import ValidationError, WebhookVerificationError
from .models import WebhookEvent
from .serialization import MAX_JSON_DEPTH, dumps, get_converter, structure_json
from .serialization import loads as loads_exact

__all__ = [
    "DEFAULT_MAX_BODY",
    "MAX_CLOCK_SKEW",
    "RECEIVER_BODY_TIMEOUT",
    "RECEIVER_MAX_BODY",
    "RECEIVER_MAX_PENDING_BYTES",
    "SIGNATURE_HEADER",
    "VerificationFailure",
    "check_max_age",
    "dedupe_key",
    "parse",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-Instaxwh-Key"
"""The header that carries the signature (HTTP header names are case-insensitive)."""
DEFAULT_MAX_BODY = 1024 * 1024
"""Bodies larger than this are refused by :func:`verify` before any parsing (1 MiB). The
receivers refuse far smaller ones: :data:`RECEIVER_MAX_BODY`."""
RECEIVER_MAX_BODY = 64 * 1024
"""The receivers' default ``max_body``: bodies larger than this are answered 413 without being
read (64 KiB; a webhook is about 1.5 KB)."""
RECEIVER_BODY_TIMEOUT = 10.0
"""The receivers' default ``body_timeout``: a body not received in full this many seconds after
its headers is answered 408 and its connection closed."""
RECEIVER_MAX_PENDING_BYTES = 16 * 1024 * 1024
"""The receivers' default ``max_pending_bytes``: the most bytes of bodies one receiver
receives at once (16 MiB), each counted by its declared length (or ``max_body``) from before it
is read until its delivery is answered; a delivery that would go over it is answered 503 with
``Retry-After`` before its body is read."""
MAX_CLOCK_SKEW = timedelta(minutes=5)
"""With ``max_age``, how far in the future an event's ``createdAt`` may be (the sender's clock
may run ahead of ours): 5 minutes.
"""

_HEX = frozenset("0123456789abcdef")


class VerificationFailure(str, enum.Enum):
    """Why :func:`verify` refused a webhook (``WebhookVerificationError.reason``)."""

    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    SIGNATURE_MISMATCH = "signature_mismatch"
    INVALID_BODY = "invalid_body"
    TOO_LARGE = "too_large"
    NO_SECRET = "no_secret"
    #: ``max_age`` is set and the event's ``createdAt`` is older than it.
    TOO_OLD = "too_old"
    #: ``max_age`` is set and the event's ``createdAt`` is more than :data:`MAX_CLOCK_SKEW` ahead.
    IN_FUTURE = "in_future"
    #: ``max_age`` is set and the event has no top-level ``createdAt``.
    NO_TIMESTAMP = "no_timestamp"


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


def sign(payload: Mapping[str, Any] | bytes | str, secret: str) -> str:
    """The ``X-Instaxwh-Key`` InstaXchange sends with ``payload``: lowercase md5 hex.

    ``payload`` is the raw JSON body (bytes or str), or a mapping, which is signed as the JSON
    it would be sent as (:func:`~instax_async.serialization.dumps`: ``Decimal`` amounts
    exactly). Use it to sign test webhooks.

    :raises ValidationError: the payload is not a JSON object, nests deeper than
        :data:`~instax_async.serialization.MAX_JSON_DEPTH` levels, or the secret is not a
        string; or the mapping holds a value JSON cannot (a set, a string with a surrogate code
        point, NaN, a ``Decimal`` whose exponent would write out more than 4,300 digits, such
        as ``Decimal("1E+999999999")``), and then ``error.field`` is its path, like
        ``data.items[3]``. Nothing is written out before that is known: the work stays
        proportional to the payload's size.
    """
    if not isinstance(secret, str):
        raise ValidationError(
            f"secret: expected a str, got {type(secret).__name__}", field="secret"
        )
    try:
        if isinstance(payload, Mapping):
            try:
                payload = dumps(payload)
            except ValidationError as exc:
                if exc.field is not None:  # the path of the value in the payload
                    raise
                raise ValidationError(f"payload: {exc}", field="payload") from None
        if not isinstance(payload, (bytes, str)):
            raise ValidationError(
                "payload: expected a mapping, or a JSON object as bytes or str, got "
                f"{type(payload).__name__}",
                field="payload",
            )
        try:
            obj, how = jsjson.loads_for_verifying(payload)
        except ValueError as exc:
            raise ValidationError(f"payload: not valid JSON ({exc})", field="payload") from None
        if not isinstance(obj, dict):
            raise ValidationError("payload: the JSON must be an object", field="payload")
        try:
            base = jsjson.signing_string_base_and_value(
                obj, secret, how, payload, want_value=False
            )[1]
        except ValueError as exc:  # nested deeper than MAX_JSON_DEPTH
            raise ValidationError(f"payload: {exc}", field="payload") from None
        return hashlib.md5(base, usedforsecurity=False).hexdigest()
    except RecursionError:
        # a mapping nested (or referring to itself) deeper than encoding it can go
        raise ValidationError(
            f"payload: nested deeper than {MAX_JSON_DEPTH} levels", field="payload"
        ) from None


def verify(
    body: bytes | str,
    signature: str | None,
    secret: str,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    max_age: float | timedelta | None = None,
    now: datetime | None = None,
) -> WebhookEvent:
    """Check a webhook's ``X-Instaxwh-Key`` against its raw body, then parse it.

    Pass the body exactly as received (never a re-serialized one). Hex case and surrounding
    whitespace in the header are tolerated; the comparison takes constant time.

    The event holds only what the signature covers: it is read from the very text that was
    signed (``JSON.stringify`` of the body as JavaScript parsed it). Each number is the one
    JavaScript holds, as ``Decimal`` of the text ``JSON.stringify`` writes for it
    (``3.74000000000000000009`` → ``Decimal("3.74")``, ``1e21`` → ``Decimal("1E+21")``), or
    an ``int`` when that text is an integer (``5.0`` → ``5``, ``-0`` → ``0``,
    ``12345678901234567890`` → ``12345678901234567000``); a number JavaScript reads as infinite
    (``1e400``) is ``None``, as ``JSON.stringify`` writes ``null``. A top-level ``__proto__``
    member, which the sender's code drops, is not in the event. Top-level keys of ``raw`` come
    in the signing order (sorted).

    ``max_age`` (seconds as an ``int``/``float`` > 0, or a ``timedelta``) turns on a replay
    window: the event's top-level ``createdAt`` must be at most ``max_age`` old and at most
    :data:`MAX_CLOCK_SKEW` in the future (``now`` is the current time, an aware ``datetime``,
    for tests). The age is checked only once the signature matched. ``None`` (the default)
    accepts any age. Combined with a dedupe store that remembers handled events for at least
    ``max_age`` + :data:`MAX_CLOCK_SKEW`, a captured webhook is never handled twice.

    :raises WebhookVerificationError: for a missing, empty, malformed or wrong signature, a
        body that is not a JSON object (or nests deeper than
        :data:`~instax_async.serialization.MAX_JSON_DEPTH` levels), invalid UTF-8, a body over
        ``max_body`` bytes, no secret, or, with ``max_age``, an event too old, from the future
        or without ``createdAt`` — and no other exception, whatever the body and signature.
        ``error.reason`` is a :class:`VerificationFailure`.
    :raises ValidationError: ``max_age``, ``now`` or ``max_body`` is not acceptable (checked
        first, whatever the body).
    """
    window = None if max_age is None else check_max_age(max_age)
    if now is not None:
        _check_now(now)
    check_count("max_body", max_body, expected="a number of bytes >= 0")
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
        try:
            obj, how = jsjson.loads_for_verifying(raw)
        except ValueError as exc:
            raise _failure(
                VerificationFailure.INVALID_BODY,
                f"the body is not valid UTF-8 JSON: {_reason(exc)}",
            ) from None
        if not isinstance(obj, dict):
            raise _failure(VerificationFailure.INVALID_BODY, "the body is not a JSON object")
        try:
            signed, base, value = jsjson.signing_string_base_and_value(obj, secret, how, raw)
        except ValueError as exc:  # nested deeper than MAX_JSON_DEPTH
            raise _failure(
                VerificationFailure.INVALID_BODY,
                f"the body is not valid UTF-8 JSON: {_reason(exc)}",
            ) from None
        expected = hashlib.md5(base, usedforsecurity=False).hexdigest()
        if not hmac.compare_digest(expected, given):
            raise _failure(
                VerificationFailure.SIGNATURE_MISMATCH,
                f"the {SIGNATURE_HEADER} header does not match the body and secret",
            )
        # The event is read from the signed text itself, never from the body again: ``value``,
        # when there is one, is what that text parses back to.
        try:
            event = _structure(_signed_json(signed) if value is None else value)
        except ValidationError as exc:
            raise _failure(VerificationFailure.INVALID_BODY, str(exc)) from None
        if window is not None:
            _check_age(event, window, datetime.now(timezone.utc) if now is None else now)
    except RecursionError:
        # Only when the caller's own stack is nearly exhausted: nothing deeper than
        # MAX_JSON_DEPTH levels gets past the signing string.
        raise _failure(VerificationFailure.INVALID_BODY, "the body is nested too deeply") from None
    return event


def _reason(exc: ValueError) -> str:
    return str(exc).removeprefix("invalid JSON: ")


def _signed_json(signed: bytes) -> Any:
    """The signing string (UTF-8) parsed back: its numbers are JSON.stringify's, whose text is
    the JavaScript number."""
    return json.loads(signed, parse_float=Decimal)


def check_max_age(value: object) -> timedelta | None:
    """A ``max_age`` as given to :func:`verify` or a receiver (seconds > 0 or a positive
    ``timedelta``) as a ``timedelta``; ``None`` stays ``None`` (any age). Anything else is a
    :class:`~instax_async.ValidationError` naming ``max_age``."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        if value > timedelta(0):
            return value
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        try:
            return timedelta(seconds=value)
        except (OverflowError, ValueError):  # inf, nan, or beyond timedelta's range
            pass
    raise ValidationError(
        "max_age: expected the oldest acceptable event age as seconds > 0 (int or float) or "
        f"a positive timedelta, got {value!r}",
        field="max_age",
    )


def _check_now(value: object) -> None:
    if value is None or (isinstance(value, datetime) and value.utcoffset() is not None):
        return
    raise ValidationError(f"now: expected a timezone-aware datetime, got {value!r}", field="now")


def _check_age(event: WebhookEvent, max_age: timedelta, now: datetime) -> None:
    created = event.created_at
    if created is None:
        raise _failure(
            VerificationFailure.NO_TIMESTAMP,
            "the event has no createdAt, so its age cannot be checked against max_age",
        )
    age = now - created
    if age > max_age:
        raise _failure(
            VerificationFailure.TOO_OLD,
            f"the event was created {_seconds(age)} ago, longer than max_age "
            f"({_seconds(max_age)}): a replay of an old webhook is refused",
        )
    if -age > MAX_CLOCK_SKEW:
        raise _failure(
            VerificationFailure.IN_FUTURE,
            f"the event's createdAt is {_seconds(-age)} in the future, more than the "
            f"{_seconds(MAX_CLOCK_SKEW)} a clock may be ahead",
        )


def _seconds(span: timedelta) -> str:
    return f"{span.total_seconds():g} s"


def parse(body: bytes | str | Mapping[str, Any]) -> WebhookEvent:
    """Parse a webhook body into a :class:`~instax_async.WebhookEvent` without verifying it.

    For tests and for input you already trust; a webhook from the network goes through
    :func:`verify`. Amounts become ``Decimal`` equal to the wire text (exactly, unlike
    :func:`verify`, which holds the numbers JavaScript read); unknown statuses stay plain
    strings.

    :raises ValidationError: the body is not a JSON object shaped like a webhook (or nests
        deeper than :data:`~instax_async.serialization.MAX_JSON_DEPTH` levels).
    """
    if isinstance(body, Mapping):
        return _structure(body, from_json=False)
    try:
        data = loads_exact(body)
    except ValueError as exc:
        raise ValidationError(f"body: not valid JSON ({exc})", field="body") from None
    return _structure(data)


def _structure(data: Any, *, from_json: bool = True) -> WebhookEvent:
    """The event in ``data``: parsed from JSON (``str`` keys only) unless ``from_json`` is
    false, when the converter takes it whatever it holds."""
    if type(data) is not dict and not isinstance(data, Mapping):
        raise ValidationError("body: the webhook must be a JSON object", field="body")
    try:
        if from_json:
            return structure_json(data, WebhookEvent)
        return get_converter().structure(data, WebhookEvent)
    except Exception as exc:
        import cattrs  # loaded already: the converter raised

        if not isinstance(exc, (cattrs.BaseValidationError, ValueError, TypeError, AttributeError)):
            raise
        detail = "; ".join(_describe(exc)) or str(exc)
        raise ValidationError(
            f"body: not shaped like an InstaXchange webhook ({detail})", field="body"
        ) from None


def _describe(exc: BaseException) -> list[str]:
    import cattrs  # loaded already: the converter raised it

    if isinstance(exc, cattrs.BaseValidationError):
        return cattrs.transform_error(exc)
    return []


def dedupe_key(event: WebhookEvent) -> str:
    """The key that identifies one delivery of one event: webhookId, transactionId, status.

    A redelivery of the same event has the same key; a new status of the same transaction
    (``pending`` then ``completed``) has a new one.
    """
    # ``!s``: what the f-string would call for a status member (its str() is its value),
    # without the Enum's __format__ around it.
    return f"{event.webhook_id}|{event.transaction_id}|{event.status!s}"
