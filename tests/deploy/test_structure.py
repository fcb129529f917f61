"""Structural checks of the files no machine here can run: compose, collector, Grafana.

There is no Docker engine, Collector binary or Grafana server on these machines, so
these tests hold the files to what those programs would need: every mounted file
exists, every reference resolves, and only current component names are used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from accessproof.conventions import Attr
from tests.deploy.files import (
    COLLECTOR,
    COMPOSE,
    PROMETHEUS_CONFIG,
    PROVISIONING,
    ROOT,
    alert_rules,
    dashboards,
    load_yaml,
    panels,
)

COMPOSE_DOC = load_yaml(COMPOSE)
SERVICES: dict[str, Any] = COMPOSE_DOC["services"]
COLLECTOR_DOC = load_yaml(COLLECTOR)
ALERTING = PROVISIONING / "alerting" / "accessproof.yaml"
DATASOURCES = PROVISIONING / "datasources" / "datasources.yaml"

#: Exporter types renamed in current contrib releases; the old names are deprecated.
DEPRECATED_EXPORTERS = {"otlp", "otlphttp", "loadbalancing"}
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|WEBHOOK_URL")
LB_VARIANT = re.compile(
    r"# --- load_balancing variant ---\n(.*?)# --- end of load_balancing variant",
    re.DOTALL,
)


def bind_mounts() -> list[tuple[str, str]]:
    """``(service, host path)`` for every bind mount of the compose file."""
    mounts = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                mounts.append((name, source))
    return mounts


def component_type(name: str) -> str:
    """The type part of a collector component id such as ``otlp_grpc/engine``."""
    return name.partition("/")[0]


def datasource_uids() -> set[str]:
    """Uids of the provisioned Grafana datasources."""
    return {source["uid"] for source in load_yaml(DATASOURCES)["datasources"]}


def datasource_refs(node: Any) -> list[dict[str, Any]]:
    """Every ``datasource`` object found anywhere in a dashboard."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            found.append(node["datasource"])
        for value in node.values():
            found.extend(datasource_refs(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(datasource_refs(value))
    return found


@pytest.mark.parametrize(("service", "source"), bind_mounts())
def test_every_mounted_file_exists(service: str, source: str) -> None:
    """Each file or folder a compose service mounts from the repository exists."""
    assert (ROOT / source).exists(), f"{service} mounts missing {source}"


def test_the_image_build_copies_files_that_exist() -> None:
    """Every path the Dockerfile copies from the build context exists."""
    copies = re.findall(r"^COPY (.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    sources = [source for line in copies for source in line.split()]

    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source


def test_every_image_is_pinned() -> None:
    """Each service runs a pinned image tag, or the image built from this repo."""
    for name, service in SERVICES.items():
        image = service["image"]
        if "build" in service:
            assert image == "accessproof:local", name
            continue
        tag = image.rpartition(":")[2]
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image}"


def test_every_service_but_the_collector_has_a_healthcheck() -> None:
    """Each service has a healthcheck; the collector image has no shell to run one."""
    missing = {name for name, s in SERVICES.items() if "healthcheck" not in s}

    assert missing == {"collector"}


def test_compose_holds_no_secret_value() -> None:
    """Secret-looking variables come from .env, and the file has no key in it."""
    text = COMPOSE.read_text()
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            if SECRET_NAME.search(key):
                assert str(value).startswith("${"), f"{name}: {key}"

    assert not re.search(r"\b(?:sk|rk)_(?:live|test)_|\bwhsec_", text)


def test_env_example_declares_every_variable_compose_reads() -> None:
    """Each variable the compose file interpolates has a line in .env.example."""
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    lines = (ROOT / ".env.example").read_text().splitlines()
    declared = {line.split("=")[0] for line in lines if re.match(r"\w+=", line)}

    assert used
    assert used <= declared


def test_prometheus_scrapes_the_engine_and_the_collector() -> None:
    """Prometheus scrapes the engine under its alerts' job name, and the collector."""
    scrape = load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in scrape}
    command = SERVICES["engine"]["command"]
    engine_port = command[command.index("--http") + 1].rpartition(":")[2]
    collector_port = COLLECTOR_DOC["service"]["telemetry"]["metrics"]["readers"][0]
    collector_port = collector_port["pull"]["exporter"]["prometheus"]["port"]

    assert targets["accessproof"] == [f"engine:{engine_port}"]
    assert targets["otel-collector"] == [f"collector:{collector_port}"]
    assert "--enable-feature=exemplar-storage" in SERVICES["prometheus"]["command"]


def test_prometheus_reads_the_engine_token_from_a_compose_secret() -> None:
    """The engine's /metrics needs its API token; Prometheus gets it as a secret."""
    (engine_job,) = [
        job
        for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
        if job["job_name"] == "accessproof"
    ]
    path = engine_job["authorization"]["credentials_file"]
    (secret,) = SERVICES["prometheus"]["secrets"]

    assert path == f"/run/secrets/{secret}"
    assert COMPOSE_DOC["secrets"][secret] == {"environment": "ACCESSPROOF_API_TOKEN"}


def test_tempo_config_has_no_blocks_tempo_3_removed() -> None:
    """The Tempo config has none of the 2.x blocks Tempo 3 refuses."""
    tempo = load_yaml(ROOT / "deploy" / "tempo" / "tempo.yaml")

    assert not {"ingester", "compactor", "ingester_client"} & set(tempo)


def test_collector_config_is_the_one_the_collector_loads() -> None:
    """The collector service mounts collector-config.yaml where its command reads."""
    collector = SERVICES["collector"]
    (config_flag,) = collector["command"]
    mounted = {v.split(":")[1] for v in collector["volumes"]}

    assert config_flag.partition("=")[2] in mounted
    assert "./collector-config.yaml" in {v.split(":")[0] for v in collector["volumes"]}


@pytest.mark.parametrize("pipeline", sorted(COLLECTOR_DOC["service"]["pipelines"]))
def test_collector_pipeline_refers_only_to_defined_components(pipeline: str) -> None:
    """Each receiver, processor and exporter a pipeline names is defined."""
    spec = COLLECTOR_DOC["service"]["pipelines"][pipeline]
    for kind in ("receivers", "processors", "exporters"):
        for name in spec.get(kind, []):
            assert name in COLLECTOR_DOC[kind], f"{pipeline}: {kind} {name}"


def test_collector_extensions_are_defined() -> None:
    """Every enabled extension is defined; health_check listens beyond localhost."""
    enabled = COLLECTOR_DOC["service"]["extensions"]

    assert set(enabled) <= set(COLLECTOR_DOC["extensions"])
    assert COLLECTOR_DOC["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"


def test_collector_uses_no_deprecated_exporter_name() -> None:
    """No exporter uses a type that current contrib releases renamed."""
    types = {component_type(name) for name in COLLECTOR_DOC["exporters"]}

    assert types == {"otlp_grpc", "otlp_http"}
    assert not types & DEPRECATED_EXPORTERS


def test_engine_pipeline_keeps_only_spans_with_an_event_id() -> None:
    """The engine's traces pass a flat-syntax filter dropping spans without the id."""
    spec = COLLECTOR_DOC["service"]["pipelines"]["traces/engine"]
    filters = [p for p in spec["processors"] if component_type(p) == "filter"]
    (config,) = [COLLECTOR_DOC["processors"][name] for name in filters]

    assert set(config) <= {"error_mode", "trace_conditions"}
    assert config["trace_conditions"] == [f'span.attributes["{Attr.EVENT_ID}"] == nil']
    assert spec["processors"].index(filters[0]) < spec["processors"].index("batch")


def test_every_pipeline_starts_with_the_memory_limiter() -> None:
    """The memory limiter comes first in each pipeline, redaction before export."""
    for name, spec in COLLECTOR_DOC["service"]["pipelines"].items():
        processors = spec["processors"]
        assert processors[0] == "memory_limiter", name
        assert any(component_type(p) == "redaction" for p in processors), name


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("4242424242424242", True),
        ("card 5555 5555 5555 4444 on file", True),
        ("sk_live_51Habcdef0123456789", True),
        ("rk_test_abcdef0123456789", True),
        ("whsec_0123456789abcdef", True),
        ("evt_1QxYzAbCdEf0123456789", False),
        ("price_1ProYearly", False),
        ("1767225600", False),
    ],
)
def test_redaction_masks_cards_and_keys_only(value: str, masked: bool) -> None:
    """The redaction patterns catch card numbers and secret keys, not Stripe ids."""
    (name,) = [p for p in COLLECTOR_DOC["processors"] if p.startswith("redaction")]
    patterns = COLLECTOR_DOC["processors"][name]["blocked_values"]

    assert any(re.search(p, value) for p in patterns) is masked


def test_load_balancing_variant_routes_by_event_id() -> None:
    """The commented load_balancing exporter parses and routes by stripe.event.id."""
    block = LB_VARIANT.search(COLLECTOR.read_text())
    assert block is not None
    text = re.sub(r"^\s*# ?", "", block.group(1), flags=re.M)
    (name, exporter), *_ = yaml.safe_load(text).items()

    assert component_type(name) == "load_balancing"
    assert exporter["routing_key"] == "attributes"
    assert exporter["routing_attributes"] == [Attr.EVENT_ID]
    assert "otlp" in exporter["protocol"]


def test_collector_environment_is_provided() -> None:
    """Each ${env:VAR} without a default is set on the collector service."""
    required = set(re.findall(r"\$\{env:(\w+)\}", COLLECTOR.read_text()))

    assert required <= set(SERVICES["collector"]["environment"])


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_dashboard_datasources_are_provisioned_by_uid(name: str) -> None:
    """Every datasource a dashboard names is a provisioned uid with a type."""
    dashboard = dashboards()[name]
    refs = datasource_refs(dashboard)
    builtin = {"-- Grafana --"}

    assert refs
    for ref in refs:
        assert set(ref) == {"type", "uid"}, ref
        assert ref["uid"] in datasource_uids() | builtin, ref
    assert "__inputs" not in dashboard
    assert "${DS_" not in str(dashboard)


def test_dashboard_has_the_panels_operators_need() -> None:
    """The overview shows runs, incidents, latency with exemplars, drills and logs."""
    dashboard = dashboards()["accessproof-overview.json"]
    exprs = " ".join(
        target.get("expr", "")
        for panel in panels(dashboard)
        for target in panel["targets"]
    )
    exemplars = [
        target
        for panel in panels(dashboard)
        for target in panel["targets"]
        if target.get("exemplar")
    ]
    logs = [panel for panel in panels(dashboard) if panel["type"] == "logs"]

    for metric in (
        "accessproof_runs_total",
        "accessproof_incidents_open",
        "accessproof_incident_resolution_seconds_bucket",
        "accessproof_spans_rejected_total",
        'drill="true"',
    ):
        assert metric in exprs
    assert all("accessproof_proof_duration_seconds" in t["expr"] for t in exemplars)
    assert len(exemplars) == 2
    assert logs[0]["datasource"]["uid"] == "loki"
    assert logs[0]["links"][0]["url"].endswith("/incidents")
    assert dashboard["schemaVersion"] >= 39


def test_exemplars_link_to_tempo() -> None:
    """The Prometheus datasource turns the trace_id exemplar into a Tempo link."""
    sources = {s["uid"]: s for s in load_yaml(DATASOURCES)["datasources"]}
    (destination,) = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]

    assert destination == {"name": "trace_id", "datasourceUid": "tempo"}
    assert {"prometheus", "loki", "tempo"} <= set(sources)


def grafana_rules() -> dict[str, dict[str, Any]]:
    """Grafana's provisioned alert rules, by title."""
    groups = load_yaml(ALERTING)["groups"]
    return {rule["title"]: rule for group in groups for rule in group["rules"]}


def as_prometheus_template(text: str) -> str:
    """Undo the provisioning escapes of a Grafana annotation."""
    text = text.replace("$$", "$")
    return text.replace("{{ $values.A.Value }}", "{{ $value }}")


def test_grafana_alerts_mirror_the_prometheus_rules() -> None:
    """Grafana provisions the same alerts, expressions, labels and annotations."""
    grafana = grafana_rules()

    assert set(grafana) == {rule["alert"] for rule in alert_rules()}
    for rule in alert_rules():
        mirror = grafana[rule["alert"]]
        query = next(d for d in mirror["data"] if d["refId"] == "A")
        annotations = {
            k: as_prometheus_template(v) for k, v in mirror["annotations"].items()
        }
        assert query["model"]["expr"] == rule["expr"].strip()
        assert query["datasourceUid"] in datasource_uids()
        assert mirror["for"] == rule.get("for", "0s")
        assert mirror["labels"] == rule["labels"]
        assert annotations == rule["annotations"]


def test_grafana_routes_drill_alerts_to_their_own_contact_point() -> None:
    """The notification policy sends route=drill to the drills contact point."""
    doc = load_yaml(ALERTING)
    (policy,) = doc["policies"]
    contact_points = {point["name"] for point in doc["contactPoints"]}
    (drill_route,) = policy["routes"]

    assert drill_route["object_matchers"] == [["route", "=", "drill"]]
    assert {policy["receiver"], drill_route["receiver"]} == contact_points
    assert policy["receiver"] != drill_route["receiver"]


@pytest.mark.parametrize(
    "path", sorted(PROVISIONING.rglob("*.yaml")), ids=lambda p: Path(p).name
)
def test_provisioning_dollars_are_escaped_or_environment(path: Path) -> None:
    """A `$` in provisioning is `$$` or a `${VAR}` that Grafana's environment sets."""
    environment = set(SERVICES["grafana"]["environment"])
    lines = path.read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    text = text.replace("$$", "")

    for match in re.finditer(r"\$(\{?)(\w*)", text):
        assert match.group(1) == "{", f"unescaped $ at {match.group(0)!r}"
        assert match.group(2) in environment, match.group(0)
