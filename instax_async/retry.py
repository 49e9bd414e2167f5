"""Retry policy: which failures are retried, and how long to wait between attempts."""

from __future__ import annotations

import math
import random

import attrs

from ._retry_rules import RETRYABLE_GET_STATUSES, RETRYABLE_POST_STATUSES, parse_retry_after
from .errors import ValidationError

__all__ = [
    "RETRYABLE_GET_STATUSES",
    "RETRYABLE_POST_STATUSES",
    "RetryPolicy",
    "parse_retry_after",
]


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
