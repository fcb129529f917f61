"""Paths of the deployment files and readers for them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COLLECTOR = ROOT / "collector-config.yaml"
RULES = ROOT / "alerts" / "accessproof.rules.yml"
RULE_TESTS = ROOT / "alerts" / "accessproof.rules.test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DASHBOARDS = ROOT / "dashboards"

#: What Grafana puts in place of its variables before a query reaches Prometheus,
#: as the query tests substitute them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$event_type": ".*",
}


def load_yaml(path: Path) -> Any:
    """Parse one YAML document."""
    return yaml.safe_load(path.read_text())


def dashboards() -> dict[str, Any]:
    """Every dashboard JSON file, by file name."""
    paths = sorted(DASHBOARDS.glob("*.json"))
    return {path.name: json.loads(path.read_text()) for path in paths}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel of a dashboard, those nested in rows included."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of the canonical Prometheus rule file."""
    groups = load_yaml(RULES)["groups"]
    return [rule for group in groups for rule in group["rules"]]


def prometheus_queries() -> list[tuple[str, str]]:
    """``(where, expr)`` for each PromQL query of each dashboard panel."""
    queries = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                source = target.get("datasource") or panel.get("datasource") or {}
                if source.get("type") == "prometheus":
                    where = f"{name}: {panel['title']} {target['refId']}"
                    queries.append((where, target["expr"]))
    return queries


def substitute(expr: str) -> str:
    """Replace the Grafana variables of a query; refuse any left unknown."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    unknown = re.findall(r"\$\{?\w+", expr)
    if unknown:
        raise ValueError(f"unknown Grafana variables {unknown} in: {expr}")
    return expr
