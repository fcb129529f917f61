"""The names of the wire contract, spelled once.

Span attribute keys, step names, run and incident states and incident reasons are
shared by the instrumentation library, the engine, the metrics and the incident
records. Every other module imports them from here; a string literal naming one of
them anywhere else is a bug.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

INSTRUMENTATION_NAME: Final = "accessproof"
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.44.0"


class Attr:
    """Span and resource attribute keys of the wire contract."""

    # On every span of a run.
    EVENT_ID: Final = "stripe.event.id"
    STEP: Final = "accessproof.step"
    DRILL: Final = "accessproof.drill"
    DRILL_MODE: Final = "accessproof.drill.mode"
    ATTEMPT: Final = "accessproof.attempt"

    # Provider facts, on the webhook span.
    EVENT_TYPE: Final = "stripe.event.type"
    EVENT_CREATED: Final = "stripe.event.created"
    LIVEMODE: Final = "stripe.livemode"
    API_VERSION: Final = "stripe.api_version"
    CUSTOMER_ID: Final = "stripe.customer.id"
    SUBSCRIPTION_ID: Final = "stripe.subscription.id"
    SUBSCRIPTION_STATUS: Final = "stripe.subscription.status"
    SUBSCRIPTION_CANCEL_AT_PERIOD_END: Final = (
        "stripe.subscription.cancel_at_period_end"
    )
    SUBSCRIPTION_CURRENT_PERIOD_END: Final = "stripe.subscription.current_period_end"
    PRICE_IDS: Final = "stripe.price.ids"
    PRICE_LOOKUP_KEYS: Final = "stripe.price.lookup_keys"
    PRODUCT_IDS: Final = "stripe.product.ids"
    ENTITLEMENT_LOOKUP_KEYS: Final = "stripe.entitlement.lookup_keys"
    ENTITLEMENT_HAS_MORE: Final = "stripe.entitlement.has_more"
    CHECKOUT_MODE: Final = "stripe.checkout.mode"
    CHECKOUT_PAYMENT_STATUS: Final = "stripe.checkout.payment_status"
    INVOICE_BILLING_REASON: Final = "stripe.invoice.billing_reason"

    # What the app did, on the later steps.
    RECONCILED_STATUS: Final = "accessproof.reconciled.status"
    RECONCILED_PLAN: Final = "accessproof.reconciled.plan"
    OBSERVED_PLAN: Final = "accessproof.observed.plan"
    OBSERVED_FEATURES: Final = "accessproof.observed.features"
    OBSERVED_ACCESS: Final = "accessproof.observed.access"
    NOTIFY_CHANNEL: Final = "accessproof.notify.channel"
    NOTIFY_TEMPLATE: Final = "accessproof.notify.template"

    # OpenTelemetry semantic conventions used on spans.
    ERROR_TYPE: Final = "error.type"

    # Resource attributes: who deployed what.
    SERVICE_NAME: Final = "service.name"
    SERVICE_VERSION: Final = "service.version"
    DEPLOYMENT_ENVIRONMENT: Final = "deployment.environment.name"
    VCS_REVISION: Final = "vcs.ref.head.revision"


#: The resource attributes an incident names, in the order they are shown.
RESOURCE_KEYS: Final = (
    Attr.SERVICE_NAME,
    Attr.SERVICE_VERSION,
    Attr.DEPLOYMENT_ENVIRONMENT,
    Attr.VCS_REVISION,
)


#: The ``event_name`` of every incident log record.
INCIDENT_EVENT_NAME: Final = "accessproof.incident"

#: The namespace of an incident's own fields among a log record's attributes.
INCIDENT_PREFIX: Final = "accessproof.incident."


class Step(StrEnum):
    """The steps of a run, in workflow order."""

    WEBHOOK = "webhook"
    RECONCILE = "reconcile"
    ENTITLEMENT = "entitlement"
    NOTIFY = "notify"


class Access(StrEnum):
    """Whether the customer can use what the plan gates."""

    GRANTED = "granted"
    REVOKED = "revoked"


class AccessPolicy(StrEnum):
    """What a subscription status means for access, as the catalog spells it."""

    GRANT = "grant"
    GRACE = "grace"
    REVOKE = "revoke"


class RunState(StrEnum):
    """Where a run stands.

    ``open`` becomes ``proven`` or ``incident``; ``incident`` becomes ``resolved``
    when late evidence proves the outcome; ``open`` and ``incident`` become
    ``superseded`` when a newer provider event for the same subscription decides.
    """

    OPEN = "open"
    PROVEN = "proven"
    INCIDENT = "incident"
    RESOLVED = "resolved"
    SUPERSEDED = "superseded"


class IncidentState(StrEnum):
    """Where an incident record stands."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Reason(StrEnum):
    """Why a run is an incident: a closed set, used verbatim as a metric label."""

    ACCESS_NOT_CHANGED = "access_not_changed"
    ACCESS_MISMATCH = "access_mismatch"
    SUBSCRIPTION_MISMATCH = "subscription_mismatch"
    STEP_FAILED = "step_failed"
    NOTIFICATION_MISSING = "notification_missing"
    WEBHOOK_MISSING = "webhook_missing"


class Outcome(StrEnum):
    """The ``outcome`` label of ``accessproof_runs_total``."""

    PROVEN = "proven"
    INCIDENT = "incident"
    SUPERSEDED = "superseded"


class DrillMode(StrEnum):
    """What a drill event asks the library to do to its entitlement step.

    A drill is marked on the Stripe object itself, as the metadata key
    :data:`DRILL_METADATA_KEY`, so that it survives every hop the real event takes.
    """

    HEALTHY = "healthy"
    FALSIFY_ENTITLEMENT = "falsify_entitlement"
    SKIP_ENTITLEMENT = "skip_entitlement"


DRILL_METADATA_KEY: Final = "accessproof_drill"

#: The job-carrier key that carries a drill's mode to a worker.
DRILL_CARRIER_KEY: Final = "accessproof-drill"

#: The plan name a falsified drill read-back reports.
DRILL_FALSE_PLAN: Final = "accessproof-drill-wrong-plan"
