"""Fixtures of the deployment tests: a metrics target and a Prometheus scraping it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import choose_encoder

from accessproof.conventions import Outcome, Reason, Step
from tests.deploy.prom import PrometheusServer, running_prometheus

SUBSCRIPTION_UPDATED = "customer.subscription.updated"
SUBSCRIPTION_DELETED = "customer.subscription.deleted"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class EngineMetrics:
    """The engine's metrics as DESIGN.md lists them, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "accessproof_runs", "Decided runs.", ["event_type", "outcome"], registry=r
        )
        self.incidents = Counter(
            "accessproof_incidents",
            "Incidents raised.",
            ["reason", "event_type", "drill"],
            registry=r,
        )
        self.incidents_open = Gauge(
            "accessproof_incidents_open", "Open incidents.", ["reason"], registry=r
        )
        self.runs_open = Gauge("accessproof_runs_open", "Undecided runs.", registry=r)
        self.proof_duration = Histogram(
            "accessproof_proof_duration_seconds",
            "Webhook acceptance to proven verdict.",
            ["event_type"],
            registry=r,
        )
        self.resolution = Histogram(
            "accessproof_incident_resolution_seconds",
            "Incident to resolving evidence.",
            ["reason"],
            registry=r,
        )
        self.spans_received = Counter(
            "accessproof_spans_received", "Spans received.", ["transport"], registry=r
        )
        self.spans_rejected = Counter(
            "accessproof_spans_rejected", "Spans rejected.", ["reason"], registry=r
        )
        self.late_evidence = Counter(
            "accessproof_late_evidence",
            "Evidence after a verdict.",
            ["step"],
            registry=r,
        )
        self.spans_ignored = Counter(
            "accessproof_spans_ignored",
            "Spans without an id.",
            ["transport"],
            registry=r,
        )
        self.build = Info("accessproof_build", "Engine build.", registry=r)

    def start(self) -> None:
        """Declare every series at zero, then record one healthy run."""
        for reason in Reason:
            self.incidents_open.labels(reason=reason.value).set(0)
            for drill in ("true", "false"):
                self.incidents.labels(reason.value, SUBSCRIPTION_UPDATED, drill)
        for outcome in Outcome:
            self.runs.labels(SUBSCRIPTION_UPDATED, outcome.value)
        self.spans_rejected.labels(reason="undecodable")
        self.late_evidence.labels(step=Step.ENTITLEMENT.value)
        self.build.info({"version": "0.1.0"})
        self._healthy_run()

    def broken_run(self) -> None:
        """Record what a broken run, a drill and a late resolution leave behind."""
        self._healthy_run()

        broken = [Reason.ACCESS_NOT_CHANGED, Reason.ACCESS_MISMATCH]
        for reason in [*broken, Reason.NOTIFICATION_MISSING]:
            self.incidents.labels(reason.value, SUBSCRIPTION_UPDATED, "false").inc()
            self.runs.labels(SUBSCRIPTION_UPDATED, Outcome.INCIDENT.value).inc()
        for reason in broken:
            self.incidents_open.labels(reason=reason.value).inc()

        drill = Reason.ACCESS_MISMATCH.value
        self.incidents.labels(drill, SUBSCRIPTION_UPDATED, "true").inc()
        self.resolution.labels(reason=drill).observe(42.0)
        self.late_evidence.labels(step=Step.ENTITLEMENT.value).inc()
        self.spans_rejected.labels(reason="undecodable").inc()
        self.runs_open.set(1)

    def _healthy_run(self) -> None:
        self.spans_received.labels(transport="grpc").inc(4)
        self.spans_received.labels(transport="http").inc(2)
        self.spans_ignored.labels(transport="grpc").inc(3)
        self.runs.labels(SUBSCRIPTION_DELETED, Outcome.PROVEN.value).inc()
        self.proof_duration.labels(event_type=SUBSCRIPTION_UPDATED).observe(
            0.8, exemplar={"trace_id": TRACE_ID}
        )


def _serve(metrics: EngineMetrics) -> ThreadingHTTPServer:
    """Serve ``/metrics``, applying the broken run once the first scrape is out.

    The first scrape sees every series at its starting value, so ``increase()``
    and ``rate()`` over the broken run's counters have two samples to compare.
    """
    scrapes = 0
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            nonlocal scrapes
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            with lock:
                body = encoder(metrics.registry)
                scrapes += 1
                if scrapes == 1:
                    metrics.broken_run()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture(scope="session")
def engine_metrics_target() -> Iterator[str]:
    """``host:port`` of a server exposing the engine's metrics after two runs."""
    metrics = EngineMetrics()
    metrics.start()
    server = _serve(metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def prometheus(engine_metrics_target: str) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping the engine's metrics every second."""
    with running_prometheus([engine_metrics_target]) as server:
        yield server
