"""Polling: the options every "wait until" takes, and the engine that follows them.

One set of rules serves the client's ``poll_…`` and ``wait_for_…`` methods and
:class:`~instax_async.BlockchainPoller` (in :mod:`instax_async.poller`, whose watches follow the
same schedule). This module depends on nothing above it: the client and the poller import it,
never the other way round.

- The first request goes out at once. After each answer that is not final the poll waits
  ``interval``, then ``interval * backoff``, ``interval * backoff**2``, … capped at
  ``max_interval``; each wait is shortened by a random part of up to 20 % (jitter), so polls
  started together drift apart and no wait is longer than asked for.
- Transient failures (:func:`instax_async.retry.is_transient`: connection errors, timeouts,
  408, 429, 5xx but 501 and 505) are tried again on the same schedule; a ``Retry-After`` on a
  429 or 503 is honoured (the poll waits at least that long). Any other error is raised.
- ``timeout`` is one deadline across every attempt and every wait. Each attempt may take only
  the time left, and no wait reaches past the deadline: when the next attempt would come too
  late, the poll waits until the deadline and raises :class:`~instax_async.PollTimeoutError`
  carrying the last status seen.
- ``on_attempt``, when given, sees every attempt (:class:`PollAttempt`): the status, or the
  transient error of one that failed, and the wait before the next, which it may shorten.
- ``sleep`` and ``clock`` are injectable, so tests never wait for real; cancellation is never
  caught, so a cancelled poll sends no further request.

The options are spelled once, as the typed dictionaries below: a method takes them as
``**options: Unpack[BlockchainPollOptions]``, so a type checker checks each keyword and its type,
and :func:`poll_options` checks them at the call, before any request.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

import attr

from ._frozen import Frozen
from ._validate import check_callable, check_number
from .errors import PollTimeoutError, ValidationError
from .retry import is_transient, retry_after

if TYPE_CHECKING:
    from .models import BlockchainStatus, SessionStatus

# The engine (poll, poll_options) serves the SDK's own methods: not in __all__, not public.
__all__ = [
    "POLL_DEFAULTS",
    "BlockchainPollOptions",
    "PollAttempt",
    "PollOptions",
    "PollPacing",
    "SessionPollOptions",
]

logger = logging.getLogger("instax_async")

T = TypeVar("T")

#: An injectable ``asyncio.sleep``.
Sleep = Callable[[float], Awaitable[None]]
#: An injectable monotonic clock, in seconds (the running loop's ``time`` by default).
Clock = Callable[[], float]

#: Each wait is shortened by a random fraction of up to this much.
JITTER = 0.2


# -- the options -------------------------------------------------------------------------------


class PollPacing(TypedDict, total=False):
    """How a poll paces itself: keywords of every ``poll_…`` / ``wait_for_…`` method and of
    :class:`~instax_async.BlockchainPoller`. Each may be left out; the defaults are those of
    :class:`PollOptions` (:data:`POLL_DEFAULTS`)."""

    interval: float
    """Seconds to wait after the first answer (default ``2.0``; > 0)."""
    max_interval: float
    """The longest wait between two attempts (default ``30.0``; >= ``interval``)."""
    backoff: float
    """Each wait is the previous one times this (default ``1.5``; >= 1, 1 keeps a steady
    ``interval``)."""
    timeout: float
    """Seconds the whole poll may take: one deadline across every attempt and wait (default
    ``600.0``; > 0, never ``None``)."""


class BlockchainPollOptions(PollPacing, total=False):
    """The keywords of ``poll_blockchain_status`` and ``wait_for_blockchain_status``: the
    pacing of :class:`PollPacing`, and these two (default ``None`` each)."""

    until: Callable[[BlockchainStatus], bool] | None
    """Stop at the first status for which ``until(status)`` is true, instead of at the first
    with a hash. A failed payout (:attr:`~instax_async.BlockchainStatus.is_failed`) stops the
    poll either way."""
    on_attempt: Callable[[PollAttempt[BlockchainStatus]], object] | None
    """Called after every attempt with its :class:`PollAttempt`."""


class SessionPollOptions(PollPacing, total=False):
    """The keywords of ``poll_session_status`` and ``wait_for_session_status``: the pacing of
    :class:`PollPacing`, and these two (default ``None`` each)."""

    until: Callable[[SessionStatus], bool] | None
    """Also stop at the first status for which ``until(status)`` is true (a terminal status,
    ``completed`` or ``failed``, always stops the poll)."""
    on_attempt: Callable[[PollAttempt[SessionStatus]], object] | None
    """Called after every attempt with its :class:`PollAttempt`."""


def _seconds(_instance: object, attribute: attr.Attribute[float], value: object) -> None:
    if attribute.name == "backoff":
        check_number(
            "backoff", value, minimum=1.0, inclusive=True, accepted=" (1: a steady interval)"
        )
    else:
        none = "poll forever; give the seconds the whole poll may take (default 600.0)"
        check_number(
            attribute.name,
            value,
            accepted=" (seconds)",
            none=none if attribute.name == "timeout" else None,
        )


@attr.frozen(repr=False, eq=False)
class PollOptions(Frozen):
    """The pacing of a poll, checked: what :class:`PollPacing`'s keywords become.

    Every value is checked when built; a bad one raises
    :class:`~instax_async.ValidationError` naming the field.

    >>> PollOptions(interval=1.0, max_interval=10.0, backoff=2.0, timeout=120.0).timeout
    120.0
    """

    #: Seconds to wait after the first answer.
    interval: float = attr.field(default=2.0, validator=_seconds)
    #: The longest wait between two attempts.
    max_interval: float = attr.field(default=30.0, validator=_seconds)
    #: Each wait is the previous one times this (>= 1; 1 polls at a steady ``interval``).
    backoff: float = attr.field(default=1.5, validator=_seconds)
    #: Seconds the whole poll may take: one deadline across every attempt and wait.
    timeout: float = attr.field(default=600.0, validator=_seconds)

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


POLL_DEFAULTS = PollOptions()
"""The defaults of every ``poll_…`` / ``wait_for_…`` method and of ``BlockchainPoller``."""

_PACING = frozenset(attr.fields_dict(PollOptions))
_CALLBACKS = ("until", "on_attempt")


def poll_options(
    keywords: Mapping[str, Any], caller: str, *, callbacks: bool = True
) -> tuple[PollOptions, Any, Any]:
    """The checked options of a call: its :class:`PollOptions`, ``until`` and ``on_attempt``.

    An unknown keyword is a ``TypeError``, as Python raises for a function that does not take
    it (``callbacks=False``: only the pacing is taken); a bad value a ValidationError.
    """
    for name in keywords:
        if name not in _PACING and not (callbacks and name in _CALLBACKS):
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
    pacing = {name: value for name, value in keywords.items() if name in _PACING}
    options = PollOptions(**pacing) if pacing else POLL_DEFAULTS
    until = keywords.get("until")
    on_attempt = keywords.get("on_attempt")
    check_callable(
        "until", until, expected="a callable taking a status and returning a bool, or None"
    )
    check_callable("on_attempt", on_attempt, expected="a callable taking a PollAttempt, or None")
    return options, until, on_attempt


class PollAttempt(Generic[T]):
    """One attempt of a poll, as ``on_attempt`` sees it, right after the attempt.

    ``number`` counts the attempts from 1. ``status`` is what the attempt answered, or ``None``
    when it failed with ``error``, a transient error (the poll tries again; any other error
    ends the poll instead, and no ``PollAttempt`` is made for it). ``elapsed`` is the seconds
    since the poll began and ``duration`` the seconds this attempt took.

    ``next_wait`` is the seconds the poll will wait before its next attempt, or ``None`` when
    there is none: the status was final, or the deadline comes first. ``on_attempt`` may set a
    shorter (or longer) wait; the poll's deadline still holds.

    ::

        def show(attempt: PollAttempt[BlockchainStatus]) -> None:
            if attempt.error is not None:
                print(f"poll {attempt.number} failed: {attempt.error}")
    """

    __slots__ = ("duration", "elapsed", "error", "next_wait", "number", "status")

    def __init__(
        self,
        number: int,
        status: T | None,
        error: Exception | None,
        elapsed: float,
        duration: float,
        next_wait: float | None,
    ) -> None:
        self.number = number
        self.status = status
        self.error = error
        self.elapsed = elapsed
        self.duration = duration
        self.next_wait = next_wait

    def __repr__(self) -> str:
        outcome = f"status={self.status!r}" if self.error is None else f"error={self.error!r}"
        return (
            f"PollAttempt(number={self.number}, {outcome}, elapsed={self.elapsed:.3f}, "
            f"duration={self.duration:.3f}, next_wait={self.next_wait!r})"
        )


# -- the engine --------------------------------------------------------------------------------


def _brief(status: object) -> object:
    """What a DEBUG record shows of a status: its ``status`` field, else the status itself."""
    return getattr(status, "status", None) or getattr(status, "session_status", None) or status


def describe_last(last: object) -> str:
    """The end of a poll's timeout message: the last status seen, or that none arrived."""
    return "no answer arrived" if last is None else f"last status: {last!r}"


async def _tell(
    on_attempt: Callable[[PollAttempt[T]], object], attempt: PollAttempt[T]
) -> float | None:
    """Call ``on_attempt`` (awaiting what it returns, if awaitable); the wait it leaves."""
    result = on_attempt(attempt)
    if inspect.isawaitable(result):
        await result
    wait = attempt.next_wait
    if wait is None:
        return None
    return check_number("next_wait", wait, minimum=0.0, inclusive=True, accepted=" (seconds)")


async def poll(
    fetch: Callable[[float], Awaitable[T]],
    *,
    stop: Callable[[T], bool],
    options: PollOptions,
    subject: str,
    on_attempt: Callable[[PollAttempt[T]], object] | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock | None = None,
) -> AsyncGenerator[T, None]:
    """Poll ``fetch`` until ``stop`` says so; yield each status that differs from the last.

    ``fetch(seconds_left)`` makes one attempt, which may take at most ``seconds_left``; it
    returns a status or raises. ``subject`` names what is awaited in the timeout message (for
    example ``"a blockchain hash for tx 'wd_1'"``). The rules are in this module's docstring;
    an exception ``on_attempt`` raises ends the poll and reaches the caller as it is.
    """
    now = clock or asyncio.get_running_loop().time
    began = now()
    deadline = began + options.timeout
    current = options.interval
    last: T | None = None
    error: Exception | None = None
    number = 0
    while True:
        left = deadline - now()
        if left <= 0:
            # only after an attempt that itself ran up to the deadline
            raise PollTimeoutError(
                f"no {subject} within {options.timeout:g} s ({describe_last(last)})",
                last_status=last,
            ) from error
        number += 1
        sent = now()
        answer: T | None = None
        hint: float | None = None
        try:
            answer = await fetch(left)
        except Exception as exc:
            if not is_transient(exc):
                raise
            error, hint = exc, retry_after(exc)
        else:
            error = None
        done = answer is not None and stop(answer)
        scheduled = wait = None
        if not done:
            scheduled, current = options.step(current)
            if hint is not None:
                scheduled = max(scheduled, hint)
            # None: no attempt comes before the deadline
            wait = scheduled if scheduled < deadline - now() else None
        if on_attempt is not None:
            ended = now()
            attempt = PollAttempt(number, answer, error, ended - began, ended - sent, wait)
            wait = await _tell(on_attempt, attempt)
        if answer is not None and (last is None or answer != last):
            last = answer
            yield answer
        if done:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s: %s; done", subject, _brief(answer))
            return
        if logger.isEnabledFor(logging.DEBUG):
            seen = error if error is not None else _brief(answer)
            shown = scheduled if wait is None else wait
            logger.debug("%s: %s; next poll in %.2f s", subject, seen, shown)
        left = deadline - now()
        if wait is None or wait >= left:
            if left > 0:
                await sleep(left)
            raise PollTimeoutError(
                f"no {subject} within {options.timeout:g} s ({describe_last(last)})",
                last_status=last,
            ) from error
        await sleep(wait)
