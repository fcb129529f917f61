"""Incidents as OTLP log records, exported from the store's outbox.

The engine writes every incident change (opened, resolved) to an outbox in the
same transaction that decides it. :class:`IncidentLogPublisher` drains that
outbox in order: it emits each entry through an OpenTelemetry SDK
``LoggerProvider``, hands the batch to the OTLP log exporter itself, and removes
the entries from the outbox only after the exporter reported success. A failed
export leaves them in place for the next attempt, with backoff, and entries
left by a stopped engine are exported when it starts again. A crash between the
exporter's success and the outbox update sends a batch twice; nothing else
does.

Records carry only incident fields, which are redacted before they are stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlparse

from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordProcessor,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.util.types import AnyValue

from accessproof.conventions import (
    INCIDENT_EVENT_NAME,
    INCIDENT_PREFIX,
    INSTRUMENTATION_NAME,
    SCHEMA_URL,
    Attr,
    Reason,
    Step,
)
from accessproof.engine.clock import Clock
from accessproof.engine.incidents import AccessState, Incident
from accessproof.instrument._version import __version__
from accessproof.publish.metrics import EngineMetrics
from accessproof.store.base import ExportKind, OutboxEntry, Store

logger = logging.getLogger(__name__)


#: The ``service.name`` of the engine's own resource.
ENGINE_SERVICE_NAME: Final = "accessproof"

DEFAULT_BATCH: Final = 100
DEFAULT_MAX_BACKOFF: Final = 300.0

_SEVERITY: dict[Reason, tuple[SeverityNumber, str]] = {
    Reason.ACCESS_NOT_CHANGED: (SeverityNumber.ERROR, "ERROR"),
    Reason.ACCESS_MISMATCH: (SeverityNumber.ERROR, "ERROR"),
    Reason.SUBSCRIPTION_MISMATCH: (SeverityNumber.WARN, "WARN"),
    Reason.STEP_FAILED: (SeverityNumber.WARN, "WARN"),
    Reason.WEBHOOK_MISSING: (SeverityNumber.WARN, "WARN"),
    Reason.NOTIFICATION_MISSING: (SeverityNumber.INFO, "INFO"),
}
_RESOLVED_SEVERITY = (SeverityNumber.INFO, "INFO")
_NS = 1_000_000_000


def severity_of(kind: ExportKind, reason: Reason) -> tuple[SeverityNumber, str]:
    """Return the severity of a record: by reason when opened, INFO when resolved."""
    if kind is ExportKind.RESOLVED:
        return _RESOLVED_SEVERITY
    return _SEVERITY[reason]


def incident_attributes(incident: Incident) -> dict[str, AnyValue]:
    """Flatten an incident into log record attributes, leaving out unknowns.

    The incident's own fields go under ``accessproof.incident.``; the Stripe
    ids and the deploy keep their wire-contract names, so a log query and a
    trace query use the same keys. The app's ``service.name`` is named
    ``accessproof.incident.service.name``: the record's own resource already
    has ``service.name`` (the engine), and log backends make that one a label.
    """
    own: dict[str, Any] = {
        "id": incident.id,
        "reason": incident.reason.value,
        "state": incident.state.value,
        "drill": incident.drill,
        "detail": incident.detail,
        "step": incident.step.value if incident.step else None,
        "trace_ids": list(incident.trace_ids),
        "retry_guidance": incident.retry_guidance,
        "opened_at": _iso(incident.opened_at),
        "acknowledged_by": incident.acknowledged_by,
        "acknowledged_at": _iso(incident.acknowledged_at),
        "resolved_at": _iso(incident.resolved_at),
        "resolution": incident.resolution,
        "resolution_seconds": incident.resolution_seconds,
        "service.name": incident.deploy.service_name,
        **_access("expected", incident.expected),
        **_access("observed", incident.observed),
        "observed.from": incident.observed_from,
        **_operator(incident),
        **{f"links.{name}": url for name, url in incident.links.items()},
    }
    shared: dict[str, Any] = {
        Attr.EVENT_ID: incident.event_id,
        Attr.EVENT_TYPE: incident.event_type or None,
        Attr.CUSTOMER_ID: incident.customer_id,
        Attr.SUBSCRIPTION_ID: incident.subscription_id,
        Attr.LIVEMODE: incident.livemode,
        Attr.VCS_REVISION: incident.deploy.revision,
        Attr.SERVICE_VERSION: incident.deploy.service_version,
        Attr.DEPLOYMENT_ENVIRONMENT: incident.deploy.environment,
    }
    attributes = {INCIDENT_PREFIX + key: value for key, value in own.items()}
    attributes.update(shared)
    return {key: value for key, value in attributes.items() if value is not None}


def _access(prefix: str, state: AccessState) -> dict[str, Any]:
    return {
        f"{prefix}.plan": state.plan,
        f"{prefix}.features": list(state.features)
        if state.features is not None
        else None,
        f"{prefix}.access": state.access.value if state.access else None,
        f"{prefix}.grace": state.grace or None,
    }


def _operator(incident: Incident) -> dict[str, Any]:
    path = incident.operator
    return {
        "owner": path.owner,
        "runbook": path.runbook,
        "current_period_end": _iso(path.current_period_end),
        "consequence": path.consequence,
        "safe_action": path.safe_action,
        "commands": list(path.commands) or None,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class _Capture(LogRecordProcessor):
    """Keeps what the logger emitted, for the publisher to export itself.

    The SDK's own processors export in the background or swallow the result;
    the publisher must know an export succeeded before it forgets an entry.
    """

    def __init__(self) -> None:
        self.records: list[ReadableLogRecord] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.records.append(
            ReadableLogRecord(
                log_record=log_record.log_record,
                resource=log_record.resource or Resource.get_empty(),
                instrumentation_scope=log_record.instrumentation_scope,
                limits=log_record.limits,
            )
        )

    def take(self) -> list[ReadableLogRecord]:
        records, self.records = self.records, []
        return records

    def shutdown(self) -> None:
        self.records = []

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class IncidentLogPublisher:
    """Export the store's outbox of incident changes as OTLP log records.

    ``drain_once`` is the synchronous unit of work and ``run`` the background
    loop around it. One publisher per store: two draining the same outbox
    would each export the entries they both read.

    >>> exporter = build_log_exporter("http://collector:4317", "grpc")
    >>> publisher = IncidentLogPublisher(store, exporter, clock=SystemClock())
    >>> publisher.drain_once()   # records exported, and removed from the outbox
    2
    """

    def __init__(
        self,
        store: Store,
        exporter: LogRecordExporter,
        *,
        clock: Clock,
        batch: int = DEFAULT_BATCH,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        metrics: EngineMetrics | None = None,
        version: str = __version__,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.store = store
        self.exporter = exporter
        self.clock = clock
        self.batch = batch
        self.max_backoff = max_backoff
        self.metrics = metrics
        self.failures = 0
        self._capture = _Capture()
        self._provider = LoggerProvider(
            # The engine's version travels as the scope's: service.version is
            # an attribute of every record already, naming the app's deploy.
            resource=Resource.create({Attr.SERVICE_NAME: ENGINE_SERVICE_NAME}),
            shutdown_on_exit=False,
        )
        self._provider.add_log_record_processor(self._capture)
        self._logger = self._provider.get_logger(
            INSTRUMENTATION_NAME, version, schema_url=SCHEMA_URL
        )

    def drain_once(self) -> int:
        """Export every pending entry, a batch at a time; return how many went out.

        Stops at the first batch the exporter fails, leaving it and everything
        after it in the outbox; :attr:`failures` counts consecutive failed
        attempts (0 after a success or an empty outbox).
        """
        exported = 0
        while True:
            entries = self.store.pending_exports(self.batch)
            if not entries:
                self.failures = 0
                return exported
            if not self._export(entries):
                self.failures += 1
                return exported
            self.store.exported([entry.seq for entry in entries])
            exported += len(entries)
            if len(entries) < self.batch:
                self.failures = 0
                return exported

    def next_delay(self, interval: float) -> float:
        """Seconds until the next attempt: ``interval``, doubled per failure."""
        if self.failures == 0:
            return interval
        return min(self.max_backoff, interval * 2.0**self.failures)

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Drain the outbox every ``interval`` seconds until ``stop`` is set.

        Exports run in a worker thread (the exporter blocks); after a failure
        the wait doubles up to ``max_backoff``. One last drain runs on stop.
        """
        while not stop.is_set():
            await self._drain_logged()
            try:
                await asyncio.wait_for(stop.wait(), self.next_delay(interval))
            except TimeoutError:
                continue
        await self._drain_logged()

    def shutdown(self) -> None:
        """Release the exporter's connections; entries not exported stay stored."""
        self._provider.shutdown()
        # The SDK's exporter base class leaves shutdown() unannotated.
        self.exporter.shutdown()  # type: ignore[no-untyped-call]

    async def _drain_logged(self) -> None:
        try:
            await asyncio.to_thread(self.drain_once)
        except Exception:
            self.failures += 1
            logger.exception("cannot read the incident outbox")

    def _export(self, entries: Sequence[OutboxEntry]) -> bool:
        self._capture.take()
        for entry in entries:
            self._emit(entry)
        records = self._capture.take()
        try:
            ok = self.exporter.export(records) is LogRecordExportResult.SUCCESS
        except Exception:
            logger.exception("incident log export raised")
            ok = False
        if self.metrics is not None:
            self.metrics.log_export(ok=ok, records=len(records))
        if not ok:
            logger.warning(
                "could not export %d incident records; retrying later", len(records)
            )
        return ok

    def _emit(self, entry: OutboxEntry) -> None:
        incident = entry.incident
        severity, severity_text = severity_of(entry.kind, incident.reason)
        self._logger.emit(
            timestamp=_timestamp_ns(entry),
            observed_timestamp=self.clock.now_ns(),
            context=self._trace_context(incident),
            severity_number=severity,
            severity_text=severity_text,
            body=incident.summary,
            attributes=incident_attributes(incident),
            event_name=INCIDENT_EVENT_NAME,
        )

    def _trace_context(self, incident: Incident) -> Context:
        """A context holding the span the record is about.

        That is the newest attempt at the incident's step, else the webhook
        span, else the run's first trace with no span (the run may have been
        purged from the store by the time its incident is exported).
        """
        trace_id, span_id = _span_of(self.store, incident)
        if trace_id is None and incident.trace_ids:
            trace_id, span_id = incident.trace_ids[0], None
        if trace_id is None:
            # An empty context would make the SDK fall back to the current one.
            return set_span_in_context(INVALID_SPAN, Context())
        span = SpanContext(
            trace_id=int(trace_id, 16),
            span_id=int(span_id, 16) if span_id else 0,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        return set_span_in_context(NonRecordingSpan(span), Context())


def _span_of(store: Store, incident: Incident) -> tuple[str | None, str | None]:
    run = store.get_run(incident.event_id)
    if run is None:
        return None, None
    for step in (incident.step, Step.WEBHOOK):
        attempts = run.attempts.get(step) if step is not None else None
        if attempts:
            newest = max(attempts, key=lambda attempt: attempt.end_ns)
            return newest.trace_id, newest.span_id
    return None, None


def _timestamp_ns(entry: OutboxEntry) -> int:
    incident = entry.incident
    moment = incident.opened_at
    if entry.kind is ExportKind.RESOLVED and incident.resolved_at is not None:
        moment = incident.resolved_at
    return int(moment.timestamp() * _NS)


def build_log_exporter(
    endpoint: str, protocol: str = "grpc", *, timeout: float = 10.0
) -> LogRecordExporter:
    """Return the OTLP log exporter for an endpoint (``grpc`` or ``http``).

    gRPC: ``http://host:4317`` (plain) or ``https://host:4317`` (TLS); a bare
    ``host:4317`` is plain. HTTP: ``http(s)://host:4318``, to which
    ``/v1/logs`` is added when no path is given. Headers, certificates and
    compression come from the standard ``OTEL_EXPORTER_OTLP_LOGS_*`` variables.
    ``timeout`` bounds one export, retries included, in seconds.
    """
    if protocol == "grpc":
        if "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        return GrpcLogExporter(endpoint=endpoint, timeout=timeout)
    if protocol == "http":
        url = urlparse(endpoint)
        if not url.scheme or not url.netloc:
            raise ValueError(f"logs endpoint {endpoint!r}: write http(s)://HOST:PORT")
        if url.path in ("", "/"):
            endpoint = endpoint.rstrip("/") + "/v1/logs"
        return HttpLogExporter(endpoint=endpoint, timeout=timeout)
    raise ValueError(f"logs protocol {protocol!r}: must be 'grpc' or 'http'")


__all__ = [
    "DEFAULT_BATCH",
    "ENGINE_SERVICE_NAME",
    "INCIDENT_EVENT_NAME",
    "INCIDENT_PREFIX",
    "IncidentLogPublisher",
    "build_log_exporter",
    "incident_attributes",
    "severity_of",
]
