"""Helpers for the library's tests: span pipelines, Stripe events, an OTLP sink."""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import stripe
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

WEBHOOK_SECRET = "whsec_testsecretvalue0123456789"


@dataclass
class Spans:
    """A tracer provider whose finished spans can be read back."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]


def make_spans() -> Spans:
    """Build a fresh provider exporting to memory, synchronously."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Spans(provider, exporter)


def subscription(
    *,
    sub_id: str = "sub_1PgcTest",
    customer: str = "cus_QXg1o8vcGmoR32",
    status: str = "active",
    price: str = "price_1Pro",
    lookup_key: str | None = "pro_monthly",
    metadata: dict[str, str] | None = None,
    period_end: int = 1_767_225_600,
) -> dict[str, Any]:
    """A subscription in the current API's shape (periods on the items)."""
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "cancel_at_period_end": False,
        "collection_method": "charge_automatically",
        "currency": "usd",
        "metadata": dict(metadata or {}),
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_QXhVnC2h0Jczwc",
                    "object": "subscription_item",
                    "current_period_start": period_end - 2_592_000,
                    "current_period_end": period_end,
                    "metadata": {},
                    "price": {
                        "id": price,
                        "object": "price",
                        "lookup_key": lookup_key,
                        "product": "prod_Pro",
                        "metadata": {},
                    },
                    "quantity": 1,
                }
            ],
            "has_more": False,
        },
    }


def event(
    obj: dict[str, Any],
    *,
    event_type: str = "customer.subscription.updated",
    event_id: str = "evt_1PgcTestUpdated",
    created: int = 1_764_633_600,
) -> dict[str, Any]:
    """Wrap a Stripe object in an event envelope."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


def signed(
    payload: dict[str, Any] | str,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> tuple[bytes, str]:
    """Return the body and a valid Stripe-Signature header for it."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(
        body, secret, timestamp=timestamp if timestamp is not None else int(time.time())
    )
    return body.encode(), header


@dataclass
class ReceivedSpan:
    """One span as an OTLP receiver saw it."""

    name: str
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    links: list[tuple[str, str]]
    status_code: int
    status_message: str
    events: list[str]


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass
class OtlpSink:
    """An OTLP/HTTP trace receiver on a loopback port, keeping what it receives."""

    endpoint: str
    received: list[ReceivedSpan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {
                    kv.key: _value(kv.value)
                    for kv in resource_spans.resource.attributes
                }
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.received.append(_received(span, resource))

    def spans(self, event_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [
                span
                for span in self.received
                if span.attributes.get("stripe.event.id") == event_id
            ]


def _received(span: Any, resource: dict[str, Any]) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        attributes={kv.key: _value(kv.value) for kv in span.attributes},
        resource=resource,
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
        status_code=span.status.code,
        status_message=span.status.message,
        events=[item.name for item in span.events],
    )


def handler(sink: OtlpSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            sink.add(request)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
