"""The OTLP/HTTP receiver, against the real exporter and raw HTTP requests."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import threading
import tracemalloc

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.trace.export import SpanExportResult

from accessproof.conventions import Attr, Step
from accessproof.engine.intake import Overloaded
from accessproof.receive import parse_trace_request

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
PARENT_HEX = "eee19b7ec3c1b173"


def post(
    port: int,
    body: bytes,
    content_type: str = PROTOBUF,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, http.client.HTTPResponse, bytes]:
    """Send one request to /v1/traces and return status, response and body."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        method,
        "/v1/traces",
        body=body,
        headers={"Content-Type": content_type, **(headers or {})},
    )
    response = conn.getresponse()
    data = response.read()
    if connection is None:
        conn.close()
    return response.status, response, data


def status_message(body: bytes, content_type: str = PROTOBUF) -> str:
    """The message of a google.rpc.Status body in either encoding."""
    if content_type == JSON:
        return str(json.loads(body)["message"])
    return str(Status.FromString(body).message)


def json_span(**fields: object) -> bytes:
    """An OTLP/JSON export holding one span of a run with the given fields."""
    span = {
        "traceId": TRACE_HEX,
        "spanId": SPAN_HEX,
        "parentSpanId": PARENT_HEX,
        "name": "entitlement",
        "kind": 1,
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": 1767225600000500000,
        "attributes": [
            {"key": Attr.EVENT_ID, "value": {"stringValue": "evt_1Json"}},
            {"key": Attr.STEP, "value": {"stringValue": Step.ENTITLEMENT.value}},
        ],
        "status": {"code": 1},
        **fields,
    }
    scope = {"scope": {"name": "json-client"}, "spans": [span], "futureField": True}
    return json.dumps({"resourceSpans": [{"scopeSpans": [scope]}]}).encode()


def json_as_protobuf() -> bytes:
    """The request of :func:`json_span` in protobuf."""
    return parse_trace_request(json_span()).SerializeToString()


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.NoCompression])
def test_real_exporter_delivers_run_spans_intact(
    serve_http, sink, run_spans, check_run_received, compression
):
    """Spans from the SDK HTTP exporter reach the sink with ids and resource intact."""
    port = serve_http(sink)
    exporter = OTLPSpanExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/traces", compression=compression
    )

    result = exporter.export(run_spans)
    exporter.shutdown()

    assert result is SpanExportResult.SUCCESS
    check_run_received(sink, run_spans, "http")


def test_real_exporter_with_the_right_token_is_accepted(serve_http, sink, run_spans):
    """A configured bearer token sent by the exporter lets the request through."""
    port = serve_http(sink, token="s3cret-token")
    exporter = OTLPSpanExporter(
        endpoint=f"http://127.0.0.1:{port}/v1/traces",
        headers={"Authorization": "Bearer s3cret-token"},
    )

    result = exporter.export(run_spans)
    exporter.shutdown()

    assert result is SpanExportResult.SUCCESS
    assert len(sink.evidence) == 3


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0"}],
)
def test_missing_or_wrong_token_is_401(serve_http, sink, headers):
    """Without the configured bearer token the request is refused and not stored."""
    port = serve_http(sink, token="s3cret")

    status, response, body = post(port, b"", headers=headers)

    assert status == 401
    assert response.getheader("WWW-Authenticate") == "Bearer"
    assert status_message(body) == "missing or invalid bearer token"
    assert sink.batches == []


def test_json_hex_ids_decode_to_their_bytes(serve_http, sink):
    """Hex trace and span ids in OTLP/JSON arrive as the same ids, not base64 bytes."""
    port = serve_http(sink)

    status, response, body = post(port, json_span(), JSON)

    assert (status, response.getheader("Content-Type")) == (200, JSON)
    assert json.loads(body) == {}
    [evidence] = sink.evidence
    assert (evidence.trace_id, evidence.span_id) == (TRACE_HEX, SPAN_HEX)
    assert evidence.start_ns == 1767225600000000000


def test_rejected_json_span_is_a_partial_success(serve_http, sink):
    """A run span without a step is counted in partialSuccess, in JSON."""
    attributes = [{"key": Attr.EVENT_ID, "value": {"stringValue": "evt_1Json"}}]
    port = serve_http(sink)

    status, _, body = post(port, json_span(attributes=attributes), JSON)

    assert status == 200
    partial = json.loads(body)["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert (
        partial["errorMessage"]
        == "rejected 1 spans: 1 with accessproof.step is missing or not a known step"
    )


def test_full_success_leaves_partial_success_unset(serve_http, sink, run_spans):
    """A request with nothing rejected gets an empty protobuf response."""
    port = serve_http(sink)

    status, response, body = post(port, b"")

    assert (status, response.getheader("Content-Type")) == (200, PROTOBUF)
    assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")


def test_large_body_is_decoded_and_delivered(serve_http, sink):
    """A body of several MiB, decoded off the event loop, still reaches the sink."""
    filler = KeyValue(key="http.request.body", value=AnyValue(string_value="x" * 4**11))
    request = ExportTraceServiceRequest.FromString(json_as_protobuf())
    request.resource_spans[0].scope_spans[0].spans[0].attributes.append(filler)
    port = serve_http(sink)

    status, _, _ = post(port, request.SerializeToString())

    assert status == 200
    assert [evidence.span_id for evidence in sink.evidence] == [SPAN_HEX]


def test_malformed_protobuf_is_400(serve_http, sink):
    """Bytes that are not a protobuf message are refused with a Status saying so."""
    port = serve_http(sink)

    status, response, body = post(port, b"\x0a\xff\xff")

    assert (status, response.getheader("Content-Type")) == (400, PROTOBUF)
    assert status_message(body) == "body is not valid OTLP protobuf"
    assert sink.batches == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"resourceSpans": [', "invalid JSON at line 1 column 20: Expecting value"),
        (b"[]", "the top level must be a JSON object"),
        (
            json_span(traceId="abc"),
            "resourceSpans[0].scopeSpans[0].spans[0].traceId must be 32 hex characters",
        ),
    ],
)
def test_malformed_json_is_400_with_the_reason(serve_http, sink, body, message):
    """Undecodable OTLP/JSON is refused with a JSON Status naming what is wrong."""
    port = serve_http(sink)

    status, response, data = post(port, body, JSON)

    assert (status, response.getheader("Content-Type")) == (400, JSON)
    assert status_message(data, JSON) == message


def test_other_content_type_is_415_listing_the_supported_ones(serve_http, sink):
    """A body in another type is refused with the types that are understood."""
    port = serve_http(sink)

    status, _, body = post(port, b"hello", "text/plain")

    assert status == 415
    expected = f"unsupported content type: use {PROTOBUF} or {JSON}"
    assert status_message(body, JSON) == expected


def test_other_content_encoding_is_415(serve_http, sink):
    """A body in a content coding other than gzip or identity is refused."""
    port = serve_http(sink)

    status, _, body = post(port, b"", headers={"Content-Encoding": "br"})

    assert status == 415
    assert "gzip" in status_message(body)


def test_other_methods_are_405(serve_http, sink):
    """Only POST is served on /v1/traces."""
    port = serve_http(sink)

    status, response, _ = post(port, b"", method="GET")

    assert (status, response.getheader("Allow")) == (405, "POST")


def test_gzip_bomb_is_413_without_inflating_it(serve_http, sink):
    """A small gzip body that inflates past the limit is refused mid-stream."""
    limit = 1024 * 1024
    bomb = gzip.compress(bytes(32 * limit), compresslevel=1)
    port = serve_http(sink, max_body_bytes=limit)

    tracemalloc.start()
    try:
        status, _, body = post(port, bomb, headers={"Content-Encoding": "gzip"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert status == 413
    assert (
        status_message(body)
        == f"request body exceeds {limit} bytes after decompression"
    )
    assert peak < 8 * limit
    assert sink.batches == []


@pytest.mark.parametrize("chunked", [False, True])
def test_raw_body_over_the_limit_is_413(serve_http, sink, chunked):
    """A plain body over the limit is refused, with or without Content-Length."""
    limit = 64 * 1024
    port = serve_http(sink, max_body_bytes=limit)
    body = bytes(limit + 1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    if chunked:
        conn.request(
            "POST",
            "/v1/traces",
            body=iter([body]),
            encode_chunked=True,
            headers={"Content-Type": PROTOBUF},
        )
    else:
        conn.request(
            "POST", "/v1/traces", body=body, headers={"Content-Type": PROTOBUF}
        )
    status = conn.getresponse().status
    conn.close()

    assert status == 413


def test_truncated_gzip_is_400(serve_http, sink):
    """A gzip body cut short is refused as undecodable."""
    port = serve_http(sink)
    truncated = gzip.compress(b"\x0a\x00" * 1000)[:20]

    status, _, body = post(port, truncated, headers={"Content-Encoding": "gzip"})

    assert status == 400
    assert status_message(body) == "body is not valid for its Content-Encoding"


def test_overload_is_429_with_retry_after_in_whole_seconds(serve_http, sink):
    """When the sink pushes back, the client is told to retry after a pause."""
    sink.failure = Overloaded(2.2, "queue full")
    port = serve_http(sink)

    status, response, body = post(port, b"")

    assert (status, response.getheader("Retry-After")) == (429, "3")
    assert status_message(body) == "the engine is busy: retry later"


def test_sink_failure_is_503_and_hides_the_detail(serve_http, sink):
    """An unexpected sink error is retryable and its text stays in the server."""
    sink.failure = RuntimeError("database password=hunter2 rejected")
    port = serve_http(sink)

    status, response, body = post(port, b"")

    assert (status, response.getheader("Retry-After")) == (503, "1")
    assert "hunter2" not in body.decode(errors="replace")


def test_next_request_after_a_bad_one_succeeds_on_the_same_connection(serve_http, sink):
    """A refused request leaves the connection and the receiver usable."""
    port = serve_http(sink)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    bad, _, _ = post(port, b"\x0a\xff\xff", connection=conn)
    good, _, _ = post(port, json_span(), JSON, connection=conn)
    conn.close()

    assert (bad, good) == (400, 200)
    assert len(sink.evidence) == 1


def test_concurrent_requests_are_each_delivered(serve_http, sink):
    """Requests from several clients at once are all stored."""
    port = serve_http(sink)
    statuses: list[int] = []

    def send() -> None:
        statuses.append(post(port, json_span(), JSON)[0])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert statuses == [200] * 8
    assert len(sink.evidence) == 8


def test_one_debug_line_per_good_request_with_counts_only(serve_http, sink, caplog):
    """A delivered request logs a single DEBUG line that holds no attribute value."""
    caplog.set_level(logging.DEBUG, logger="accessproof.receive")
    port = serve_http(sink)

    post(port, json_span(), JSON)

    records = [r for r in caplog.records if r.name.startswith("accessproof.receive")]
    assert [record.levelno for record in records] == [logging.DEBUG]
    assert "evt_1Json" not in records[0].getMessage()


def test_refusals_log_the_detail_the_client_does_not_see(serve_http, sink, caplog):
    """The log names the sink's failure; the response and log omit attribute values."""
    caplog.set_level(logging.INFO, logger="accessproof.receive")
    sink.failure = ConnectionError("store at 10.0.0.5 unreachable")
    port = serve_http(sink)

    _, _, body = post(port, json_span(), JSON)

    [record] = [r for r in caplog.records if r.name.startswith("accessproof.receive")]
    assert record.levelno == logging.WARNING
    assert "ConnectionError" in record.getMessage()
    assert "ConnectionError" not in body.decode()
    assert "evt_1Json" not in record.getMessage()
