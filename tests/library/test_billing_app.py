"""The example billing app, run for real: web app in process, worker in its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from accessproof.conventions import DRILL_FALSE_PLAN, DRILL_METADATA_KEY, Attr
from accessproof.examples.billing_app import WORKER_KEY, create_app
from accessproof.examples.billing_config import BillingConfig, Fault
from accessproof.examples.billing_worker import Accounts
from tests.library.library_helpers import (
    WEBHOOK_SECRET,
    OtlpSink,
    Spans,
    event,
    make_spans,
)

Build = Callable[..., dict[str, Any]]
Sign = Callable[..., tuple[bytes, str]]

WORKER_STEPS = [
    "accessproof.reconcile",
    "accessproof.entitlement",
    "accessproof.notify",
]


@contextmanager
def running(
    fault: Fault, tmp_path: Path, sink: OtlpSink
) -> Iterator[tuple[Flask, Spans, Accounts]]:
    spans = make_spans()
    database = tmp_path / f"accounts-{fault}.db"
    config = BillingConfig(
        webhook_secret=WEBHOOK_SECRET,
        database=database,
        fault=fault,
        otlp_endpoint=sink.endpoint,
        otlp_protocol="http",
        tracer_provider=spans.provider,
    )
    app = create_app(config)
    try:
        yield app, spans, Accounts(database)
    finally:
        app.extensions[WORKER_KEY].stop()
        spans.provider.shutdown()


def deliver(app: Flask, body: bytes, header: str | None) -> Any:
    headers = {"Stripe-Signature": header} if header else {}
    response = app.test_client().post("/webhooks/stripe", data=body, headers=headers)
    assert app.extensions[WORKER_KEY].drain(timeout=30)
    return response


@pytest.fixture(scope="module")
def healthy(
    tmp_path_factory: pytest.TempPathFactory, otlp_sink: OtlpSink
) -> Iterator[tuple[Flask, Spans, Accounts]]:
    """One app without a fault, shared by the tests of its normal behaviour."""
    with running("none", tmp_path_factory.mktemp("healthy"), otlp_sink) as app:
        yield app


def _by_name(sink: OtlpSink, event_id: str) -> dict[str, Any]:
    return {span.name: span for span in sink.spans(event_id)}


def test_healthy_app_proves_the_whole_run(
    healthy: tuple[Flask, Spans, Accounts],
    otlp_sink: OtlpSink,
    build: Build,
    sign: Sign,
) -> None:
    """A delivery yields the webhook span here and the three worker steps there."""
    app, spans, accounts = healthy

    response = deliver(app, *sign(build(event_id="evt_1AppHealthy")))

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "queued": True}
    (webhook,) = [
        span
        for span in spans.finished()
        if (span.attributes or {}).get(Attr.EVENT_ID) == "evt_1AppHealthy"
    ]
    steps = _by_name(otlp_sink, "evt_1AppHealthy")
    assert sorted(steps) == sorted(WORKER_STEPS)
    assert steps["accessproof.reconcile"].attributes[Attr.RECONCILED_PLAN] == "pro"
    entitlement = steps["accessproof.entitlement"].attributes
    assert entitlement[Attr.OBSERVED_PLAN] == "pro"
    assert entitlement[Attr.OBSERVED_FEATURES] == ["api", "exports"]
    assert entitlement[Attr.OBSERVED_ACCESS] == "granted"
    assert steps["accessproof.notify"].attributes[Attr.NOTIFY_CHANNEL] == "email"
    assert steps["accessproof.notify"].resource[Attr.SERVICE_NAME] == (
        "billing-app-worker"
    )
    for span in steps.values():
        assert span.links == [
            (f"{webhook.context.trace_id:032x}", f"{webhook.context.span_id:016x}")
        ]
        assert span.status_code == 0
    assert accounts.subscription("sub_1PgcTest") == ("active", "pro")


def test_cancellation_revokes_access(
    healthy: tuple[Flask, Spans, Accounts],
    otlp_sink: OtlpSink,
    build: Build,
    sign: Sign,
) -> None:
    """A deleted subscription is read back as revoked, on the default plan."""
    app, _, _ = healthy
    payload = build(
        event_type="customer.subscription.deleted",
        event_id="evt_1AppDeleted",
        status="canceled",
        customer="cus_Cancelled",
    )

    deliver(app, *sign(payload))

    entitlement = _by_name(otlp_sink, "evt_1AppDeleted")["accessproof.entitlement"]
    assert entitlement.attributes[Attr.OBSERVED_ACCESS] == "revoked"
    assert entitlement.attributes[Attr.OBSERVED_PLAN] == "free"


def test_drill_through_the_app_falsifies_the_read_back(
    healthy: tuple[Flask, Spans, Accounts],
    otlp_sink: OtlpSink,
    build: Build,
    sign: Sign,
) -> None:
    """A falsify drill reaches the worker through the carrier and flags every span."""
    app, _, accounts = healthy
    payload = build(
        event_id="evt_1AppDrill",
        customer="cus_Drill",
        metadata={DRILL_METADATA_KEY: "falsify_entitlement"},
    )

    deliver(app, *sign(payload))

    steps = _by_name(otlp_sink, "evt_1AppDrill")
    assert steps["accessproof.entitlement"].attributes[Attr.OBSERVED_PLAN] == (
        DRILL_FALSE_PLAN
    )
    assert all(span.attributes[Attr.DRILL] is True for span in steps.values())
    stored = accounts.entitlement("cus_Drill")
    assert stored is not None
    assert stored.plan == "pro"


@pytest.mark.parametrize(
    ("event_type", "obj"),
    [
        (
            "invoice.paid",
            {
                "id": "in_1AppIgnored",
                "object": "invoice",
                "customer": "cus_QXg1o8vcGmoR32",
                "status": "paid",
                "parent": {
                    "type": "subscription_details",
                    "subscription_details": {"subscription": "sub_1PgcTest"},
                },
            },
        ),
        (
            "checkout.session.completed",
            {
                "id": "cs_test_1AppIgnored",
                "object": "checkout.session",
                "customer": "cus_QXg1o8vcGmoR32",
                "mode": "subscription",
                "payment_status": "paid",
                "subscription": "sub_1PgcTest",
            },
        ),
        (
            "entitlements.active_entitlement_summary.updated",
            {
                "object": "entitlements.active_entitlement_summary",
                "customer": "cus_QXg1o8vcGmoR32",
                "entitlements": {"object": "list", "data": [], "has_more": False},
            },
        ),
    ],
)
def test_event_the_worker_does_not_handle_opens_no_run(
    healthy: tuple[Flask, Spans, Accounts],
    otlp_sink: OtlpSink,
    sign: Sign,
    event_type: str,
    obj: dict[str, Any],
) -> None:
    """A verified event with no job behind it is answered 200 and records no span."""
    app, spans, _ = healthy
    event_id = "evt_1AppIgnored" + event_type.replace(".", "")

    response = deliver(app, *sign(event(obj, event_type=event_type, event_id=event_id)))

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "queued": False}
    assert [
        span
        for span in spans.finished()
        if (span.attributes or {}).get(Attr.EVENT_ID) == event_id
    ] == []
    assert otlp_sink.spans(event_id) == []


@pytest.mark.parametrize(
    ("header", "reason"),
    [(None, "missing_header"), ("t=1,v1=00", "bad_signature")],
)
def test_bad_delivery_is_answered_400_with_the_reason(
    healthy: tuple[Flask, Spans, Accounts],
    build: Build,
    sign: Sign,
    header: str | None,
    reason: str,
) -> None:
    """A refused delivery gets 400 and the reason, and queues nothing."""
    app, _, _ = healthy
    body, _ = sign(build(event_id="evt_1AppRefused"))

    response = deliver(app, body, header)

    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid webhook", "reason": reason}


def test_healthz_reports_the_worker(healthy: tuple[Flask, Spans, Accounts]) -> None:
    """The health check answers ok while the worker process runs."""
    app, _, _ = healthy

    response = app.test_client().get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_skip_job_fault_leaves_only_the_webhook_step(
    tmp_path: Path, otlp_sink: OtlpSink, build: Build, sign: Sign
) -> None:
    """With skip_job the webhook is accepted and no later step ever happens."""
    with running("skip_job", tmp_path, otlp_sink) as (app, spans, accounts):
        response = deliver(app, *sign(build(event_id="evt_1AppSkipped")))

        assert response.status_code == 200
        assert [span.name for span in spans.finished()] == ["accessproof.webhook"]
        assert otlp_sink.spans("evt_1AppSkipped") == []
        assert accounts.entitlement("cus_QXg1o8vcGmoR32") is None


def test_wrong_plan_fault_reads_back_another_plan(
    tmp_path: Path, otlp_sink: OtlpSink, build: Build, sign: Sign
) -> None:
    """With wrong_plan the reconciled plan is right and the observed one is not."""
    with running("wrong_plan", tmp_path, otlp_sink) as (app, _, accounts):
        deliver(app, *sign(build(event_id="evt_1AppWrongPlan")))

        steps = _by_name(otlp_sink, "evt_1AppWrongPlan")
        assert steps["accessproof.reconcile"].attributes[Attr.RECONCILED_PLAN] == "pro"
        observed = steps["accessproof.entitlement"].attributes
        assert observed[Attr.OBSERVED_PLAN] == "free"
        assert observed[Attr.OBSERVED_ACCESS] == "granted"
        stored = accounts.entitlement("cus_QXg1o8vcGmoR32")
        assert stored is not None
        assert stored.plan == "free"
