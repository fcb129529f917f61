"""Incidents as OTLP log records, received by real OTLP logs receivers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from prometheus_client import CollectorRegistry

from accessproof.conventions import Reason
from accessproof.publish.logs import (
    IncidentLogPublisher,
    build_log_exporter,
    severity_of,
)
from accessproof.publish.metrics import EngineMetrics
from accessproof.store.base import ExportKind
from tests.publish.harness import (
    CUSTOMER,
    EVENT_TYPE,
    RESOURCE,
    RUNBOOK,
    Billing,
    Received,
    attributes_of,
)

NS = 1_000_000_000
Publish = Callable[..., IncidentLogPublisher]


@pytest.fixture
def publisher(billing: Billing) -> Iterator[Publish]:
    """Build publishers over the harness's current store; shut them down after."""
    made: list[IncidentLogPublisher] = []

    def build(
        endpoint: str, protocol: str = "grpc", **options: Any
    ) -> IncidentLogPublisher:
        exporter = build_log_exporter(endpoint, protocol, timeout=5.0)
        made.append(
            IncidentLogPublisher(
                billing.store, exporter, clock=billing.clock, **options
            )
        )
        return made[-1]

    yield build
    for item in made:
        item.shutdown()


def _ns(moment: object) -> int:
    assert hasattr(moment, "timestamp")
    return int(moment.timestamp() * NS)


def test_an_incident_becomes_a_log_record_with_every_field(
    billing: Billing, grpc_logs: tuple[Received, str], publisher: Publish
) -> None:
    """The record names the event, its severity, summary, fields and the trace."""
    received, endpoint = grpc_logs
    billing.break_run("evt_1Broken")
    [incident] = billing.store.incidents_of("evt_1Broken")
    webhook = billing.sent[0]

    exported = publisher(endpoint).drain_once()

    assert exported == 1
    [(resource, scope, record)] = received.records
    assert record.event_name == "accessproof.incident"
    assert record.severity_number == SeverityNumber.ERROR.value
    assert record.severity_text == "ERROR"
    assert record.body.string_value == incident.summary
    assert "expected pro" in incident.summary
    assert record.trace_id.hex() == webhook.trace_id
    assert record.span_id.hex() == webhook.span_id
    assert record.time_unix_nano == _ns(incident.opened_at)
    assert record.observed_time_unix_nano == billing.clock.now_ns()
    assert scope == "accessproof"
    engine = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert engine["service.name"] == "accessproof"
    assert "service.version" not in engine
    assert attributes_of(record) == {
        "accessproof.incident.id": incident.id,
        "accessproof.incident.reason": "access_not_changed",
        "accessproof.incident.state": "open",
        "accessproof.incident.drill": False,
        "accessproof.incident.detail": incident.detail,
        "accessproof.incident.step": "entitlement",
        "accessproof.incident.trace_ids": [webhook.trace_id],
        "accessproof.incident.retry_guidance": incident.retry_guidance,
        "accessproof.incident.opened_at": incident.opened_at.isoformat(),
        "accessproof.incident.service.name": RESOURCE["service.name"],
        "accessproof.incident.expected.plan": "pro",
        "accessproof.incident.expected.features": ["api", "exports"],
        "accessproof.incident.expected.access": "granted",
        "accessproof.incident.owner": "billing",
        "accessproof.incident.runbook": RUNBOOK,
        "accessproof.incident.consequence": incident.operator.consequence,
        "accessproof.incident.safe_action": incident.operator.safe_action,
        "accessproof.incident.commands": incident.operator.commands,
        "accessproof.incident.links.trace": incident.links["trace"],
        "stripe.event.id": "evt_1Broken",
        "stripe.event.type": EVENT_TYPE,
        "stripe.customer.id": CUSTOMER,
        "stripe.subscription.id": incident.subscription_id,
        "stripe.livemode": False,
        "vcs.ref.head.revision": RESOURCE["vcs.ref.head.revision"],
        "service.version": RESOURCE["service.version"],
        "deployment.environment.name": RESOURCE["deployment.environment.name"],
    }
    assert webhook.trace_id in incident.links["trace"]
    assert billing.store.pending_exports(10) == []


def test_a_resolution_follows_its_incident_over_otlp_http(
    billing: Billing, http_logs: tuple[Received, str], publisher: Publish
) -> None:
    """Late proof exports a second, INFO record saying how the incident ended."""
    received, endpoint = http_logs
    billing.break_run("evt_1Late")
    billing.clock.advance(120)
    entitlement = billing.entitlement("evt_1Late")
    billing.send(entitlement)
    [incident] = billing.store.incidents_of("evt_1Late")

    exported = publisher(endpoint, "http").drain_once()

    assert exported == 2
    opened, resolved = received.wait_for(2)
    assert [opened.severity_text, resolved.severity_text] == ["ERROR", "INFO"]
    assert resolved.severity_number == SeverityNumber.INFO.value
    assert resolved.event_name == "accessproof.incident"
    assert resolved.time_unix_nano == _ns(incident.resolved_at)
    assert resolved.trace_id.hex() == entitlement.trace_id
    assert resolved.span_id.hex() == entitlement.span_id
    attributes = attributes_of(resolved)
    assert attributes["accessproof.incident.id"] == incident.id
    assert attributes["accessproof.incident.state"] == "resolved"
    assert attributes["accessproof.incident.resolution"] == "proven"
    assert attributes["accessproof.incident.resolution_seconds"] == 120.0
    assert attributes_of(opened)["accessproof.incident.state"] == "open"


def test_a_failed_export_keeps_the_records_for_a_later_attempt(
    billing: Billing, grpc_logs: tuple[Received, str], publisher: Publish
) -> None:
    """A receiver that refuses the batch leaves it pending, with a longer wait."""
    received, endpoint = grpc_logs
    received.fail_with = grpc.StatusCode.INVALID_ARGUMENT
    billing.break_run("evt_1Refused")
    logs = publisher(endpoint)

    refused = logs.drain_once()
    pending = len(billing.store.pending_exports(10))
    delay = logs.next_delay(1.0)
    received.fail_with = None
    accepted = logs.drain_once()

    assert (refused, pending, delay) == (0, 1, 2.0)
    assert accepted == 1
    assert logs.next_delay(1.0) == 1.0
    assert len(received.records) == 1
    assert billing.store.pending_exports(10) == []


def test_records_not_exported_before_a_restart_are_exported_once_after_it(
    billing: Billing, grpc_logs: tuple[Received, str], publisher: Publish
) -> None:
    """The outbox survives a restart, and a drained entry is never sent again."""
    received, endpoint = grpc_logs
    received.fail_with = grpc.StatusCode.INVALID_ARGUMENT
    billing.break_run("evt_1Restart")
    assert publisher(endpoint).drain_once() == 0

    billing.restart()
    received.fail_with = None
    after_restart = publisher(endpoint)
    first = after_restart.drain_once()
    second = after_restart.drain_once()
    billing.restart()
    third = publisher(endpoint).drain_once()

    assert (first, second, third) == (1, 0, 0)
    [record] = received.wait_for(1)
    assert attributes_of(record)["stripe.event.id"] == "evt_1Restart"


def test_the_outbox_is_exported_in_order_across_batches(
    billing: Billing, grpc_logs: tuple[Received, str], publisher: Publish
) -> None:
    """Entries leave in the order the engine decided them, a batch at a time."""
    received, endpoint = grpc_logs
    event_ids = [f"evt_1Order{n}" for n in range(5)]
    for event_id in event_ids:
        billing.break_run(event_id)

    exported = publisher(endpoint, batch=2).drain_once()

    assert exported == 5
    sent = [attributes_of(record)["stripe.event.id"] for record in received.wait_for(5)]
    assert sent == event_ids


def test_drill_incidents_are_marked_in_the_record(
    billing: Billing, grpc_logs: tuple[Received, str], publisher: Publish
) -> None:
    """A drill's incident record says drill so alert routing can skip it."""
    received, endpoint = grpc_logs
    billing.break_run("evt_1Drill", drill=True)

    publisher(endpoint).drain_once()

    [record] = received.wait_for(1)
    assert attributes_of(record)["accessproof.incident.drill"] is True


@pytest.mark.parametrize(
    ("reason", "severity"),
    [
        (Reason.ACCESS_NOT_CHANGED, SeverityNumber.ERROR),
        (Reason.ACCESS_MISMATCH, SeverityNumber.ERROR),
        (Reason.SUBSCRIPTION_MISMATCH, SeverityNumber.WARN),
        (Reason.STEP_FAILED, SeverityNumber.WARN),
        (Reason.WEBHOOK_MISSING, SeverityNumber.WARN),
        (Reason.NOTIFICATION_MISSING, SeverityNumber.INFO),
    ],
)
def test_severity_follows_the_reason_and_resolutions_are_info(
    reason: Reason, severity: SeverityNumber
) -> None:
    """Lost or wrong access is an error, a resolution only information."""
    assert severity_of(ExportKind.OPENED, reason)[0] is severity
    assert severity_of(ExportKind.RESOLVED, reason)[0] is SeverityNumber.INFO


def test_the_background_loop_exports_until_stopped(
    billing: Billing, grpc_logs: tuple[Received, str], publisher: Publish
) -> None:
    """The loop drains the outbox on its own and returns when told to stop."""
    received, endpoint = grpc_logs
    billing.break_run("evt_1Loop")
    logs = publisher(endpoint)

    async def scenario() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(logs.run(stop, interval=0.01))
        deadline = time.monotonic() + 5.0
        while not received.records and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5.0)
        return len(received.records)

    assert asyncio.run(scenario()) == 1
    assert billing.store.pending_exports(10) == []


@pytest.mark.parametrize(
    ("endpoint", "protocol"),
    [("http://127.0.0.1:4318", "thrift"), ("127.0.0.1:4318", "http")],
)
def test_a_bad_logs_endpoint_is_refused_at_start(endpoint: str, protocol: str) -> None:
    """An unknown protocol, or an HTTP endpoint without a scheme, fails early."""
    with pytest.raises(ValueError, match="logs"):
        build_log_exporter(endpoint, protocol)


def test_a_wrong_read_back_names_the_observed_access_and_its_span(
    billing: Billing, grpc_logs: tuple[Received, str], publisher: Publish
) -> None:
    """An access mismatch shows what the app read back, linked to that span."""
    received, endpoint = grpc_logs
    billing.send(billing.webhook("evt_1Wrong"))
    wrong = billing.entitlement("evt_1Wrong", plan="free")
    billing.send(wrong)

    publisher(endpoint).drain_once()

    [record] = received.wait_for(1)
    attributes = attributes_of(record)
    assert record.severity_text == "ERROR"
    assert (record.trace_id.hex(), record.span_id.hex()) == (
        wrong.trace_id,
        wrong.span_id,
    )
    assert attributes["accessproof.incident.reason"] == "access_mismatch"
    assert attributes["accessproof.incident.expected.plan"] == "pro"
    assert attributes["accessproof.incident.observed.plan"] == "free"
    assert attributes["accessproof.incident.observed.features"] == []
    assert attributes["accessproof.incident.observed.access"] == "granted"


def test_export_results_are_counted_in_the_metrics(
    billing: Billing, grpc_logs: tuple[Received, str], publisher: Publish
) -> None:
    """Refused and accepted records are counted, so failing exports can alert."""
    received, endpoint = grpc_logs
    registry = CollectorRegistry()
    logs = publisher(endpoint, metrics=EngineMetrics(registry, billing.store))
    billing.break_run("evt_1Counted")

    received.fail_with = grpc.StatusCode.INVALID_ARGUMENT
    logs.drain_once()
    received.fail_with = None
    logs.drain_once()

    for result in ("failure", "success"):
        assert registry.get_sample_value(
            "accessproof_incident_log_exports_total", {"result": result}
        ) == pytest.approx(1.0)


def test_a_run_purged_before_export_still_links_its_first_trace(
    billing: Billing, grpc_logs: tuple[Received, str], publisher: Publish
) -> None:
    """Without the run in the store, the record keeps the trace id, with no span."""
    received, endpoint = grpc_logs
    billing.break_run("evt_1Purged")
    billing.send(billing.entitlement("evt_1Purged"))
    billing.store.purge(billing.clock.now_ns() + 1)
    assert billing.store.get_run("evt_1Purged") is None

    publisher(endpoint).drain_once()

    opened, resolved = received.wait_for(2)
    for record in (opened, resolved):
        assert record.trace_id.hex() == billing.sent[0].trace_id
        assert record.span_id == b""
