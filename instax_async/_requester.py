"""The request pipeline: one :meth:`Requester.send` serves every call the SDK makes.

A request takes one path, in one coroutine (each frame less is time saved on every request)::

    build a Request → (trace context) → request hooks → transport (within max_concurrency and
    the timeout) → response hooks → span, metrics and the DEBUG record of the attempt →
    the retry decision (retry.py's rules) → a 2xx response, or the mapped error

:class:`~instax_async.AsyncSession` owns a requester and is the short list of API methods on
top of it; :class:`~instax_async.BlockchainPoller` sends its single attempts through the same
one (``retry=False``: its schedule decides every wait). What the answers mean is
:mod:`instax_async._protocol`'s business, not this module's.

Errors on the way keep no secret: a transport's exception is wrapped in the SDK's own, raised
from a scrubbed copy (:func:`~instax_async.transports.base.scrub_exception`) outside the
``except`` block, so the original (which may hold the request headers) is not its context.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from ._compat import timeout as timeout_scope
from ._protocol import status_error, user_agent
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InstaxError,
    ValidationError,
    request_id_from,
)
from .retry import RETRYABLE_GET_STATUSES, RETRYABLE_POST_STATUSES, RetryPolicy, parse_retry_after
from .transports.base import (
    Request,
    Response,
    Transport,
    scrub_exception,
    secret_values,
    unsendable_request_error,
    without_secret,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ._telemetry import Telemetry

__all__ = ["EventHook", "Requester", "Shared", "check_event_hooks", "merge_headers"]

logger = logging.getLogger("instax_async")

#: An event hook: ``hook(request)`` for "request", ``hook(request, response)`` for "response";
#: sync, or async (awaited).
EventHook = Callable[..., Any]
_HOOK_KINDS = ("request", "response")

# What ``Requester.call`` gives when no span is recorded: one object, entered at no cost.
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


#: Why one client cannot serve two event loops running at once.
TWO_LOOPS = (
    "AsyncSession: used from two event loops at once; nothing was sent. A client serves one "
    "event loop at a time: successive asyncio.run calls are fine, concurrent ones from several "
    "threads (asyncio.run per request in Flask or Django) are not. From threads, use "
    "instax_async.Client, the thread-safe client; or give each thread an AsyncSession of its "
    "own."
)


class Shared:
    """What a client and the copies ``with_options`` makes of it share: the transport, the
    ``max_concurrency`` bound and whether the client was closed."""

    __slots__ = ("_loop", "_semaphore", "closed", "max_concurrency", "transport")

    def __init__(self, transport: Transport, max_concurrency: int | None) -> None:
        self.transport = transport
        self.max_concurrency = max_concurrency
        self.closed = False
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def limiter(self) -> asyncio.Semaphore | None:
        """The ``max_concurrency`` semaphore of the running event loop.

        An ``asyncio.Semaphore`` binds to the first loop it waits in; a client used in a second
        loop (a second ``asyncio.run``) gets a fresh one there, once the first loop has
        stopped. While that loop still runs in another thread, the bound could not hold across
        both: :class:`~instax_async.InstaxError`, before anything is sent.
        """
        if self.max_concurrency is None:
            return None
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            previous = self._loop
            if previous is not None and previous.is_running() and not previous.is_closed():
                raise InstaxError(TWO_LOOPS)
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            self._loop = loop
        return self._semaphore


class Requester:
    """Sends requests for one client (or one ``with_options`` copy of it).

    It holds what a copy may change (``timeout``, ``retry``, ``event_hooks``), what every copy
    shares (:class:`Shared`), the headers every request carries, and the ``sleep`` and
    ``clock`` that tests replace.

    The headers: ``User-Agent``, ``Accept`` (and ``Content-Type`` on a request with a body),
    ``x-api-key`` when there is a key, then ``default_headers`` over them (a default header
    replaces the SDK's own of the same name; the client has refused an ``x-api-key`` among them
    when there is a key already).
    """

    def __init__(
        self,
        shared: Shared,
        *,
        api_key: str | None,
        timeout: float,
        retry: RetryPolicy,
        event_hooks: dict[str, list[EventHook]],
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.shared = shared
        self.timeout = timeout
        self.retry = retry
        self.event_hooks = event_hooks
        self.closed = False
        # Injectable for tests: the waits between retries and between polls, and the polls'
        # clock (None: the running loop's).
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.clock: Callable[[], float] | None = None
        from ._telemetry import telemetry  # loaded with the first client, not with this module

        self.telemetry: Telemetry | None = telemetry()
        # A transport that enforces ``Request.timeout`` as a total deadline itself spares every
        # request a second timer; any other gets one here, so no attempt can hang.
        self._transport_times_out = getattr(shared.transport, "enforces_timeout", False) is True
        # Merged once here, not per request: every attempt copies one of these two dicts.
        common = {"User-Agent": user_agent(), "Accept": "application/json"}
        if api_key is not None:
            common["x-api-key"] = api_key
        defaults = default_headers or {}
        self._get_headers: Mapping[str, str] = merge_headers(common, defaults)
        self._post_headers: Mapping[str, str] = merge_headers(
            {**common, "Content-Type": "application/json"}, defaults
        )

    def copy(self) -> Requester:
        """A requester sharing this one's transport, bound and headers; open, whatever this
        one is. The caller then sets its own ``timeout``, ``retry`` or ``event_hooks``."""
        twin = object.__new__(Requester)
        twin.__dict__.update(self.__dict__)
        twin.closed = False
        twin.event_hooks = {kind: list(hooks) for kind, hooks in self.event_hooks.items()}
        return twin

    def ensure_open(self) -> None:
        """Raise the "closed" error when this client, or the one it copies, was closed."""
        if self.closed or self.shared.closed:
            raise InstaxError(
                "this AsyncSession is closed; create a new one (or keep it open with "
                "'async with' around all of its use)"
            )

    def active_telemetry(self) -> Telemetry | None:
        """The instruments, or ``None`` when telemetry would record and propagate nothing now
        (``opentelemetry-api`` absent, or present with no SDK configured: see
        :meth:`Telemetry.idle`), so that such requests skip every span and metric call."""
        tel = self.telemetry
        if tel is None or tel.idle():
            return None
        return tel

    def call(
        self, name: str, key: str, value: object
    ) -> contextlib.AbstractContextManager[Span | None]:
        """The span of one public call (``instax.create_session`` …) with the attribute
        ``key`` = ``str(value)``, current while the call runs; ``None`` inside when telemetry
        is off (then the caller sends with ``spans=False``: idleness is decided once a call).

        One path whether telemetry is on or off: when off, entering this context costs 3,000
        instructions of a request's 550,000 (0.5 %; valgrind, ``create_session`` against a
        ``MockTransport``), below the 1 % that would pay for a second copy of each call
        without it. The attribute is built only for a span: for every call, it cost 3,900 more.
        """
        tel = self.active_telemetry()
        if tel is None:
            return _NO_SPAN
        return tel.call(name, {key: str(value)})

    # -- one request, with its retries -------------------------------------------------------

    async def send(
        self,
        method: str,
        url: str,
        content: bytes = b"",
        *,
        idempotent: bool,
        timeout: float | None = None,
        retry: bool = True,
        spans: bool = True,
    ) -> Response:
        """Send with retries (none if not ``retry``); return a 2xx response or raise the
        mapped error. ``timeout`` bounds each attempt further (a poll's time left);
        ``spans=False`` records no span (the caller found telemetry idle: :meth:`call`).

        An attempt that did not complete is kept as its error, not raised, so that only the
        retry decision raises it; anything else (a hook that failed) ends the call.
        """
        headers = self._post_headers if content else self._get_headers
        seconds = self.timeout if timeout is None else min(self.timeout, timeout)
        retries = 0
        while True:
            if self.closed or self.shared.closed:
                self.ensure_open()
            # Each attempt's request has headers of its own: a hook may change them (httpx's
            # idiom for a per-tenant key) for this attempt only, never for the next or a copy.
            tel = self.telemetry
            span = None
            if spans and tel is not None and not tel.idle():
                span = tel.start_attempt(method, url, retries)
                request = Request(method, url, tel.inject(span, headers), content, seconds)
            else:
                request = Request(method, url, dict(headers), content, seconds)
            # the DEBUG record's clock runs only when something reads it
            started = (
                time.perf_counter()
                if span is not None or logger.isEnabledFor(logging.DEBUG)
                else None
            )
            try:
                outcome = await self._attempt(request)
            except Exception as exc:
                if started is not None:
                    self._record(request, retries, started, exc, span)
                raise
            except BaseException:  # cancellation: no log, no metrics, but no span left open
                if span is not None:
                    span.end()
                raise
            if started is not None:
                self._record(request, retries, started, outcome, span)
            if isinstance(outcome, Response) and 200 <= outcome.status < 300:
                return outcome
            delay, reason = self._retry_decision(outcome, idempotent, retries if retry else -1)
            retries += 1
            logger.warning(
                "retrying %s %s in %.2f s (retry %d of %d) after %s",
                method,
                _path_of(url, query=False),
                delay,
                retries,
                self.retry.max_retries,
                reason,
                extra={"instax_method": method, "instax_attempt": retries},
            )
            await self.sleep(delay)

    async def _attempt(self, request: Request) -> Response | APIConnectionError | ValidationError:
        """Request hooks, the transport, response hooks: the response, or the error of an
        attempt that did not complete."""
        hooks = self.event_hooks
        if hooks["request"]:
            pending = _run_hooks(hooks["request"], request)
            if pending is not None:
                await pending
        outcome: Response | APIConnectionError | ValidationError
        shared = self.shared
        try:
            if self._transport_times_out and shared.max_concurrency is None:
                # the common case, without the frame of _send_limited
                outcome = await shared.transport.send(request)
            else:
                outcome = await self._send_limited(request)
        except APIConnectionError as exc:
            outcome = exc
        except APIStatusError as exc:  # ResponseTooLargeError: its first bytes and headers
            key = request.headers.get("x-api-key")
            if isinstance(key, str) and key:
                exc.headers, exc.body = without_secret(exc.status, exc.headers, exc.body, key)
            raise
        except InstaxError:
            raise
        except Exception as exc:
            # not raised: a later ``raise`` outside any except block leaves no __context__
            outcome = _transport_error(request, exc)
        if isinstance(outcome, Response):
            # a server that echoes the api key back (a debugging proxy, an error page listing
            # the request's headers) must not put it in an error, a log line or a result; the
            # search costs about 0.9 us for a 1.2 KB body (under 0.5 % of a request)
            key = request.headers.get("x-api-key")
            if isinstance(key, str) and key:
                headers, content = without_secret(
                    outcome.status, outcome.headers, outcome.content, key
                )
                if content is not outcome.content or headers is not outcome.headers:
                    outcome = Response(outcome.status, headers, content)
        if hooks["response"] and isinstance(outcome, Response):
            pending = _run_hooks(hooks["response"], request, outcome)
            if pending is not None:
                await pending
        return outcome

    async def _send_limited(self, request: Request) -> Response:
        """The transport's send within ``max_concurrency`` and, for a transport that does not
        enforce it, the request's timeout."""
        semaphore = self.shared.limiter()
        if semaphore is None:
            return await self._send_timed(request)
        async with semaphore:
            return await self._send_timed(request)

    async def _send_timed(self, request: Request) -> Response:
        if self._transport_times_out:
            return await self.shared.transport.send(request)
        async with timeout_scope(request.timeout):
            return await self.shared.transport.send(request)

    def _retry_decision(
        self,
        outcome: Response | APIConnectionError | ValidationError,
        idempotent: bool,
        retries: int,
    ) -> tuple[float, str]:
        """The wait before the next attempt and why, or raise the attempt's error.

        ``retries`` is how many were made (-1: no retries at all).
        """
        policy = self.retry
        if isinstance(outcome, ValidationError):  # never sent: the same would fail again
            _raise_clean(outcome)
        last = retries < 0 or retries >= policy.max_retries
        if isinstance(outcome, APIConnectionError):
            if last or not (idempotent or outcome.connect_failed):
                _raise_clean(outcome)
            return policy.backoff(retries + 1), str(outcome)
        status = outcome.status
        retry_after = parse_retry_after(outcome.headers) if status in (429, 503) else None
        if (
            last
            or status not in (RETRYABLE_GET_STATUSES if idempotent else RETRYABLE_POST_STATUSES)
            or (retry_after is not None and retry_after > policy.max_retry_after)
        ):
            raise status_error(outcome, retry_after)
        delay = retry_after if retry_after is not None else policy.backoff(retries + 1)
        return delay, f"HTTP {status}"

    def _record(
        self,
        request: Request,
        resend_count: int,
        started: float,
        outcome: Response | BaseException,
        span: Span | None,
    ) -> None:
        """The attempt's DEBUG record, metrics and span end."""
        seconds = time.perf_counter() - started
        if isinstance(outcome, Response):
            status: int | None = outcome.status
            request_id = request_id_from(outcome.headers)
            error_type = None if outcome.status < 400 else str(outcome.status)
        else:
            status = request_id = None
            error_type = type(outcome).__qualname__
        tel = self.telemetry
        if tel is not None and span is not None:
            tel.end_attempt(span, request.method, seconds, status, error_type, outcome, request_id)
        if logger.isEnabledFor(logging.DEBUG):
            _log_attempt(request, resend_count + 1, seconds * 1000.0, status, request_id, outcome)


def _transport_error(request: Request, exc: Exception) -> APIConnectionError | ValidationError:
    """The SDK's error for an exception a transport raised, chained to a scrubbed copy of it
    (the original may hold the request headers). A ``ValueError`` or ``TypeError`` is taken for
    a request that could not be built (nothing was sent): it is not retried."""
    cause = scrub_exception(exc, secret_values(request.headers))
    error: APIConnectionError | ValidationError
    if isinstance(exc, (ValueError, TypeError)):
        error = unsendable_request_error(request, cause)
    elif isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        error = APITimeoutError(
            f"{request.method} {request.url} timed out after {request.timeout:g} s"
        )
    else:
        error = APIConnectionError(
            f"{request.method} {request.url} failed: {type(cause).__name__}: {cause}"
        )
    error.__cause__ = cause
    return error


def _raise_clean(error: InstaxError) -> NoReturn:
    """Raise a transport's error without a context that ``raise … from cause`` hid.

    Such a context is never shown, but error reporters walk it; on Python 3.10 it can be an
    exception the HTTP library handled earlier (holding what the cleaned cause left out).
    """
    try:
        raise error
    finally:
        if error.__suppress_context__:
            error.__context__ = None


def merge_headers(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``base`` with ``extra`` laid over it, names compared without case: a name in ``extra``
    replaces the same name in ``base`` (``user-agent`` replaces ``User-Agent``)."""
    merged = dict(base)
    for name, value in extra.items():
        lower = name.lower()
        for existing in [key for key in merged if key.lower() == lower]:
            del merged[existing]
        merged[name] = value
    return merged


# -- event hooks -------------------------------------------------------------------------------


def check_event_hooks(hooks: object) -> dict[str, list[EventHook]]:
    """``hooks`` as ``{"request": [...], "response": [...]}``, each a list of callables."""
    if hooks is None:
        return {"request": [], "response": []}
    if not isinstance(hooks, Mapping):
        raise ValidationError(
            'event_hooks: expected a mapping such as {"request": [f], "response": [g]}, '
            f"got {type(hooks).__name__}",
            field="event_hooks",
        )
    checked: dict[str, list[EventHook]] = {"request": [], "response": []}
    for kind, functions in hooks.items():
        if kind not in _HOOK_KINDS:
            raise ValidationError(
                f"event_hooks: unknown event {kind!r}; the events are 'request' and 'response'",
                field="event_hooks",
            )
        if isinstance(functions, (str, bytes)) or not isinstance(functions, Sequence):
            raise ValidationError(
                f"event_hooks[{kind!r}]: expected a list of callables, "
                f"got {type(functions).__name__}",
                field="event_hooks",
            )
        for function in functions:
            if not callable(function):
                raise ValidationError(
                    f"event_hooks[{kind!r}]: expected callables, got {function!r}",
                    field="event_hooks",
                )
        checked[kind] = list(functions)
    return checked


def _run_hooks(
    hooks: Sequence[EventHook], request: Request, response: Response | None = None
) -> Awaitable[None] | None:
    """Call the hooks in order, with the request (and the response, for response hooks).
    Sync hooks run here, with no coroutine made for them; from the first hook that returns an
    awaitable on, the rest run in the coroutine returned."""
    snapshot = tuple(hooks)  # a hook may change the list it is in
    called = 0
    for hook in snapshot:
        called += 1  # noqa: SIM113 - cheaper than enumerate on every request
        try:
            result = hook(request) if response is None else hook(request, response)
        except InstaxError:
            raise
        except Exception as exc:
            raise _hook_error(hook, exc) from exc
        if result is not None and inspect.isawaitable(result):
            return _finish_hooks(hook, result, snapshot[called:], request, response)
    return None


async def _finish_hooks(
    hook: EventHook,
    result: Awaitable[Any],
    rest: tuple[EventHook, ...],
    request: Request,
    response: Response | None,
) -> None:
    try:
        await result
    except InstaxError:
        raise
    except Exception as exc:
        raise _hook_error(hook, exc) from exc
    if rest:
        more = _run_hooks(rest, request, response)
        if more is not None:
            await more


def _hook_error(hook: EventHook, exc: Exception) -> InstaxError:
    name = getattr(hook, "__qualname__", type(hook).__name__)
    return InstaxError(f"event hook {name} raised {type(exc).__name__}: {exc}")


# -- the DEBUG record ----------------------------------------------------------------------------


def _path_of(url: str, *, query: bool = True) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if query and parts.query else parts.path


def _log_attempt(
    request: Request,
    attempt: int,
    elapsed_ms: float,
    status: int | None,
    request_id: str | None,
    outcome: Response | BaseException,
) -> None:
    path = _path_of(request.url)
    extra = {
        "instax_method": request.method,
        "instax_path": path,
        "instax_status": status,
        "instax_elapsed_ms": round(elapsed_ms, 1),
        "instax_attempt": attempt,
        "instax_request_id": request_id,
    }
    if isinstance(outcome, Response):
        logger.debug(
            "%s %s -> %d in %.1f ms (attempt %d%s)",
            request.method,
            path,
            status,
            elapsed_ms,
            attempt,
            f", request id {request_id}" if request_id else "",
            extra=extra,
        )
    else:
        logger.debug(
            "%s %s failed after %.1f ms (attempt %d): %s",
            request.method,
            path,
            elapsed_ms,
            attempt,
            outcome,
            extra=extra,
        )
