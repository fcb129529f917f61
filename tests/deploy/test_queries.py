"""Every dashboard query and every alert rule runs on a real Prometheus.

Prometheus scrapes the ``engine_metrics_target`` fixture after a healthy and a
broken run; each expression must parse and return data.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.deploy.files import alert_rules, prometheus_queries, substitute
from tests.deploy.prom import PrometheusServer, PromQLError

pytestmark = pytest.mark.prometheus

#: Alerts whose condition is the absence of traffic or of the engine itself: on a
#: live engine they return nothing by design, so only their selectors are run.
SILENT_ON_A_LIVE_ENGINE = {"AccessproofNoSpansReceived", "AccessproofEngineDown"}

SELECTOR = re.compile(r"\b(?:accessproof_\w+|up)\b(?:\{[^}]*\})?")

RULES = {rule["alert"]: rule["expr"] for rule in alert_rules()}
PANEL_QUERIES = dict(prometheus_queries())


def test_a_query_that_does_not_parse_is_refused(prometheus: PrometheusServer) -> None:
    """The helper raises on a PromQL syntax error, so a parsed query means valid."""
    with pytest.raises(PromQLError, match="parse error"):
        prometheus.query("sum by (reason (accessproof_incidents_open)")


@pytest.mark.parametrize("where", sorted(PANEL_QUERIES))
def test_dashboard_query_returns_data(prometheus: PrometheusServer, where: str) -> None:
    """Each Prometheus query of each dashboard panel parses and returns data."""
    expr = substitute(PANEL_QUERIES[where])

    assert prometheus.wait_for_data(expr)


@pytest.mark.parametrize("alert", sorted(set(RULES) - SILENT_ON_A_LIVE_ENGINE))
def test_alert_expression_returns_data_after_a_broken_run(
    prometheus: PrometheusServer, alert: str
) -> None:
    """Each incident and intake alert fires on the broken run's metrics."""
    assert prometheus.wait_for_data(RULES[alert])


@pytest.mark.parametrize("alert", sorted(SILENT_ON_A_LIVE_ENGINE))
def test_silence_alert_parses_and_its_series_exist(
    prometheus: PrometheusServer, alert: str
) -> None:
    """A silence alert evaluates to nothing while every series it reads has data."""
    selectors = SELECTOR.findall(RULES[alert])

    assert prometheus.query(RULES[alert]) == []
    assert selectors
    for selector in selectors:
        assert prometheus.wait_for_data(selector), selector


def test_event_type_variable_finds_the_event_types(
    prometheus: PrometheusServer,
) -> None:
    """The dashboard's event type variable reads labels that exist."""
    samples = prometheus.wait_for_data("group by (event_type) (accessproof_runs_total)")

    event_types = {sample["metric"]["event_type"] for sample in samples}
    assert "customer.subscription.updated" in event_types


def test_proof_latency_exemplars_carry_the_trace_id(
    prometheus: PrometheusServer, healthy_trace_id: str
) -> None:
    """Proof-duration exemplars reach Prometheus with the run's trace id."""
    now = time.time()
    selector = "accessproof_proof_duration_seconds_bucket"
    prometheus.wait_for_data(selector)

    series = prometheus.query_exemplars(selector, now - 600, now + 60)

    trace_ids = {
        exemplar["labels"].get("trace_id")
        for entry in series
        for exemplar in entry["exemplars"]
    }
    assert healthy_trace_id in trace_ids
