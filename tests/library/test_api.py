"""The public surface of the library."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace

import accessproof
from accessproof.conventions import INSTRUMENTATION_NAME, SCHEMA_URL


def test_public_names_are_exactly_the_curated_set() -> None:
    """The package exports the curated names and nothing else."""
    assert set(accessproof.__all__) == {
        "Access",
        "DrillMode",
        "Run",
        "Step",
        "StepHandle",
        "VerificationReason",
        "WebhookVerificationError",
        "__version__",
        "open_run",
        "resume",
        "setup_tracing",
        "verify_and_open",
    }
    assert all(hasattr(accessproof, name) for name in accessproof.__all__)


def test_version_is_the_release() -> None:
    """The version matches the packaged release."""
    assert accessproof.__version__ == "0.1.0"


def test_verification_error_is_a_value_error() -> None:
    """Apps that catch ValueError also catch refused webhooks."""
    assert issubclass(accessproof.WebhookVerificationError, ValueError)


def test_spans_carry_the_instrumentation_scope(
    spans: Any, build: Callable[..., dict[str, Any]]
) -> None:
    """Spans name accessproof, its version and the schema URL as their scope."""
    accessproof.open_run(build(), tracer_provider=spans.provider)

    (span,) = spans.finished()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == INSTRUMENTATION_NAME
    assert span.instrumentation_scope.version == accessproof.__version__
    assert span.instrumentation_scope.schema_url == SCHEMA_URL


def test_library_never_installs_a_global_provider(
    spans: Any, build: Callable[..., dict[str, Any]]
) -> None:
    """Opening and resuming runs leaves the global tracer provider alone."""
    before = trace.get_tracer_provider()

    run = accessproof.open_run(build(), tracer_provider=spans.provider)
    with accessproof.resume(run.event_id, run.carrier()).step("reconcile"):
        pass

    assert trace.get_tracer_provider() is before
