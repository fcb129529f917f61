"""The one exception the library raises into an app.

Hierarchy::

    ValueError
    └── WebhookVerificationError   (``.reason`` is a VerificationReason)

Telemetry problems never raise: they are logged at WARNING and dropped. Only a
webhook that must be refused raises, so the app can answer 400.
"""

from __future__ import annotations

from enum import StrEnum


class VerificationReason(StrEnum):
    """Why a webhook delivery was refused: a closed set."""

    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    BAD_SIGNATURE = "bad_signature"
    TIMESTAMP_OUTSIDE_TOLERANCE = "timestamp_outside_tolerance"
    NOT_AN_EVENT = "not_an_event"


_MESSAGES = {
    VerificationReason.MISSING_HEADER: "the Stripe-Signature header is missing",
    VerificationReason.MALFORMED_HEADER: (
        "the Stripe-Signature header has no timestamp or no v1 signature"
    ),
    VerificationReason.BAD_SIGNATURE: (
        "no v1 signature matches the body and the webhook secret"
        " (tampered body or wrong secret)"
    ),
    VerificationReason.TIMESTAMP_OUTSIDE_TOLERANCE: (
        "the signature timestamp is older than the tolerance"
    ),
    VerificationReason.NOT_AN_EVENT: (
        "the body is not a Stripe event (not JSON, or no id or type)"
    ),
}


class WebhookVerificationError(ValueError):
    """A webhook delivery that must be refused, with the reason why.

    The message names the reason in words; it never repeats the secret, the
    header or the body, so it is safe to log and to return to the sender::

        try:
            run = accessproof.verify_and_open(body, header, secret)
        except accessproof.WebhookVerificationError as error:
            return {"error": error.reason}, 400
    """

    def __init__(self, reason: VerificationReason) -> None:
        super().__init__(f"webhook refused: {_MESSAGES[reason]} ({reason.value})")
        self.reason = reason
