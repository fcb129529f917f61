"""The engine's Prometheus metrics, fed by a real engine over a SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from accessproof.conventions import Outcome, Reason
from accessproof.engine.engine import (
    IncidentResolved,
    RunDecided,
)
from accessproof.engine.evidence import Decoded, Rejection
from accessproof.engine.incidents import AccessState, Deploy, Incident, OperatorPath
from accessproof.publish.metrics import OTHER, UNKNOWN, EngineMetrics, render
from tests.publish.harness import EVENT_TYPE, Billing

OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry, billing: Billing) -> EngineMetrics:
    metrics = EngineMetrics(registry, billing.store, version="9.8.7")
    billing.engine.listeners.append(metrics)
    return metrics


def _incident(**changes: object) -> Incident:
    fields: dict[str, object] = {
        "id": "inc_0123456789abcdef0123",
        "reason": Reason.ACCESS_MISMATCH,
        "summary": "Customer access did not change",
        "detail": "observed free",
        "event_id": "evt_1Metrics",
        "event_type": EVENT_TYPE,
        "expected": AccessState(plan="pro"),
        "observed": AccessState(plan="free"),
        "deploy": Deploy(),
        "trace_ids": [],
        "retry_guidance": "Re-run the entitlement step.",
        "operator": OperatorPath(consequence="pays for pro", safe_action="re-read"),
        "opened_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    fields.update(changes)
    return Incident.model_validate(fields)


@pytest.mark.usefixtures("metrics")
def test_a_proven_run_is_counted_with_its_proof_duration(
    billing: Billing, registry: CollectorRegistry
) -> None:
    """A healthy run counts as proven and observes the seconds it took to prove."""
    billing.prove("evt_1Healthy", after=7.0)

    labels = {"event_type": EVENT_TYPE}
    assert registry.get_sample_value(
        "accessproof_runs_total", {**labels, "outcome": "proven"}
    ) == pytest.approx(1.0)
    assert registry.get_sample_value(
        "accessproof_proof_duration_seconds_count", labels
    ) == pytest.approx(1.0)
    assert registry.get_sample_value(
        "accessproof_proof_duration_seconds_sum", labels
    ) == pytest.approx(7.0, abs=0.05)
    assert registry.get_sample_value(
        "accessproof_proof_duration_seconds_bucket", {**labels, "le": "5.0"}
    ) == pytest.approx(0.0)
    assert registry.get_sample_value(
        "accessproof_proof_duration_seconds_bucket", {**labels, "le": "10.0"}
    ) == pytest.approx(1.0)


@pytest.mark.usefixtures("metrics")
def test_openmetrics_exposition_carries_the_trace_id_exemplar(
    billing: Billing, registry: CollectorRegistry
) -> None:
    """The proof histogram links to the run's first trace when OpenMetrics is asked."""
    billing.prove("evt_1Exemplar", after=3.0)
    first_trace = billing.sent[0].trace_id

    body, content_type = render(registry, OPENMETRICS)

    assert content_type.startswith("application/openmetrics-text")
    exemplars = [
        sample.exemplar
        for family in text_string_to_metric_families(body.decode())
        if family.name == "accessproof_proof_duration_seconds"
        for sample in family.samples
        if sample.exemplar is not None
    ]
    assert len(exemplars) == 1
    assert exemplars[0].labels == {"trace_id": first_trace}
    assert exemplars[0].value == pytest.approx(3.0, abs=0.05)


@pytest.mark.usefixtures("metrics")
def test_plain_scrapers_get_the_prometheus_text_format(
    billing: Billing, registry: CollectorRegistry
) -> None:
    """Without OpenMetrics in Accept, the classic text format comes back."""
    billing.prove("evt_1Plain")

    body, content_type = render(registry, None)

    assert content_type.startswith("text/plain")
    assert b"accessproof_proof_duration_seconds_count" in body
    assert b"trace_id" not in body


@pytest.mark.usefixtures("metrics")
def test_a_missed_deadline_counts_an_incident_by_reason(
    billing: Billing, registry: CollectorRegistry
) -> None:
    """A run whose entitlement never came counts as access_not_changed."""
    billing.break_run("evt_1Broken")

    assert registry.get_sample_value(
        "accessproof_incidents_total",
        {"reason": "access_not_changed", "event_type": EVENT_TYPE, "drill": "false"},
    ) == pytest.approx(1.0)
    assert registry.get_sample_value(
        "accessproof_runs_total", {"event_type": EVENT_TYPE, "outcome": "incident"}
    ) == pytest.approx(1.0)


@pytest.mark.usefixtures("metrics")
def test_drill_incidents_are_labelled_as_drills(
    billing: Billing, registry: CollectorRegistry
) -> None:
    """An incident from a failure drill is counted with drill="true"."""
    billing.break_run("evt_1Drill", drill=True)

    assert registry.get_sample_value(
        "accessproof_incidents_total",
        {"reason": "access_not_changed", "event_type": EVENT_TYPE, "drill": "true"},
    ) == pytest.approx(1.0)


@pytest.mark.usefixtures("metrics")
def test_late_proof_observes_the_incident_resolution_time(
    billing: Billing, registry: CollectorRegistry
) -> None:
    """Evidence proving an incident's run observes how long the incident was open."""
    billing.break_run("evt_1Late")
    billing.clock.advance(120)

    billing.send(billing.entitlement("evt_1Late"))

    labels = {"reason": "access_not_changed"}
    assert registry.get_sample_value(
        "accessproof_incident_resolution_seconds_count", labels
    ) == pytest.approx(1.0)
    assert registry.get_sample_value(
        "accessproof_incident_resolution_seconds_sum", labels
    ) == pytest.approx(120.0)


def test_resolutions_other_than_proof_are_not_observed(
    metrics: EngineMetrics, registry: CollectorRegistry
) -> None:
    """A superseded incident was not fixed, so it does not count as resolved time."""
    superseded = _incident(resolution="superseded", resolution_seconds=30.0)

    metrics.on_events([IncidentResolved(superseded)])

    assert registry.get_sample_value(
        "accessproof_incident_resolution_seconds_count",
        {"reason": "access_mismatch"},
    ) == pytest.approx(0.0)


@pytest.mark.usefixtures("metrics")
def test_spans_after_the_decision_count_as_late_evidence(
    billing: Billing, registry: CollectorRegistry
) -> None:
    """A notify span for a run already proven is late evidence for that step."""
    billing.prove("evt_1Notify")

    billing.send(billing.notify("evt_1Notify"))

    assert registry.get_sample_value(
        "accessproof_late_evidence_total", {"step": "notify"}
    ) == pytest.approx(1.0)


@pytest.mark.usefixtures("metrics")
def test_spans_are_counted_received_ignored_and_rejected(
    billing: Billing, registry: CollectorRegistry
) -> None:
    """Every span of a request is received; ignored and rejected ones are named."""
    decoded = Decoded(
        evidence=[billing.webhook("evt_1Spans")],
        ignored=3,
        rejected={Rejection.INVALID_EVENT_ID: 2},
    )

    billing.engine.ingest(decoded, "grpc")

    assert registry.get_sample_value(
        "accessproof_spans_received_total", {"transport": "grpc"}
    ) == pytest.approx(6.0)
    assert registry.get_sample_value(
        "accessproof_spans_ignored_total", {"transport": "grpc"}
    ) == pytest.approx(3.0)
    assert registry.get_sample_value(
        "accessproof_spans_rejected_total", {"reason": "invalid_event_id"}
    ) == pytest.approx(2.0)


def test_open_gauges_are_read_from_the_store_after_a_restart(
    billing: Billing, metrics: EngineMetrics
) -> None:
    """A new process over the same store reports the incidents and runs still open."""
    billing.break_run("evt_1Before")
    billing.send(billing.webhook("evt_1Waiting"))

    billing.restart()
    registry = CollectorRegistry()
    EngineMetrics(registry, billing.store)

    for reason in Reason:
        expected = 1.0 if reason is Reason.ACCESS_NOT_CHANGED else 0.0
        assert registry.get_sample_value(
            "accessproof_incidents_open", {"reason": reason.value}
        ) == pytest.approx(expected)
    assert registry.get_sample_value("accessproof_runs_open") == pytest.approx(1.0)


@pytest.mark.usefixtures("metrics")
def test_a_resolved_incident_leaves_the_open_gauge(
    billing: Billing, registry: CollectorRegistry
) -> None:
    """The open-incident gauge drops when late evidence proves the run."""
    billing.break_run("evt_1Gauge")
    before = registry.get_sample_value(
        "accessproof_incidents_open", {"reason": "access_not_changed"}
    )

    billing.send(billing.entitlement("evt_1Gauge"))

    assert before == pytest.approx(1.0)
    assert registry.get_sample_value(
        "accessproof_incidents_open", {"reason": "access_not_changed"}
    ) == pytest.approx(0.0)


def test_event_type_values_are_capped(billing: Billing) -> None:
    """Past the cap, and for values not shaped like an event type, it is other."""
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry, billing.store, max_event_types=2, event_types=())
    types = ["invoice.paid", "invoice.payment_failed", "customer.created", "<b>x</b>"]

    metrics.on_events([RunDecided(t, Outcome.SUPERSEDED, False) for t in types])
    metrics.on_events([RunDecided("", Outcome.SUPERSEDED, False)])

    def runs(event_type: str) -> float | None:
        return registry.get_sample_value(
            "accessproof_runs_total",
            {"event_type": event_type, "outcome": "superseded"},
        )

    assert runs("invoice.paid") == pytest.approx(1.0)
    assert runs("invoice.payment_failed") == pytest.approx(1.0)
    assert runs("customer.created") is None
    assert runs(OTHER) == pytest.approx(2.0)
    assert runs(UNKNOWN) == pytest.approx(1.0)


@pytest.mark.usefixtures("metrics")
def test_build_info_names_the_version(registry: CollectorRegistry) -> None:
    """The build info metric carries the running version as a label."""
    assert registry.get_sample_value(
        "accessproof_build_info", {"version": "9.8.7"}
    ) == pytest.approx(1.0)


def test_every_metric_of_the_design_is_exposed(
    metrics: EngineMetrics, registry: CollectorRegistry
) -> None:
    """The exposition names every metric of the design, before any run."""
    body, _ = render(registry, OPENMETRICS)
    names = {family.name for family in text_string_to_metric_families(body.decode())}

    assert {
        "accessproof_runs",
        "accessproof_incidents",
        "accessproof_incidents_open",
        "accessproof_runs_open",
        "accessproof_proof_duration_seconds",
        "accessproof_incident_resolution_seconds",
        "accessproof_spans_received",
        "accessproof_spans_rejected",
        "accessproof_late_evidence",
        "accessproof_build",
    } <= names
