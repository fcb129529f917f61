"""Provider facts: what a Stripe event says about the customer's subscription.

The library reads them from the event and puts them on the ``webhook`` span; the
engine reads them back from the span's attributes. Only the fields that decide
access travel, never an email, a name, an address or a payment method.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from accessproof.conventions import DRILL_METADATA_KEY, Attr, DrillMode
from accessproof.redact import AttributeValue


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    """The access-relevant facts of one Stripe event.

    ``created`` and ``current_period_end`` are unix seconds, as Stripe sends them.
    Fields an event type does not carry stay ``None`` (or empty).
    """

    event_id: str
    event_type: str
    created: int | None = None
    livemode: bool | None = None
    api_version: str | None = None
    customer_id: str | None = None
    subscription_id: str | None = None
    status: str | None = None
    cancel_at_period_end: bool | None = None
    current_period_end: int | None = None
    price_ids: tuple[str, ...] = ()
    lookup_keys: tuple[str, ...] = ()
    product_ids: tuple[str, ...] = ()
    entitlement_lookup_keys: tuple[str, ...] | None = None
    entitlement_has_more: bool | None = None
    checkout_mode: str | None = None
    checkout_payment_status: str | None = None
    invoice_billing_reason: str | None = None
    drill_mode: DrillMode | None = None

    def to_attributes(self) -> dict[str, AttributeValue]:
        """Return the span attributes of these facts, leaving out what is unknown."""
        pairs: list[tuple[str, Any]] = [
            (Attr.EVENT_ID, self.event_id),
            (Attr.EVENT_TYPE, self.event_type),
            (Attr.EVENT_CREATED, self.created),
            (Attr.LIVEMODE, self.livemode),
            (Attr.API_VERSION, self.api_version),
            (Attr.CUSTOMER_ID, self.customer_id),
            (Attr.SUBSCRIPTION_ID, self.subscription_id),
            (Attr.SUBSCRIPTION_STATUS, self.status),
            (Attr.SUBSCRIPTION_CANCEL_AT_PERIOD_END, self.cancel_at_period_end),
            (Attr.SUBSCRIPTION_CURRENT_PERIOD_END, self.current_period_end),
            (Attr.PRICE_IDS, self.price_ids or None),
            (Attr.PRICE_LOOKUP_KEYS, self.lookup_keys or None),
            (Attr.PRODUCT_IDS, self.product_ids or None),
            (Attr.ENTITLEMENT_LOOKUP_KEYS, self.entitlement_lookup_keys),
            (Attr.ENTITLEMENT_HAS_MORE, self.entitlement_has_more),
            (Attr.CHECKOUT_MODE, self.checkout_mode),
            (Attr.CHECKOUT_PAYMENT_STATUS, self.checkout_payment_status),
            (Attr.INVOICE_BILLING_REASON, self.invoice_billing_reason),
        ]
        if self.drill_mode is not None:
            pairs += [(Attr.DRILL, True), (Attr.DRILL_MODE, self.drill_mode.value)]
        return {key: value for key, value in pairs if value is not None}

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, object]) -> ProviderFacts:
        """Read facts back from ``webhook`` span attributes (bad types: unknown)."""
        get = attributes.get
        drill = _text(get(Attr.DRILL_MODE))
        return cls(
            event_id=_text(get(Attr.EVENT_ID)) or "",
            event_type=_text(get(Attr.EVENT_TYPE)) or "",
            created=_integer(get(Attr.EVENT_CREATED)),
            livemode=_flag(get(Attr.LIVEMODE)),
            api_version=_text(get(Attr.API_VERSION)),
            customer_id=_text(get(Attr.CUSTOMER_ID)),
            subscription_id=_text(get(Attr.SUBSCRIPTION_ID)),
            status=_text(get(Attr.SUBSCRIPTION_STATUS)),
            cancel_at_period_end=_flag(get(Attr.SUBSCRIPTION_CANCEL_AT_PERIOD_END)),
            current_period_end=_integer(get(Attr.SUBSCRIPTION_CURRENT_PERIOD_END)),
            price_ids=_texts(get(Attr.PRICE_IDS)) or (),
            lookup_keys=_texts(get(Attr.PRICE_LOOKUP_KEYS)) or (),
            product_ids=_texts(get(Attr.PRODUCT_IDS)) or (),
            entitlement_lookup_keys=_texts(get(Attr.ENTITLEMENT_LOOKUP_KEYS)),
            entitlement_has_more=_flag(get(Attr.ENTITLEMENT_HAS_MORE)),
            checkout_mode=_text(get(Attr.CHECKOUT_MODE)),
            checkout_payment_status=_text(get(Attr.CHECKOUT_PAYMENT_STATUS)),
            invoice_billing_reason=_text(get(Attr.INVOICE_BILLING_REASON)),
            drill_mode=_drill_mode(drill) if get(Attr.DRILL) is not False else None,
        )


def facts_from_event(event: Mapping[str, Any]) -> ProviderFacts:
    """Read the provider facts from a Stripe event as a plain mapping.

    Understands the current API's shapes (periods on subscription items, an
    invoice's subscription under ``parent.subscription_details``) and the older
    ones that emulators and pinned accounts still send.
    """
    obj = _mapping(_mapping(event.get("data")).get("object"))
    event_type = str(event.get("type") or "")
    kind = str(obj.get("object") or "")
    facts: dict[str, Any] = {
        "event_id": str(event.get("id") or ""),
        "event_type": event_type,
        "created": _integer(event.get("created")),
        "livemode": _flag(event.get("livemode")),
        "api_version": _text(event.get("api_version")),
        "customer_id": _ref(obj.get("customer")),
        "drill_mode": _drill_from_metadata(obj),
    }
    if kind == "subscription":
        facts.update(_subscription_facts(obj))
    elif kind == "checkout.session":
        facts.update(
            subscription_id=_ref(obj.get("subscription")),
            checkout_mode=_text(obj.get("mode")),
            checkout_payment_status=_text(obj.get("payment_status")),
        )
    elif kind == "invoice":
        facts.update(_invoice_facts(obj))
    elif kind == "entitlements.active_entitlement_summary":
        listing = _mapping(obj.get("entitlements"))
        facts.update(
            entitlement_lookup_keys=tuple(
                key
                for item in _items(listing)
                if (key := _text(item.get("lookup_key"))) is not None
            ),
            entitlement_has_more=_flag(listing.get("has_more")),
        )
    elif kind == "customer":
        facts["customer_id"] = _text(obj.get("id"))
    return ProviderFacts(**facts)


def _subscription_facts(sub: Mapping[str, Any]) -> dict[str, Any]:
    items = _items(_mapping(sub.get("items")))
    prices = [_mapping(item.get("price") or item.get("plan")) for item in items]
    period_ends = [
        end for item in items if (end := _integer(item.get("current_period_end")))
    ]
    top_level_end = _integer(sub.get("current_period_end"))
    return {
        "subscription_id": _text(sub.get("id")),
        "status": _text(sub.get("status")),
        "cancel_at_period_end": _flag(sub.get("cancel_at_period_end")),
        "current_period_end": max(period_ends) if period_ends else top_level_end,
        "price_ids": _unique(_text(price.get("id")) for price in prices),
        "lookup_keys": _unique(_text(price.get("lookup_key")) for price in prices),
        "product_ids": _unique(_ref(price.get("product")) for price in prices),
    }


def _invoice_facts(invoice: Mapping[str, Any]) -> dict[str, Any]:
    parent = _mapping(invoice.get("parent"))
    details = _mapping(parent.get("subscription_details"))
    lines = _items(_mapping(invoice.get("lines")))
    prices: list[str | None] = []
    products: list[str | None] = []
    for line in lines:
        pricing = _mapping(_mapping(line.get("pricing")).get("price_details"))
        legacy = _mapping(line.get("price") or line.get("plan"))
        prices.append(_ref(pricing.get("price")) or _text(legacy.get("id")))
        products.append(_ref(pricing.get("product")) or _ref(legacy.get("product")))
    period_ends = [
        end
        for line in lines
        if (end := _integer(_mapping(line.get("period")).get("end")))
    ]
    return {
        "subscription_id": _ref(details.get("subscription"))
        or _ref(invoice.get("subscription")),
        "invoice_billing_reason": _text(invoice.get("billing_reason")),
        "current_period_end": max(period_ends) if period_ends else None,
        "price_ids": _unique(prices),
        "product_ids": _unique(products),
        "drill_mode": _drill_from_metadata(invoice) or _drill_from_metadata(details),
    }


def _drill_from_metadata(obj: Mapping[str, Any]) -> DrillMode | None:
    return _drill_mode(_text(_mapping(obj.get("metadata")).get(DRILL_METADATA_KEY)))


def _drill_mode(value: str | None) -> DrillMode | None:
    if value is None:
        return None
    try:
        return DrillMode(value)
    except ValueError:
        return DrillMode.HEALTHY


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(listing: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = listing.get("data")
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, Mapping)]


def _ref(value: object) -> str | None:
    """Return an object id whether Stripe sent it as a string or expanded."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return _text(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _texts(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list | tuple):
        return None
    # A list comprehension: a generator costs more for the few ids of a run.
    return tuple([item for item in value if isinstance(item, str)])


#: Latest unix time in seconds taken as a Stripe timestamp (year 5138); larger
#: values are milliseconds or garbage, and become unknown.
_MAX_TIMESTAMP = 10**11


def _integer(value: object) -> int | None:
    """A Stripe timestamp in unix seconds, or ``None`` when it cannot be one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and 0 <= value < _MAX_TIMESTAMP:
        return value
    return None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))
