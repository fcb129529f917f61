"""The drill against a real engine and the real example app."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from accessproof.cli import main
from accessproof.drill.drill import ACK_BY, Stage
from tests.drill.conftest import CATALOG, REVISION, App
from tests.harness import EngineThread, http_json, write_catalog

StartApp = Callable[..., App]


def drill(
    capsys: pytest.CaptureFixture[str],
    engine: EngineThread,
    app: App,
    secret: str,
    *,
    catalog: Path,
    timeout: float = 20,
) -> tuple[int, dict[str, Any]]:
    status = main(
        [
            "drill",
            "--webhook-url",
            app.webhook_url,
            "--webhook-secret",
            secret,
            "--api",
            engine.api_url,
            "--customer",
            "cus_drill0test",
            "--config",
            str(catalog),
            "--timeout",
            str(timeout),
            "--json",
        ]
    )
    return status, json.loads(capsys.readouterr().out)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return write_catalog(tmp_path, CATALOG)


def stage(report: dict[str, Any], which: Stage) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in report["stages"] if s["stage"] == which)
    return found


def test_drill_passes_against_a_healthy_app_and_acknowledges_its_incidents(
    capsys: pytest.CaptureFixture[str],
    engine: EngineThread,
    start_app: StartApp,
    webhook_secret: str,
    catalog: Path,
) -> None:
    """Every stage passes, and both drill incidents end acknowledged by the drill."""
    app = start_app(webhook_secret)

    status, report = drill(capsys, engine, app, webhook_secret, catalog=catalog)

    assert (status, report["ok"]) == (0, True), report
    assert [s["ok"] for s in report["stages"]] == [True] * len(Stage)
    for which in (Stage.FALSIFY, Stage.SKIP):
        incident_id = stage(report, which)["incident_id"]
        code, incident = http_json(f"{engine.api_url}/api/v1/incidents/{incident_id}")
        assert code == 200
        assert (incident["state"], incident["acknowledged_by"]) == (
            "acknowledged",
            ACK_BY,
        )
        assert incident["drill"] is True
        assert incident["deploy"]["revision"] == REVISION


def test_drill_with_another_secret_fails_saying_the_signature_was_rejected(
    capsys: pytest.CaptureFixture[str],
    engine: EngineThread,
    start_app: StartApp,
    webhook_secret: str,
    catalog: Path,
) -> None:
    """An app holding a different secret refuses the delivery; the drill says why."""
    app = start_app(webhook_secret)

    status, report = drill(
        capsys, engine, app, "whsec_not_the_apps_secret", catalog=catalog
    )

    assert status == 1
    delivered = stage(report, Stage.DELIVER)
    assert delivered["ok"] is False
    assert delivered["detail"].startswith(
        "signature rejected: webhook refused (HTTP 400"
    )
    assert "whsec_not_the_apps_secret" not in json.dumps(report)
    assert stage(report, Stage.PROVE)["ok"] is None


def test_drill_against_an_app_that_drops_its_job_fails_at_the_proof(
    capsys: pytest.CaptureFixture[str],
    engine: EngineThread,
    start_app: StartApp,
    webhook_secret: str,
    catalog: Path,
) -> None:
    """With the entitlement job never run, stage 2 names the verdict it got instead."""
    app = start_app(webhook_secret, fault="skip_job")

    status, report = drill(capsys, engine, app, webhook_secret, catalog=catalog)

    assert status == 1
    proof = stage(report, Stage.PROVE)
    assert proof["ok"] is False
    assert proof["detail"].startswith("wrong verdict: incident/access_not_changed")
    assert stage(report, Stage.FALSIFY)["ok"] is None


def test_drill_without_an_engine_behind_the_app_says_no_spans_arrived(
    capsys: pytest.CaptureFixture[str],
    start_app: StartApp,
    webhook_secret: str,
    catalog: Path,
    tmp_path: Path,
) -> None:
    """An engine that never hears from the app fails stage 2 with that reason."""
    app = start_app(webhook_secret)
    with EngineThread(tmp_path, catalog=CATALOG) as elsewhere:
        status, report = drill(
            capsys, elsewhere, app, webhook_secret, catalog=catalog, timeout=2
        )

    assert status == 1
    assert stage(report, Stage.PROVE)["detail"].startswith(
        "no spans reached the engine within 2s"
    )


@pytest.mark.slow
def test_demo_without_waiting_runs_the_drill_and_prints_the_operator_page(
    tmp_path: Path,
) -> None:
    """``accessproof demo --no-wait`` passes its drill, prints the page URL, exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "accessproof", "demo", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "drill passed" in done.stdout
    assert "operator page: http://127.0.0.1:" in done.stdout
    assert "access_not_changed" in done.stdout
    assert list(tmp_path.iterdir()) == []
