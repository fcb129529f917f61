"""Expected access: what each Stripe event's provider state says a customer has."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from accessproof.catalog import Catalog
from accessproof.conventions import Access
from accessproof.expect import Expectation, expect, newer, subject_of
from accessproof.facts import ProviderFacts, facts_from_event
from tests.engine import events
from tests.engine.events import Price

CATALOG = Catalog.model_validate(
    {
        "plans": {
            "free": {"features": ["community"]},
            "pro": {
                "prices": ["price_1Pro", "price_1ProYearly"],
                "lookup_keys": ["pro_monthly"],
                "products": ["prod_Pro"],
                "features": ["api", "exports"],
            },
            "team": {
                "lookup_keys": ["team_monthly"],
                "products": ["prod_Team"],
                "features": ["api", "exports", "sso"],
            },
        },
        "default_plan": "free",
    }
)
PRO = frozenset({"api", "exports"})
FREE = frozenset({"community"})
NO_PLANS = Catalog.builtin()


def judged(event: dict[str, Any], catalog: Catalog = CATALOG) -> Expectation:
    """Judge an event the way the engine does: from its webhook span's attributes."""
    facts = facts_from_event(event)
    return expect(ProviderFacts.from_attributes(facts.to_attributes()), catalog)


def outcome(expectation: Expectation) -> tuple[object, ...]:
    return (
        expectation.access,
        expectation.plan,
        expectation.features,
        expectation.grace,
        expectation.problem,
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("trialing", (Access.GRANTED, "pro", PRO, False, None)),
        ("active", (Access.GRANTED, "pro", PRO, False, None)),
        ("past_due", (Access.GRANTED, "pro", PRO, True, None)),
        ("incomplete", (Access.REVOKED, "free", FREE, False, None)),
        ("incomplete_expired", (Access.REVOKED, "free", FREE, False, None)),
        ("unpaid", (Access.REVOKED, "free", FREE, False, None)),
        ("canceled", (Access.REVOKED, "free", FREE, False, None)),
        ("paused", (Access.REVOKED, "free", FREE, False, None)),
    ],
)
@pytest.mark.parametrize(
    "event_type",
    [
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.resumed",
        "customer.subscription.pending_update_applied",
    ],
)
def test_subscription_status_decides_access_and_plan(
    event_type: str, status: str, expected: tuple[object, ...]
) -> None:
    """Each status grants, keeps in grace or revokes; revoked falls to the default."""
    expectation = judged(events.subscription_event(event_type, status=status))

    assert outcome(expectation) == expected
    assert expectation.basis


def test_subscription_deleted_revokes_to_the_default_plan() -> None:
    """A deleted subscription is canceled: access is revoked, the customer is free."""
    expectation = judged(
        events.subscription_event("customer.subscription.deleted", status="canceled")
    )

    assert outcome(expectation) == (Access.REVOKED, "free", FREE, False, None)
    assert "free" in expectation.basis


def test_subscription_paused_revokes_access() -> None:
    """A paused subscription revokes access by default."""
    expectation = judged(
        events.subscription_event("customer.subscription.paused", status="paused")
    )

    assert outcome(expectation) == (Access.REVOKED, "free", FREE, False, None)


def test_cancel_at_period_end_still_grants_until_the_period_ends() -> None:
    """An active subscription set to cancel keeps its plan for now."""
    expectation = judged(
        events.subscription_event(status="active", cancel_at_period_end=True)
    )

    assert outcome(expectation) == (Access.GRANTED, "pro", PRO, False, None)
    assert "cancel_at_period_end" in expectation.basis


def test_the_catalog_access_policy_overrides_the_defaults() -> None:
    """A team that keeps paused customers in gets a grant for paused."""
    catalog = Catalog.model_validate(
        {**CATALOG.model_dump(), "access": {"paused": "grant", "past_due": "revoke"}}
    )

    paused = judged(events.subscription_event(status="paused"), catalog)
    past_due = judged(events.subscription_event(status="past_due"), catalog)

    assert outcome(paused) == (Access.GRANTED, "pro", PRO, False, None)
    assert outcome(past_due) == (Access.REVOKED, "free", FREE, False, None)


def test_a_revoking_grace_policy_revokes_past_due_and_flags_grace() -> None:
    """With grace_access revoked, past_due loses access under the grace policy."""
    catalog = Catalog.model_validate(
        {**CATALOG.model_dump(), "grace_access": "revoked"}
    )

    expectation = judged(events.subscription_event(status="past_due"), catalog)

    assert outcome(expectation) == (Access.REVOKED, "free", FREE, True, None)


def test_lookup_key_maps_when_the_price_id_is_unknown() -> None:
    """A new price under a known lookup key still maps to its plan."""
    event = events.subscription_event(
        items=[Price("price_3Team2026", "team_monthly", "prod_Other")]
    )

    assert judged(event).plan == "team"
    assert "team_monthly" in judged(event).basis


def test_price_id_decides_over_lookup_key_and_product() -> None:
    """The price id's plan wins even when the lookup key points elsewhere."""
    event = events.subscription_event(
        items=[Price("price_1ProYearly", "team_monthly", "prod_Team")]
    )

    assert judged(event).plan == "pro"


def test_an_unmapped_price_is_a_problem_naming_it() -> None:
    """A granting subscription on a price the catalog lacks cannot pass silently."""
    event = events.subscription_event(
        items=[Price("price_9Enterprise", None, "prod_Enterprise")]
    )

    expectation = judged(event)

    assert outcome(expectation) == (
        Access.GRANTED,
        None,
        None,
        False,
        "price price_9Enterprise is not in the catalog",
    )


def test_an_unmapped_price_on_a_revoked_subscription_is_no_problem() -> None:
    """A canceled subscription revokes to the default plan whatever its price was."""
    event = events.subscription_event(
        "customer.subscription.deleted",
        status="canceled",
        items=[Price("price_9Enterprise", None, "prod_Enterprise")],
    )

    assert outcome(judged(event)) == (Access.REVOKED, "free", FREE, False, None)


def test_a_subscription_without_items_is_a_problem() -> None:
    """A granting subscription that names no price cannot be placed in a plan."""
    expectation = judged(events.subscription_event(price=None))

    assert expectation.access is Access.GRANTED
    assert expectation.plan is None
    assert expectation.problem is not None
    assert "no price" in expectation.problem


@pytest.mark.parametrize(
    ("status", "access"),
    [
        ("active", Access.GRANTED),
        ("past_due", Access.GRANTED),
        ("canceled", Access.REVOKED),
        ("incomplete", Access.REVOKED),
    ],
)
def test_without_plans_only_access_is_judged(status: str, access: Access) -> None:
    """The built-in catalog judges access from status and leaves plans alone."""
    event = events.subscription_event(
        status=status, items=[Price("price_anything", None, "prod_anything")]
    )

    expectation = judged(event, NO_PLANS)

    assert (expectation.access, expectation.plan, expectation.features) == (
        access,
        None,
        None,
    )
    assert expectation.problem is None


def test_a_subscription_event_without_status_is_a_problem() -> None:
    """Facts that lost the status cannot be judged and say why."""
    facts = dataclasses.replace(
        facts_from_event(events.subscription_event()), status=None
    )

    expectation = expect(facts, CATALOG)

    assert expectation.access is None
    assert expectation.problem == (
        "customer.subscription.updated carries no subscription status"
    )


def test_an_unknown_status_is_a_problem_naming_it() -> None:
    """A status Stripe might add later is reported, not guessed."""
    expectation = judged(events.subscription_event(status="dormant"))

    assert expectation.access is None
    assert expectation.problem is not None
    assert "'dormant'" in expectation.problem


def test_trial_will_end_changes_nothing() -> None:
    """The trial's end is only announced; access stays as it is."""
    expectation = judged(
        events.subscription_event(
            "customer.subscription.trial_will_end", status="trialing"
        )
    )

    assert outcome(expectation) == (None, None, None, False, None)
    assert expectation.basis


@pytest.mark.parametrize(
    ("event_type", "mode", "payment_status", "access"),
    [
        ("checkout.session.completed", "subscription", "paid", Access.GRANTED),
        (
            "checkout.session.completed",
            "subscription",
            "no_payment_required",
            Access.GRANTED,
        ),
        ("checkout.session.completed", "subscription", "unpaid", None),
        ("checkout.session.completed", "payment", "paid", None),
        ("checkout.session.completed", "setup", "no_payment_required", None),
        (
            "checkout.session.async_payment_succeeded",
            "subscription",
            "paid",
            Access.GRANTED,
        ),
        ("checkout.session.async_payment_failed", "subscription", "unpaid", None),
        ("checkout.session.expired", "subscription", "unpaid", None),
    ],
)
def test_checkout_grants_only_paid_subscription_sessions(
    event_type: str, mode: str, payment_status: str, access: Access | None
) -> None:
    """Only a paid or free subscription checkout grants; the rest change nothing."""
    event = events.checkout_event(event_type, mode=mode, payment_status=payment_status)

    expectation = judged(event)

    assert outcome(expectation) == (access, None, None, False, None)
    assert expectation.basis


@pytest.mark.parametrize("event_type", ["invoice.paid", "invoice.payment_succeeded"])
def test_a_paid_invoice_grants_its_subscription_plan(event_type: str) -> None:
    """A paid subscription invoice grants access with the plan of its line's price."""
    expectation = judged(events.invoice_event(event_type))

    assert outcome(expectation) == (Access.GRANTED, "pro", PRO, False, None)


def test_a_paid_invoice_whose_prices_all_miss_the_catalog_is_a_problem() -> None:
    """A subscription invoice no line of which maps to a plan is never a silent
    pass: the unmapped price is named."""
    event = events.invoice_event(price="price_onboarding", product="prod_setup")

    expectation = judged(event)

    assert expectation.access is Access.GRANTED
    assert expectation.plan is None
    assert expectation.problem is not None
    assert "price_onboarding" in expectation.problem


def test_a_paid_invoice_of_no_subscription_changes_nothing() -> None:
    """An invoice outside any subscription grants no plan."""
    expectation = judged(
        events.invoice_event(subscription=None, billing_reason="manual")
    )

    assert outcome(expectation) == (None, None, None, False, None)


@pytest.mark.parametrize(
    "event_type", ["invoice.payment_failed", "invoice.payment_action_required"]
)
@pytest.mark.parametrize(
    "billing_reason", ["subscription_create", "subscription_cycle"]
)
def test_a_failed_payment_never_revokes_on_its_own(
    event_type: str, billing_reason: str
) -> None:
    """The subscription's status, not the invoice, says what a failure costs."""
    event = events.invoice_event(
        event_type, billing_reason=billing_reason, attempt_count=3
    )

    expectation = judged(event)

    assert outcome(expectation) == (None, None, None, False, None)
    assert "never revokes" in expectation.basis


def test_an_entitlement_summary_expects_its_lookup_keys() -> None:
    """Expected features are exactly the summary's lookup keys, with access."""
    event = events.entitlement_summary_event(["api", "sso"])

    expectation = judged(event)

    assert outcome(expectation) == (
        Access.GRANTED,
        None,
        frozenset({"api", "sso"}),
        False,
        None,
    )
    assert not expectation.features_partial


def test_an_entitlement_summary_with_more_pages_is_partial() -> None:
    """With has_more the listed features are only a subset of what is expected."""
    expectation = judged(events.entitlement_summary_event(["api"], has_more=True))

    assert expectation.features == frozenset({"api"})
    assert expectation.features_partial


def test_an_empty_entitlement_summary_revokes() -> None:
    """No active entitlements means no access."""
    expectation = judged(events.entitlement_summary_event([]), NO_PLANS)

    assert outcome(expectation) == (Access.REVOKED, None, frozenset(), False, None)


def test_a_deleted_customer_loses_everything() -> None:
    """customer.deleted revokes access down to the default plan."""
    expectation = judged(events.customer_event("customer.deleted"))

    assert outcome(expectation) == (Access.REVOKED, "free", FREE, False, None)


def test_a_deleted_customer_without_plans_is_revoked_without_a_plan() -> None:
    """Without plans the default plan is only a name, so no plan is expected."""
    expectation = judged(events.customer_event("customer.deleted"), NO_PLANS)

    assert outcome(expectation) == (Access.REVOKED, None, None, False, None)


@pytest.mark.parametrize(
    "event",
    [
        events.customer_event("customer.updated"),
        events.invoice_event("invoice.created"),
        events.event("product.updated", events.resource("product")),
    ],
    ids=["customer.updated", "invoice.created", "product.updated"],
)
def test_other_event_types_change_nothing(event: dict[str, Any]) -> None:
    """Event types outside the access rules imply no change of access."""
    assert outcome(judged(event)) == (None, None, None, False, None)


def facts(
    created: int = events.CREATED,
    period_end: int | None = None,
    status: str = "active",
    event_id: str = "evt_1",
) -> ProviderFacts:
    return ProviderFacts(
        event_id=event_id,
        event_type="customer.subscription.updated",
        created=created,
        subscription_id=events.SUBSCRIPTION,
        status=status,
        current_period_end=period_end,
    )


def test_a_later_event_is_newer_whatever_its_state() -> None:
    """event.created decides before any state of the object."""
    later = facts(created=events.CREATED + 1, period_end=100, event_id="evt_a")
    earlier = facts(created=events.CREATED, period_end=200, status="canceled")

    assert newer(later, earlier)
    assert not newer(earlier, later)


def test_a_tie_in_time_goes_to_the_later_period_end() -> None:
    """In the same second, the state with the later period end is newer."""
    renewed = facts(period_end=events.CREATED + events.MONTH, event_id="evt_a")
    current = facts(period_end=events.CREATED, event_id="evt_b")

    assert newer(renewed, current)
    assert not newer(current, renewed)


@pytest.mark.parametrize("terminal", ["canceled", "incomplete_expired"])
def test_a_tie_in_time_and_period_goes_to_a_terminal_status(terminal: str) -> None:
    """A status the subscription never leaves beats a live one at the same time."""
    ended = facts(period_end=5, status=terminal, event_id="evt_a")
    live = facts(period_end=5, status="active", event_id="evt_b")

    assert newer(ended, live)
    assert not newer(live, ended)


def test_the_event_id_breaks_the_last_tie_stably() -> None:
    """With nothing else to tell them apart, exactly one of two events is newer."""
    first = facts(period_end=5, event_id="evt_1Aaa")
    second = facts(period_end=5, event_id="evt_1Bbb")

    assert newer(second, first)
    assert not newer(first, second)
    assert not newer(first, first)


def test_an_unknown_period_end_skips_that_tie_break() -> None:
    """A missing period end does not count as earlier; the next rule decides."""
    canceled = facts(period_end=None, status="canceled", event_id="evt_a")
    active = facts(period_end=events.CREATED, status="active", event_id="evt_b")

    assert newer(canceled, active)


def test_newer_reads_real_events_in_delivery_order() -> None:
    """An update delivered before its creation is still the newer state."""
    created = facts_from_event(
        events.subscription_event("customer.subscription.created", status="incomplete")
    )
    updated = facts_from_event(
        events.subscription_event(
            "customer.subscription.updated",
            status="active",
            created=events.CREATED + 2,
        )
    )

    assert newer(updated, created)


def test_subject_is_the_subscription_for_subscription_events() -> None:
    """Subscription, checkout and invoice events share their subscription's key."""
    keys = {
        subject_of(facts_from_event(event))
        for event in (
            events.subscription_event(),
            events.checkout_event(),
            events.invoice_event(),
        )
    }

    assert keys == {events.SUBSCRIPTION}


def test_subject_of_an_entitlement_summary_is_its_customer() -> None:
    """Entitlement summaries are per customer, keyed apart from subscription ids."""
    summary = facts_from_event(events.entitlement_summary_event(customer="cus_Q1"))

    assert subject_of(summary) == "customer:cus_Q1"


def test_an_event_without_subscription_or_summary_has_no_subject() -> None:
    """A customer.deleted or a one-off invoice supersedes nothing."""
    deleted = facts_from_event(events.customer_event("customer.deleted"))
    one_off = facts_from_event(events.invoice_event(subscription=None))

    assert subject_of(deleted) is None
    assert subject_of(one_off) is None
