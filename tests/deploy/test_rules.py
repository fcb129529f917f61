"""The Prometheus rule file passes promtool and its unit tests cover every alert."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_binary
from tests.deploy.files import (
    PROMETHEUS_CONFIG,
    RULE_TESTS,
    RULES,
    alert_rules,
    load_yaml,
)

pytestmark = pytest.mark.prometheus


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's promtool and return what it said."""
    binary = require_binary("promtool")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_the_rule_file() -> None:
    """`promtool check rules` finds every rule valid."""
    result = promtool("check", "rules", str(RULES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_every_alert_unit_test_passes() -> None:
    """`promtool test rules` passes every unit test of the rule file."""
    result = promtool("test", "rules", str(RULE_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    """Each alert is expected to fire in one unit test and stay quiet in another."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])

    names = {rule["alert"] for rule in alert_rules()}
    assert names == firing
    assert names == quiet


def test_every_unit_test_input_series_is_a_declared_metric() -> None:
    """Unit tests feed only metric names the engine or Prometheus exports."""
    declared = {
        "accessproof_runs_total",
        "accessproof_incidents_total",
        "accessproof_incidents_open",
        "accessproof_runs_open",
        "accessproof_spans_received_total",
        "accessproof_spans_rejected_total",
        "accessproof_late_evidence_total",
        "up",
    }
    names = {
        series["series"].split("{")[0]
        for case in load_yaml(RULE_TESTS)["tests"]
        for series in case["input_series"]
    }

    assert names <= declared


def test_drill_alerts_are_routed_apart() -> None:
    """Drill alerts go to the drill route, every other alert to on-call."""
    routes = {
        rule["alert"]: (rule["labels"]["route"], rule["labels"]["drill"])
        for rule in alert_rules()
    }

    assert routes.pop("AccessproofDrillIncident") == ("drill", "true")
    assert set(routes.values()) == {("oncall", "false")}


def test_headline_alert_says_access_did_not_change() -> None:
    """The access-not-changed alert's summary says so in plain words."""
    (rule,) = [r for r in alert_rules() if r["alert"] == "AccessproofAccessNotChanged"]

    assert "customer access did not change" in rule["annotations"]["summary"].lower()
    assert 'drill="false"' in rule["expr"]


def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    """The compose stack's prometheus.yml passes `promtool check config`."""
    config = load_yaml(PROMETHEUS_CONFIG)
    mounted = config["rule_files"]
    config["rule_files"] = [str(RULES)]
    token = tmp_path / "api-token"
    token.write_text("token")
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))

    result = promtool("check", "config", str(checked))

    assert mounted == ["/etc/prometheus/rules/accessproof.rules.yml"]
    assert result.returncode == 0, result.stdout + result.stderr
