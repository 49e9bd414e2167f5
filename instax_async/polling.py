"""The poll engine behind every "wait until": pure rules and one async generator.

One set of rules serves :meth:`AsyncSession.poll_blockchain_status`,
:meth:`AsyncSession.wait_for_blockchain_hash`, :meth:`AsyncSession.wait_for_session` and
:class:`~instax_async.BlockchainPoller` (in :mod:`instax_async.poller`). This module depends on
nothing above it: the client and the poller import it, never the other way round.

- The first request goes out at once. After each answer that is not final the poll waits
  ``interval``, then ``interval * backoff``, ``interval * backoff**2``, … capped at
  ``max_interval``; each wait is shortened by a random part of up to 20 % (jitter), so polls
  started together drift apart and no wait is longer than asked for.
- Transient failures (:func:`instax_async.retry.is_transient`: connection errors, timeouts,
  408, 429, 5xx but 501 and 505) are tried again on the same schedule; a ``Retry-After`` on
  a 429 or 503 is honoured (the poll waits at least that long).
  Any other error is raised.
- ``timeout`` is one deadline across every attempt and every wait. Each attempt may take only
  the time left, and no wait reaches past the deadline: when the next attempt would come too
  late, the poll waits until the deadline and raises :class:`~instax_async.PollTimeoutError`
  carrying the last status seen.
- ``sleep`` and ``clock`` are injectable, so tests never wait for real; cancellation is never
  caught, so a cancelled poll sends no further request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

import attrs

from ._poll_defaults import BACKOFF, INTERVAL, MAX_INTERVAL, TIMEOUT, check_id
from .errors import PollTimeoutError, ValidationError
from .retry import is_transient, retry_after

__all__ = ["POLL_DEFAULTS", "PollOptions", "check_id", "poll"]

logger = logging.getLogger("instax_async")

T = TypeVar("T")

#: An injectable ``asyncio.sleep``.
Sleep = Callable[[float], Awaitable[None]]
#: An injectable monotonic clock, in seconds (the running loop's ``time`` by default).
Clock = Callable[[], float]

#: Each wait is shortened by a random fraction of up to this much.
JITTER = 0.2


# -- validation --------------------------------------------------------------------------------


def _number(
    name: str,
    value: object,
    *,
    minimum: float = 0.0,
    inclusive: bool = False,
    accepted: str = "",
) -> float:
    if value is None and name == "timeout":
        raise ValidationError(
            "timeout: None would poll forever; give the seconds the whole poll may take "
            "(default 600.0)",
            field=name,
        )
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (value < minimum if inclusive else value <= minimum)
    ):
        raise ValidationError(
            f"{name}: expected a finite number {bound}{accepted}, got {value!r}", field=name
        )
    return float(value)


def _check_seconds(
    _instance: object, attribute: attrs.Attribute[float], value: object
) -> None:  # attrs validator
    if attribute.name == "backoff":
        _number("backoff", value, minimum=1.0, inclusive=True, accepted=" (1: a steady interval)")
    else:
        _number(attribute.name, value, accepted=" (seconds)")


@attrs.frozen
class PollOptions:
    """How a poll paces itself: the options every ``poll_…`` / ``wait_for_…`` method takes.

    Every value is checked when built; a bad one raises
    :class:`~instax_async.ValidationError` naming the field.

    >>> PollOptions(interval=1.0, max_interval=10.0, backoff=2.0, timeout=120.0).timeout
    120.0
    """

    #: Seconds to wait after the first answer.
    interval: float = attrs.field(default=INTERVAL, validator=_check_seconds)
    #: The longest wait between two attempts.
    max_interval: float = attrs.field(default=MAX_INTERVAL, validator=_check_seconds)
    #: Each wait is the previous one times this (>= 1; 1 polls at a steady ``interval``).
    backoff: float = attrs.field(default=BACKOFF, validator=_check_seconds)
    #: Seconds the whole poll may take: one deadline across every attempt and wait.
    timeout: float = attrs.field(default=TIMEOUT, validator=_check_seconds)

    def __attrs_post_init__(self) -> None:
        if self.max_interval < self.interval:
            raise ValidationError(
                f"max_interval: expected a number >= interval ({self.interval:g}), "
                f"got {self.max_interval:g}",
                field="max_interval",
            )

    def step(
        self, current: float, rand: Callable[[], float] = random.random
    ) -> tuple[float, float]:
        """The jittered wait for the ``current`` interval, and the interval after it."""
        return current * (1.0 - JITTER * rand()), min(self.max_interval, current * self.backoff)


#: The defaults of every ``poll_…`` / ``wait_for_…`` method and of ``BlockchainPoller``: the
#: keywords those take are spelled out for their users, with their defaults and checks here.
POLL_DEFAULTS = PollOptions()


def _brief(status: object) -> object:
    """What a DEBUG record shows of a status: its ``status`` field, else the status itself."""
    return getattr(status, "status", None) or getattr(status, "session_status", None) or status


def _describe(last: object) -> str:
    return "no answer arrived" if last is None else f"last status: {last!r}"


# -- the engine ----------------------------------------------------------------------------


async def poll(
    fetch: Callable[[float], Awaitable[T]],
    *,
    stop: Callable[[T], bool],
    options: PollOptions,
    subject: str,
    sleep: Sleep = asyncio.sleep,
    clock: Clock | None = None,
) -> AsyncGenerator[T, None]:
    """Poll ``fetch`` until ``stop`` says so; yield each status that differs from the last.

    ``fetch(seconds_left)`` makes one attempt, which may take at most ``seconds_left``; it
    returns a status or raises. ``subject`` names what is awaited in the timeout message (for
    example ``"a blockchain hash for tx 'wd_1'"``). The rules are in this module's docstring.
    """
    now = clock or asyncio.get_running_loop().time
    deadline = now() + options.timeout
    current = options.interval
    last: T | None = None
    error: Exception | None = None
    while True:
        left = deadline - now()
        if left <= 0:
            # only after an attempt that itself ran up to the deadline
            raise PollTimeoutError(
                f"no {subject} within {options.timeout:g} s ({_describe(last)})",
                last_status=last,
            ) from error
        hint: float | None = None
        try:
            status = await fetch(left)
        except Exception as exc:
            if not is_transient(exc):
                raise
            error, hint = exc, retry_after(exc)
        else:
            error = None
            if last is None or status != last:
                last = status
                yield status
            if stop(status):
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("instax_async: %s: %s; done", subject, _brief(status))
                return
        wait, current = options.step(current)
        if hint is not None:
            wait = max(wait, hint)
        if logger.isEnabledFor(logging.DEBUG):
            seen = error if error is not None else _brief(status)
            logger.debug("instax_async: %s: %s; next poll in %.2f s", subject, seen, wait)
        left = deadline - now()
        if wait >= left:
            if left > 0:
                await sleep(left)
            raise PollTimeoutError(
                f"no {subject} within {options.timeout:g} s ({_describe(last)})",
                last_status=last,
            ) from error
        await sleep(wait)
