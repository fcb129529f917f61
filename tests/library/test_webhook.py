"""Webhook verification and the webhook step."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import stripe

import accessproof
from accessproof import VerificationReason
from accessproof.conventions import Attr, Step
from tests.library.library_helpers import WEBHOOK_SECRET, Spans

Build = Callable[..., dict[str, Any]]
Sign = Callable[..., tuple[bytes, str]]


def test_verified_event_records_the_webhook_step_with_provider_facts(
    spans: Spans, build: Build, sign: Sign
) -> None:
    """A valid delivery yields a run and one finished webhook span with the facts."""
    body, header = sign(build(event_id="evt_1Facts", status="trialing"))

    run = accessproof.verify_and_open(
        body, header, WEBHOOK_SECRET, tracer_provider=spans.provider
    )

    (span,) = spans.finished()
    assert run.event_id == "evt_1Facts"
    assert run.event_type == "customer.subscription.updated"
    assert span.name == "accessproof.webhook"
    assert dict(span.attributes or {}) == {
        Attr.EVENT_ID: "evt_1Facts",
        Attr.STEP: Step.WEBHOOK.value,
        Attr.EVENT_TYPE: "customer.subscription.updated",
        Attr.EVENT_CREATED: 1_764_633_600,
        Attr.LIVEMODE: False,
        Attr.API_VERSION: "2026-10-28.endive",
        Attr.CUSTOMER_ID: "cus_QXg1o8vcGmoR32",
        Attr.SUBSCRIPTION_ID: "sub_1PgcTest",
        Attr.SUBSCRIPTION_STATUS: "trialing",
        Attr.SUBSCRIPTION_CANCEL_AT_PERIOD_END: False,
        Attr.SUBSCRIPTION_CURRENT_PERIOD_END: 1_767_225_600,
        Attr.PRICE_IDS: ("price_1Pro",),
        Attr.PRICE_LOOKUP_KEYS: ("pro_monthly",),
        Attr.PRODUCT_IDS: ("prod_Pro",),
    }


def test_verified_event_is_exposed_as_plain_data(
    spans: Spans, build: Build, sign: Sign
) -> None:
    """The run hands the app the verified event as JSON-ready dicts."""
    payload = build()
    body, header = sign(payload)

    run = accessproof.verify_and_open(
        body, header, WEBHOOK_SECRET, tracer_provider=spans.provider
    )

    assert run.event == payload
    assert json.loads(json.dumps(run.event)) == payload


def test_verification_without_recording_leaves_the_webhook_step_to_the_app(
    spans: Spans, build: Build, sign: Sign
) -> None:
    """With record_webhook=False nothing is exported until the app records the step."""
    body, header = sign(build(event_id="evt_1Deferred"))

    run = accessproof.verify_and_open(
        body,
        header,
        WEBHOOK_SECRET,
        tracer_provider=spans.provider,
        record_webhook=False,
    )
    recorded_before = spans.finished()
    with run.step(Step.WEBHOOK):
        pass

    assert recorded_before == []
    (span,) = spans.finished()
    assert span.name == "accessproof.webhook"
    assert (span.attributes or {})[Attr.SUBSCRIPTION_ID] == "sub_1PgcTest"


def _stale(body: bytes) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        body.decode(), WEBHOOK_SECRET, timestamp=int(time.time()) - 3600
    )


@pytest.mark.parametrize(
    ("reason", "tamper"),
    [
        (VerificationReason.MISSING_HEADER, lambda body, header: (body, None)),
        (VerificationReason.MISSING_HEADER, lambda body, header: (body, "  ")),
        (VerificationReason.MALFORMED_HEADER, lambda body, header: (body, "garbage")),
        (
            VerificationReason.MALFORMED_HEADER,
            lambda body, header: (body, header.split(",")[1]),
        ),
        (
            VerificationReason.BAD_SIGNATURE,
            lambda body, header: (body.replace(b"active", b"canceled"), header),
        ),
        (
            VerificationReason.BAD_SIGNATURE,
            lambda body, header: (body, header[:-4] + "0000"),
        ),
        (
            VerificationReason.TIMESTAMP_OUTSIDE_TOLERANCE,
            lambda body, header: (body, _stale(body)),
        ),
    ],
)
def test_refused_delivery_names_its_reason_and_records_nothing(
    spans: Spans,
    build: Build,
    sign: Sign,
    reason: VerificationReason,
    tamper: Callable[[bytes, str], tuple[bytes, str | None]],
) -> None:
    """Each kind of bad delivery raises with its own reason and leaves no span."""
    body, header = tamper(*sign(build()))

    with pytest.raises(accessproof.WebhookVerificationError) as caught:
        accessproof.verify_and_open(
            body, header, WEBHOOK_SECRET, tracer_provider=spans.provider
        )

    assert caught.value.reason is reason
    assert reason.value in str(caught.value)
    assert spans.finished() == []


def test_wrong_secret_is_a_bad_signature(spans: Spans, build: Build) -> None:
    """A delivery signed with another endpoint's secret is refused as bad_signature."""
    body, header = (
        json.dumps(build()).encode(),
        stripe.WebhookSignature.generate_signature_header(
            json.dumps(build()), "whsec_anotherendpointsecret"
        ),
    )

    with pytest.raises(accessproof.WebhookVerificationError) as caught:
        accessproof.verify_and_open(
            body, header, WEBHOOK_SECRET, tracer_provider=spans.provider
        )

    assert caught.value.reason is VerificationReason.BAD_SIGNATURE


@pytest.mark.parametrize(
    "payload",
    [
        "not json at all",
        "[1, 2, 3]",
        json.dumps({"object": "event", "type": "customer.created"}),
        json.dumps({"object": "event", "id": "evt_1NoType"}),
        json.dumps({"object": "v2.core.event", "id": "evt_1", "type": "x"}),
    ],
)
def test_signed_payload_that_is_not_an_event_is_refused(
    spans: Spans, sign: Sign, payload: str
) -> None:
    """A correctly signed body without an event's id and type is not_an_event."""
    body, header = sign(payload)

    with pytest.raises(accessproof.WebhookVerificationError) as caught:
        accessproof.verify_and_open(
            body, header, WEBHOOK_SECRET, tracer_provider=spans.provider
        )

    assert caught.value.reason is VerificationReason.NOT_AN_EVENT
    assert spans.finished() == []


def test_error_message_never_echoes_secret_header_or_body(
    spans: Spans, build: Build, sign: Sign
) -> None:
    """The refusal message is safe to log: no secret, no signature, no payload."""
    body, header = sign(build(customer="cus_SecretCustomer"))

    with pytest.raises(accessproof.WebhookVerificationError) as caught:
        accessproof.verify_and_open(
            body, header, WEBHOOK_SECRET + "x", tracer_provider=spans.provider
        )

    message = str(caught.value)
    assert WEBHOOK_SECRET not in message
    assert header.split("v1=")[1] not in message
    assert "cus_SecretCustomer" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_tolerance_zero_accepts_an_old_signature(
    spans: Spans, build: Build, sign: Sign
) -> None:
    """A tolerance of 0 turns the age check off, as in the stripe library."""
    body, header = sign(build(), timestamp=int(time.time()) - 86_400)

    run = accessproof.verify_and_open(
        body, header, WEBHOOK_SECRET, 0, tracer_provider=spans.provider
    )

    assert run.event_id == "evt_1PgcTestUpdated"


def test_empty_secret_is_a_configuration_error(build: Build, sign: Sign) -> None:
    """An empty secret is refused as configuration, not as a bad delivery."""
    body, header = sign(build())

    with pytest.raises(ValueError, match="webhook_secret") as caught:
        accessproof.verify_and_open(body, header, "")

    assert not isinstance(caught.value, accessproof.WebhookVerificationError)


def test_open_run_accepts_a_stripe_event(spans: Spans, build: Build) -> None:
    """An already verified stripe.Event opens a run with the same facts."""
    verified = stripe.Event.construct_from(build(event_id="evt_1Object"), "sk_x")

    run = accessproof.open_run(verified, tracer_provider=spans.provider)

    (span,) = spans.finished()
    assert run.event_id == "evt_1Object"
    assert (span.attributes or {})[Attr.SUBSCRIPTION_STATUS] == "active"


def test_open_run_can_leave_the_webhook_step_to_the_app(
    spans: Spans, build: Build
) -> None:
    """With record_webhook=False nothing is recorded until the app says so."""
    run = accessproof.open_run(
        build(), tracer_provider=spans.provider, record_webhook=False
    )
    assert spans.finished() == []

    with run.step(Step.WEBHOOK):
        pass

    (span,) = spans.finished()
    assert (span.attributes or {})[Attr.PRICE_IDS] == ("price_1Pro",)


def test_unreadable_event_opens_a_silent_run(
    spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    """An event that cannot be read warns and yields a run that records nothing."""
    caplog.set_level(logging.WARNING)

    not_an_event: Any = 42
    run = accessproof.open_run(not_an_event, tracer_provider=spans.provider)
    with run.step("reconcile") as step:
        step.record(status="active")

    assert run.event_id == ""
    assert spans.finished() == []
    assert "could not read the event" in caplog.text
