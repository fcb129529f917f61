"""A real Prometheus scraping a real engine counts what the engine decided."""

from __future__ import annotations

import pytest

from tests.deploy.prom import PrometheusServer

pytestmark = pytest.mark.prometheus


def _value(prometheus: PrometheusServer, expr: str, expected: float) -> float:
    """Wait until ``expr`` reaches ``expected`` (scrapes lag); return its value."""
    samples = prometheus.wait_for_data(f"{expr} >= {expected}")
    return float(samples[0]["value"][1])


@pytest.mark.parametrize(
    ("reason", "drill"),
    [
        ("access_not_changed", "false"),
        ("access_mismatch", "false"),
        ("notification_missing", "false"),
        ("access_mismatch", "true"),
    ],
)
def test_each_incident_is_counted_with_its_reason(
    prometheus: PrometheusServer, reason: str, drill: str
) -> None:
    """The broken runs each count once, under their own reason and drill flag."""
    expr = f'sum(accessproof_incidents_total{{reason="{reason}",drill="{drill}"}})'

    expected = 2.0 if (reason, drill) == ("access_not_changed", "false") else 1.0

    assert _value(prometheus, expr, expected) == expected


def test_the_proof_histogram_has_the_proven_runs(
    prometheus: PrometheusServer,
) -> None:
    """Proven runs land in the proof-duration histogram."""
    expr = "sum(accessproof_proof_duration_seconds_count)"

    assert _value(prometheus, expr, 2.0) >= 2.0


def test_open_incidents_gauge_reads_the_store(prometheus: PrometheusServer) -> None:
    """Open incidents by reason come from the store, resolved ones excluded."""
    expr = 'accessproof_incidents_open{reason="access_not_changed"}'

    assert _value(prometheus, expr, 1.0) == 1.0


def test_a_resolution_is_timed(prometheus: PrometheusServer) -> None:
    """The run proven late shows in the resolution histogram."""
    reason = 'reason="access_not_changed"'
    expr = f"sum(accessproof_incident_resolution_seconds_count{{{reason}}})"

    assert _value(prometheus, expr, 1.0) == 1.0
