"""Incident records: what an operator needs to act without opening a trace.

:func:`open_incident` turns a verdict into a record with the expected and observed
state side by side, the deploy that ran, retry guidance derived from which steps'
side effects already happened, and the operator's safe way back.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from accessproof.catalog import Catalog
from accessproof.conventions import Access, Attr, IncidentState, Reason, Step
from accessproof.engine.model import Run
from accessproof.engine.verdict import Observed, Verdict
from accessproof.expect import Expectation

_HEADLINES = {
    Reason.ACCESS_NOT_CHANGED: "Customer access did not change after {event_type}",
    Reason.ACCESS_MISMATCH: "Customer access did not change as expected after "
    "{event_type}",
    Reason.SUBSCRIPTION_MISMATCH: "Local subscription state does not match Stripe "
    "after {event_type}",
    Reason.STEP_FAILED: "A billing step failed after {event_type}",
    Reason.NOTIFICATION_MISSING: "The customer was not notified after {event_type}",
    Reason.WEBHOOK_MISSING: "Billing steps ran without an accepted webhook for "
    "{event_type}",
}


class AccessState(BaseModel):
    """A plan, its features and whether access is granted; ``None`` is unknown."""

    model_config = ConfigDict(frozen=True)

    plan: str | None = None
    features: list[str] | None = None
    access: Access | None = None
    grace: bool = False


class Deploy(BaseModel):
    """What was deployed, from the OpenTelemetry resource of the run's spans."""

    model_config = ConfigDict(frozen=True)

    revision: str | None = None
    service_version: str | None = None
    service_name: str | None = None
    environment: str | None = None


class OperatorPath(BaseModel):
    """Who owns the incident and how to put the customer right, safely."""

    model_config = ConfigDict(frozen=True)

    owner: str | None = None
    runbook: str | None = None
    current_period_end: datetime | None = None
    consequence: str
    safe_action: str
    commands: list[str] = []


@dataclass(frozen=True, slots=True)
class EarlierReadBack:
    """The newest entitlement read-back of an earlier run about the same subscription.

    When a run's own read-back never came, this is the best word on what the
    customer has now.
    """

    event_id: str
    at_ns: int
    observed: Observed


class Incident(BaseModel):
    """One incident of one run.

    ``state`` moves ``open`` -> ``acknowledged`` -> ``resolved`` (or straight
    from ``open`` to ``resolved``). ``resolution`` says why it was resolved:
    ``proven`` (late evidence proved the outcome), ``reason_changed`` (the claim
    it made no longer holds, and a new incident names the new reason) or
    ``superseded`` (a newer provider event decided the customer's access).
    ``observed_from`` is set when the run had no read-back of its own and
    ``observed`` is the newest read-back of an earlier event for the subscription.
    """

    id: str
    reason: Reason
    state: IncidentState = IncidentState.OPEN
    summary: str
    detail: str
    event_id: str
    event_type: str
    customer_id: str | None = None
    subscription_id: str | None = None
    livemode: bool | None = None
    expected: AccessState
    observed: AccessState
    observed_from: str | None = None
    step: Step | None = None
    deploy: Deploy
    trace_ids: list[str]
    retry_guidance: str
    operator: OperatorPath
    links: dict[str, str] = {}
    drill: bool = False
    opened_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None
    resolution_seconds: float | None = None


def new_incident_id() -> str:
    """Return a fresh, unguessable incident id."""
    return "inc_" + secrets.token_hex(10)


def open_incident(
    run: Run,
    verdict: Verdict,
    expectation: Expectation | None,
    catalog: Catalog,
    now_ns: int,
    *,
    earlier: EarlierReadBack | None = None,
) -> Incident:
    """Build the incident record for a run whose verdict is an incident.

    ``earlier`` stands in for the run's own read-back when it has none.
    """
    assert verdict.reason is not None
    facts = run.facts
    event_type = run.event_type or "an unknown event"
    expected = _expected_state(expectation)
    observed = _observed_state(earlier.observed if earlier else verdict.observed)
    observed_from = None
    detail = verdict.detail
    if earlier is not None:
        when = _datetime(earlier.at_ns).isoformat(timespec="seconds")
        observed_from = f"the read-back of {earlier.event_id} at {when}"
        detail += f"; the last read-back ({earlier.event_id}) showed {_name(observed)}"
    owner = catalog.owner_for(run.event_type) if run.event_type else None
    incident_id = new_incident_id()
    return Incident(
        id=incident_id,
        reason=verdict.reason,
        summary=_summary(verdict.reason, event_type, expected, observed),
        detail=detail,
        event_id=run.event_id,
        event_type=run.event_type,
        customer_id=facts.customer_id if facts else None,
        subscription_id=facts.subscription_id if facts else None,
        livemode=facts.livemode if facts else None,
        expected=expected,
        observed=observed,
        observed_from=observed_from,
        step=verdict.step,
        deploy=Deploy(
            revision=run.resource.get(Attr.VCS_REVISION),
            service_version=run.resource.get(Attr.SERVICE_VERSION),
            service_name=run.resource.get(Attr.SERVICE_NAME),
            environment=run.resource.get(Attr.DEPLOYMENT_ENVIRONMENT),
        ),
        trace_ids=list(run.trace_ids),
        retry_guidance=retry_guidance(run, verdict),
        operator=OperatorPath(
            owner=owner.team if owner else None,
            runbook=owner.runbook if owner else None,
            current_period_end=_period_end(run),
            consequence=consequence(expected, observed, verdict.reason),
            safe_action=safe_action(run, verdict, expected),
            commands=_commands(run),
        ),
        links=_links(run, catalog, incident_id),
        drill=run.drill,
        opened_at=_datetime(now_ns),
    )


def _summary(
    reason: Reason, event_type: str, expected: AccessState, observed: AccessState
) -> str:
    headline = _HEADLINES[reason].format(event_type=event_type)
    if reason in (Reason.NOTIFICATION_MISSING, Reason.WEBHOOK_MISSING):
        return headline
    return f"{headline}: expected {_name(expected)}, observed {_name(observed)}"


def _name(state: AccessState) -> str:
    """A plan in a few words: 'pro', 'free (revoked)', 'no read-back'."""
    if state.plan is None and state.access is None:
        return "no read-back" if state.features is None else "features only"
    if state.plan is None:
        return f"access {state.access}"
    if state.access is Access.REVOKED:
        return f"{state.plan} (revoked)"
    return state.plan


def consequence(expected: AccessState, observed: AccessState, reason: Reason) -> str:
    """Say in plain words what the customer lost or got for free."""
    paid = expected.plan or "their plan"
    if reason is Reason.NOTIFICATION_MISSING:
        return "customer access is right, but the customer was not told about it"
    if expected.access is Access.GRANTED:
        if observed.access is Access.REVOKED:
            return f"customer pays for {paid} and has no access"
        if observed.access is None:
            return (
                f"customer pays for {paid}, but their access was never updated "
                "and may still be what it was before"
            )
        if observed.plan and observed.plan != expected.plan:
            return f"customer pays for {paid} and has {observed.plan} access"
        return f"customer pays for {paid} and their access does not match it"
    if expected.access is Access.REVOKED:
        if observed.access is Access.GRANTED:
            kept = observed.plan or "paid"
            return f"customer no longer pays but keeps {kept} access"
        if observed.access is None:
            return (
                "customer no longer pays, but their access was never revoked "
                "and may still be granted"
            )
        return "customer access was revoked, but not as the catalog expects"
    return "the provider state and the app's local state disagree"


def retry_guidance(run: Run, verdict: Verdict) -> str:
    """Derive what is safe to retry from which steps' side effects already happened."""
    done = [step for step in Step if run.latest_success(step) is not None]
    evt = run.event_id
    if verdict.reason is Reason.WEBHOOK_MISSING:
        return (
            f"Later steps ran for {evt}, so its handler most likely answered 200 "
            "and Stripe will not redeliver it; the engine never saw the webhook "
            "step, so it cannot tell the provider state. Check that the handler "
            "records the webhook step, then re-read the subscription from Stripe "
            "and re-run the reconcile and entitlement steps from it."
        )
    if Step.WEBHOOK not in done:
        return (
            f"Stripe will redeliver {evt}: the handler did not accept it. Fix the "
            "handler; no manual replay is needed unless retries are exhausted "
            "(up to 3 days in live mode)."
        )
    redo = [step for step in (Step.RECONCILE, Step.ENTITLEMENT) if step not in done]
    if verdict.reason is Reason.ACCESS_MISMATCH:
        redo = [Step.ENTITLEMENT]
    if verdict.reason is Reason.SUBSCRIPTION_MISMATCH:
        redo = [Step.RECONCILE, Step.ENTITLEMENT]
    if verdict.reason is Reason.NOTIFICATION_MISSING:
        redo = [Step.NOTIFY]
    parts = [f"Stripe will not redeliver {evt}: the handler returned 200."]
    if redo:
        parts.append(f"Re-run the {_join(redo)} step for {evt}.")
    already = [step for step in done if step is not Step.WEBHOOK and step not in redo]
    if already:
        parts.append(
            f"The {_join(already)} step already ran: do not replay the whole event."
        )
    return " ".join(parts)


def safe_action(run: Run, verdict: Verdict, expected: AccessState) -> str:
    """The reconciliation action that cannot make things worse."""
    who = run.facts.customer_id if run.facts and run.facts.customer_id else "customer"
    sub = run.facts.subscription_id if run.facts else None
    source = f"subscription {sub}" if sub else "the customer's subscriptions"
    if verdict.reason is Reason.NOTIFICATION_MISSING:
        return f"Send the {run.event_type} notification to {who} once; access is right."
    if expected.access is None:
        return f"Re-read {source} from Stripe and reconcile {who} from it."
    target = (
        f"{expected.plan} ({expected.access})" if expected.plan else expected.access
    )
    return (
        f"Re-read {source} from Stripe (the newest state wins, not this event's "
        f"copy) and set {who} to {target} through the app's entitlement job."
    )


def _commands(run: Run) -> list[str]:
    """Read-only Stripe CLI commands; every id is shell-quoted, whatever it holds."""
    facts = run.facts
    commands = []
    if facts is not None and facts.subscription_id:
        commands.append(
            f"stripe subscriptions retrieve {shlex.quote(facts.subscription_id)}"
        )
    if facts is not None and facts.customer_id:
        commands.append(
            "stripe entitlements active_entitlements list --customer "
            + shlex.quote(facts.customer_id)
        )
    commands.append(f"stripe events retrieve {shlex.quote(run.event_id)}")
    return commands


def _links(run: Run, catalog: Catalog, incident_id: str) -> dict[str, str]:
    facts = run.facts
    values = {
        "trace_id": run.trace_ids[0] if run.trace_ids else "",
        "event_id": run.event_id,
        "customer_id": (facts.customer_id if facts else None) or "",
        "subscription_id": (facts.subscription_id if facts else None) or "",
        "incident_id": incident_id,
        "livemode": "true" if facts and facts.livemode else "false",
    }
    links = {}
    for name in catalog.links:
        url = catalog.link(name, **values)
        if url:
            links[name] = url
    return links


def _expected_state(expectation: Expectation | None) -> AccessState:
    if expectation is None:
        return AccessState()
    return AccessState(
        plan=expectation.plan,
        features=sorted(expectation.features)
        if expectation.features is not None
        else None,
        access=expectation.access,
        grace=expectation.grace,
    )


def _observed_state(observed: Observed) -> AccessState:
    return AccessState(
        plan=observed.plan,
        features=sorted(observed.features) if observed.features is not None else None,
        access=observed.access,
    )


def _period_end(run: Run) -> datetime | None:
    if run.facts is None or run.facts.current_period_end is None:
        return None
    try:
        return datetime.fromtimestamp(run.facts.current_period_end, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _datetime(now_ns: int) -> datetime:
    return datetime.fromtimestamp(now_ns / 1e9, UTC)


def _join(steps: Sequence[Step]) -> str:
    names = [str(step) for step in steps]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]
