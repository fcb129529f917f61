"""Every Prometheus metric the engine exports, declared in this one module.

:class:`EngineMetrics` registers them on a registry it is given (never the
process-global one), counts what the engine reports through its listener
interface, and reads the open-incident and open-run gauges from the store at
scrape time, so they are right after a restart instead of starting at zero.

No label carries an id: event, customer, subscription and trace ids travel as
exemplars and in incident records. ``event_type`` is the one open label; its
distinct values are capped (see :class:`LabelCap`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from accessproof.conventions import Outcome, Reason, Step
from accessproof.engine.engine import (
    EngineEvent,
    IncidentOpened,
    IncidentResolved,
    LateEvidence,
    RunDecided,
    SpansReceived,
)
from accessproof.engine.evidence import Rejection
from accessproof.expect import ACCESS_EVENT_TYPES
from accessproof.instrument._version import __version__
from accessproof.store.base import Store

logger = logging.getLogger(__name__)

#: Distinct ``event_type`` label values kept before new ones become ``other``.
#: Stripe defines about 250 event types; a run's type comes from its spans.
MAX_EVENT_TYPES = 300

#: The label value for event types beyond the cap, or not shaped like one.
OTHER = "other"

#: The label value for runs whose webhook never arrived, so their type is unknown.
UNKNOWN = "unknown"

#: The ``transport`` label values: the two OTLP receivers.
TRANSPORTS = ("http", "grpc")

#: Proof durations run from a worker's seconds to a notification's minutes.
PROOF_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600)

#: Incidents resolve by late evidence within minutes, or by a fix within days.
RESOLUTION_BUCKETS = (60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400)

_EVENT_TYPE_SHAPE = re.compile(r"[a-z][a-z0-9_.]{0,99}")
_HEALTHY_RESOLUTION = "proven"


class LabelCap:
    """Keep a label's distinct values bounded.

    The first ``limit`` values seen are kept as they are; later new values, and
    values not shaped like a Stripe event type, are reported as ``other``.
    """

    def __init__(self, limit: int = MAX_EVENT_TYPES) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if not value:
            return UNKNOWN
        if value in self._seen:
            return value
        if not _EVENT_TYPE_SHAPE.fullmatch(value):
            return OTHER
        with self._lock:
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(value)
        return value


class StoreGauges(Collector):
    """``accessproof_incidents_open`` and ``accessproof_runs_open``, from the store.

    Read at every scrape, so they count what the store holds, across restarts
    and across engine replicas sharing one database. Every reason is reported,
    with 0 when none is open, so alerts see a series instead of an absence.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        try:
            counts = self.store.open_incident_counts()
            runs = self.store.open_run_count()
        except Exception:
            logger.exception("cannot read open incidents and runs from the store")
            return []
        return self._families(counts, runs)

    def _families(
        self, counts: dict[Reason, int] | None = None, runs: int | None = None
    ) -> list[Metric]:
        incidents = GaugeMetricFamily(
            "accessproof_incidents_open",
            "Incidents open or acknowledged, not yet resolved, by reason.",
            labels=["reason"],
        )
        open_runs = GaugeMetricFamily(
            "accessproof_runs_open", "Runs waiting for evidence or a deadline."
        )
        if counts is not None and runs is not None:
            for reason in Reason:
                incidents.add_metric([reason.value], counts.get(reason, 0))
            open_runs.add_metric([], runs)
        return [incidents, open_runs]


class EngineMetrics:
    """The engine's Prometheus metrics, registered on ``registry``.

    Register it as an engine listener; it counts what the engine decided
    after each decision is durable.

    >>> registry = CollectorRegistry()
    >>> metrics = EngineMetrics(registry, store)
    >>> engine = Engine(store, catalog, clock=clock, listeners=[metrics])
    >>> body, content_type = render(registry, request.headers.get("Accept"))
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        store: Store,
        *,
        version: str = __version__,
        max_event_types: int = MAX_EVENT_TYPES,
        event_types: Iterable[str] = ACCESS_EVENT_TYPES,
    ) -> None:
        self.registry = registry
        self.event_type = LabelCap(max_event_types)
        self.runs = Counter(
            "accessproof_runs_total",
            "Runs decided, by event type and outcome (proven, incident, superseded).",
            ["event_type", "outcome"],
            registry=registry,
        )
        self.incidents = Counter(
            "accessproof_incidents_total",
            "Incidents opened, by reason, event type and whether it was a drill.",
            ["reason", "event_type", "drill"],
            registry=registry,
        )
        self.proof_duration = Histogram(
            "accessproof_proof_duration_seconds",
            "Time from the webhook's acceptance to the proof of the outcome.",
            ["event_type"],
            buckets=PROOF_BUCKETS,
            registry=registry,
        )
        self.resolution = Histogram(
            "accessproof_incident_resolution_seconds",
            "Time from an incident's opening to late evidence proving the outcome.",
            ["reason"],
            buckets=RESOLUTION_BUCKETS,
            registry=registry,
        )
        self.spans_received = Counter(
            "accessproof_spans_received_total",
            "Spans received over OTLP, by transport (http, grpc): used, ignored "
            "or rejected.",
            ["transport"],
            registry=registry,
        )
        self.spans_ignored = Counter(
            "accessproof_spans_ignored_total",
            "Spans accepted and dropped because they carry no stripe.event.id.",
            ["transport"],
            registry=registry,
        )
        self.spans_rejected = Counter(
            "accessproof_spans_rejected_total",
            "Spans that claimed to belong to a run but could not be used, by reason.",
            ["reason"],
            registry=registry,
        )
        self.late_evidence = Counter(
            "accessproof_late_evidence_total",
            "Spans that arrived for a run already decided, by step.",
            ["step"],
            registry=registry,
        )
        self.log_exports = Counter(
            "accessproof_incident_log_exports_total",
            "Incident log records handed to the OTLP exporter, by result.",
            ["result"],
            registry=registry,
        )
        self.build = Info(
            "accessproof_build", "The running accessproof version.", registry=registry
        )
        self.build.info({"version": version})
        registry.register(StoreGauges(store))
        self._prime(event_types)

    def on_events(self, events: Sequence[EngineEvent]) -> None:
        """Count what one engine transaction decided."""
        for event in events:
            if isinstance(event, RunDecided):
                self._run_decided(event)
            elif isinstance(event, IncidentOpened):
                incident = event.incident
                self.incidents.labels(
                    incident.reason.value,
                    self.event_type(incident.event_type),
                    "true" if incident.drill else "false",
                ).inc()
            elif isinstance(event, IncidentResolved):
                self._incident_resolved(event)
            elif isinstance(event, LateEvidence):
                self.late_evidence.labels(event.step.value).inc()
            elif isinstance(event, SpansReceived):
                self._spans_received(event)

    def log_export(self, *, ok: bool, records: int) -> None:
        """Count incident log records the exporter accepted or failed to send."""
        self.log_exports.labels("success" if ok else "failure").inc(records)

    def _run_decided(self, event: RunDecided) -> None:
        event_type = self.event_type(event.event_type)
        self.runs.labels(event_type, event.outcome.value).inc()
        if event.outcome is Outcome.PROVEN and event.proof_seconds is not None:
            exemplar = {"trace_id": event.trace_id} if event.trace_id else None
            self.proof_duration.labels(event_type).observe(
                event.proof_seconds, exemplar=exemplar
            )

    def _incident_resolved(self, event: IncidentResolved) -> None:
        incident = event.incident
        if incident.resolution != _HEALTHY_RESOLUTION:
            return
        if incident.resolution_seconds is not None:
            self.resolution.labels(incident.reason.value).observe(
                incident.resolution_seconds
            )

    def _spans_received(self, event: SpansReceived) -> None:
        received = event.accepted + event.ignored + sum(event.rejected.values())
        self.spans_received.labels(event.transport).inc(received)
        if event.ignored:
            self.spans_ignored.labels(event.transport).inc(event.ignored)
        for reason, count in event.rejected.items():
            self.spans_rejected.labels(reason).inc(count)

    def _prime(self, event_types: Iterable[str]) -> None:
        """Create every series an alert takes ``rate`` or ``increase`` of, at zero.

        A counter series first seen at 1 has no earlier sample, so ``increase``
        over it is empty and the first incident of a kind would never alert.
        """
        for reason in Reason:
            self.resolution.labels(reason.value)
        for result in ("success", "failure"):
            self.log_exports.labels(result)
        for transport in TRANSPORTS:
            self.spans_received.labels(transport)
            self.spans_ignored.labels(transport)
        for rejection in Rejection:
            self.spans_rejected.labels(rejection.value)
        for step in Step:
            self.late_evidence.labels(step.value)
        for event_type in sorted(event_types):
            label = self.event_type(event_type)
            for outcome in Outcome:
                self.runs.labels(label, outcome.value)
            for reason in Reason:
                for drill in ("true", "false"):
                    self.incidents.labels(reason.value, label, drill)


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """Render ``registry`` for a scrape; return the body and its content type.

    A scraper that accepts ``application/openmetrics-text`` gets OpenMetrics,
    the only format that carries the proof histogram's ``trace_id`` exemplars;
    anything else gets the Prometheus text format.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


__all__ = [
    "MAX_EVENT_TYPES",
    "OTHER",
    "PROOF_BUCKETS",
    "RESOLUTION_BUCKETS",
    "UNKNOWN",
    "EngineMetrics",
    "LabelCap",
    "StoreGauges",
    "render",
]
