"""The engine's state machine, case by case, on a fake clock and a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accessproof.catalog import Catalog
from accessproof.conventions import (
    DRILL_METADATA_KEY,
    Access,
    DrillMode,
    IncidentState,
    Reason,
    RunState,
    Step,
)
from accessproof.engine import engine as engine_module
from accessproof.engine.clock import FakeClock
from accessproof.engine.engine import (
    Engine,
    EngineEvent,
    IncidentOpened,
    IncidentResolved,
    LateEvidence,
    RunDecided,
)
from accessproof.engine.incidents import Incident
from accessproof.engine.model import Run
from accessproof.store.base import IncidentQuery
from accessproof.store.sqlite import SqliteStore
from tests.engine import spans
from tests.engine.events import invoice_event, subscription_event

NS = spans.NS

CATALOG = {
    "plans": {
        "free": {"features": []},
        "pro": {
            "prices": ["price_1Pro"],
            "lookup_keys": ["pro_monthly"],
            "products": ["prod_Pro"],
            "features": ["api", "exports"],
        },
        "team": {"prices": ["price_1Team"], "features": ["api", "exports", "sso"]},
    },
    "default_plan": "free",
    "steps": {
        "default": {
            "required": ["reconcile", "entitlement", "notify"],
            "deadlines": {"reconcile": "60s", "entitlement": "60s", "notify": "15m"},
        },
        "customer.subscription.deleted": {"required": ["reconcile", "entitlement"]},
    },
    "owners": [
        {
            "match": "customer.subscription.*",
            "team": "billing",
            "runbook": "https://runbooks.example.com/billing/access",
        }
    ],
    "links": {"trace": "https://grafana.example.com/explore?traceId={trace_id}"},
}


class Recorder:
    """A listener that keeps every event the engine announced."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def on_events(self, events: object) -> None:
        assert isinstance(events, list)
        self.events.extend(events)

    def of(self, kind: type) -> list[EngineEvent]:
        return [event for event in self.events if isinstance(event, kind)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "engine.db")
    yield store
    store.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(store: SqliteStore, clock: FakeClock, recorder: Recorder) -> Engine:
    return Engine(
        store, Catalog.model_validate(CATALOG), clock=clock, listeners=[recorder]
    )


def healthy_run(engine: Engine, clock: FakeClock, event: dict[str, object]) -> str:
    """Send the four steps of a healthy run for ``event``; return its id."""
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(spans.batch(spans.webhook(event, now)), "http")
    clock.advance(2)
    engine.ingest(
        spans.batch(
            spans.reconcile(event_id, now + 1 * NS),
            spans.entitlement(event_id, now + 2 * NS),
            spans.notify(event_id, now + 2 * NS),
        ),
        "grpc",
    )
    return event_id


def only_incident(store: SqliteStore, event_id: str) -> Incident:
    incidents = store.incidents_of(event_id)
    assert len(incidents) == 1
    return incidents[0]


def test_healthy_subscription_update_is_proven(
    engine: Engine, store: SqliteStore, clock: FakeClock, recorder: Recorder
) -> None:
    """Every required step with the expected plan proves the run at once."""
    event_id = healthy_run(engine, clock, subscription_event())

    run = store.get_run(event_id)
    assert run is not None
    assert run.state is RunState.PROVEN
    assert run.deadline_ns is None
    decided = recorder.of(RunDecided)
    assert [d.outcome for d in decided] == ["proven"]  # type: ignore[union-attr]
    assert decided[0].proof_seconds == pytest.approx(2.0)  # type: ignore[union-attr]


def test_missing_entitlement_becomes_access_not_changed_at_its_deadline(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """The headline failure: webhook and reconcile ran, entitlement never did."""
    event = subscription_event()
    event_id = str(event["id"])
    start = clock.now_ns()
    engine.ingest(
        spans.batch(spans.webhook(event, start), spans.reconcile(event_id, start + NS)),
        "http",
    )

    clock.advance(59)
    assert engine.tick() == 0
    assert store.get_run(event_id).state is RunState.OPEN  # type: ignore[union-attr]

    clock.advance(1)
    assert engine.tick() == 1
    incident = only_incident(store, event_id)
    assert incident.reason is Reason.ACCESS_NOT_CHANGED
    assert incident.summary.startswith(
        "Customer access did not change after customer.subscription.updated: "
        "expected pro"
    )
    assert incident.expected.plan == "pro"
    assert incident.expected.access is Access.GRANTED
    assert incident.observed.plan is None
    assert incident.customer_id == "cus_QXg1o8vcGmoR32"
    assert incident.subscription_id == "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"
    assert incident.deploy.revision == spans.RESOURCE["vcs.ref.head.revision"]
    assert incident.deploy.service_version == "2.4.1"
    assert incident.operator.owner == "billing"
    assert incident.operator.runbook == "https://runbooks.example.com/billing/access"
    assert incident.operator.current_period_end is not None
    assert "pays for pro" in incident.operator.consequence
    assert "Stripe will not redeliver" in incident.retry_guidance
    assert "Re-run the entitlement step" in incident.retry_guidance
    assert "reconcile step already ran" in incident.retry_guidance
    assert len(incident.trace_ids) == 2
    assert incident.links["trace"].endswith(incident.trace_ids[0])
    assert incident.drill is False


def test_wrong_plan_is_access_mismatch_at_once(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """A read-back of the wrong plan needs no deadline to be an incident."""
    event = subscription_event()
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(event, now),
            spans.reconcile(event_id, now),
            spans.entitlement(event_id, now, plan="free", features=()),
        ),
        "http",
    )

    incident = only_incident(store, event_id)
    assert incident.reason is Reason.ACCESS_MISMATCH
    assert incident.summary.endswith("expected pro, observed free")
    assert incident.observed.plan == "free"
    assert incident.operator.consequence == "customer pays for pro and has free access"


def test_late_entitlement_resolves_the_incident_with_its_duration(
    engine: Engine, store: SqliteStore, clock: FakeClock, recorder: Recorder
) -> None:
    """Evidence after an incident that proves the outcome resolves it."""
    event = subscription_event()
    event_id = str(event["id"])
    start = clock.now_ns()
    engine.ingest(
        spans.batch(spans.webhook(event, start), spans.reconcile(event_id, start)),
        "http",
    )
    clock.advance(61)
    engine.tick()

    clock.advance(30)
    engine.ingest(
        spans.batch(
            spans.entitlement(event_id, clock.now_ns()),
            spans.notify(event_id, clock.now_ns()),
        ),
        "http",
    )

    run = store.get_run(event_id)
    assert run is not None
    assert run.state is RunState.RESOLVED
    incident = only_incident(store, event_id)
    assert incident.state is IncidentState.RESOLVED
    assert incident.resolution == "proven"
    assert incident.resolution_seconds == pytest.approx(30.0)
    resolved = recorder.of(IncidentResolved)
    assert len(resolved) == 1


def test_older_event_after_a_newer_one_is_superseded(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """Out of order: the newest provider state decides, the older run is moot."""
    newer = subscription_event(created=2_000, status="canceled")
    older = subscription_event(created=1_000)
    newer_id = str(newer["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(newer, now),
            spans.reconcile(newer_id, now, status="canceled", plan="free"),
            spans.entitlement(
                newer_id, now, plan="free", features=(), access=Access.REVOKED
            ),
        ),
        "http",
    )
    engine.ingest(spans.batch(spans.webhook(older, now + NS)), "http")

    old_run = store.get_run(str(older["id"]))
    assert old_run is not None
    assert old_run.state is RunState.SUPERSEDED
    assert old_run.superseded_by == newer_id
    clock.advance(3600)
    engine.tick()
    assert store.incidents_of(str(older["id"])) == []


def test_open_run_is_superseded_by_a_newer_event_and_its_incident_closed(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """A newer event moots an older run's incident: resolved as superseded."""
    older = subscription_event(created=1_000)
    newer = subscription_event(created=2_000)
    engine.ingest(spans.batch(spans.webhook(older, clock.now_ns())), "http")
    clock.advance(61)
    engine.tick()
    assert only_incident(store, str(older["id"])).state is IncidentState.OPEN

    engine.ingest(spans.batch(spans.webhook(newer, clock.now_ns())), "http")

    run = store.get_run(str(older["id"]))
    assert run is not None
    assert run.state is RunState.SUPERSEDED
    incident = only_incident(store, str(older["id"]))
    assert incident.state is IncidentState.RESOLVED
    assert incident.resolution == "superseded"


def test_duplicate_delivery_is_one_run_and_a_later_attempt_proves_it(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """Stripe's at-least-once delivery: one event id, one run, last attempt wins."""
    event = subscription_event()
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(event, now),
            spans.reconcile(event_id, now),
            spans.entitlement(event_id, now, ok=False),
        ),
        "http",
    )
    clock.advance(10)
    later = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(event, later),
            spans.entitlement(event_id, later),
            spans.notify(event_id, later),
        ),
        "http",
    )

    run = store.get_run(event_id)
    assert run is not None
    assert run.state is RunState.PROVEN
    assert len(run.attempts[Step.WEBHOOK]) == 2
    assert len(run.attempts[Step.ENTITLEMENT]) == 2


def test_failed_step_without_a_later_success_is_step_failed(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """An error span and no successful retry by the deadline names the failure."""
    event = subscription_event()
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(event, now),
            spans.reconcile(event_id, now),
            spans.entitlement(event_id, now, ok=False),
        ),
        "http",
    )
    clock.advance(60)
    engine.tick()

    incident = only_incident(store, event_id)
    assert incident.reason is Reason.STEP_FAILED
    assert "jobs.EntitlementError" in incident.detail


def test_steps_before_the_webhook_are_kept_until_it_arrives(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """A worker's spans can reach the engine first; the run waits for facts."""
    event = subscription_event()
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.reconcile(event_id, now + NS),
            spans.entitlement(event_id, now + NS),
            spans.notify(event_id, now + NS),
        ),
        "grpc",
    )
    assert store.get_run(event_id).state is RunState.OPEN  # type: ignore[union-attr]

    engine.ingest(spans.batch(spans.webhook(event, now)), "http")

    assert store.get_run(event_id).state is RunState.PROVEN  # type: ignore[union-attr]


def test_steps_without_any_webhook_become_webhook_missing(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """Later steps for an event whose webhook never came are an incident."""
    event_id = "evt_1NoWebhookEverArrived"
    engine.ingest(spans.batch(spans.entitlement(event_id, clock.now_ns())), "grpc")
    clock.advance(15 * 60)
    engine.tick()

    incident = only_incident(store, event_id)
    assert incident.reason is Reason.WEBHOOK_MISSING


def test_missing_notification_is_its_own_reason(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """Access right but no notify step within its deadline."""
    event = subscription_event()
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(event, now),
            spans.reconcile(event_id, now),
            spans.entitlement(event_id, now),
        ),
        "http",
    )
    clock.advance(14 * 60)
    engine.tick()
    assert store.get_run(event_id).state is RunState.OPEN  # type: ignore[union-attr]
    clock.advance(60)
    engine.tick()

    incident = only_incident(store, event_id)
    assert incident.reason is Reason.NOTIFICATION_MISSING
    assert incident.summary == (
        "The customer was not notified after customer.subscription.updated"
    )


def test_reconciled_status_unlike_stripe_is_subscription_mismatch(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """The local subscription row must say what Stripe says."""
    event = subscription_event(status="past_due")
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(event, now), spans.reconcile(event_id, now, status="active")
        ),
        "http",
    )

    incident = only_incident(store, event_id)
    assert incident.reason is Reason.SUBSCRIPTION_MISMATCH
    assert "'past_due'" in incident.detail


def test_unmapped_price_is_access_mismatch_naming_the_price(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """A price the catalog cannot map is never a silent pass."""
    event = subscription_event(price="price_1Unknown", lookup_key=None, product=None)
    engine.ingest(spans.batch(spans.webhook(event, clock.now_ns())), "http")

    incident = only_incident(store, str(event["id"]))
    assert incident.reason is Reason.ACCESS_MISMATCH
    assert "price_1Unknown" in incident.detail


def test_observed_plan_outside_the_catalog_is_access_mismatch(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """A read-back naming a plan the catalog does not know is named."""
    event = subscription_event()
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(event, now),
            spans.entitlement(event_id, now, plan="pro-legacy"),
        ),
        "http",
    )

    incident = only_incident(store, event_id)
    assert incident.reason is Reason.ACCESS_MISMATCH
    assert "'pro-legacy' is not in the catalog" in incident.detail


def test_a_reason_that_changes_resolves_the_old_incident_and_opens_a_new_one(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """access_not_changed, then a wrong read-back: two incidents, one open."""
    event = subscription_event()
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(spans.webhook(event, now), spans.reconcile(event_id, now)),
        "http",
    )
    clock.advance(60)
    engine.tick()
    clock.advance(5)
    engine.ingest(
        spans.batch(spans.entitlement(event_id, clock.now_ns(), plan="free")), "http"
    )

    first, second = store.incidents_of(event_id)
    assert (first.reason, first.state, first.resolution) == (
        Reason.ACCESS_NOT_CHANGED,
        IncidentState.RESOLVED,
        "reason_changed",
    )
    assert (second.reason, second.state) == (
        Reason.ACCESS_MISMATCH,
        IncidentState.OPEN,
    )


def test_cancellation_expects_revoked_access_to_the_default_plan(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """customer.subscription.deleted is proven by a revoked read-back."""
    event = subscription_event("customer.subscription.deleted", status="canceled")
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(event, now),
            spans.reconcile(event_id, now, status="canceled", plan="free"),
            spans.entitlement(
                event_id, now, plan="free", features=(), access=Access.REVOKED
            ),
        ),
        "http",
    )

    assert store.get_run(event_id).state is RunState.PROVEN  # type: ignore[union-attr]


def test_drill_incidents_are_flagged(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """A drill run's incident says so, so alerts can route it apart."""
    event = subscription_event(
        metadata={DRILL_METADATA_KEY: DrillMode.SKIP_ENTITLEMENT.value}
    )
    event_id = str(event["id"])
    engine.ingest(spans.batch(spans.webhook(event, clock.now_ns())), "http")
    clock.advance(61)
    engine.tick()

    incident = only_incident(store, event_id)
    assert incident.drill is True
    drills, _ = store.list_incidents(IncidentQuery(drill=True))
    real, _ = store.list_incidents(IncidentQuery(drill=False))
    assert [i.id for i in drills] == [incident.id]
    assert real == []


def test_open_runs_survive_a_restart_and_their_deadline_still_fires(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Durability: a new engine over the same file fires the old run's deadline."""
    catalog = Catalog.model_validate(CATALOG)
    path = tmp_path / "restart.db"
    event = subscription_event()
    first = SqliteStore(path)
    Engine(first, catalog, clock=clock).ingest(
        spans.batch(spans.webhook(event, clock.now_ns())), "http"
    )
    first.close()

    second = SqliteStore(path)
    engine = Engine(second, catalog, clock=clock)
    clock.advance(59)
    assert engine.tick() == 0
    clock.advance(1)
    assert engine.tick() == 1
    assert only_incident(second, str(event["id"])).reason is Reason.ACCESS_NOT_CHANGED
    second.close()


def test_decided_runs_are_removed_after_retention_and_a_redelivery_starts_fresh(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """Retention bounds the store; a later delivery of a removed event is new."""
    event = subscription_event()
    event_id = healthy_run(engine, clock, event)
    clock.advance(7 * 24 * 3600 + 120)
    engine.tick()
    assert store.get_run(event_id) is None

    engine.ingest(spans.batch(spans.webhook(event, clock.now_ns())), "http")
    run = store.get_run(event_id)
    assert run is not None
    assert run.state is RunState.OPEN
    assert len(run.attempts[Step.WEBHOOK]) == 1


def test_evidence_after_proof_counts_as_late(
    engine: Engine, clock: FakeClock, recorder: Recorder
) -> None:
    """A span for a proven run is kept and counted, not re-judged."""
    event_id = healthy_run(engine, clock, subscription_event())
    engine.ingest(spans.batch(spans.notify(event_id, clock.now_ns())), "http")

    assert [e.step for e in recorder.of(LateEvidence)] == [  # type: ignore[union-attr]
        Step.NOTIFY
    ]


def test_without_a_catalog_access_is_judged_from_status_alone(
    store: SqliteStore, clock: FakeClock
) -> None:
    """The built-in catalog proves a run on access, whatever the plan name."""
    engine = Engine(store, Catalog.builtin(), clock=clock)
    event = subscription_event()
    event_id = str(event["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(event, now),
            spans.reconcile(event_id, now, plan="anything"),
            spans.entitlement(event_id, now, plan="anything"),
        ),
        "http",
    )

    assert store.get_run(event_id).state is RunState.PROVEN  # type: ignore[union-attr]


def test_incident_opened_events_reach_listeners_once(
    engine: Engine, clock: FakeClock, recorder: Recorder
) -> None:
    """Each incident is announced once, after it is durable."""
    event = subscription_event()
    engine.ingest(spans.batch(spans.webhook(event, clock.now_ns())), "http")
    clock.advance(61)
    engine.tick()
    engine.tick()

    assert len(recorder.of(IncidentOpened)) == 1


def test_a_missing_read_back_is_compared_with_the_last_one_for_the_subscription(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """An upgrade whose job never ran: observed is what the customer still has."""
    before = subscription_event(created=1_000, price="price_1Team", lookup_key=None)
    before_id = str(before["id"])
    now = clock.now_ns()
    engine.ingest(
        spans.batch(
            spans.webhook(before, now),
            spans.reconcile(before_id, now, plan="team"),
            spans.entitlement(
                before_id, now, plan="team", features=("api", "exports", "sso")
            ),
            spans.notify(before_id, now),
        ),
        "http",
    )
    clock.advance(3600)
    upgrade = subscription_event(created=5_000)
    engine.ingest(spans.batch(spans.webhook(upgrade, clock.now_ns())), "http")
    clock.advance(60)
    engine.tick()

    incident = only_incident(store, str(upgrade["id"]))
    assert incident.reason is Reason.ACCESS_NOT_CHANGED
    assert incident.summary == (
        "Customer access did not change after customer.subscription.updated: "
        "expected pro, observed team"
    )
    assert incident.observed.plan == "team"
    assert incident.observed_from is not None
    assert before_id in incident.observed_from
    assert incident.operator.consequence == "customer pays for pro and has team access"


def test_incidents_outlive_retention_until_something_decides_them(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """Retention removes finished runs only: an open incident stays visible."""
    event = subscription_event()
    engine.ingest(spans.batch(spans.webhook(event, clock.now_ns())), "http")
    clock.advance(61)
    engine.tick()
    clock.advance(8 * 24 * 3600)
    engine.tick()

    run = store.get_run(str(event["id"]))
    assert run is not None
    assert run.state is RunState.INCIDENT
    assert store.open_incident_counts() == {Reason.ACCESS_NOT_CHANGED: 1}


@pytest.mark.parametrize(
    "later",
    [
        invoice_event("invoice.payment_failed", created=2_000),
        invoice_event("invoice.paid", created=2_000),
        subscription_event("customer.subscription.trial_will_end", created=2_000),
    ],
    ids=["invoice.payment_failed", "invoice.paid", "trial_will_end"],
)
def test_events_without_subscription_state_supersede_nothing(
    engine: Engine, store: SqliteStore, clock: FakeClock, later: dict[str, object]
) -> None:
    """An invoice or a reminder after an upgrade does not moot the upgrade."""
    upgrade = subscription_event(created=1_000)
    engine.ingest(spans.batch(spans.webhook(upgrade, clock.now_ns())), "http")
    engine.ingest(spans.batch(spans.webhook(later, clock.now_ns())), "http")
    clock.advance(61)
    engine.tick()

    run = store.get_run(str(upgrade["id"]))
    assert run is not None
    assert run.state is RunState.INCIDENT
    assert only_incident(store, str(upgrade["id"])).reason is Reason.ACCESS_NOT_CHANGED


def test_a_run_that_cannot_be_decided_does_not_hold_up_the_others(
    engine: Engine,
    store: SqliteStore,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One run's failure is logged and retried; the rest of the tick commits."""
    poisoned = subscription_event(subscription="sub_poisoned")
    healthy = subscription_event(subscription="sub_healthy")
    original = engine_module.open_incident

    def open_incident(run: Run, *args: object, **kwargs: object) -> Incident:
        if run.event_id == poisoned["id"]:
            raise ValueError("unforeseen data")
        return original(run, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_module, "open_incident", open_incident)
    now = clock.now_ns()
    engine.ingest(
        spans.batch(spans.webhook(poisoned, now), spans.webhook(healthy, now)), "http"
    )
    clock.advance(61)
    engine.tick()

    assert only_incident(store, str(healthy["id"])).reason is Reason.ACCESS_NOT_CHANGED
    stuck = store.get_run(str(poisoned["id"]))
    assert stuck is not None
    assert stuck.state is RunState.OPEN
    assert stuck.deadline_ns == clock.now_ns() + 60 * NS

    monkeypatch.setattr(engine_module, "open_incident", original)
    clock.advance(60)
    engine.tick()
    assert only_incident(store, str(poisoned["id"])).reason is Reason.ACCESS_NOT_CHANGED


def test_without_a_log_publisher_nothing_waits_in_the_outbox(
    store: SqliteStore, clock: FakeClock
) -> None:
    """An engine that exports no incident records queues none."""
    engine = Engine(
        store,
        Catalog.model_validate(CATALOG),
        clock=clock,
        export_incidents=False,
    )
    engine.ingest(spans.batch(spans.webhook(subscription_event(), clock.now_ns())), "x")
    clock.advance(61)
    engine.tick()

    assert store.open_incident_counts() == {Reason.ACCESS_NOT_CHANGED: 1}
    assert store.pending_exports(10) == []


def test_webhook_missing_guidance_does_not_promise_a_redelivery(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    """Later steps ran, so the handler answered 200: Stripe will not resend."""
    event_id = "evt_1OnlyTheWorkerSpoke"
    engine.ingest(spans.batch(spans.entitlement(event_id, clock.now_ns())), "grpc")
    clock.advance(15 * 60)
    engine.tick()

    guidance = only_incident(store, event_id).retry_guidance
    assert "Stripe will not redeliver" in guidance
    assert "Stripe will redeliver" not in guidance
