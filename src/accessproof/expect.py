"""Provider facts and the catalog in, the access a customer should have out.

The engine, not the app, decides what an event should have done, so a bug in the
app's own plan mapping is caught rather than repeated. Everything here is a pure
function of :class:`~accessproof.facts.ProviderFacts` and the catalog: no I/O, no
clock, no validation framework, because it runs once per run on the hot path.

The event type is only a trigger. What the customer should have comes from the
state the event carries (the subscription's status and items, the entitlement
summary's lookup keys), following Stripe's rules as written down in the design.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from accessproof.conventions import Access, AccessPolicy

if TYPE_CHECKING:
    from accessproof.catalog import Catalog, PlanMatch
    from accessproof.facts import ProviderFacts


class EventType:
    """The Stripe event types whose meaning for access accessproof knows."""

    SUBSCRIPTION_CREATED: Final = "customer.subscription.created"
    SUBSCRIPTION_UPDATED: Final = "customer.subscription.updated"
    SUBSCRIPTION_RESUMED: Final = "customer.subscription.resumed"
    SUBSCRIPTION_PENDING_UPDATE_APPLIED: Final = (
        "customer.subscription.pending_update_applied"
    )
    SUBSCRIPTION_DELETED: Final = "customer.subscription.deleted"
    SUBSCRIPTION_PAUSED: Final = "customer.subscription.paused"
    SUBSCRIPTION_TRIAL_WILL_END: Final = "customer.subscription.trial_will_end"
    CHECKOUT_COMPLETED: Final = "checkout.session.completed"
    CHECKOUT_ASYNC_SUCCEEDED: Final = "checkout.session.async_payment_succeeded"
    CHECKOUT_ASYNC_FAILED: Final = "checkout.session.async_payment_failed"
    CHECKOUT_EXPIRED: Final = "checkout.session.expired"
    INVOICE_PAID: Final = "invoice.paid"
    INVOICE_PAYMENT_SUCCEEDED: Final = "invoice.payment_succeeded"
    INVOICE_PAYMENT_FAILED: Final = "invoice.payment_failed"
    INVOICE_PAYMENT_ACTION_REQUIRED: Final = "invoice.payment_action_required"
    ENTITLEMENT_SUMMARY_UPDATED: Final = (
        "entitlements.active_entitlement_summary.updated"
    )
    CUSTOMER_DELETED: Final = "customer.deleted"


#: Every status a Stripe subscription can have.
SUBSCRIPTION_STATUSES: Final = frozenset(
    {
        "trialing",
        "active",
        "past_due",
        "incomplete",
        "incomplete_expired",
        "unpaid",
        "canceled",
        "paused",
    }
)

#: Statuses a subscription never leaves: a tie in time goes to them.
TERMINAL_STATUSES: Final = frozenset({"canceled", "incomplete_expired"})

#: Subscription events whose status decides access.
SUBSCRIPTION_STATE_EVENTS: Final = frozenset(
    {
        EventType.SUBSCRIPTION_CREATED,
        EventType.SUBSCRIPTION_UPDATED,
        EventType.SUBSCRIPTION_RESUMED,
        EventType.SUBSCRIPTION_PENDING_UPDATE_APPLIED,
        EventType.SUBSCRIPTION_DELETED,
        EventType.SUBSCRIPTION_PAUSED,
    }
)

#: Event types that can change access; the catalog's default steps apply to them.
ACCESS_EVENT_TYPES: Final = SUBSCRIPTION_STATE_EVENTS | {
    EventType.CHECKOUT_COMPLETED,
    EventType.CHECKOUT_ASYNC_SUCCEEDED,
    EventType.INVOICE_PAID,
    EventType.INVOICE_PAYMENT_SUCCEEDED,
    EventType.ENTITLEMENT_SUMMARY_UPDATED,
    EventType.CUSTOMER_DELETED,
}

_GRANTING_PAYMENT_STATUSES: Final = frozenset({"paid", "no_payment_required"})
_SUBSCRIPTION_MODE: Final = "subscription"
_CUSTOMER_SUBJECT_PREFIX: Final = "customer:"


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a customer should have after one provider event.

    ``access`` is ``None`` when the event implies no change of access; ``plan``
    and ``features`` are ``None`` when they cannot be judged (no plans in the
    catalog, or an event that does not say). ``problem`` names what made the
    expectation impossible, such as a price the catalog cannot map; the engine
    reports it as ``access_mismatch``. ``basis`` is one plain sentence for the
    incident record.
    """

    access: Access | None
    plan: str | None
    features: frozenset[str] | None
    grace: bool = False
    features_partial: bool = False
    problem: str | None = None
    basis: str = ""


def expect(facts: ProviderFacts, catalog: Catalog) -> Expectation:
    """Return the access, plan and features the event's provider state implies."""
    if facts.event_type in SUBSCRIPTION_STATE_EVENTS:
        return _from_subscription(facts, catalog)
    handler = _HANDLERS.get(facts.event_type)
    if handler is None:
        return _no_change(
            f"event type {facts.event_type or '(none)'} changes no access"
        )
    return handler(facts, catalog)


def newer(a: ProviderFacts, b: ProviderFacts) -> bool:
    """Return whether ``a`` carries newer provider state than ``b``.

    Both are about the same subscription. ``event.created`` decides first; Stripe
    gives it in whole seconds, so ties fall to the state itself: the later period
    end, then a terminal status over a live one, then the event id, only so that
    every replica breaks the last tie the same way.
    """
    for ours, theirs in (
        (a.created, b.created),
        (a.current_period_end, b.current_period_end),
    ):
        if ours is not None and theirs is not None and ours != theirs:
            return ours > theirs

    a_terminal = a.status in TERMINAL_STATUSES
    if a_terminal != (b.status in TERMINAL_STATUSES):
        return a_terminal
    return a.event_id > b.event_id


def carries_state(facts: ProviderFacts) -> bool:
    """Whether an event carries the subscription's (or entitlements') own state.

    Only such events take part in "the newest provider state decides": an
    invoice, a checkout session or a trial reminder says nothing about the
    subscription's current state, so it must not supersede a run that does.
    """
    if facts.event_type == EventType.ENTITLEMENT_SUMMARY_UPDATED:
        return True
    return facts.status is not None and facts.event_type in SUBSCRIPTION_STATE_EVENTS


def subject_of(facts: ProviderFacts) -> str | None:
    """Return the key within which a newer event supersedes an older one.

    The subscription id; for an entitlement summary, which is per customer,
    ``"customer:"`` and the customer id; ``None`` when the event names neither.
    """
    if facts.subscription_id:
        return facts.subscription_id
    if facts.event_type == EventType.ENTITLEMENT_SUMMARY_UPDATED and facts.customer_id:
        return _CUSTOMER_SUBJECT_PREFIX + facts.customer_id
    return None


def _from_subscription(facts: ProviderFacts, catalog: Catalog) -> Expectation:
    status = facts.status
    if status is None:
        return _unjudged(f"{facts.event_type} carries no subscription status")

    policy = catalog.policy_for(status)
    if policy is None:
        return _unjudged(f"subscription status {status!r} is not one accessproof knows")

    if policy is AccessPolicy.GRACE:
        kept = catalog.grace_access
        why = f"status {status} is in grace, and the catalog's grace policy says {kept}"
        return _with_plan(facts, catalog, catalog.grace_access, why, grace=True)
    if policy is AccessPolicy.REVOKE:
        return _revoked(catalog, f"status {status} revokes access")

    why = f"status {status} grants access"
    if facts.cancel_at_period_end:
        why += " until the period ends (cancel_at_period_end)"
    return _with_plan(facts, catalog, Access.GRANTED, why)


def _with_plan(
    facts: ProviderFacts,
    catalog: Catalog,
    access: Access,
    why: str,
    *,
    grace: bool = False,
) -> Expectation:
    if access is Access.REVOKED:
        return _revoked(catalog, why, grace=grace)
    if not catalog.has_plans:
        return Expectation(access, None, None, grace=grace, basis=_sentence(why))

    match = catalog.match_plan(facts.price_ids, facts.lookup_keys, facts.product_ids)
    if match.plan is None:
        problem = _unmapped_problem(facts, match)
        basis = _sentence(why)
        return Expectation(access, None, None, grace, problem=problem, basis=basis)

    basis = _sentence(f"{why}; {_mapped_by(match)}")
    return Expectation(
        access, match.plan, catalog.features_of(match.plan), grace, basis=basis
    )


def _revoked(catalog: Catalog, why: str, *, grace: bool = False) -> Expectation:
    if not catalog.has_plans:
        return Expectation(
            Access.REVOKED, None, None, grace=grace, basis=_sentence(why)
        )
    plan = catalog.default_plan
    basis = _sentence(f"{why}; the customer falls back to plan {plan}")
    return Expectation(
        Access.REVOKED, plan, catalog.features_of(plan), grace, basis=basis
    )


def _unmapped_problem(facts: ProviderFacts, match: PlanMatch) -> str:
    if not match.ids:
        return f"{facts.event_type} names no price, lookup key or product to map"
    if len(match.ids) > 1:
        return f"{match.kind}s {', '.join(match.ids)} are not in the catalog"
    return f"{match.kind} {match.ids[0]} is not in the catalog"


def _mapped_by(match: PlanMatch) -> str:
    return f"{match.kind} {match.ids[0]} maps to plan {match.plan}"


def _from_checkout(facts: ProviderFacts, catalog: Catalog) -> Expectation:
    mode = facts.checkout_mode
    paid = facts.checkout_payment_status
    if mode != _SUBSCRIPTION_MODE:
        return _no_change(f"a checkout in {mode or 'unknown'} mode starts no plan")
    if paid not in _GRANTING_PAYMENT_STATUSES:
        return _no_change(
            f"payment_status {paid or 'unknown'}: nothing is granted until payment "
            f"succeeds"
        )
    return Expectation(
        Access.GRANTED,
        None,
        None,
        basis=_sentence(
            f"a subscription checkout with payment_status {paid} grants access; "
            f"the subscription's own events say which plan"
        ),
    )


def _from_checkout_failure(facts: ProviderFacts, catalog: Catalog) -> Expectation:
    return _no_change(
        f"the event {facts.event_type} granted nothing, so access does not change"
    )


def _from_invoice_paid(facts: ProviderFacts, catalog: Catalog) -> Expectation:
    if not facts.subscription_id:
        return _no_change("the invoice is not for a subscription")

    why = f"a paid invoice for {facts.subscription_id} grants access through its period"
    if not catalog.has_plans:
        return Expectation(Access.GRANTED, None, None, basis=_sentence(why))

    match = catalog.match_plan(facts.price_ids, facts.lookup_keys, facts.product_ids)
    if match.plan is None and (facts.price_ids or facts.product_ids):
        problem = _unmapped_problem(facts, match)
        basis = _sentence(why)
        return Expectation(Access.GRANTED, None, None, problem=problem, basis=basis)
    if match.plan is None:
        why += "; its lines name no price, so the plan is not judged"
        return Expectation(Access.GRANTED, None, None, basis=_sentence(why))
    basis = _sentence(f"{why}; {_mapped_by(match)}")
    features = catalog.features_of(match.plan)
    return Expectation(Access.GRANTED, match.plan, features, basis=basis)


def _from_invoice_failure(facts: ProviderFacts, catalog: Catalog) -> Expectation:
    return _no_change(
        f"the event {facts.event_type} never revokes on its own; the subscription's "
        f"status decides what happens next"
    )


def _from_entitlements(facts: ProviderFacts, catalog: Catalog) -> Expectation:
    keys = frozenset(facts.entitlement_lookup_keys or ())
    partial = bool(facts.entitlement_has_more)
    access = Access.GRANTED if keys else Access.REVOKED

    listed = ", ".join(sorted(keys)) if keys else "no features"
    why = f"the active entitlement summary lists {listed}"
    if partial:
        why += " (the first page only: Stripe has more)"
    return Expectation(
        access, None, keys, features_partial=partial, basis=_sentence(why)
    )


def _from_customer_deleted(facts: ProviderFacts, catalog: Catalog) -> Expectation:
    return _revoked(catalog, "the customer was deleted, which revokes everything")


def _from_trial_will_end(facts: ProviderFacts, catalog: Catalog) -> Expectation:
    return _no_change("the trial's end is announced; nothing changes yet")


def _no_change(why: str) -> Expectation:
    return Expectation(None, None, None, basis=_sentence(why))


def _unjudged(problem: str) -> Expectation:
    basis = _sentence(f"nothing can be expected: {problem}")
    return Expectation(None, None, None, problem=problem, basis=basis)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


_Handler = Callable[["ProviderFacts", "Catalog"], Expectation]

_HANDLERS: Final[Mapping[str, _Handler]] = {
    EventType.SUBSCRIPTION_TRIAL_WILL_END: _from_trial_will_end,
    EventType.CHECKOUT_COMPLETED: _from_checkout,
    EventType.CHECKOUT_ASYNC_SUCCEEDED: _from_checkout,
    EventType.CHECKOUT_ASYNC_FAILED: _from_checkout_failure,
    EventType.CHECKOUT_EXPIRED: _from_checkout_failure,
    EventType.INVOICE_PAID: _from_invoice_paid,
    EventType.INVOICE_PAYMENT_SUCCEEDED: _from_invoice_paid,
    EventType.INVOICE_PAYMENT_FAILED: _from_invoice_failure,
    EventType.INVOICE_PAYMENT_ACTION_REQUIRED: _from_invoice_failure,
    EventType.ENTITLEMENT_SUMMARY_UPDATED: _from_entitlements,
    EventType.CUSTOMER_DELETED: _from_customer_deleted,
}
