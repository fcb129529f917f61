"""A crash loses nothing that was acknowledged: open runs and their deadlines
survive ``kill -9`` of ``accessproof serve``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import accessproof
from tests.engine.events import subscription_event
from tests.harness import EngineProcess, http_json, wait_for, write_catalog
from tests.scenario import CATALOG

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 4.0


def test_an_open_run_survives_a_crash_and_its_deadline_fires_on_time(
    tmp_path: Path,
) -> None:
    """Spans answered 200 are durable; after a restart the deadline still fires."""
    catalog = {
        **CATALOG,
        "steps": {
            "default": {
                "required": ["reconcile", "entitlement"],
                "deadlines": {"reconcile": "4s", "entitlement": "4s"},
            }
        },
    }
    config = write_catalog(tmp_path, catalog)
    args = ("--config", str(config), "--store", f"sqlite:///{tmp_path / 'e.db'}")
    first = EngineProcess(tmp_path, *args)
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=first.traces_url))
    )
    run = accessproof.open_run(subscription_event(), tracer_provider=provider)
    with run.step("reconcile") as step:
        step.record(status="active", plan="pro")
    provider.shutdown()

    first.kill()
    second = EngineProcess(tmp_path, *args)
    restarted = datetime.now(UTC)
    try:
        status, resource = http_json(f"{second.api_url}/api/v1/runs/{run.event_id}")
        assert (status, resource["state"]) == (200, "open")

        def incident() -> dict[str, object] | None:
            _, body = http_json(f"{second.api_url}/api/v1/runs/{run.event_id}")
            return body if body["state"] == "incident" else None

        decided = wait_for(incident, timeout=20, what="the deadline to fire")
    finally:
        assert second.stop() == 0

    (record,) = decided["incidents"]  # type: ignore[index]
    assert record["reason"] == "access_not_changed"
    webhook = decided["steps"][0]["attempts"][0]  # type: ignore[index]
    accepted = datetime.fromisoformat(webhook["ended_at"])
    opened = datetime.fromisoformat(record["opened_at"])
    due = accepted + timedelta(seconds=DEADLINE_SECONDS)
    assert opened >= due
    # On time: at the deadline, or right after the restart if that came later.
    assert (opened - max(due, restarted)).total_seconds() < 3
