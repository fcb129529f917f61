"""accessproof.testing: a team's handler, driven and judged inside its own tests."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import TracerProvider

import accessproof
from accessproof.conventions import Access, DrillMode, Reason, RunState, Step
from accessproof.testing import (
    CapturedRuns,
    Price,
    SignedEvent,
    capture_runs,
    signed_event,
)
from accessproof.testing.pytest_plugin import SignedEventFactory

SECRET = "whsec_" + "5" * 32

CATALOG: dict[str, Any] = {
    "plans": {
        "free": {"features": []},
        "pro": {"prices": ["price_1Pro"], "features": ["api", "exports"]},
    },
    "default_plan": "free",
    "steps": {"default": {"required": ["reconcile", "entitlement"]}},
}
PLANS = {"price_1Pro": ("pro", ["api", "exports"])}


def handle(
    delivery: SignedEvent,
    provider: TracerProvider,
    *,
    secret: str = SECRET,
    grant: bool = True,
) -> None:
    """A small billing handler: verify, queue, and run the job in-process."""
    run = accessproof.verify_and_open(
        delivery.body, delivery.header, secret, tracer_provider=provider
    )
    job = {"event_id": run.event_id, "carrier": run.carrier(), "event": run.event}

    worker = accessproof.resume(
        job["event_id"], job["carrier"], tracer_provider=provider
    )
    sub = job["event"]["data"]["object"]
    plan, features = PLANS[sub["items"]["data"][0]["price"]["id"]]
    with worker.step(Step.RECONCILE) as step:
        step.record(status=sub["status"], plan=plan)
    if not grant:
        return
    with worker.step(Step.ENTITLEMENT) as step:
        step.observe(plan=plan, features=features, access=Access.GRANTED)


def test_an_instrumented_handler_is_judged_proven() -> None:
    """A handler that changes and reads back the entitlement would be proven."""
    delivery = signed_event(SECRET, customer="cus_team", prices=[Price("price_1Pro")])

    with capture_runs() as captured:
        handle(delivery, captured.tracer_provider)

    assert captured[delivery.id].steps == ["webhook", "reconcile", "entitlement"]
    verdict = captured.judge(CATALOG)[delivery.id]
    assert (verdict.state, verdict.reason) == (RunState.PROVEN, None)
    assert verdict.proven


def test_a_handler_that_never_changes_access_is_judged_access_not_changed() -> None:
    """Without the entitlement step, the deadline makes the run an incident."""
    delivery = signed_event(SECRET, customer="cus_team", prices=[Price("price_1Pro")])

    with capture_runs() as captured:
        handle(delivery, captured.tracer_provider, grant=False)

    verdict = captured.judge(CATALOG)[delivery.id]
    assert verdict.reason is Reason.ACCESS_NOT_CHANGED
    assert verdict.caught
    assert verdict.incident is not None
    assert verdict.incident.summary == (
        "Customer access did not change after customer.subscription.updated: "
        "expected pro, observed no read-back"
    )


def test_a_run_judged_before_its_deadline_is_still_open() -> None:
    """``after`` shorter than the deadline leaves a missing step waiting, not failed."""
    delivery = signed_event(SECRET, customer="cus_team", prices=[Price("price_1Pro")])

    with capture_runs() as captured:
        handle(delivery, captured.tracer_provider, grant=False)

    assert captured.judge(CATALOG, after=1)[delivery.id].state is RunState.OPEN


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (DrillMode.FALSIFY_ENTITLEMENT, Reason.ACCESS_MISMATCH),
        (DrillMode.SKIP_ENTITLEMENT, Reason.ACCESS_NOT_CHANGED),
    ],
)
def test_fixtures_show_a_drill_event_would_be_caught(
    accessproof_capture: CapturedRuns,
    accessproof_webhook_secret: str,
    signed_stripe_event: SignedEventFactory,
    mode: DrillMode,
    reason: Reason,
) -> None:
    """The plugin's fixtures drive a drill event through the handler to its incident."""
    delivery = signed_stripe_event(customer="cus_team", drill=mode)

    handle(
        delivery, accessproof_capture.tracer_provider, secret=accessproof_webhook_secret
    )

    verdict = accessproof_capture.judge(CATALOG)[delivery.id]
    assert verdict.reason is reason
    assert verdict.incident is not None
    assert verdict.incident.drill is True


def test_capturing_on_the_apps_provider_stops_when_the_block_ends() -> None:
    """Spans ended after the block are not captured on a provider the app owns."""
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider

    provider = SdkProvider()
    first = signed_event(SECRET, customer="cus_team")
    later = signed_event(SECRET, customer="cus_team")

    with capture_runs(provider) as captured:
        handle(first, provider)
    handle(later, provider)

    assert list(captured.runs()) == [first.id]
    provider.shutdown()
