"""The example app, instrumented with the library, exporting through the real OTLP
exporters to a real ``accessproof serve``: proven, not changed, mismatched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine.events import subscription_event
from tests.harness import EngineThread
from tests.system.apps import REVISION, BillingApp

pytestmark = pytest.mark.slow

CATALOG: dict[str, Any] = {
    "plans": {
        "free": {"features": []},
        "pro": {
            "prices": ["price_1Pro"],
            "lookup_keys": ["pro_monthly"],
            "features": ["api", "exports"],
        },
    },
    "steps": {
        "default": {
            "required": ["reconcile", "entitlement", "notify"],
            "deadlines": {"reconcile": "3s", "entitlement": "3s", "notify": "3s"},
        }
    },
}


def _endpoint(engine: EngineThread, protocol: str) -> str:
    if protocol == "grpc":
        return f"http://{engine.grpc_endpoint}"
    return engine.traces_url


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_healthy_subscription_update_is_proven(tmp_path: Path, protocol: str) -> None:
    """Webhook in the app, three steps in its worker, all proven by the engine."""
    with (
        EngineThread(tmp_path, catalog=CATALOG) as engine,
        BillingApp(
            tmp_path, otlp_endpoint=_endpoint(engine, protocol), protocol=protocol
        ) as app,
    ):
        event = subscription_event()
        assert app.deliver(event) == 200

        run = engine.wait_for_state(event["id"], "proven", "incident")

    assert run["state"] == "proven"
    assert run["expected"]["plan"] == "pro"
    assert run["observed"]["plan"] == "pro"
    assert run["incidents"] == []


def test_a_job_that_never_runs_becomes_access_not_changed(tmp_path: Path) -> None:
    """The webhook answers 200, the job never runs: the deadline raises it."""
    with (
        EngineThread(tmp_path, catalog=CATALOG) as engine,
        BillingApp(
            tmp_path, otlp_endpoint=_endpoint(engine, "grpc"), fault="skip_job"
        ) as app,
    ):
        event = subscription_event()
        assert app.deliver(event) == 200

        run = engine.wait_for_state(event["id"], "incident", "proven")

    assert run["state"] == "incident"
    (incident,) = run["incidents"]
    assert incident["reason"] == "access_not_changed"
    assert "did not change" in incident["summary"]
    assert incident["expected"]["plan"] == "pro"
    assert incident["customer_id"] == event["data"]["object"]["customer"]
    assert incident["deploy"]["revision"] == REVISION
    assert "Stripe will not redeliver" in incident["retry_guidance"]


def test_a_job_that_writes_the_wrong_plan_becomes_access_mismatch(
    tmp_path: Path,
) -> None:
    """The worker reads back what it wrongly wrote; the engine knows better."""
    with (
        EngineThread(tmp_path, catalog=CATALOG) as engine,
        BillingApp(
            tmp_path,
            otlp_endpoint=_endpoint(engine, "http"),
            protocol="http",
            fault="wrong_plan",
        ) as app,
    ):
        event = subscription_event()
        assert app.deliver(event) == 200

        run = engine.wait_for_state(event["id"], "incident", "proven")

    (incident,) = run["incidents"]
    assert incident["reason"] == "access_mismatch"
    assert incident["expected"]["plan"] == "pro"
    assert incident["observed"]["plan"] not in (None, "pro")
    assert incident["deploy"]["revision"] == REVISION


def test_a_bad_signature_is_refused_and_reaches_no_run(tmp_path: Path) -> None:
    """The app answers 400 to a forged event and the engine never hears of it."""
    with (
        EngineThread(tmp_path, catalog=CATALOG) as engine,
        BillingApp(tmp_path, otlp_endpoint=_endpoint(engine, "grpc")) as app,
    ):
        forged = subscription_event()
        assert app.deliver(forged, secret="whsec_not_the_endpoint_secret") == 400

        good = subscription_event(created=forged["created"] + 1)
        assert app.deliver(good) == 200
        engine.wait_for_state(good["id"], "proven", "incident")

        assert engine.run_resource(forged["id"]) is None
