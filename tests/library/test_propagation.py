"""Carrying a run into a worker: the carrier, resume, and a real second process."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import baggage, context

import accessproof
from accessproof import DrillMode
from accessproof.conventions import Attr
from tests.library.library_helpers import OtlpSink, Spans

Build = Callable[..., dict[str, Any]]


def test_carrier_holds_trace_context_and_only_the_event_id(
    spans: Spans, build: Build
) -> None:
    """The carrier points at the webhook span and carries no baggage of the app's."""
    token = context.attach(baggage.set_baggage("user.email", "jane@example.com"))
    try:
        run = accessproof.open_run(build(), tracer_provider=spans.provider)
        carrier = run.carrier()
    finally:
        context.detach(token)

    (webhook,) = spans.finished()
    trace_id = f"{webhook.context.trace_id:032x}"
    span_id = f"{webhook.context.span_id:016x}"
    assert set(carrier) == {"traceparent", "baggage"}
    assert carrier["traceparent"].split("-")[1:3] == [trace_id, span_id]
    assert carrier["baggage"] == "stripe.event.id=evt_1PgcTestUpdated"


def test_resumed_steps_start_their_own_trace_linked_to_the_carrier(
    spans: Spans, build: Build
) -> None:
    """Each resumed step links to the carried span and shares one new trace."""
    opened = accessproof.open_run(build(), tracer_provider=spans.provider)

    run = accessproof.resume(
        opened.event_id, opened.carrier(), tracer_provider=spans.provider
    )
    with run.step("reconcile"):
        pass
    with run.step("entitlement"):
        pass

    (webhook,) = spans.named("accessproof.webhook")
    (reconcile,) = spans.named("accessproof.reconcile")
    (entitlement,) = spans.named("accessproof.entitlement")
    for span in (reconcile, entitlement):
        assert [link.context.span_id for link in span.links] == [
            webhook.context.span_id
        ]
        assert span.context.trace_id != webhook.context.trace_id
        assert (span.attributes or {})[Attr.EVENT_ID] == "evt_1PgcTestUpdated"
    assert entitlement.context.trace_id == reconcile.context.trace_id


def test_event_id_alone_is_enough_to_resume(spans: Spans) -> None:
    """Without a carrier the steps still name the event, with no link."""
    run = accessproof.resume("evt_1NoCarrier", tracer_provider=spans.provider)

    with run.step("notify") as step:
        step.record(channel="email")

    (span,) = spans.finished()
    assert (span.attributes or {})[Attr.EVENT_ID] == "evt_1NoCarrier"
    assert list(span.links) == []
    assert run.drill_mode is None


def test_malformed_carrier_is_ignored(
    spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken traceparent and an unknown drill mode never stop the worker."""
    caplog.set_level(logging.WARNING)
    carrier = {"traceparent": "00-zz-yy-01", "accessproof-drill": "explode"}

    run = accessproof.resume("evt_1Broken", carrier, tracer_provider=spans.provider)
    with run.step("reconcile"):
        pass

    (span,) = spans.finished()
    assert list(span.links) == []
    assert run.drill_mode is DrillMode.HEALTHY
    assert "unknown drill mode" in caplog.text


def _worker(event_id: str, carrier: dict[str, str], endpoint: str) -> None:
    provider = accessproof.setup_tracing(
        "resume-test-worker", endpoint=endpoint, protocol="http", set_global=False
    )
    run = accessproof.resume(event_id, carrier, tracer_provider=provider)
    with run.step("reconcile") as step:
        step.record(status="active", plan="pro")
    provider.shutdown()


def test_run_resumes_in_a_real_second_process(
    spans: Spans, build: Build, otlp_sink: OtlpSink
) -> None:
    """A spawned process exports the step with the same event id and a link."""
    opened = accessproof.open_run(
        build(event_id="evt_1SecondProcess"), tracer_provider=spans.provider
    )
    process = multiprocessing.get_context("spawn").Process(
        target=_worker,
        args=(opened.event_id, opened.carrier(), otlp_sink.endpoint),
    )

    process.start()
    process.join(timeout=30)

    assert process.exitcode == 0
    (webhook,) = spans.finished()
    (received,) = otlp_sink.spans("evt_1SecondProcess")
    assert received.name == "accessproof.reconcile"
    assert received.attributes[Attr.RECONCILED_PLAN] == "pro"
    assert received.resource[Attr.SERVICE_NAME] == "resume-test-worker"
    assert received.links == [
        (f"{webhook.context.trace_id:032x}", f"{webhook.context.span_id:016x}")
    ]
