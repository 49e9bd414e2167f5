"""Which statuses are retried, and what a ``Retry-After`` header asks for.

The client and the poll engine need only these, not :class:`~instax_async.RetryPolicy`: they
import them from here, so that :mod:`instax_async.retry` (whose public home they stay in) and
its attrs class are loaded when a client is first built, not when the client is imported.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

__all__ = ["RETRYABLE_GET_STATUSES", "RETRYABLE_POST_STATUSES", "parse_retry_after"]

#: Statuses a GET retries: request timeout, rate limit, server errors.
RETRYABLE_GET_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses after which a non-idempotent POST cannot have been processed.
RETRYABLE_POST_STATUSES = frozenset({429, 503})


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
