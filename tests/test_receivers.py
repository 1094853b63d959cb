"""The stand-ins of receivers.py, checked against what a real client sends them."""

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from helpers.receivers import OtlpCollector


def test_the_otlp_collector_keeps_a_real_exporters_spans_with_their_ids_and_parent_link() -> None:
    collector = OtlpCollector()
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "checked"}))
        exporter = OTLPSpanExporter(
            endpoint=f"{collector.endpoint}/v1/traces", compression=Compression.Gzip
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        with (
            tracer.start_as_current_span("parent") as parent,
            tracer.start_as_current_span("child", attributes={"answer": 42}),
        ):
            pass
        provider.shutdown()
        spans = collector.wait_for_spans(lambda received: len(received) == 2)
    finally:
        collector.close()
    by_name = {span.name: span for span in spans}
    assert sorted(by_name) == ["child", "parent"], spans
    trace_id = format(parent.get_span_context().trace_id, "032x")
    assert by_name["parent"].trace_id == by_name["child"].trace_id == trace_id
    assert by_name["parent"].parent_span_id == ""
    assert by_name["child"].parent_span_id == by_name["parent"].span_id
    assert by_name["child"].attributes == {"answer": 42}
    assert by_name["child"].service == "checked"
