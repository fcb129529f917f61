"""Runs and incidents to store, with every field the documents carry filled in."""

from __future__ import annotations

from datetime import UTC, datetime

from accessproof.conventions import (
    Access,
    Attr,
    DrillMode,
    IncidentState,
    Reason,
    RunState,
    Step,
)
from accessproof.engine.incidents import (
    AccessState,
    Deploy,
    Incident,
    OperatorPath,
    new_incident_id,
)
from accessproof.engine.model import Attempt, Run
from accessproof.facts import ProviderFacts

#: A fixed instant the samples count from, in unix nanoseconds.
T0 = 1_700_000_000 * 1_000_000_000
SECOND = 1_000_000_000

EVENT_TYPE = "customer.subscription.updated"


def facts(event_id: str, *, subscription: str = "sub_1") -> ProviderFacts:
    """Provider facts with tuples, flags and an enum, as a webhook span gives."""
    return ProviderFacts(
        event_id=event_id,
        event_type=EVENT_TYPE,
        created=1_700_000_000,
        livemode=False,
        customer_id="cus_1",
        subscription_id=subscription,
        status="active",
        cancel_at_period_end=False,
        current_period_end=1_702_592_000,
        price_ids=("price_pro",),
        lookup_keys=("pro_monthly",),
        product_ids=("prod_pro",),
        entitlement_lookup_keys=("api", "exports"),
        drill_mode=DrillMode.HEALTHY,
    )


def run(
    event_id: str,
    *,
    state: RunState = RunState.OPEN,
    deadline_ns: int | None = None,
    decided_ns: int | None = None,
) -> Run:
    """A run with facts, attempts of two steps, a resource and an incident id."""
    return Run(
        event_id=event_id,
        first_seen_ns=T0,
        facts=facts(event_id),
        attempts={
            Step.WEBHOOK: [Attempt("ab" * 16, "01" * 8, T0, ok=True, received_ns=T0)],
            Step.ENTITLEMENT: [
                Attempt(
                    "ab" * 16,
                    "02" * 8,
                    T0 + SECOND,
                    ok=False,
                    error_type="TimeoutError",
                    attributes={
                        Attr.OBSERVED_FEATURES: ("api", "exports"),
                        Attr.OBSERVED_ACCESS: "granted",
                    },
                    received_ns=T0 + 2 * SECOND,
                )
            ],
        },
        resource={Attr.SERVICE_NAME: "billing", Attr.VCS_REVISION: "abc123"},
        trace_ids=["ab" * 16],
        drill=True,
        state=state,
        reason=Reason.STEP_FAILED if state is RunState.INCIDENT else None,
        deadline_ns=deadline_ns,
        decided_ns=decided_ns,
        incident_ids=["inc_" + "0" * 20] if state is RunState.INCIDENT else [],
    )


def incident(
    event_id: str,
    *,
    opened_ns: int = T0,
    reason: Reason = Reason.ACCESS_NOT_CHANGED,
    state: IncidentState = IncidentState.OPEN,
    event_type: str = EVENT_TYPE,
    drill: bool = False,
) -> Incident:
    """An incident of a run, opened at ``opened_ns``."""
    return Incident(
        id=new_incident_id(),
        reason=reason,
        state=state,
        summary="Customer access did not change",
        detail="the entitlement step did not arrive",
        event_id=event_id,
        event_type=event_type,
        customer_id="cus_1",
        subscription_id="sub_1",
        livemode=False,
        expected=AccessState(plan="pro", features=["api"], access=Access.GRANTED),
        observed=AccessState(),
        step=Step.ENTITLEMENT,
        deploy=Deploy(revision="abc123", service_name="billing"),
        trace_ids=["ab" * 16],
        retry_guidance="Re-run the entitlement step.",
        operator=OperatorPath(
            consequence="customer pays for pro and has no access",
            safe_action="Re-read the subscription from Stripe.",
        ),
        drill=drill,
        opened_at=datetime.fromtimestamp(opened_ns / SECOND, UTC),
    )
