"""Evidence for engine tests: the spans an instrumented app would send."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from accessproof.conventions import Access, Attr, Step
from accessproof.engine.evidence import Decoded, SpanEvidence
from accessproof.facts import facts_from_event
from accessproof.redact import AttributeValue

NS = 1_000_000_000

RESOURCE = {
    Attr.SERVICE_NAME: "billing-worker",
    Attr.SERVICE_VERSION: "2.4.1",
    Attr.DEPLOYMENT_ENVIRONMENT: "production",
    Attr.VCS_REVISION: "9f3c2e1d4b5a69788796a5b4c3d2e1f001122334",
}


def _span(
    event_id: str,
    step: Step,
    at_ns: int,
    attributes: Mapping[str, AttributeValue],
    *,
    ok: bool = True,
    trace_id: str | None = None,
) -> SpanEvidence:
    attrs: dict[str, AttributeValue] = {
        Attr.EVENT_ID: event_id,
        Attr.STEP: step.value,
        **attributes,
    }
    return SpanEvidence(
        event_id=event_id,
        step=step,
        trace_id=trace_id or secrets.token_hex(16),
        span_id=secrets.token_hex(8),
        start_ns=at_ns - NS // 100,
        end_ns=at_ns,
        ok=ok,
        error_type=None if ok else "jobs.EntitlementError",
        attributes=attrs,
        resource=dict(RESOURCE),
    )


def webhook(event: Mapping[str, Any], at_ns: int, *, ok: bool = True) -> SpanEvidence:
    """The webhook span of a verified event, with its provider facts."""
    facts = facts_from_event(event)
    return _span(facts.event_id, Step.WEBHOOK, at_ns, facts.to_attributes(), ok=ok)


def reconcile(
    event_id: str, at_ns: int, *, status: str = "active", plan: str | None = "pro"
) -> SpanEvidence:
    attrs: dict[str, AttributeValue] = {Attr.RECONCILED_STATUS: status}
    if plan is not None:
        attrs[Attr.RECONCILED_PLAN] = plan
    return _span(event_id, Step.RECONCILE, at_ns, attrs)


def entitlement(
    event_id: str,
    at_ns: int,
    *,
    plan: str | None = "pro",
    features: tuple[str, ...] | None = ("api", "exports"),
    access: Access = Access.GRANTED,
    ok: bool = True,
) -> SpanEvidence:
    attrs: dict[str, AttributeValue] = {Attr.OBSERVED_ACCESS: access.value}
    if plan is not None:
        attrs[Attr.OBSERVED_PLAN] = plan
    if features is not None:
        attrs[Attr.OBSERVED_FEATURES] = features
    return _span(event_id, Step.ENTITLEMENT, at_ns, attrs if ok else {}, ok=ok)


def notify(event_id: str, at_ns: int) -> SpanEvidence:
    return _span(event_id, Step.NOTIFY, at_ns, {Attr.NOTIFY_CHANNEL: "email"})


def batch(*spans: SpanEvidence) -> Decoded:
    """One export request holding these spans."""
    return Decoded(evidence=list(spans))
