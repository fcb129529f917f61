"""Verify a Stripe webhook delivery and open its run.

Verification is the ``stripe`` library's own (:meth:`stripe.Webhook.construct_event`);
this module only sorts its failures into :class:`VerificationReason` values so the
app can answer 400 with a reason it may show.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import stripe
from opentelemetry.trace import TracerProvider

from accessproof.facts import facts_from_event
from accessproof.instrument._run import Run, get_tracer
from accessproof.instrument.errors import VerificationReason, WebhookVerificationError

logger = logging.getLogger(__name__)

_SCHEME = "v1"


def verify_and_open(
    payload: bytes,
    signature_header: str | None,
    webhook_secret: str,
    tolerance: int = 300,
    *,
    tracer_provider: TracerProvider | None = None,
    record_webhook: bool = True,
) -> Run:
    """Verify a webhook delivery, record its ``webhook`` step and return the run.

    ``payload`` is the raw request body, exactly as received. ``tolerance`` is the
    oldest signature age accepted, in seconds (0 disables the age check, as in
    the ``stripe`` library). The ``webhook`` span is started and ended inside
    this call, carrying the event's provider facts.

    With ``record_webhook=False`` nothing is recorded yet: an app that handles
    only some event types checks ``run.event`` first, and records the step with
    ``with run.step("webhook"):`` only for the events its workflow handles, so
    the engine never waits for steps that will not come.

    Raises :class:`WebhookVerificationError` when the delivery must be refused,
    and :class:`ValueError` when ``webhook_secret`` is empty (a configuration
    error, not a bad delivery).
    """
    if not webhook_secret or not webhook_secret.strip():
        raise ValueError("webhook_secret is empty: configure the endpoint's whsec_ key")

    _check_header(signature_header)
    event = _construct(payload, signature_header, webhook_secret, tolerance)
    data = event.to_dict()
    if not _is_event(data):
        raise WebhookVerificationError(VerificationReason.NOT_AN_EVENT)
    return open_run(
        data, tracer_provider=tracer_provider, record_webhook=record_webhook
    )


def open_run(
    event: stripe.Event | Mapping[str, Any],
    *,
    tracer_provider: TracerProvider | None = None,
    record_webhook: bool = True,
) -> Run:
    """Open the run of an event the app has already verified.

    ``event`` is a :class:`stripe.Event` or the event as a mapping. With
    ``record_webhook`` (the default) the ``webhook`` step is recorded at once,
    with the provider facts. An event that cannot be read logs a warning and
    yields a run whose steps record nothing; this never raises.
    """
    tracer = get_tracer(tracer_provider)
    try:
        data = event.to_dict() if isinstance(event, stripe.StripeObject) else event
        facts = facts_from_event(data)
    except Exception as error:  # noqa: BLE001 - telemetry must not break billing
        logger.warning(
            "accessproof: could not read the event (%s); run not recorded",
            type(error).__name__,
        )
        return Run("", tracer=tracer)

    run = Run(
        facts.event_id,
        tracer=tracer,
        drill_mode=facts.drill_mode,
        facts=facts.to_attributes(),
        event=data,
    )
    if record_webhook:
        run._record_webhook()
    return run


def _check_header(header: str | None) -> None:
    if not header or not header.strip():
        raise WebhookVerificationError(VerificationReason.MISSING_HEADER)

    pairs = [part.split("=", 1) for part in header.split(",")]
    timestamps = [pair[1] for pair in pairs if len(pair) == 2 and pair[0] == "t"]
    signatures = [pair[1] for pair in pairs if len(pair) == 2 and pair[0] == _SCHEME]
    if len(timestamps) != 1 or not timestamps[0].strip().isdigit() or not signatures:
        raise WebhookVerificationError(VerificationReason.MALFORMED_HEADER)


def _construct(
    payload: bytes, header: str | None, secret: str, tolerance: int
) -> stripe.Event:
    try:
        event: stripe.Event = stripe.Webhook.construct_event(
            payload, header, secret, tolerance
        )
    except stripe.SignatureVerificationError:
        reason = _signature_failure(payload, header, secret)
    except (ValueError, TypeError, AttributeError, KeyError):
        reason = VerificationReason.NOT_AN_EVENT
    else:
        return event
    raise WebhookVerificationError(reason) from None


def _signature_failure(
    payload: bytes, header: str | None, secret: str
) -> VerificationReason:
    """Tell a stale timestamp from a wrong signature by checking again without age."""
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=0)
    except stripe.SignatureVerificationError:
        return VerificationReason.BAD_SIGNATURE
    return VerificationReason.TIMESTAMP_OUTSIDE_TOLERANCE


def _is_event(data: Mapping[str, Any]) -> bool:
    event_id, event_type = data.get("id"), data.get("type")
    return (
        isinstance(event_id, str)
        and bool(event_id)
        and isinstance(event_type, str)
        and bool(event_type)
    )
