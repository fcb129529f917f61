"""Signed Stripe test-mode events for a team's own webhook tests.

The same builders the drill sends (:mod:`accessproof.drill.events`), plus
:func:`signed_event`, which returns the event with the exact body and
``Stripe-Signature`` header a delivery would carry::

    delivery = signed_event(secret, customer="cus_test", prices=[Price("price_1Pro")])
    client.post("/webhooks/stripe", data=delivery.body,
                headers={"Stripe-Signature": delivery.header})
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from accessproof.conventions import DrillMode
from accessproof.drill.events import (
    API_VERSION,
    Price,
    event,
    new_id,
    sign_event,
    subscription_event,
)


@dataclass(frozen=True, slots=True)
class SignedEvent:
    """One delivery: the event as data, its raw body and its signature header."""

    event: dict[str, Any]
    body: bytes
    header: str

    @property
    def id(self) -> str:
        """The Stripe event id."""
        return str(self.event["id"])

    @property
    def headers(self) -> dict[str, str]:
        """The HTTP headers Stripe would send with the body."""
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": self.header,
        }


def signed_event(
    secret: str,
    event_type: str = "customer.subscription.updated",
    *,
    customer: str = "cus_test",
    prices: Sequence[Price] = (Price("price_1Pro", "pro_monthly", "prod_Pro"),),
    drill: DrillMode | None = None,
    **fields: Any,
) -> SignedEvent:
    """Build a subscription event and sign it with ``secret``.

    Other keyword arguments go to :func:`subscription_event` (``status``,
    ``created``, ``event_id``, ``cancel_at_period_end``...).
    """
    built = subscription_event(
        event_type, customer=customer, prices=prices, drill=drill, **fields
    )
    body, header = sign_event(built, secret)
    return SignedEvent(built, body, header)


__all__ = [
    "API_VERSION",
    "Price",
    "SignedEvent",
    "event",
    "new_id",
    "sign_event",
    "signed_event",
    "subscription_event",
]
