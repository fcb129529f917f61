"""OTLP spans into evidence: what is kept, what is refused and why."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from accessproof.conventions import Attr
from accessproof.engine.evidence import Rejection, evidence_from_request
from accessproof.redact import MAX_SCANNED_LENGTH


def _request(*spans: Span) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])]
    )


def _span(end_ns: int, **attributes: str) -> Span:
    values = {Attr.EVENT_ID: "evt_1Evidence", Attr.STEP: "entitlement", **attributes}
    return Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        start_time_unix_nano=max(end_ns - 1_000, 0),
        end_time_unix_nano=end_ns,
        attributes=[
            KeyValue(key=key, value=AnyValue(string_value=value))
            for key, value in values.items()
        ],
    )


def test_a_span_from_the_far_future_is_rejected_not_stored() -> None:
    """Times past the year 2200 would overflow the store's deadlines."""
    decoded = evidence_from_request(_request(_span(2**64 - 1), _span(time.time_ns())))

    assert decoded.rejected == {Rejection.INVALID_TIME: 1}
    assert len(decoded.evidence) == 1


def test_an_attribute_too_long_to_scan_is_dropped_unread() -> None:
    """A stack trace stuffed into an attribute costs nothing and leaks nothing."""
    trace = "Traceback (most recent call last): " + "x" * MAX_SCANNED_LENGTH
    started = time.perf_counter()

    decoded = evidence_from_request(
        _request(_span(time.time_ns(), **{Attr.OBSERVED_PLAN: trace}))
    )

    assert time.perf_counter() - started < 1.0
    (evidence,) = decoded.evidence
    assert Attr.OBSERVED_PLAN not in evidence.attributes
    assert decoded.redacted == 1


def test_an_event_id_that_could_reach_a_shell_is_refused() -> None:
    """Ids end up in commands shown to operators: only Stripe's shape is run."""
    decoded = evidence_from_request(
        _request(_span(time.time_ns(), **{Attr.EVENT_ID: "evt_$(reboot)"}))
    )

    assert decoded.rejected == {Rejection.INVALID_EVENT_ID: 1}
    assert decoded.evidence == []
