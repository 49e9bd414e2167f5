"""Retries: which failures are transient, what ``Retry-After`` asks for, and :class:`RetryPolicy`.

One rule decides what is worth trying again, for every caller: the client's retries of a GET,
the poll engine (:mod:`instax_async.polling`), :class:`~instax_async.BlockchainPoller`, the
``instax status --wait`` command and the arq payout watch.

**Transient** (:func:`is_transient`): the request did not complete (connection errors and
timeouts), 408, 429, and every 5xx except 501 (Not Implemented) and 505 (HTTP Version Not
Supported), which a retry would only get again. 520 to 524, which CDNs answer when the origin
cannot be reached, are transient like any other 5xx. A
:class:`~instax_async.ResponseTooLargeError` never is, whatever its status: the same server
would send the same body again.

A request that is not idempotent (creating a session) is retried only where it cannot have been
processed: it could not connect, or the answer was 429 or 503
(:data:`RETRYABLE_POST_STATUSES`).
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

# ``attr``, not ``attrs``: the same library; see models.py
import attr

from ._frozen import Frozen
from ._validate import check_count, check_number
from .errors import APIConnectionError, APIStatusError, RateLimitError, ResponseTooLargeError

# RetryPolicy is defined here and exported (and documented) by instax_async.
__all__ = [
    "RETRYABLE_GET_STATUSES",
    "RETRYABLE_POST_STATUSES",
    "TRANSIENT_STATUSES",
    "is_transient",
    "parse_retry_after",
    "retry_after",
]

TRANSIENT_STATUSES = frozenset({408, 429, *range(500, 600)} - {501, 505})
"""The statuses worth asking again: 408, 429 and every 5xx but 501 and 505."""
RETRYABLE_GET_STATUSES = TRANSIENT_STATUSES
"""The statuses a GET (an idempotent request) retries: the transient ones."""
RETRYABLE_POST_STATUSES = frozenset({429, 503})
"""The statuses after which a request that is not idempotent cannot have been processed."""


def is_transient(error: BaseException) -> bool:
    """True for a failure that asking again may cure (see the module's docstring).

    >>> from instax_async import APITimeoutError, ServerError
    >>> is_transient(APITimeoutError("slow")), is_transient(ServerError("s", status=501))
    (True, False)
    """
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, ResponseTooLargeError):
        return False
    return isinstance(error, APIStatusError) and error.status in TRANSIENT_STATUSES


def retry_after(error: BaseException) -> float | None:
    """The server's ``Retry-After`` carried by a 429 or 503 error, in seconds, else ``None``."""
    if isinstance(error, RateLimitError):
        return error.retry_after
    if isinstance(error, APIStatusError) and error.status == 503:
        return parse_retry_after(error.headers)
    return None


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


def _seconds(_instance: object, attribute: attr.Attribute[float], value: object) -> None:
    check_number(attribute.name, value, minimum=0.0, inclusive=True)


def _retries(_instance: object, attribute: attr.Attribute[int], value: object) -> None:
    check_count(attribute.name, value, minimum=0)


@attr.frozen(kw_only=False, repr=False, eq=False)
class RetryPolicy(Frozen):
    """How many times, and how patiently, a failed request is tried again.

    Waits use full-jitter exponential backoff: before retry ``n`` (1-based) the client sleeps a
    random time between 0 and ``min(backoff_max, backoff_base * 2 ** (n - 1))`` seconds. A
    ``Retry-After`` from the server replaces that wait when it is at most ``max_retry_after``
    seconds; a longer one makes the request fail at once with the error the server sent.

    ``RetryPolicy(max_retries=0)`` turns retries off. Change a policy with ``attrs.evolve``.
    """

    max_retries: int = attr.field(default=2, validator=_retries)
    backoff_base: float = attr.field(default=0.5, validator=_seconds)
    backoff_max: float = attr.field(default=8.0, validator=_seconds)
    max_retry_after: float = attr.field(default=60.0, validator=_seconds)

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based), full jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (retry_number - 1)))
        return (rng or random).uniform(0.0, ceiling)
