"""An app that skipped the library still cannot leak secrets through accessproof:
hostile values in raw spans reach no exit of the engine."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from accessproof.conventions import Attr, Step
from tests.harness import EngineThread, http_json
from tests.publish.harness import grpc_logs_receiver
from tests.scenario import CATALOG

pytestmark = pytest.mark.slow

HOSTILE = [
    "4242 4242 4242 4242",
    "5555-5555-5555-4444",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "rk_test_51H8x2aKXk0123456789abc",
    "whsec_5f6a7b8c9d0e1f2a3b4c5d6e",
    "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH",
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0",
    "jenny.rosen@example.com",
    "203.0.113.7",
]


def _send_hostile_runs(traces_url: str) -> list[str]:
    """One run per hostile value, the value in every place a careless app puts it."""
    event_ids = []
    for index, value in enumerate(HOSTILE):
        provider = TracerProvider(
            resource=Resource.create(
                {Attr.SERVICE_NAME: "careless-app", Attr.SERVICE_VERSION: value}
            )
        )
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=traces_url))
        )
        tracer = provider.get_tracer("careless")
        event_id = f"evt_1Hostile{index:04d}"
        common = {Attr.EVENT_ID: event_id, "customer.email": value}
        tracer.start_span(
            "webhook",
            attributes={
                **common,
                Attr.STEP: Step.WEBHOOK.value,
                Attr.EVENT_TYPE: "customer.subscription.updated",
                Attr.SUBSCRIPTION_STATUS: "active",
                Attr.PRICE_IDS: ["price_1Pro", value],
                Attr.CUSTOMER_ID: value,
                Attr.SUBSCRIPTION_ID: f"sub_{index}",
                "http.request.header.authorization": value,
            },
        ).end()
        tracer.start_span(
            "entitlement",
            attributes={
                **common,
                Attr.STEP: Step.ENTITLEMENT.value,
                Attr.OBSERVED_PLAN: value,
                Attr.OBSERVED_ACCESS: "granted",
                Attr.OBSERVED_FEATURES: ["api", value],
            },
        ).end()
        provider.shutdown()
        event_ids.append(event_id)
    return event_ids


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_hostile_values_reach_no_exit(tmp_path: Path) -> None:
    """Store, API, incident records, pages, metrics and log records stay clean."""
    with grpc_logs_receiver() as (received, logs_endpoint):
        with EngineThread(
            tmp_path, catalog=CATALOG, logs_endpoint=logs_endpoint
        ) as engine:
            event_ids = _send_hostile_runs(engine.traces_url)
            runs = [engine.wait_for_state(e, "incident") for e in event_ids]
            records = received.wait_for(len(event_ids), timeout=15)
            exits = {
                "api runs": str(runs),
                "api incidents": str(
                    http_json(f"{engine.api_url}/api/v1/incidents?state=all")
                ),
                "incident pages": "".join(
                    _text(f"{engine.api_url}/incidents/{run['incidents'][0]['id']}")
                    for run in runs
                ),
                "incident list page": _text(f"{engine.api_url}/incidents"),
                "metrics": _text(f"{engine.api_url}/metrics"),
                "log records": "".join(str(record) for record in records),
            }
        exits["store"] = "".join(
            path.read_bytes().decode("latin-1") for path in tmp_path.glob("engine.db*")
        )

    assert len(records) >= len(event_ids)
    leaks = [
        (where, value)
        for where, text in exits.items()
        for value in HOSTILE
        if value in text or value.replace(" ", "") in text
    ]
    assert leaks == []
