"""Signed Stripe test-mode events, built in the shapes of the current API version.

The drill sends these to a real webhook endpoint, and :mod:`accessproof.testing`
hands them to a team's own tests. A subscription carries what current API
versions send: periods on each item (not on the subscription), each item's
``price`` expanded with its ``id``, ``lookup_key`` and ``product``, the legacy
``plan`` mirror of the price, and ``metadata`` where a drill marks itself. Every
event is test mode (``livemode`` false).
"""

from __future__ import annotations

import json
import secrets
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import stripe

from accessproof.conventions import DRILL_METADATA_KEY, DrillMode

#: The API version the built events claim, as a pinned Stripe account would send.
API_VERSION: Final = "2026-10-28.endive"

DAY: Final = 86_400
MONTH: Final = 30 * DAY

#: Subscription statuses after which a subscription has ended for good.
_ENDED: Final = frozenset({"canceled", "incomplete_expired"})


@dataclass(frozen=True, slots=True)
class Price:
    """One subscription item's price: its id, lookup key and product.

    ``product`` defaults to a fresh ``prod_...`` id when not given.
    """

    id: str
    lookup_key: str | None = None
    product: str | None = None
    unit_amount: int = 2000
    currency: str = "usd"


#: The alphabet of Stripe object ids after their prefix.
_BASE62 = string.digits + string.ascii_letters


def new_id(prefix: str) -> str:
    """Return a fresh Stripe-style object id, such as ``evt_1Nx4q...``."""
    return f"{prefix}_1" + "".join(secrets.choice(_BASE62) for _ in range(23))


def subscription_event(
    event_type: str = "customer.subscription.updated",
    *,
    customer: str,
    prices: Sequence[Price],
    status: str = "active",
    subscription: str | None = None,
    created: int | None = None,
    event_id: str | None = None,
    period_end: int | None = None,
    cancel_at_period_end: bool = False,
    drill: DrillMode | None = None,
    metadata: Mapping[str, str] | None = None,
    previous_attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a test-mode ``customer.subscription.*`` event as plain JSON data.

    ``created`` defaults to now (unix seconds) and the current period ends a
    month after it unless ``period_end`` says otherwise. ``drill`` marks the
    subscription's metadata so the accessproof library changes what the
    ``entitlement`` step reports (see :class:`~accessproof.DrillMode`).
    """
    created = int(time.time()) if created is None else created
    end = created + MONTH if period_end is None else period_end
    sub_id = subscription or new_id("sub")
    marks = dict(metadata or {})
    if drill is not None:
        marks[DRILL_METADATA_KEY] = drill.value

    sub = _subscription(
        sub_id, customer, status, created=created, end=end, metadata=marks
    )
    sub.update(_lifecycle(status, cancel_at_period_end, created, end))
    sub["items"]["data"] = [_item(price, sub_id, end) for price in prices]
    sub["items"]["total_count"] = len(prices)
    return event(
        event_type,
        sub,
        created=created,
        event_id=event_id,
        previous=previous_attributes,
    )


def event(
    event_type: str,
    obj: Mapping[str, Any],
    *,
    created: int | None = None,
    event_id: str | None = None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Wrap a Stripe object in a test-mode event envelope."""
    data: dict[str, Any] = {"object": dict(obj)}
    if previous is not None:
        data["previous_attributes"] = dict(previous)
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()) if created is None else created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": new_id("req"), "idempotency_key": new_id("key")},
        "type": event_type,
    }


def sign_event(
    evt: Mapping[str, Any] | str, secret: str, timestamp: int | None = None
) -> tuple[bytes, str]:
    """Return an event's JSON body and its ``Stripe-Signature`` header.

    The header is made by the ``stripe`` library itself, for ``timestamp``
    (default: now), exactly as Stripe signs a delivery.
    """
    body = evt if isinstance(evt, str) else json.dumps(evt)
    header = stripe.WebhookSignature.generate_signature_header(
        body, secret, timestamp=int(time.time()) if timestamp is None else timestamp
    )
    return body.encode(), header


def _subscription(
    sub_id: str,
    customer: str,
    status: str,
    *,
    created: int,
    end: int,
    metadata: dict[str, str],
) -> dict[str, Any]:
    started = end - 2 * MONTH
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": end - MONTH,
        "billing_mode": {"type": "classic"},
        "billing_thresholds": None,
        "collection_method": "charge_automatically",
        "created": min(started, created),
        "currency": "usd",
        "customer": customer,
        "days_until_due": None,
        "default_payment_method": new_id("pm"),
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": new_id("in"),
        "livemode": False,
        "metadata": metadata,
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": min(started, created),
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_settings": {
            "end_behavior": {"missing_payment_method": "create_invoice"}
        },
    }


def _lifecycle(
    status: str, cancel_at_period_end: bool, created: int, end: int
) -> dict[str, Any]:
    trialing = status == "trialing"
    ended = status in _ENDED
    cancelling = cancel_at_period_end or ended
    return {
        "cancel_at": end if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": created if cancelling else None,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if cancelling else None,
        },
        "ended_at": created if ended else None,
        "trial_end": end if trialing else None,
        "trial_start": end - MONTH if trialing else None,
    }


def _item(price: Price, sub_id: str, end: int) -> dict[str, Any]:
    product = price.product or new_id("prod")
    recurring = {
        "interval": "month",
        "interval_count": 1,
        "meter": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }
    return {
        "id": new_id("si"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": end - 2 * MONTH,
        "current_period_end": end,
        "current_period_start": end - MONTH,
        "discounts": [],
        "metadata": {},
        "plan": {
            "id": price.id,
            "object": "plan",
            "active": True,
            "amount": price.unit_amount,
            "amount_decimal": str(price.unit_amount),
            "billing_scheme": "per_unit",
            "currency": price.currency,
            "interval": "month",
            "interval_count": 1,
            "livemode": False,
            "metadata": {},
            "nickname": None,
            "product": product,
            "usage_type": "licensed",
        },
        "price": {
            "id": price.id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "currency": price.currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": price.lookup_key,
            "metadata": {},
            "nickname": None,
            "product": product,
            "recurring": recurring,
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring",
            "unit_amount": price.unit_amount,
            "unit_amount_decimal": str(price.unit_amount),
        },
        "quantity": 1,
        "subscription": sub_id,
        "tax_rates": [],
    }
