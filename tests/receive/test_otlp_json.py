"""OTLP/JSON decoding: hex ids, lenient numbers, and errors that name the field."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import (
    ResourceSpans,
    ScopeSpans,
    Span,
    Status,
)

from accessproof.receive.otlp_json import OtlpJsonError, parse_trace_request

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN_ID = bytes.fromhex("b7ad6b7169203331")
PARENT_ID = bytes.fromhex("00f067aa0ba902b7")
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def attribute(key: str, **value: Any) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def full_request() -> ExportTraceServiceRequest:
    """A request with every field of the trace signal set."""
    values = ArrayValue(values=[AnyValue(string_value="a"), AnyValue(int_value=-7)])
    kvlist = KeyValueList(values=[attribute("inner", bool_value=True)])
    attributes = [
        attribute("s", string_value="text"),
        attribute("i", int_value=-(2**63)),
        attribute("b", bool_value=True),
        attribute("d", double_value=0.25),
        attribute("a", array_value=values),
        attribute("k", kvlist_value=kvlist),
        attribute("y", bytes_value=b"\x00\xff\xfe"),
        attribute("empty"),
    ]
    span = Span(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        trace_state="k=v",
        parent_span_id=PARENT_ID,
        flags=0x301,
        name="entitlement",
        kind=Span.SPAN_KIND_CONSUMER,
        start_time_unix_nano=2**64 - 2,
        end_time_unix_nano=1767225600000000001,
        attributes=attributes,
        dropped_attributes_count=3,
        events=[Span.Event(time_unix_nano=5, name="e", attributes=attributes[:2])],
        dropped_events_count=4,
        links=[
            Span.Link(trace_id=TRACE_ID, span_id=PARENT_ID, trace_state="x=y", flags=1)
        ],
        dropped_links_count=5,
        status=Status(message="boom", code=Status.STATUS_CODE_ERROR),
    )
    scope = InstrumentationScope(name="lib", version="1.0", attributes=attributes[:1])
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=attributes[:1], dropped_attributes_count=1
                ),
                scope_spans=[ScopeSpans(scope=scope, spans=[span], schema_url="s1")],
                schema_url="s2",
            )
        ]
    )


def as_otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """Render a request as OTLP/JSON: proto3 JSON with hex ids and integer enums."""
    document = MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                to_hex(span)
                for link in span.get("links", []):
                    to_hex(link)
    return document


def to_hex(message: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        if key in message:
            message[key] = base64.b64decode(message[key]).hex()


def spans_document(**span: Any) -> bytes:
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    return json.dumps(document).encode()


def test_every_field_round_trips_through_otlp_json():
    """A request rendered as OTLP/JSON decodes back to the identical message."""
    request = full_request()

    decoded = parse_trace_request(json.dumps(as_otlp_json(request)))

    assert decoded == request


def test_hex_ids_become_their_bytes():
    """Trace, span, parent and link ids are read as hex, not as base64."""
    link = {"traceId": TRACE_ID.hex(), "spanId": PARENT_ID.hex()}
    body = spans_document(
        traceId=TRACE_ID.hex(),
        spanId=SPAN_ID.hex(),
        parentSpanId=PARENT_ID.hex(),
        links=[link],
    )

    span = parse_trace_request(body).resource_spans[0].scope_spans[0].spans[0]

    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        TRACE_ID,
        SPAN_ID,
        PARENT_ID,
    )
    assert (span.links[0].trace_id, span.links[0].span_id) == (TRACE_ID, PARENT_ID)


def test_numbers_and_enums_are_read_in_every_allowed_form():
    """64-bit integers as strings or numbers and enums as integers or names decode."""
    body = spans_document(
        startTimeUnixNano="1767225600000000000",
        endTimeUnixNano=1767225600000000001,
        kind="SPAN_KIND_SERVER",
        status={"code": 2},
        attributes=[
            {"key": "n", "value": {"intValue": "-42"}},
            {"key": "f", "value": {"doubleValue": "NaN"}},
        ],
    )

    span = parse_trace_request(body).resource_spans[0].scope_spans[0].spans[0]

    assert span.start_time_unix_nano == 1767225600000000000
    assert span.end_time_unix_nano == 1767225600000000001
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert span.attributes[0].value.int_value == -42
    assert (
        span.attributes[1].value.double_value != span.attributes[1].value.double_value
    )


def test_unknown_fields_and_nulls_are_ignored():
    """Fields this version does not know are skipped and null means the default."""
    body = spans_document(name=None, traceState=None, newField={"x": 1}, links=None)

    span = parse_trace_request(body).resource_spans[0].scope_spans[0].spans[0]

    assert span == Span()


def test_empty_object_is_an_empty_request():
    """``{}`` holds no spans and is not an error."""
    assert parse_trace_request(b"{}") == ExportTraceServiceRequest()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "invalid JSON at line 1 column 1: Expecting value"),
        (b'{"a":\n tru}', "invalid JSON at line 2 column 2: Expecting value"),
        (b"\xff\xfe\xfd", "body is not UTF-8 text"),
        (b'"text"', "the top level must be a JSON object"),
        (b'{"resourceSpans": {}}', "resourceSpans must be a JSON array"),
        (b'{"resourceSpans": [1]}', "resourceSpans[0] must be a JSON object"),
        (
            spans_document(spanId="zz" * 8),
            "resourceSpans[0].scopeSpans[0].spans[0].spanId must be 16 hex characters",
        ),
        (
            spans_document(traceId="0af7 651916cd43dd8448eb211c80319c"[:32]),
            "resourceSpans[0].scopeSpans[0].spans[0].traceId must be 32 hex characters",
        ),
        (
            spans_document(links=[{}, {"traceId": 7}]),
            "resourceSpans[0].scopeSpans[0].spans[0].links[1].traceId"
            " must be 32 hex characters",
        ),
        (
            spans_document(flags=-1),
            "resourceSpans[0].scopeSpans[0].spans[0].flags"
            " must be between 0 and 4294967295",
        ),
        (
            spans_document(kind="SPAN_KIND_NOPE"),
            "resourceSpans[0].scopeSpans[0].spans[0].kind is not a known enum name",
        ),
        (
            spans_document(attributes=[{"key": "k", "value": {"boolValue": "yes"}}]),
            "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.boolValue"
            " must be true or false",
        ),
        (
            spans_document(
                attributes=[
                    {
                        "key": "k",
                        "value": {"arrayValue": {"values": [{"intValue": []}]}},
                    }
                ]
            ),
            "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.arrayValue"
            ".values[0].intValue must be an integer or a string of one",
        ),
    ],
)
def test_wrong_shapes_are_named_by_path(body, message):
    """Each malformed document is refused with the path of the field at fault."""
    with pytest.raises(OtlpJsonError) as caught:
        parse_trace_request(body)

    assert str(caught.value) == message


def test_errors_never_repeat_the_offending_value():
    """The error text names the field, not the value that may be sensitive."""
    secret = "sk_live_notForLogs4242"
    body = spans_document(attributes=[{"key": "k", "value": {"intValue": secret}}])

    with pytest.raises(OtlpJsonError) as caught:
        parse_trace_request(body)

    assert secret not in str(caught.value)


@pytest.mark.parametrize("depth", [100, 1000])
def test_deeply_nested_values_are_refused_not_crashed(depth):
    """Attribute values nested past protobuf's or JSON's depth are a clear error."""
    value = '{"arrayValue":{"values":[' * depth + '{"stringValue":"x"}' + "]}}" * depth
    attributes = '[{"key":"k","value":' + value + "}]"
    body = '{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":'
    body += attributes + "}]}]}]}"

    with pytest.raises(OtlpJsonError, match="nested too deeply"):
        parse_trace_request(body)


@pytest.mark.parametrize("number", ["--5", "\u00b2", "1" * 5000, "5-"])
def test_malformed_integers_are_a_clear_error_not_a_crash(number: str) -> None:
    """A string that only looks like digits is refused as OTLP/JSON."""
    body = {
        "resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": number}]}]}]
    }

    with pytest.raises(OtlpJsonError, match="startTimeUnixNano"):
        parse_trace_request(json.dumps(body))
