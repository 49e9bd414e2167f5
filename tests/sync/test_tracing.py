"""OpenTelemetry through ``Client``: the calling thread's current span parents the SDK's spans,
although the requests run on the client's own thread."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from instax_async import Client

# the process's OpenTelemetry providers and in-memory exporter (a provider is set once)
from tests.client.test_tracing import otel
from tests.sync.conftest import REQUEST, ThreadServer

__all__ = ["otel"]


def test_the_callers_span_parents_the_clients_spans(
    otel: tuple[InMemorySpanExporter, InMemoryMetricReader], server: ThreadServer
) -> None:
    spans, _ = otel
    tracer = trace.get_tracer("tests")
    with Client(base_url=server.url) as client:
        with tracer.start_as_current_span("checkout view") as view:
            client.create_session(REQUEST)
            assert [s.hash for s in client.poll_blockchain_status("wd_1", interval=0.01)]
        client.create_session(REQUEST)  # no span current here: a trace of its own
    finished = spans.get_finished_spans()
    view_id = view.get_span_context().span_id
    calls = [s for s in finished if s.name == "instax.create_session"]
    polls = [s for s in finished if s.name == "instax.poll"]
    assert len(calls) == 2 and len(polls) == 1
    assert calls[0].parent is not None and calls[0].parent.span_id == view_id
    assert polls[0].parent is not None and polls[0].parent.span_id == view_id
    assert calls[1].parent is None
    # each HTTP attempt is a CLIENT span under its call, and carries the trace to the server
    attempts = [s for s in finished if s.kind == trace.SpanKind.CLIENT]
    assert {s.context.trace_id for s in attempts} >= {calls[0].context.trace_id}
