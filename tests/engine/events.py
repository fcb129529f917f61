"""Realistic Stripe events for tests, in the shapes of the current API version.

Every object starts from Stripe's own example of its resource (``fixtures3.json``
from Stripe's OpenAPI repository) and gets consistent ids, timestamps and states
on top, so a test exercises the fields real events carry: periods on subscription
items, an invoice's subscription under ``parent.subscription_details``, prices
expanded on items. Each builder returns a plain ``dict`` event, as
``json.loads`` of a webhook body would.

The fixture file is looked up in ``$ACCESSPROOF_STRIPE_FIXTURES``, then in
``tests/fixtures/stripe/``, then in ``../shared/stripe/`` beside the repository.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import secrets
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stripe

FIXTURES_ENV = "ACCESSPROOF_STRIPE_FIXTURES"
API_VERSION = "2026-10-28.endive"

#: ``event.created`` of every event unless a test gives its own.
CREATED = 1_790_000_000
DAY = 86_400
MONTH = 30 * DAY

CUSTOMER = "cus_QXg1o8vcGmoR32"
SUBSCRIPTION = "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"
PRICE = "price_1Pro"
LOOKUP_KEY = "pro_monthly"
PRODUCT = "prod_Pro"

_REPO = Path(__file__).resolve().parents[2]
_FIXTURE_PLACES = (
    _REPO / "tests" / "fixtures" / "stripe" / "fixtures3.json",
    _REPO.parent / "shared" / "stripe" / "fixtures3.json",
)
_UNSET: Any = object()


@dataclass(frozen=True)
class Price:
    """One subscription item's price: its id, lookup key and product."""

    id: str
    lookup_key: str | None = None
    product: str | None = None


#: The alphabet of Stripe object ids after their prefix.
_BASE62 = string.digits + string.ascii_letters


def new_id(prefix: str) -> str:
    """Return a fresh Stripe-style object id, such as ``evt_1Nx4q...``."""
    return f"{prefix}_1" + "".join(secrets.choice(_BASE62) for _ in range(23))


@functools.cache
def _resources() -> Mapping[str, Any]:
    override = os.environ.get(FIXTURES_ENV)
    places = (Path(override),) if override else _FIXTURE_PLACES
    for place in places:
        if place.is_file():
            resources: Mapping[str, Any] = json.loads(place.read_text())["resources"]
            return resources
    raise FileNotFoundError(
        f"Stripe's fixtures3.json not found in {', '.join(map(str, places))}; "
        f"set {FIXTURES_ENV} to its path"
    )


def resource(name: str) -> dict[str, Any]:
    """Return a fresh copy of Stripe's example object of one resource."""
    fixture: dict[str, Any] = copy.deepcopy(_resources()[name])
    return fixture


def event(
    event_type: str,
    obj: Mapping[str, Any],
    *,
    created: int = CREATED,
    event_id: str | None = None,
    livemode: bool = False,
    previous_attributes: Mapping[str, Any] | None = None,
    automatic: bool = False,
) -> dict[str, Any]:
    """Wrap an object in an event envelope.

    ``automatic`` marks an event Stripe raised on its own (``request.id`` null),
    like a cancellation after failed payments.
    """
    envelope = resource("event")
    data: dict[str, Any] = {"object": dict(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = dict(previous_attributes)
    envelope.update(
        id=event_id or new_id("evt"),
        type=event_type,
        created=created,
        livemode=livemode,
        api_version=API_VERSION,
        pending_webhooks=1,
        data=data,
        request={
            "id": None if automatic else new_id("req"),
            "idempotency_key": None if automatic else new_id("key"),
        },
    )
    return envelope


def subscription_event(
    event_type: str = "customer.subscription.updated",
    *,
    status: str = "active",
    price: str | None = PRICE,
    lookup_key: str | None = LOOKUP_KEY,
    product: str | None = PRODUCT,
    items: Sequence[Price] | None = None,
    cancel_at_period_end: bool = False,
    created: int = CREATED,
    event_id: str | None = None,
    period_end: int | None = None,
    metadata: Mapping[str, str] | None = None,
    customer: str = CUSTOMER,
    subscription: str = SUBSCRIPTION,
    livemode: bool = False,
    previous_attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a ``customer.subscription.*`` event for one subscription state.

    One item of ``price`` / ``lookup_key`` / ``product`` unless ``items`` lists
    them; ``price=None`` sends a subscription with no items. The period ends a
    month after ``created`` unless ``period_end`` says otherwise.
    """
    end = period_end if period_end is not None else created + MONTH
    prices = items if items is not None else _one_price(price, lookup_key, product)
    sub = resource("subscription")
    sub.update(
        id=subscription,
        customer=customer,
        status=status,
        created=end - 2 * MONTH,
        start_date=end - 2 * MONTH,
        billing_cycle_anchor=end - MONTH,
        livemode=livemode,
        metadata=dict(metadata or {}),
        cancel_at_period_end=cancel_at_period_end,
        latest_invoice=new_id("in"),
        pause_collection=None,
        pending_update=None,
        transfer_data=None,
        next_pending_invoice_item_invoice=None,
    )
    sub.update(_lifecycle(status, cancel_at_period_end, created, end))
    sub["items"]["data"] = [
        _item(entry, subscription, end, livemode) for entry in prices
    ]
    sub["items"]["url"] = f"/v1/subscription_items?subscription={subscription}"
    return event(
        event_type,
        sub,
        created=created,
        event_id=event_id,
        livemode=livemode,
        previous_attributes=previous_attributes,
    )


def _one_price(
    price: str | None, lookup_key: str | None, product: str | None
) -> list[Price]:
    return [] if price is None else [Price(price, lookup_key, product)]


def _lifecycle(
    status: str, cancel_at_period_end: bool, created: int, end: int
) -> dict[str, Any]:
    trialing = status == "trialing"
    ended = status in {"canceled", "incomplete_expired"}
    cancelling = cancel_at_period_end or ended
    return {
        "trial_start": end - MONTH if trialing else None,
        "trial_end": end if trialing else None,
        "cancel_at": end if cancel_at_period_end else None,
        "canceled_at": created if cancelling else None,
        "ended_at": created if ended else None,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if cancelling else None,
        },
    }


def _item(price: Price, subscription: str, end: int, livemode: bool) -> dict[str, Any]:
    item = resource("subscription")["items"]["data"][0]
    price_object = item["price"]
    price_object.update(
        id=price.id,
        lookup_key=price.lookup_key,
        product=price.product or new_id("prod"),
        livemode=livemode,
        transform_quantity=None,
    )
    item.update(
        id=new_id("si"),
        created=end - 2 * MONTH,
        subscription=subscription,
        current_period_start=end - MONTH,
        current_period_end=end,
        billing_thresholds=None,
        plan=_legacy_plan(item["plan"], price_object),
    )
    return item


def _legacy_plan(plan: dict[str, Any], price: Mapping[str, Any]) -> dict[str, Any]:
    """Stripe still mirrors each recurring price as a plan with the same id."""
    plan.update(
        id=price["id"],
        product=price["product"],
        amount=price["unit_amount"],
        amount_decimal=price["unit_amount_decimal"],
        billing_scheme="per_unit",
        currency=price["currency"],
        interval="month",
        interval_count=1,
        livemode=price["livemode"],
        metadata={},
        transform_usage=None,
    )
    return plan


def checkout_event(
    event_type: str = "checkout.session.completed",
    *,
    mode: str = "subscription",
    payment_status: str = "paid",
    customer: str = CUSTOMER,
    subscription: str | None = _UNSET,
    created: int = CREATED,
    event_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    livemode: bool = False,
) -> dict[str, Any]:
    """Return a ``checkout.session.*`` event.

    A subscription-mode session names :data:`SUBSCRIPTION` unless told otherwise;
    other modes name none.
    """
    if subscription is _UNSET:
        subscription = SUBSCRIPTION if mode == "subscription" else None
    session = resource("checkout.session")
    session_id = new_id("cs_test")
    session.update(
        id=session_id,
        mode=mode,
        payment_status=payment_status,
        status=_checkout_status(event_type),
        customer=customer,
        subscription=subscription,
        payment_intent=None if mode == "subscription" else new_id("pi"),
        invoice=new_id("in") if mode == "subscription" else None,
        created=created - 600,
        expires_at=created + DAY,
        livemode=livemode,
        metadata=dict(metadata or {}),
        url=None,
    )
    return event(event_type, session, created=created, event_id=event_id)


def _checkout_status(event_type: str) -> str:
    if event_type.endswith(".expired"):
        return "expired"
    return "complete"


def invoice_event(
    event_type: str = "invoice.paid",
    *,
    price: str | None = PRICE,
    product: str | None = PRODUCT,
    subscription: str | None = SUBSCRIPTION,
    customer: str = CUSTOMER,
    billing_reason: str = "subscription_cycle",
    attempt_count: int | None = None,
    created: int = CREATED,
    event_id: str | None = None,
    period_end: int | None = None,
    metadata: Mapping[str, str] | None = None,
    livemode: bool = False,
) -> dict[str, Any]:
    """Return an ``invoice.*`` event for a subscription's invoice.

    Paid types give a paid invoice; failure types an open one with
    ``attempt_count`` attempts (1 by default). ``subscription=None`` makes an
    invoice that belongs to no subscription.
    """
    end = period_end if period_end is not None else created + MONTH
    paid = event_type in {"invoice.paid", "invoice.payment_succeeded"}
    invoice = resource("invoice")
    invoice_id = new_id("in")
    invoice.update(
        id=invoice_id,
        customer=customer,
        billing_reason=billing_reason,
        status="paid" if paid else "open",
        amount_paid=invoice["amount_due"] if paid else 0,
        amount_remaining=0 if paid else invoice["amount_due"],
        attempted=True,
        attempt_count=attempt_count if attempt_count is not None else 1,
        next_payment_attempt=None if paid else created + 3 * DAY,
        created=created - 3600,
        period_start=end - MONTH,
        period_end=end,
        livemode=livemode,
        metadata={} if subscription else dict(metadata or {}),
        parent=_invoice_parent(subscription, metadata),
        from_invoice=None,
        last_finalization_error=None,
    )
    invoice.pop("subscription", None)
    invoice["status_transitions"]["paid_at"] = created if paid else None
    line = _invoice_line(invoice_id, price, product, subscription, end)
    invoice["lines"]["data"] = [line]
    invoice["lines"]["url"] = f"/v1/invoices/{invoice_id}/lines"
    return event(event_type, invoice, created=created, event_id=event_id)


def _invoice_parent(
    subscription: str | None, metadata: Mapping[str, str] | None
) -> dict[str, Any] | None:
    if subscription is None:
        return None
    return {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {
            "metadata": dict(metadata or {}),
            "subscription": subscription,
        },
    }


def _invoice_line(
    invoice_id: str,
    price: str | None,
    product: str | None,
    subscription: str | None,
    end: int,
) -> dict[str, Any]:
    line = resource("invoice")["lines"]["data"][0]
    line.update(
        id=new_id("il"),
        invoice=invoice_id,
        description="1 x Pro (at $10.00 / month)",
        period={"start": end - MONTH, "end": end},
        parent={
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": new_id("si"),
            },
        },
        pricing={
            "type": "price_details",
            "price_details": {"price": price, "product": product},
            "unit_amount_decimal": "1000",
        },
        subtotal=line["amount"],
    )
    return line


def entitlement_summary_event(
    lookup_keys: Iterable[str] = ("api", "exports"),
    *,
    has_more: bool = False,
    customer: str = CUSTOMER,
    created: int = CREATED,
    event_id: str | None = None,
    livemode: bool = False,
) -> dict[str, Any]:
    """Return an ``entitlements.active_entitlement_summary.updated`` event."""
    summary = resource("entitlements.active_entitlement_summary")
    template = summary["entitlements"]["data"][0]
    summary.update(customer=customer, livemode=livemode)
    summary["entitlements"].update(
        data=[_entitlement(template, key, livemode) for key in lookup_keys],
        has_more=has_more,
        url=f"/v1/entitlements/active_entitlements?customer={customer}",
    )
    return event(
        "entitlements.active_entitlement_summary.updated",
        summary,
        created=created,
        event_id=event_id,
        livemode=livemode,
    )


def _entitlement(
    template: Mapping[str, Any], lookup_key: str, livemode: bool
) -> dict[str, Any]:
    entitlement: dict[str, Any] = copy.deepcopy(dict(template))
    entitlement.update(id=new_id("ent"), lookup_key=lookup_key, livemode=livemode)
    entitlement["feature"].update(
        id=new_id("feat"),
        lookup_key=lookup_key,
        name=lookup_key.replace("_", " ").title(),
        livemode=livemode,
        metadata={},
    )
    return entitlement


def customer_event(
    event_type: str = "customer.deleted",
    *,
    customer: str = CUSTOMER,
    created: int = CREATED,
    event_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    livemode: bool = False,
) -> dict[str, Any]:
    """Return a ``customer.*`` event, ``customer.deleted`` by default."""
    obj = resource("customer")
    obj.update(
        id=customer,
        created=created - 90 * DAY,
        livemode=livemode,
        metadata=dict(metadata or {}),
        discount=None,
    )
    return event(event_type, obj, created=created, event_id=event_id)


def sign(
    evt: Mapping[str, Any], secret: str, timestamp: int | None = None
) -> tuple[bytes, str]:
    """Return an event's JSON body and a valid ``Stripe-Signature`` header for it."""
    body = json.dumps(evt)
    header = stripe.WebhookSignature.generate_signature_header(
        body, secret, timestamp=timestamp
    )
    return body.encode(), header
