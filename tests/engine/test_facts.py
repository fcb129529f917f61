"""Provider facts survive the trip through span attributes, and bad ones do not."""

from __future__ import annotations

import pytest

from accessproof.conventions import Attr
from accessproof.facts import ProviderFacts, facts_from_event
from tests.engine.events import (
    checkout_event,
    entitlement_summary_event,
    invoice_event,
    subscription_event,
)


@pytest.mark.parametrize(
    "event",
    [
        subscription_event(),
        subscription_event("customer.subscription.deleted", status="canceled"),
        invoice_event(),
        checkout_event(),
        entitlement_summary_event(),
    ],
    ids=["subscription", "cancellation", "invoice", "checkout", "entitlements"],
)
def test_facts_round_trip_through_span_attributes(event: dict[str, object]) -> None:
    """What the library puts on the webhook span, the engine reads back."""
    facts = facts_from_event(event)

    assert ProviderFacts.from_attributes(facts.to_attributes()) == facts


@pytest.mark.parametrize(
    "period_end", [1_790_000_000_000, "17900000000000000000000", -5, "²", True]
)
def test_a_timestamp_that_cannot_be_unix_seconds_is_unknown(
    period_end: object,
) -> None:
    """Milliseconds, huge numbers and odd digits never become a period end."""
    attributes = {
        Attr.EVENT_ID: "evt_1Facts",
        Attr.EVENT_TYPE: "customer.subscription.updated",
        Attr.SUBSCRIPTION_CURRENT_PERIOD_END: period_end,
    }

    assert ProviderFacts.from_attributes(attributes).current_period_end is None
