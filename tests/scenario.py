"""Real runs sent to a real engine through the library and the OTLP exporter.

The scenarios Prometheus-facing tests need: a healthy run, then broken ones of
every kind the alerts and dashboards look for, each made of spans the library
produces and the real OTLP/HTTP exporter delivers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import accessproof
from accessproof.conventions import DRILL_METADATA_KEY, Attr, DrillMode
from tests.engine.events import subscription_event
from tests.harness import EngineThread

REVISION = "0c1d2e3f4a5b6c7d8e9f00112233445566778899"

#: Short deadlines so the scenario's incidents arrive in seconds.
CATALOG: dict[str, Any] = {
    "plans": {
        "free": {"features": []},
        "pro": {"prices": ["price_1Pro"], "features": ["api", "exports"]},
    },
    "steps": {
        "default": {
            "required": ["reconcile", "entitlement", "notify"],
            "deadlines": {"reconcile": "1s", "entitlement": "1s", "notify": "1s"},
        }
    },
}

PRO = {"plan": "pro", "features": ["api", "exports"], "access": "granted"}


@contextmanager
def exporting_to(engine: EngineThread) -> Iterator[TracerProvider]:
    """A tracer provider that sends every span to the engine at once."""
    provider = TracerProvider(
        resource=Resource.create(
            {
                Attr.SERVICE_NAME: "billing-app",
                Attr.SERVICE_VERSION: "3.1.4",
                Attr.VCS_REVISION: REVISION,
            }
        )
    )
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=engine.traces_url))
    )
    try:
        yield provider
    finally:
        provider.shutdown()


@dataclass
class Scenario:
    """Drives runs into one engine and remembers what it sent."""

    engine: EngineThread
    provider: TracerProvider
    created: int = 1_790_000_000
    event_ids: dict[str, str] = field(default_factory=dict)

    def _event(self, **overrides: Any) -> dict[str, Any]:
        self.created += 10
        return subscription_event(created=self.created, **overrides)

    def run(
        self,
        name: str,
        *,
        observe: dict[str, Any] | None = None,
        notify: bool = True,
        drill: DrillMode | None = None,
    ) -> str:
        """Send one run's spans; ``observe=None`` skips the entitlement step."""
        metadata = {DRILL_METADATA_KEY: drill.value} if drill else {}
        event = self._event(
            subscription=f"sub_{name}", customer=f"cus_{name}", metadata=metadata
        )
        run = accessproof.open_run(event, tracer_provider=self.provider)
        with run.step("reconcile") as step:
            step.record(status="active", plan="pro")
        if observe is not None:
            with run.step("entitlement") as step:
                step.observe(**observe)
        if notify:
            with run.step("notify") as step:
                step.record(channel="email", template="plan_changed")
        self.event_ids[name] = run.event_id
        return run.event_id

    def late_entitlement(self, event_id: str) -> None:
        """The entitlement step of an earlier run, arriving after its deadline."""
        run = accessproof.resume(event_id, tracer_provider=self.provider)
        with run.step("entitlement") as step:
            step.observe(**PRO)

    def rejected_span(self) -> None:
        """A span that claims a run but names no valid Stripe event id."""
        tracer = self.provider.get_tracer("scenario")
        tracer.start_span(
            "accessproof.webhook",
            attributes={Attr.EVENT_ID: "not-an-event", Attr.STEP: "webhook"},
        ).end()

    def foreign_span(self) -> None:
        """A span of the app that is no run's: accepted, counted, ignored."""
        self.provider.get_tracer("scenario").start_span("GET /healthz").end()

    def wait(self, name: str, *states: str) -> dict[str, Any]:
        return self.engine.wait_for_state(self.event_ids[name], *states)


def healthy(scenario: Scenario) -> str:
    """One proven run; returns its first trace id (the proof's exemplar)."""
    scenario.run("healthy", observe=PRO)
    run = scenario.wait("healthy", "proven")
    return str(run["trace_ids"][0])


def broken(scenario: Scenario) -> None:
    """Every kind of trouble the alerts and dashboards watch for."""
    scenario.run("never_changed", observe=None)
    scenario.run("wrong_plan", observe={**PRO, "plan": "free", "features": []})
    scenario.run("not_notified", observe=PRO, notify=False)
    scenario.run("drill", observe=PRO, drill=DrillMode.FALSIFY_ENTITLEMENT)
    scenario.run("resolved_late", observe=None)
    scenario.rejected_span()
    scenario.foreign_span()
    scenario.wait("resolved_late", "incident")
    scenario.late_entitlement(scenario.event_ids["resolved_late"])
    scenario.run("late_evidence", observe=PRO)
    scenario.wait("late_evidence", "proven")
    scenario.late_entitlement(scenario.event_ids["late_evidence"])
    for name in ("never_changed", "wrong_plan", "not_notified", "drill"):
        scenario.wait(name, "incident")
    scenario.wait("resolved_late", "resolved")
