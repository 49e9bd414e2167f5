"""Retry policy: which failures are retried, and how long to wait between attempts."""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

import attrs

from .errors import ValidationError

__all__ = ["RetryPolicy", "parse_retry_after"]

#: Statuses a GET retries: request timeout, rate limit, server errors.
RETRYABLE_GET_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses after which a non-idempotent POST cannot have been processed.
RETRYABLE_POST_STATUSES = frozenset({429, 503})


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    name = attribute.name
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{name} must be a number, got {value!r}", field=name)
    if not math.isfinite(value) or value < 0:
        raise ValidationError(f"{name} must be a finite number >= 0, got {value!r}", field=name)


def _retry_count(_instance: object, _attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(
            f"max_retries must be an int >= 0, got {value!r}", field="max_retries"
        )


@attrs.frozen(kw_only=False)
class RetryPolicy:
    """How many times, and how patiently, a failed request is tried again.

    Waits use full-jitter exponential backoff: before retry ``n`` (1-based) the client sleeps a
    random time between 0 and ``min(backoff_max, backoff_base * 2 ** (n - 1))`` seconds. A
    ``Retry-After`` from the server replaces that wait when it is at most ``max_retry_after``
    seconds; a longer one makes the request fail at once with the error the server sent.

    ``RetryPolicy(max_retries=0)`` turns retries off. Change a policy with ``attrs.evolve``.
    """

    max_retries: int = attrs.field(default=2, validator=_retry_count)
    backoff_base: float = attrs.field(default=0.5, validator=_non_negative)
    backoff_max: float = attrs.field(default=8.0, validator=_non_negative)
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based), full jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (retry_number - 1)))
        return (rng or random).uniform(0.0, ceiling)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``.

    A date in the past gives ``0.0``; a value that is neither gives ``None``.
    """
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
