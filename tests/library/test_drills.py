"""Drills: events that ask the library to break the entitlement proof on purpose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import accessproof
from accessproof import DrillMode
from accessproof.conventions import DRILL_FALSE_PLAN, DRILL_METADATA_KEY, Attr
from tests.library.library_helpers import Spans

Build = Callable[..., dict[str, Any]]


def _drill(build: Build, mode: DrillMode) -> dict[str, Any]:
    return build(metadata={DRILL_METADATA_KEY: mode.value})


def _all_steps(run: accessproof.Run) -> None:
    with run.step("reconcile") as step:
        step.record(status="active", plan="pro")
    with run.step("entitlement") as step:
        step.observe(plan="pro", features=["api"], access="granted")
    with run.step("notify") as step:
        step.record(channel="email")


def test_healthy_drill_flags_every_span_and_changes_nothing_else(
    spans: Spans, build: Build
) -> None:
    """Every span of a healthy drill carries the drill flag and mode, values intact."""
    run = accessproof.open_run(
        _drill(build, DrillMode.HEALTHY), tracer_provider=spans.provider
    )
    _all_steps(run)

    finished = spans.finished()
    assert len(finished) == 4
    for span in finished:
        attributes = span.attributes or {}
        assert attributes[Attr.DRILL] is True
        assert attributes[Attr.DRILL_MODE] == "healthy"
    (entitlement,) = spans.named("accessproof.entitlement")
    assert (entitlement.attributes or {})[Attr.OBSERVED_PLAN] == "pro"


def test_falsify_drill_reports_the_false_plan(spans: Spans, build: Build) -> None:
    """A falsify drill's read-back names the drill's wrong plan, not the real one."""
    run = accessproof.open_run(
        _drill(build, DrillMode.FALSIFY_ENTITLEMENT), tracer_provider=spans.provider
    )
    _all_steps(run)

    (entitlement,) = spans.named("accessproof.entitlement")
    attributes = entitlement.attributes or {}
    assert attributes[Attr.OBSERVED_PLAN] == DRILL_FALSE_PLAN
    assert attributes[Attr.OBSERVED_FEATURES] == ("api",)


def test_skip_drill_exports_no_entitlement_span(spans: Spans, build: Build) -> None:
    """A skip drill leaves out the entitlement span; the app's code still runs."""
    run = accessproof.open_run(
        _drill(build, DrillMode.SKIP_ENTITLEMENT), tracer_provider=spans.provider
    )
    _all_steps(run)

    names = [span.name for span in spans.finished()]
    assert names == [
        "accessproof.webhook",
        "accessproof.reconcile",
        "accessproof.notify",
    ]


def test_real_event_carries_no_drill_flag(spans: Spans, build: Build) -> None:
    """Without the metadata marker no span says drill."""
    run = accessproof.open_run(build(), tracer_provider=spans.provider)
    _all_steps(run)

    for span in spans.finished():
        assert Attr.DRILL not in (span.attributes or {})


def test_drill_mode_travels_through_the_carrier(spans: Spans, build: Build) -> None:
    """A resumed run keeps the drill mode its carrier names."""
    opened = accessproof.open_run(
        _drill(build, DrillMode.FALSIFY_ENTITLEMENT), tracer_provider=spans.provider
    )

    run = accessproof.resume(
        opened.event_id, opened.carrier(), tracer_provider=spans.provider
    )
    _all_steps(run)

    assert run.drill_mode is DrillMode.FALSIFY_ENTITLEMENT
    (entitlement,) = spans.named("accessproof.entitlement")
    assert (entitlement.attributes or {})[Attr.OBSERVED_PLAN] == DRILL_FALSE_PLAN
