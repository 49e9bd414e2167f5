"""OpenTelemetry spans and metrics, when ``opentelemetry-api`` is installed (extra ``otel``).

The SDK configures nothing: it asks the global tracer and meter providers for its instruments,
so an application that set up the OpenTelemetry SDK gets the SDK's spans and metrics, and one
that did not pays for no-op calls only. Without ``opentelemetry-api`` nothing is imported and
:func:`telemetry` returns ``None``, which every caller checks first: the request path then does
no telemetry work at all.

What is recorded (names and attributes are part of the SDK's contract):

- a span per public call (``instax.create_session``, ``instax.blockchain_status``,
  ``instax.session_status``, ``instax.poll``), status ERROR with the exception on failure;
- a CLIENT span per HTTP attempt, child of the call's span, named by the method, with the stable
  HTTP semantic-convention attributes, and the W3C ``traceparent`` header injected;
- a SERVER span per webhook delivery (``instax.webhook.receive``);
- the metrics ``instax.client.requests``, ``instax.client.request.duration``,
  ``instax.poller.watches`` and ``instax.webhooks.received``.

**No body text in telemetry.** An error's message may quote what the server answered (an
:class:`~instax_async.APIStatusError` shows the first 200 bytes of the body, and a server that
echoes the request would put a customer's e-mail there), so it is never recorded: a span's
``exception`` event carries the error's type, and for an API error its status and request id
(:func:`error_event`); the span's status has no description. OpenTelemetry's own recording of
exceptions (``record_exception``, and ``start_as_current_span``'s on an escaping exception) is
never used, since it stores ``str(error)`` and the traceback text with every chained message.
"""

from __future__ import annotations

import contextlib
import functools
import os
import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._version import __version__
from .errors import APIStatusError

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["Telemetry", "error_event", "telemetry"]

_SCOPE = "instax_async"


class Telemetry:
    """The tracer, the meter and the SDK's instruments, resolved once."""

    def __init__(self) -> None:
        from opentelemetry import context, metrics, propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._trace = trace
        self._proxy_tracer = trace.ProxyTracer
        self._metrics = metrics
        self._propagate = propagate
        self._context = context
        self._kind_client = SpanKind.CLIENT
        self._kind_server = SpanKind.SERVER
        self._status_error = Status(StatusCode.ERROR)
        # The providers in place while none is configured: the API's own, which record
        # nothing (a proxy that forwards to a provider set later, or a no-op). Told apart from
        # an SDK's through public names only: the tracing proxy's and no-op's classes, and for
        # metrics the package that defines the provider's class (the API's, not an SDK's).
        # The environment variables that name a provider are read by the API on the first
        # get_*_provider() call: that is this one.
        tracer_provider = trace.get_tracer_provider()
        meter_provider = metrics.get_meter_provider()
        api_tracer = isinstance(
            tracer_provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        )
        api_meter = type(meter_provider).__module__.startswith("opentelemetry.metrics")
        self._unset_tracer_provider: Any = tracer_provider if api_tracer else None
        self._unset_meter_provider = meter_provider if api_meter else None
        propagators = os.environ.get("OTEL_PROPAGATORS", "tracecontext,baggage")
        # Whether idle() can ever be True: no provider configured yet, and the propagators are
        # the default ones (``tracecontext`` and ``baggage``, which inject nothing from an
        # empty context).
        self._idle_possible = (
            api_tracer and api_meter and propagators.replace(" ", "") == "tracecontext,baggage"
        )
        self._default_textmap = propagate.get_global_textmap()
        self.tracer = trace.get_tracer(_SCOPE, __version__)
        meter = metrics.get_meter(_SCOPE, __version__)
        self.requests = meter.create_counter(
            "instax.client.requests", unit="{request}", description="HTTP attempts made"
        )
        self.duration = meter.create_histogram(
            "instax.client.request.duration",
            unit="s",
            description="Duration of HTTP attempts",
        )
        self.watches = meter.create_up_down_counter(
            "instax.poller.watches",
            unit="{watch}",
            description="Transactions a BlockchainPoller is watching",
        )
        self.webhooks = meter.create_counter(
            "instax.webhooks.received",
            unit="{delivery}",
            description="Webhook deliveries answered, by outcome code",
        )

    def idle(self) -> bool:
        """Whether a request made now would record nothing and propagate nothing.

        True while no tracer or meter provider is configured (the API's own no-op ones are in
        place), the propagators are the default ones, and the current context is empty (no
        span, no baggage, nothing another library put there): spans would be non-recording,
        metrics no-ops, and ``inject`` would add no header. A provider set later, anything in
        the current context, or another global propagator makes it False again.
        """
        return (
            self._idle_possible
            # an empty context holds no span and no baggage: nothing to inject
            and not self._context.get_current()
            and self._propagate.get_global_textmap() is self._default_textmap
            # no tracer provider yet: the API's proxy still hands out proxy tracers (asked of
            # the proxy: 4,700 instructions, against 9,400 for get_tracer_provider(), which
            # looks the environment up each time; valgrind)
            and isinstance(self._unset_tracer_provider.get_tracer(_SCOPE), self._proxy_tracer)
            # the API's only public word on a meter provider (9,400 instructions): 2.5 % of a
            # request with the API installed and nothing configured, where reading the API's
            # private globals cost nothing
            and self._metrics.get_meter_provider() is self._unset_meter_provider
        )

    # -- spans -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def call(self, name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
        """A span around one public call, current while the call runs; an exception that
        escapes it is recorded by :meth:`end_with_error`."""
        with self._current_span(name, attributes=_clean(attributes)) as span:
            yield span

    def start_call(self, name: str, attributes: Mapping[str, Any]) -> Span:
        """A call span that the caller ends (for polls, which outlive one ``with`` block)."""
        return self.tracer.start_span(name, attributes=_clean(attributes))

    def use(self, span: Span) -> contextlib.AbstractContextManager[Span]:
        """Make ``span`` current without ending it, recording nothing of an exception that
        passes (a poll's failed attempt is its CLIENT span's to record; the poll's own end is
        recorded by :meth:`end_with_error`)."""
        return self._trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def end_with_error(self, span: Span, error: BaseException) -> None:
        """Record ``error`` on ``span`` (:func:`error_event`) and mark it failed (the caller
        ends it). An API error's status and request id become span attributes too."""
        self.record_error(span, error)
        if isinstance(error, APIStatusError):
            span.set_attribute("http.response.status_code", error.status)
            if error.request_id:
                span.set_attribute("instax.request.id", error.request_id)
        self.fail(span, type(error).__qualname__)

    def record_error(self, span: Span, error: BaseException) -> None:
        """Add ``error``'s ``exception`` event to ``span``: never its message."""
        span.add_event("exception", error_event(error))

    def fail(self, span: Span, error_type: str) -> None:
        """Mark ``span`` failed, with the ``error.type`` attribute."""
        span.set_status(self._status_error)
        span.set_attribute("error.type", error_type)

    def start_attempt(self, method: str, url: str, resend_count: int) -> Span:
        """The CLIENT span of one HTTP attempt, child of the current span."""
        parts = urlsplit(url)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.full": url,
            "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        }
        if resend_count:
            attributes["http.request.resend_count"] = resend_count
        return self.tracer.start_span(method, kind=self._kind_client, attributes=attributes)

    def end_attempt(
        self,
        span: Span,
        method: str,
        seconds: float,
        status: int | None,
        error_type: str | None,
        outcome: object,
        request_id: str | None = None,
    ) -> None:
        """Finish an attempt: its span's status and attributes, and the client metrics."""
        attributes: dict[str, Any] = {"http.request.method": method}
        if status is not None:
            attributes["http.response.status_code"] = status
            span.set_attribute("http.response.status_code", status)
        if request_id is not None:
            span.set_attribute("instax.request.id", request_id)
        if error_type is not None:
            attributes["error.type"] = error_type
            if isinstance(outcome, BaseException):
                self.record_error(span, outcome)
            self.fail(span, error_type)
        span.end()
        self.requests.add(1, attributes)
        self.duration.record(seconds, attributes)

    def inject(self, span: Span, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` plus the W3C trace context of ``span`` (``traceparent``)."""
        carrier = dict(headers)
        self._propagate.inject(carrier, context=self._trace.set_span_in_context(span))
        return carrier

    @contextlib.contextmanager
    def server_span(self, name: str) -> Iterator[Span]:
        """A SERVER span, current while the delivery is handled; an exception that escapes
        it is recorded by :meth:`end_with_error`."""
        with self._current_span(name, kind=self._kind_server) as span:
            yield span

    @contextlib.contextmanager
    def _current_span(self, name: str, **options: Any) -> Iterator[Span]:
        """A current span whose escaping exception :meth:`end_with_error` records: never
        OpenTelemetry's own recording, which keeps the message."""
        with self.tracer.start_as_current_span(
            name, record_exception=False, set_status_on_exception=False, **options
        ) as span:
            try:
                yield span
            except Exception as exc:
                self.end_with_error(span, exc)
                raise


def error_event(error: BaseException) -> dict[str, str]:
    """The attributes of the ``exception`` event the SDK records for ``error``.

    ``exception.type`` (the qualified class name) and ``exception.stacktrace`` (the frames the
    error passed through: file, line and code, without any exception's message); for an
    :class:`~instax_async.APIStatusError`, ``exception.message`` is ``"HTTP <status>"`` and its
    request id. No message text is taken from the error: it may quote a response body.
    """
    cls = type(error)
    module = cls.__module__
    attributes = {
        "exception.type": cls.__qualname__
        if module == "builtins"
        else f"{module}.{cls.__qualname__}",
        "exception.stacktrace": "".join(traceback.format_tb(error.__traceback__)),
    }
    if isinstance(error, APIStatusError):
        message = f"HTTP {error.status}"
        if error.request_id:
            message += f"; request id {error.request_id}"
        attributes["exception.message"] = message
    return attributes


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if value is not None}


@functools.cache
def telemetry() -> Telemetry | None:
    """The SDK's instruments, or ``None`` when ``opentelemetry-api`` is not installed."""
    try:
        return Telemetry()
    except ImportError:
        return None
