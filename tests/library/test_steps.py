"""Steps: spans, recorded values, errors, and telemetry that never breaks billing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

import accessproof
from accessproof import Access, Step
from accessproof.conventions import Attr
from tests.library.library_helpers import Spans

Build = Callable[..., dict[str, Any]]


class CardDeclinedError(Exception):
    """An app error whose message holds customer data."""


def _attributes(spans: Spans, name: str) -> dict[str, Any]:
    (span,) = spans.named(name)
    return dict(span.attributes or {})


def test_reconcile_records_the_written_state(spans: Spans, build: Build) -> None:
    """record(status=, plan=) on reconcile lands as the reconciled attributes."""
    run = accessproof.open_run(build(), tracer_provider=spans.provider)

    with run.step("reconcile") as step:
        step.record(status="active", plan="pro")

    assert _attributes(spans, "accessproof.reconcile") == {
        Attr.EVENT_ID: "evt_1PgcTestUpdated",
        Attr.STEP: "reconcile",
        Attr.RECONCILED_STATUS: "active",
        Attr.RECONCILED_PLAN: "pro",
    }


def test_notify_records_channel_and_template(spans: Spans, build: Build) -> None:
    """record(channel=, template=) on notify lands as the notify attributes."""
    run = accessproof.open_run(build(), tracer_provider=spans.provider)

    with run.step(Step.NOTIFY) as step:
        step.record(channel="email", template="plan_active")

    attributes = _attributes(spans, "accessproof.notify")
    assert attributes[Attr.NOTIFY_CHANNEL] == "email"
    assert attributes[Attr.NOTIFY_TEMPLATE] == "plan_active"


@pytest.mark.parametrize(
    ("access", "expected"),
    [(Access.GRANTED, "granted"), ("revoked", "revoked"), (True, "granted")],
)
def test_entitlement_observes_the_read_back(
    spans: Spans, build: Build, access: Access | str | bool, expected: str
) -> None:
    """observe() records plan, features and access, accepting enum, text or bool."""
    run = accessproof.open_run(build(), tracer_provider=spans.provider)

    with run.step("entitlement") as step:
        step.observe(plan="pro", features=["api", "exports"], access=access)

    attributes = _attributes(spans, "accessproof.entitlement")
    assert attributes[Attr.OBSERVED_PLAN] == "pro"
    assert attributes[Attr.OBSERVED_FEATURES] == ("api", "exports")
    assert attributes[Attr.OBSERVED_ACCESS] == expected


def test_values_a_step_does_not_take_are_dropped_with_a_warning(
    spans: Spans, build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown keys, other steps' keys and bad access words warn and stay off."""
    caplog.set_level(logging.WARNING)
    run = accessproof.open_run(build(), tracer_provider=spans.provider)

    with run.step("notify") as step:
        step.record(channel="email", plan="pro", customer_email="x")
        step.observe(plan="pro")
    with run.step("entitlement") as step:
        step.observe(plan="pro", features="api", access="maybe")

    assert set(_attributes(spans, "accessproof.notify")) == {
        Attr.EVENT_ID,
        Attr.STEP,
        Attr.NOTIFY_CHANNEL,
    }
    assert set(_attributes(spans, "accessproof.entitlement")) == {
        Attr.EVENT_ID,
        Attr.STEP,
        Attr.OBSERVED_PLAN,
    }
    assert "customer_email" in caplog.text
    assert "x" not in caplog.messages


def test_unknown_step_name_warns_and_records_nothing(
    spans: Spans, build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    """A misspelt step name is a warning and a no-op handle, never an exception."""
    caplog.set_level(logging.WARNING)
    run = accessproof.open_run(build(), tracer_provider=spans.provider)

    with run.step("entitlements") as step:
        step.observe(plan="pro")

    assert [span.name for span in spans.finished()] == ["accessproof.webhook"]
    assert "unknown step name" in caplog.text


def test_app_exception_marks_the_step_and_passes_through_unchanged(
    spans: Spans, build: Build
) -> None:
    """An exception sets error status and error.type, with no message and no event."""
    run = accessproof.open_run(build(), tracer_provider=spans.provider)
    error = CardDeclinedError("card 4242 of jane@example.com declined")

    with pytest.raises(CardDeclinedError) as caught, run.step("reconcile"):
        raise error

    (span,) = spans.named("accessproof.reconcile")
    qualified = f"{__name__}.CardDeclinedError"
    assert caught.value is error
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == qualified
    assert (span.attributes or {})[Attr.ERROR_TYPE] == qualified
    assert list(span.events) == []


def test_successful_step_leaves_status_unset(spans: Spans, build: Build) -> None:
    """Instrumentation leaves the status unset on success, as OpenTelemetry advises."""
    run = accessproof.open_run(build(), tracer_provider=spans.provider)

    with run.step("reconcile"):
        pass

    (span,) = spans.named("accessproof.reconcile")
    assert span.status.status_code is StatusCode.UNSET
    assert span.kind is SpanKind.INTERNAL


def test_step_span_is_current_inside_the_block(spans: Spans, build: Build) -> None:
    """The app's own spans inside a step become its children."""
    run = accessproof.open_run(build(), tracer_provider=spans.provider)
    tracer = spans.provider.get_tracer("app")

    with run.step("reconcile"), tracer.start_as_current_span("UPDATE accounts"):
        pass

    (child,) = spans.named("UPDATE accounts")
    (step,) = spans.named("accessproof.reconcile")
    assert child.parent is not None
    assert child.parent.span_id == step.context.span_id


def test_steps_of_an_opened_run_join_the_webhook_trace(
    spans: Spans, build: Build
) -> None:
    """Without an active app span, later steps are children of the webhook span."""
    run = accessproof.open_run(build(), tracer_provider=spans.provider)

    with run.step("reconcile"):
        pass

    (webhook,) = spans.named("accessproof.webhook")
    (reconcile,) = spans.named("accessproof.reconcile")
    assert reconcile.parent is not None
    assert reconcile.parent.span_id == webhook.context.span_id
    assert reconcile.context.trace_id == webhook.context.trace_id


def test_steps_nest_under_the_apps_active_span(spans: Spans, build: Build) -> None:
    """Inside an app span (a request, a job), the webhook span is its child."""
    tracer = spans.provider.get_tracer("app")

    with tracer.start_as_current_span("POST /webhooks/stripe") as request:
        accessproof.open_run(build(), tracer_provider=spans.provider)

    (webhook,) = spans.named("accessproof.webhook")
    assert webhook.parent is not None
    assert webhook.parent.span_id == request.get_span_context().span_id


def test_values_given_outside_the_block_are_dropped(
    spans: Spans, build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    """record() after the block ends warns instead of touching an ended span."""
    caplog.set_level(logging.WARNING)
    run = accessproof.open_run(build(), tracer_provider=spans.provider)

    with run.step("reconcile") as step:
        pass
    step.record(status="active")

    assert Attr.RECONCILED_STATUS not in _attributes(spans, "accessproof.reconcile")
    assert "outside its with block" in caplog.text


class BrokenProvider(TracerProvider):
    """A provider whose tracer fails on every span, as a broken SDK might."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        tracer = super().get_tracer(*args, **kwargs)

        def fail(*_: Any, **__: Any) -> trace.Span:
            raise RuntimeError("exporter exploded")

        tracer.start_span = fail  # type: ignore[method-assign]
        return tracer


def test_telemetry_failure_never_reaches_the_app(
    build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    """A tracer that raises is logged at WARNING; the billing code still runs."""
    caplog.set_level(logging.WARNING)
    ran = []

    run = accessproof.open_run(build(), tracer_provider=BrokenProvider())
    with run.step("entitlement") as step:
        ran.append(True)
        step.observe(plan="pro")

    assert ran == [True]
    assert run.carrier()["baggage"] == "stripe.event.id=evt_1PgcTestUpdated"
    assert "RuntimeError" in caplog.text
    assert "exporter exploded" not in caplog.text


def _features_that_fail() -> Any:
    yield "api"
    raise LookupError("feature table went away")


@pytest.mark.parametrize(
    "make",
    [lambda: 5, _features_that_fail, lambda: [1, 2], lambda: b"api"],
    ids=["int", "failing-iterator", "numbers", "bytes"],
)
def test_features_that_are_not_a_list_of_names_are_dropped_with_a_warning(
    spans: Spans,
    build: Build,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[], Any],
) -> None:
    """observe(features=5) and the like never raise; plan and access still land."""
    caplog.set_level(logging.WARNING)
    run = accessproof.open_run(build(), tracer_provider=spans.provider)

    with run.step("entitlement") as step:
        step.observe(plan="pro", features=make(), access="granted")

    attributes = _attributes(spans, "accessproof.entitlement")
    assert Attr.OBSERVED_FEATURES not in attributes
    assert attributes[Attr.OBSERVED_PLAN] == "pro"
    assert attributes[Attr.OBSERVED_ACCESS] == "granted"
    assert "observe(features=)" in caplog.text
    assert "feature table went away" not in caplog.text


def test_words_that_are_not_strings_are_dropped_with_a_warning(
    spans: Spans, build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    """A plan or status given as a number or a list stays off the span, named."""
    caplog.set_level(logging.WARNING)
    run = accessproof.open_run(build(), tracer_provider=spans.provider)

    with run.step("reconcile") as step:
        step.record(status=5, plan=["pro"])  # type: ignore[arg-type]
    with run.step("entitlement") as step:
        step.observe(plan=5, features=["api"])  # type: ignore[arg-type]

    assert set(_attributes(spans, "accessproof.reconcile")) == {
        Attr.EVENT_ID,
        Attr.STEP,
    }
    entitlement = _attributes(spans, "accessproof.entitlement")
    assert Attr.OBSERVED_PLAN not in entitlement
    assert entitlement[Attr.OBSERVED_FEATURES] == ("api",)
    for name in ("record(status=)", "record(plan=)", "observe(plan=)"):
        assert name in caplog.text
