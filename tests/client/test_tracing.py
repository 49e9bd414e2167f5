"""OpenTelemetry: the spans and metrics the SDK emits through the global providers.

The OpenTelemetry SDK's in-memory exporter and metric reader are installed as the process's
global providers once (a provider can be set only once per process); each test clears them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from instax_async import AsyncSession, NotFoundError, RetryPolicy, SessionRequest
from tests.conftest import StartServer

REQUEST = SessionRequest.sending(from_amount="50", from_currency="USD", to_currency="USDT")
FAST = RetryPolicy(max_retries=2, backoff_base=0.0, backoff_max=0.0)
API_KEY = "sk_live_tracing_secret"

_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader()


@pytest.fixture
def otel() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    _EXPORTER.clear()
    _READER.get_metrics_data()  # reset nothing, but collect what earlier tests left
    yield _EXPORTER, _READER
    _EXPORTER.clear()


def api(seen: list[dict[str, str]], statuses: list[int] | None = None) -> web.Application:
    answers = iter(statuses or [])

    async def create(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        status = next(answers, 201)
        if status != 201:
            return web.json_response({"message": "busy"}, status=status)
        return web.json_response({"id": "ps_traced"}, status=201)

    async def blockchain(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        polls = len(seen)
        body: dict[str, Any] = {"txId": request.query["txId"], "status": "pending"}
        if polls >= 2:
            body.update(status="confirmed", hash="0xfeed")
        return web.json_response(body)

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"message": "unknown session"}, status=404)

    app = web.Application()
    app.router.add_post("/api/session", create)
    app.router.add_get("/utils/blockchain-status", blockchain)
    app.router.add_get("/api/session/{id}/status", status)
    return app


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_a_retried_create_session_is_one_call_span_with_two_client_spans(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader], start_server: StartServer
) -> None:
    exporter, reader = otel
    seen: list[dict[str, str]] = []
    url = await start_server(api(seen, [503]))
    async with AsyncSession(base_url=url, api_key=API_KEY, retry=FAST) as client:
        session = await client.create_session(REQUEST)
    spans = exporter.get_finished_spans()
    [call] = by_name(spans, "instax.create_session")
    attempts = by_name(spans, "POST")
    assert len(attempts) == 2
    assert call.attributes is not None
    assert call.attributes["instax.amount_direction"] == "sending"
    assert call.attributes["instax.session.id"] == session.id
    assert call.status.status_code is StatusCode.UNSET
    first, second = sorted(attempts, key=lambda span: span.start_time or 0)
    for attempt in attempts:
        assert attempt.kind is SpanKind.CLIENT
        assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
        assert attempt.attributes is not None
        assert attempt.attributes["http.request.method"] == "POST"
        assert attempt.attributes["url.full"] == f"{url}/api/session"
        assert attempt.attributes["server.address"] == "127.0.0.1"
        assert attempt.attributes["server.port"] == int(url.rsplit(":", 1)[1])
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["error.type"] == "503"
    assert first.status.status_code is StatusCode.ERROR
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.response.status_code"] == 201
    assert second.attributes["http.request.resend_count"] == 1
    # the W3C trace context reached the server, naming each attempt's span
    for headers, attempt in zip(seen, (first, second), strict=True):
        trace_id, span_id = headers["traceparent"].split("-")[1:3]
        assert int(trace_id, 16) == attempt.context.trace_id
        assert int(span_id, 16) == attempt.context.span_id
    # no secret in any span
    for span in spans:
        assert API_KEY not in repr(span.attributes) and API_KEY not in span.to_json()
    # the metrics
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            if scope.scope.name == "instax_async":
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
    statuses = {
        p.attributes.get("http.response.status_code"): p.value
        for p in points["instax.client.requests"]
    }
    assert statuses[503] >= 1 and statuses[201] >= 1
    assert sum(p.count for p in points["instax.client.request.duration"]) >= 2


async def test_a_404_marks_the_call_span_as_an_error(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader], start_server: StartServer
) -> None:
    exporter, _ = otel
    url = await start_server(api([]))
    async with AsyncSession(base_url=url, api_key=API_KEY) as client:
        with pytest.raises(NotFoundError):
            await client.session_status("ps_missing")
    spans = exporter.get_finished_spans()
    [call] = by_name(spans, "instax.session_status")
    [attempt] = by_name(spans, "GET")
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes is not None and call.attributes["instax.session.id"] == "ps_missing"
    assert any(event.name == "exception" for event in call.events)
    assert attempt.attributes is not None and attempt.attributes["error.type"] == "404"
    assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id


async def test_a_poll_is_one_span_over_its_attempts(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader], start_server: StartServer
) -> None:
    exporter, _ = otel
    url = await start_server(api([]))
    async with AsyncSession(base_url=url) as client:
        status = await client.wait_for_blockchain_hash("wd_1", interval=0.01)
        single = await client.blockchain_status("wd_1")
    assert status.hash == single.hash == "0xfeed"
    spans = exporter.get_finished_spans()
    [poll] = by_name(spans, "instax.poll")
    [call] = by_name(spans, "instax.blockchain_status")
    assert poll.attributes is not None
    assert poll.attributes["instax.tx.id"] == "wd_1" and poll.attributes["instax.poll.count"] == 2
    polled = [
        s for s in by_name(spans, "GET") if s.parent and s.parent.span_id == poll.context.span_id
    ]
    assert len(polled) == 2
    assert call.attributes is not None and call.attributes["instax.tx.id"] == "wd_1"


async def test_a_poll_that_times_out_is_an_error_span(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    exporter, _ = otel
    async with AsyncSession(base_url="http://127.0.0.1:9", retry=FAST) as client:
        with pytest.raises(Exception) as info:
            await client.wait_for_blockchain_hash("wd_1", interval=0.01, timeout=0.2)
    [poll] = by_name(exporter.get_finished_spans(), "instax.poll")
    assert poll.status.status_code is StatusCode.ERROR
    assert type(info.value).__name__ == "PollTimeoutError"


async def test_a_hooks_header_change_reaches_its_own_attempt_only_when_traced(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader], start_server: StartServer
) -> None:
    from tests.client.test_observability import HEADERS_PER_CALL, headers_seen_per_call

    exporter, _ = otel
    assert await headers_seen_per_call(start_server, traced=True) == HEADERS_PER_CALL
    assert len(by_name(exporter.get_finished_spans(), "GET")) == len(HEADERS_PER_CALL)


EMAIL = "ada.lovelace@example.com"


def echo_api() -> web.Application:
    """A server that echoes the request in its errors, as some do: the e-mail comes back."""

    async def create(request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        headers = {"x-request-id": "req_echo"}
        return web.json_response({"message": f"bad request: {body}"}, status=400, headers=headers)

    async def blockchain(request: web.Request) -> web.Response:
        return web.json_response({"message": f"busy, {EMAIL}"}, status=503)

    app = web.Application()
    app.router.add_post("/api/session", create)
    app.router.add_get("/utils/blockchain-status", blockchain)
    return app


class GarbledHeader(asyncio.Protocol):
    """Answers every request with a header line aiohttp and h11 refuse, quoting an e-mail."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        answer = f"HTTP/1.1 200 OK\r\nX-Echo {EMAIL}\r\nContent-Length: 2\r\n\r\n{{}}"
        self.transport.write(answer.encode())  # type: ignore[attr-defined]


def exported_text(exporter: InMemorySpanExporter, reader: InMemoryMetricReader) -> str:
    spans = "".join(span.to_json() for span in exporter.get_finished_spans())
    metrics = reader.get_metrics_data()
    return spans + (metrics.to_json() if metrics is not None else "")


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_no_body_text_in_spans_or_metrics(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
    start_server: StartServer,
    transport: str,
) -> None:
    from instax_async import (
        AiohttpTransport,
        APIConnectionError,
        BadRequestError,
        PollTimeoutError,
    )
    from instax_async.transports.httpx import HttpxTransport

    exporter, reader = otel
    url = await start_server(echo_api())
    loop = asyncio.get_running_loop()
    garbled = await loop.create_server(GarbledHeader, "127.0.0.1", 0)
    garbled_url = f"http://127.0.0.1:{garbled.sockets[0].getsockname()[1]}"
    request = SessionRequest.sending(
        from_amount="50", from_currency="USD", to_currency="USDT", email=EMAIL
    )
    made = AiohttpTransport() if transport == "aiohttp" else HttpxTransport()
    try:
        async with AsyncSession(base_url=url, transport=made, retry=FAST) as client:
            with pytest.raises(BadRequestError) as status_error:
                await client.create_session(request)
            attempt_errors: list[str] = []
            with pytest.raises(PollTimeoutError):
                await client.wait_for_blockchain_hash(
                    "wd_1",
                    interval=0.01,
                    timeout=0.3,
                    on_attempt=lambda a: attempt_errors.append(str(a.error)),
                )
        async with AsyncSession(base_url=garbled_url, transport=made, max_retries=0) as client:
            with pytest.raises(APIConnectionError) as connection_error:
                await client.blockchain_status("wd_1")
    finally:
        garbled.close()
        await made.aclose()
    # the developer who catches the errors still reads what the server said
    assert EMAIL in str(status_error.value)
    # any attempt's: on a busy machine the last one may be cut short by the poll's deadline
    assert any(EMAIL in error for error in attempt_errors)
    assert EMAIL in str(connection_error.value)
    # telemetry: the error's type, status and request id, never the body or the server's text
    assert EMAIL not in exported_text(exporter, reader)
    spans = exporter.get_finished_spans()
    [call] = by_name(spans, "instax.create_session")
    [event] = [event for event in call.events if event.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "instax_async.errors.BadRequestError"
    assert event.attributes["exception.message"] == "HTTP 400; request id req_echo"
    assert ", in send\n" in str(event.attributes["exception.stacktrace"])  # the frames only
    assert call.attributes is not None and call.status.description is None
    assert call.attributes["error.type"] == "BadRequestError"
    assert call.attributes["http.response.status_code"] == 400
    assert call.attributes["instax.request.id"] == "req_echo"
    [attempt] = [span for span in by_name(spans, "POST") if span.parent == call.context]
    assert attempt.attributes is not None
    assert attempt.attributes["instax.request.id"] == "req_echo"
    [poll] = by_name(spans, "instax.poll")
    [event] = [event for event in poll.events if event.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "instax_async.errors.PollTimeoutError"
    assert "exception.message" not in event.attributes
    [garbled_call] = by_name(spans, "instax.blockchain_status")
    [attempt] = [span for span in by_name(spans, "GET") if span.parent == garbled_call.context]
    for span in (attempt, garbled_call):
        [event] = [event for event in span.events if event.name == "exception"]
        assert event.attributes is not None
        assert event.attributes["exception.type"] == "instax_async.errors.APIConnectionError"
        assert "exception.message" not in event.attributes


def test_an_exception_escaping_a_span_is_recorded_without_its_message(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    from instax_async._telemetry import telemetry

    exporter, _ = otel
    tel = telemetry()
    assert tel is not None
    for span_of in (tel.server_span, lambda name: tel.call(name, {})):
        with pytest.raises(RuntimeError), span_of("instax.escaping"):
            raise RuntimeError(f"handler failed for {EMAIL}")
    spans = by_name(exporter.get_finished_spans(), "instax.escaping")
    assert len(spans) == 2 and EMAIL not in "".join(span.to_json() for span in spans)
    for span in spans:
        [event] = span.events
        assert event.attributes is not None
        assert event.attributes["exception.type"] == "RuntimeError"
        assert span.status.status_code is StatusCode.ERROR and span.status.description is None


@pytest.mark.subprocess
def test_without_the_api_installed_nothing_is_imported() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"  # as if opentelemetry-api were not installed
        "import asyncio, json\n"
        "from instax_async import AsyncSession, MockTransport, Response, SessionRequest\n"
        "from instax_async._telemetry import telemetry\n"
        "def answer(request):\n"
        "    assert 'traceparent' not in request.headers\n"
        "    return Response(201, {}, json.dumps({'id': 'ps_1'}).encode())\n"
        "async def main():\n"
        "    async with AsyncSession(transport=MockTransport(answer)) as client:\n"
        "        await client.create_session(SessionRequest.sending(\n"
        "            from_amount='5', from_currency='USD', to_currency='USDT'))\n"
        "        async for _ in client.poll_blockchain_status('wd_1', timeout=0.01):\n"
        "            pass\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
        "print(telemetry(), [m for m in sys.modules if m.startswith('opentelemetry.')])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip().splitlines()[-1] == "None []"


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    points: list[Any] = []
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    points.extend(metric.data.data_points)
    return points


async def test_a_webhook_delivery_is_a_server_span_around_on_event(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader], start_server: StartServer
) -> None:
    from instax_async.integrations.aiohttp import webhook_handler
    from instax_async.testing import make_webhook

    exporter, reader = otel
    current: list[Any] = []

    def on_event(event: Any) -> None:
        current.append(trace.get_current_span().get_span_context().span_id)
        if event.reference == "order-boom":
            raise RuntimeError("handler failed")

    app = web.Application()
    app.router.add_post("/hook", webhook_handler("whsec_t", on_event))
    url = await start_server(app)
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for secret, reference in (
            ("whsec_t", "order-1"),
            ("wrong", "order-2"),
            ("whsec_t", "order-boom"),
        ):
            body, headers = make_webhook(secret, reference=reference)
            async with http.post(f"{url}/hook", data=body, headers=headers) as answer:
                await answer.read()
    spans = by_name(exporter.get_finished_spans(), "instax.webhook.receive")
    assert len(spans) == 3
    ok, refused, failed = sorted(spans, key=lambda span: span.start_time or 0)
    assert ok.kind is SpanKind.SERVER and ok.attributes is not None
    assert ok.attributes["instax.webhook.status"] == "completed"
    assert ok.attributes["instax.webhook.id"].startswith("whc_")
    assert ok.attributes["http.response.status_code"] == 200
    assert current[0] == ok.context.span_id  # on_event ran inside the span
    assert refused.attributes is not None and refused.attributes["http.response.status_code"] == 401
    assert "instax.webhook.id" not in refused.attributes
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "500"
    codes = {
        p.attributes["http.response.status_code"]: p.value
        for p in metric_points(reader, "instax.webhooks.received")
    }
    assert codes[200] >= 1 and codes[401] >= 1 and codes[500] >= 1


async def test_the_poller_counts_its_watches(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader], start_server: StartServer
) -> None:
    from instax_async import BlockchainPoller

    _, reader = otel

    def watching() -> int:
        return sum(p.value for p in metric_points(reader, "instax.poller.watches"))

    before = watching()
    url = await start_server(api([]))
    async with AsyncSession(base_url=url) as client:
        async with BlockchainPoller(client, interval=0.01) as poller:
            first = poller.watch("wd_1")
            poller.watch("wd_2")
            poller.watch("wd_1")  # already watched: one watch
            assert watching() == before + 2
            await first
        assert watching() == before  # finished, and the rest cancelled on close


@pytest.mark.subprocess
def test_with_the_api_and_no_sdk_context_and_baggage_still_propagate() -> None:
    """No SDK configured: requests skip the no-op spans, but a valid span context or baggage in
    the caller's context still travels, and an SDK set later records spans at once."""
    code = (
        "import asyncio, json\n"
        "from opentelemetry import baggage, context, trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
        "InMemorySpanExporter\n"
        "from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags\n"
        "from instax_async import AsyncSession, MockTransport, Response, SessionRequest\n"
        "seen = []\n"
        "def answer(request):\n"
        "    seen.append(dict(request.headers))\n"
        "    return Response(201, {}, json.dumps({'id': 'ps_1'}).encode())\n"
        "REQ = SessionRequest.sending(from_amount='5', from_currency='USD', to_currency='USDT')\n"
        "parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))\n"
        "async def main():\n"
        "    async with AsyncSession(transport=MockTransport(answer)) as client:\n"
        "        await client.create_session(REQ)\n"
        "        with trace.use_span(NonRecordingSpan(parent)):\n"
        "            await client.create_session(REQ)\n"
        "        token = context.attach(baggage.set_baggage('tenant', 't1'))\n"
        "        try:\n"
        "            await client.create_session(REQ)\n"
        "        finally:\n"
        "            context.detach(token)\n"
        "        exporter = InMemorySpanExporter()\n"
        "        provider = TracerProvider()\n"
        "        provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "        trace.set_tracer_provider(provider)\n"
        "        await client.create_session(REQ)\n"
        "        print(sorted(span.name for span in exporter.get_finished_spans()))\n"
        "asyncio.run(main())\n"
        "print(json.dumps([{k.lower(): v for k, v in h.items()} for h in seen]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    spans, headers = result.stdout.strip().splitlines()[-2:]
    plain, in_span, with_baggage, with_sdk = json.loads(headers)
    assert "traceparent" not in plain and "baggage" not in plain
    assert in_span["traceparent"].startswith("00-" + f"{0xABC:032x}-")
    assert with_baggage["baggage"] == "tenant=t1"
    assert "traceparent" in with_sdk
    assert spans == "['POST', 'instax.create_session']"
