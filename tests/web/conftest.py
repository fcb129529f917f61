"""A real engine on a real SQLite store, fed spans, behind the real web app.

:func:`world` drives an :class:`Engine` with a fake clock through five Stripe
events: one proven, one whose read-back reports a plan name full of markup, one
drill, one whose entitlement step never arrives, and one whose late entitlement
resolves its incident.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from accessproof.catalog import Catalog
from accessproof.conventions import DRILL_FALSE_PLAN, Access, Attr, DrillMode, Step
from accessproof.engine.clock import FakeClock
from accessproof.engine.engine import Engine
from accessproof.engine.evidence import Decoded, SpanEvidence
from accessproof.facts import ProviderFacts
from accessproof.redact import AttributeValue
from accessproof.store.sqlite import SqliteStore
from accessproof.web import WebContext, build_web_app

_T = TypeVar("_T")

TOKEN = "s3cret-api-token-for-tests"
VERSION = "0.1.0-test"
MARKUP_PLAN = "<script>alert(1)</script>"
REVISION = "9f1c2ab47e3d"
SUBSCRIPTION_UPDATED = "customer.subscription.updated"
SUBSCRIPTION_CREATED = "customer.subscription.created"
RUNBOOK = "https://runbooks.example.com/billing/access"
TRACE_TEMPLATE = "https://grafana.example.com/explore?traceId={trace_id}"
RESOURCE = {
    Attr.SERVICE_NAME: "billing-worker",
    Attr.SERVICE_VERSION: "2.4.1",
    Attr.DEPLOYMENT_ENVIRONMENT: "production",
    Attr.VCS_REVISION: REVISION,
}

CATALOG = Catalog.model_validate(
    {
        "plans": {
            "free": {"features": []},
            "pro": {"prices": ["price_1Pro"], "features": ["api", "exports"]},
        },
        "default_plan": "free",
        "owners": [
            {"match": "customer.subscription.*", "team": "billing", "runbook": RUNBOOK}
        ],
        "links": {"trace": TRACE_TEMPLATE},
    }
)


@dataclass
class World:
    """The store, clock and engine after the scenario, and the ids it made."""

    store: SqliteStore
    clock: FakeClock
    engine: Engine
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    ready: list[bool] = field(default_factory=lambda: [True])
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def context(self, **overrides: Any) -> WebContext:
        """A web context over this world; keyword arguments replace fields."""
        values: dict[str, Any] = {
            "store": self.store,
            "clock": self.clock,
            "registry": self.registry,
            "catalog": CATALOG,
            "version": VERSION,
            "ready": lambda: self.ready[0],
        }
        values.update(overrides)
        return WebContext(**values)

    def incident_of(self, event_id: str) -> str:
        """The id of the newest incident of an event's run."""
        run = self.store.get_run(event_id)
        assert run is not None
        assert run.incident_ids
        return run.incident_ids[-1]

    def send(self, *spans: SpanEvidence) -> None:
        self.engine.ingest(Decoded(evidence=list(spans)), "http")

    def span(
        self,
        event_id: str,
        step: Step,
        attributes: dict[str, AttributeValue] | None = None,
    ) -> SpanEvidence:
        """One successful span of a step, ending now on the fake clock."""
        number = next(self._ids)
        now = self.clock.now_ns()
        return SpanEvidence(
            event_id=event_id,
            step=step,
            trace_id=f"{number + 1:032x}",
            span_id=f"{number + 1:016x}",
            start_ns=now - 1_000_000,
            end_ns=now,
            ok=True,
            attributes={
                Attr.EVENT_ID: event_id,
                Attr.STEP: step.value,
                **(attributes or {}),
            },
            resource=dict(RESOURCE),
        )

    def webhook(
        self,
        event_id: str,
        subscription_id: str,
        *,
        event_type: str = SUBSCRIPTION_UPDATED,
        drill: DrillMode | None = None,
    ) -> SpanEvidence:
        """The webhook span of an active pro subscription's event."""
        facts = ProviderFacts(
            event_id=event_id,
            event_type=event_type,
            created=self.clock.now_ns() // 1_000_000_000,
            livemode=False,
            customer_id="cus_" + subscription_id.removeprefix("sub_"),
            subscription_id=subscription_id,
            status="active",
            cancel_at_period_end=False,
            current_period_end=1_702_592_000,
            price_ids=("price_1Pro",),
            drill_mode=drill,
        )
        return self.span(event_id, Step.WEBHOOK, facts.to_attributes())

    def reconcile(self, event_id: str) -> SpanEvidence:
        return self.span(
            event_id,
            Step.RECONCILE,
            {Attr.RECONCILED_STATUS: "active", Attr.RECONCILED_PLAN: "pro"},
        )

    def entitlement(self, event_id: str, plan: str) -> SpanEvidence:
        return self.span(
            event_id,
            Step.ENTITLEMENT,
            {
                Attr.OBSERVED_PLAN: plan,
                Attr.OBSERVED_FEATURES: ("api", "exports"),
                Attr.OBSERVED_ACCESS: Access.GRANTED.value,
            },
        )


PROVEN = "evt_1Proven"
MARKUP = "evt_1Markup"
DRILL = "evt_1Drill"
MISSING = "evt_1Missing"
LATE = "evt_1Late"


def build_world(path: Path) -> World:
    """Run the five events of the scenario through a real engine."""
    store = SqliteStore(path / "accessproof.db")
    clock = FakeClock()
    world = World(store, clock, Engine(store, CATALOG, clock=clock))

    for event_id, sub in ((PROVEN, "sub_1Proven"), (MARKUP, "sub_1Markup")):
        plan = "pro" if event_id == PROVEN else MARKUP_PLAN
        world.send(world.webhook(event_id, sub), world.reconcile(event_id))
        world.send(world.entitlement(event_id, plan))

    clock.advance(1)
    world.send(
        world.webhook(
            DRILL,
            "sub_1Drill",
            event_type=SUBSCRIPTION_CREATED,
            drill=DrillMode.FALSIFY_ENTITLEMENT,
        ),
        world.reconcile(DRILL),
    )
    world.send(world.entitlement(DRILL, DRILL_FALSE_PLAN))

    clock.advance(1)
    for event_id, sub in ((MISSING, "sub_1Missing"), (LATE, "sub_1Late")):
        world.send(world.webhook(event_id, sub), world.reconcile(event_id))
    clock.advance(70)
    world.engine.tick()

    clock.advance(10)
    world.send(world.entitlement(LATE, "pro"))
    clock.advance(50)
    return world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path)
    yield built
    built.store.close()


def with_client(
    world: World,
    scenario: Callable[[TestClient[Any, Any]], Awaitable[_T]],
    **overrides: Any,
) -> _T:
    """Serve the app on a loopback port and run ``scenario`` against it."""

    async def main() -> _T:
        server = TestServer(build_web_app(world.context(**overrides)), host="127.0.0.1")
        async with TestClient(server) as client:
            return await scenario(client)

    return asyncio.run(main())


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
