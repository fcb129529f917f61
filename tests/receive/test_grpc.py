"""The OTLP/gRPC receiver, against the real exporter and raw channel calls."""

from __future__ import annotations

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.trace.export import SpanExportResult

from accessproof.conventions import Attr
from accessproof.engine.intake import Overloaded

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def call_export(port: int, body: bytes, metadata=()) -> bytes:
    """Call Export with raw request bytes and return the raw response bytes."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(EXPORT)
        return export(body, metadata=metadata, timeout=10)


def refusal(port: int, body: bytes, metadata=()) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call_export(port, body, metadata)
    return caught.value


def request_with_step_missing() -> bytes:
    """One span that names an event but no step: a span the engine rejects."""
    event = KeyValue(key=Attr.EVENT_ID, value=AnyValue(string_value="evt_1Grpc"))
    span = Span(trace_id=bytes(range(16)), span_id=bytes(range(8)), attributes=[event])
    spans = ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])
    return ExportTraceServiceRequest(resource_spans=[spans]).SerializeToString()


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, None])
def test_real_exporter_delivers_run_spans_intact(
    serve_grpc, sink, run_spans, check_run_received, compression
):
    """Spans from the SDK gRPC exporter reach the sink with ids and resource intact."""
    port = serve_grpc(sink)
    exporter = OTLPSpanExporter(
        endpoint=f"127.0.0.1:{port}", insecure=True, compression=compression
    )

    result = exporter.export(run_spans)
    exporter.shutdown()

    assert result is SpanExportResult.SUCCESS
    check_run_received(sink, run_spans, "grpc")


def test_real_exporter_with_the_right_token_is_accepted(serve_grpc, sink, run_spans):
    """A configured bearer token sent as metadata lets the call through."""
    port = serve_grpc(sink, token="s3cret-token")
    exporter = OTLPSpanExporter(
        endpoint=f"127.0.0.1:{port}",
        insecure=True,
        headers={"authorization": "Bearer s3cret-token"},
    )

    result = exporter.export(run_spans)
    exporter.shutdown()

    assert result is SpanExportResult.SUCCESS
    assert len(sink.evidence) == 3


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),)])
def test_missing_or_wrong_token_is_unauthenticated(serve_grpc, sink, metadata):
    """Without the configured token the call is refused and nothing is stored."""
    port = serve_grpc(sink, token="s3cret")

    error = refusal(port, b"", metadata)

    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert sink.batches == []


def test_garbage_bytes_are_invalid_argument_with_a_reason(serve_grpc, sink):
    """Bytes that are not a protobuf message get INVALID_ARGUMENT, not INTERNAL."""
    port = serve_grpc(sink)

    error = refusal(port, b"\x0a\xff\xff")

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "request is not a valid OTLP protobuf message"
    assert sink.batches == []


def test_overload_is_unavailable_with_retry_info(serve_grpc, sink):
    """Push-back carries RetryInfo both where Python and where Go exporters read it."""
    sink.failure = Overloaded(2.5, "queue full")
    port = serve_grpc(sink)

    error = refusal(port, b"")
    trailers = dict(error.trailing_metadata())

    assert error.code() is grpc.StatusCode.UNAVAILABLE
    retry_info = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert retry_info.retry_delay.seconds == 3
    status = Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    detail = RetryInfo()
    assert status.details[0].Unpack(detail)
    assert detail == retry_info


def test_rejected_span_is_a_partial_success(serve_grpc, sink):
    """A run span without a step is counted in partial_success, not refused."""
    port = serve_grpc(sink)

    response = ExportTraceServiceResponse.FromString(
        call_export(port, request_with_step_missing())
    )

    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message == (
        "rejected 1 spans: 1 with accessproof.step is missing or not a known step"
    )


def test_empty_request_succeeds_without_partial_success(serve_grpc, sink):
    """An export with no spans is a plain success."""
    port = serve_grpc(sink)

    response = ExportTraceServiceResponse.FromString(call_export(port, b""))

    assert not response.HasField("partial_success")
    assert [transport for _, transport in sink.batches] == ["grpc"]


def test_message_over_the_limit_is_resource_exhausted(serve_grpc, sink):
    """grpc refuses a message larger than max_message_bytes before it is decoded."""
    port = serve_grpc(sink, max_message_bytes=1024)

    error = refusal(port, request_with_step_missing() * 64)

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sink.batches == []


def test_next_call_after_a_bad_one_succeeds(serve_grpc, sink):
    """A refused call leaves the server able to take the next one."""
    port = serve_grpc(sink)

    refusal(port, b"\x0a\xff\xff")
    call_export(port, request_with_step_missing())

    assert len(sink.batches) == 1
