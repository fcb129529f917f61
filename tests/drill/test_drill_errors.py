"""The drill against wrong URLs, wrong servers and refused tokens: clear failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from accessproof.cli import main
from accessproof.drill.drill import (
    Drill,
    DrillTarget,
    EngineApi,
    EngineRefused,
    Stage,
)
from accessproof.drill.events import Price
from tests.drill.conftest import CATALOG
from tests.drill.stubs import ENGINE_PROBES, not_http, stub_http
from tests.harness import EngineThread

SECRET = "whsec_drillerrors0123456789"
WEBHOOK = {"/webhooks/stripe": (200, {"received": True})}


def drill(
    capsys: pytest.CaptureFixture[str], webhook_url: str, api: str
) -> tuple[int, dict[str, Any] | None, str]:
    """Run ``accessproof drill --json``; return the status, the report and stderr."""
    status = main(
        [
            "drill",
            "--webhook-url",
            webhook_url,
            "--webhook-secret",
            SECRET,
            "--api",
            api,
            "--customer",
            "cus_drill0errors",
            "--price",
            "price_1Pro",
            "--timeout",
            "5",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    report = json.loads(captured.out) if captured.out else None
    return status, report, captured.err


def stage(report: dict[str, Any] | None, which: Stage) -> dict[str, Any]:
    assert report is not None
    found: dict[str, Any] = next(s for s in report["stages"] if s["stage"] == which)
    return found


@pytest.mark.parametrize(
    ("flag", "url"),
    [
        ("--webhook-url", "127.0.0.1:8000/webhooks/stripe"),
        ("--webhook-url", "http://127.0.0.1:abc/webhooks/stripe"),
        ("--webhook-url", "http://127.0.0.1:99999/webhooks/stripe"),
        ("--webhook-url", "http://[::1/webhooks/stripe"),
        ("--api", "http://127.0.0.1:abc"),
        ("--api", "http://[::1"),
        ("--api", "127.0.0.1:8080"),
    ],
)
def test_malformed_url_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], flag: str, url: str
) -> None:
    """A URL without scheme, with a bad port or a bad IPv6 host exits 2 in one line."""
    urls = {"--webhook-url": "http://127.0.0.1:9/hook", "--api": "http://127.0.0.1:9"}
    urls[flag] = url

    status, report, err = drill(capsys, urls["--webhook-url"], urls["--api"])

    assert status == 2
    assert report is None
    assert err.count("\n") == 1
    assert err.startswith("accessproof drill: ")
    assert repr(url) in err


def test_webhook_port_that_does_not_speak_http_fails_the_delivery(
    capsys: pytest.CaptureFixture[str], engine: EngineThread
) -> None:
    """A webhook URL on a non-HTTP port fails stage 1 with a reason, no traceback."""
    with not_http() as url:
        status, report, _ = drill(capsys, f"{url}/webhooks/stripe", engine.api_url)

    assert status == 1
    delivered = stage(report, Stage.DELIVER)
    assert delivered["ok"] is False
    assert delivered["detail"].startswith("webhook unreachable: no HTTP answer from")
    assert "BadStatusLine" in delivered["detail"]


@pytest.mark.parametrize(
    ("replies", "said"),
    [
        ({"/": (200, "<html><body>Grafana</body></html>")}, "HTTP 200"),
        ({}, "HTTP 404"),
    ],
    ids=["html-200", "404-everywhere"],
)
def test_api_that_is_not_an_engine_fails_before_any_event_is_sent(
    capsys: pytest.CaptureFixture[str],
    replies: dict[str, tuple[int, Any]],
    said: str,
) -> None:
    """An --api answering HTML or 404 is named as not an engine; no event leaves."""
    with stub_http(WEBHOOK) as app, stub_http(replies) as api:
        status, report, _ = drill(capsys, f"{app.url}/webhooks/stripe", api.url)

    assert status == 1
    reached = stage(report, Stage.ENGINE)
    assert reached["ok"] is False
    assert reached["detail"].startswith(f"not an accessproof engine at {api.url}")
    assert said in reached["detail"]
    assert stage(report, Stage.DELIVER)["ok"] is None
    assert app.seen == []


def test_api_that_does_not_speak_http_fails_the_engine_stage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An --api on a non-HTTP port fails the first stage with a reason."""
    with stub_http(WEBHOOK) as app, not_http() as api:
        status, report, _ = drill(capsys, f"{app.url}/webhooks/stripe", api)

    assert status == 1
    assert stage(report, Stage.ENGINE)["detail"].startswith(
        f"no HTTP answer from {api}"
    )
    assert app.seen == []


def test_engine_refusing_the_missing_token_fails_at_once_with_advice(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A real engine with an API token answers 401; the drill says to set it."""
    monkeypatch.delenv("ACCESSPROOF_API_TOKEN", raising=False)
    with (
        stub_http(WEBHOOK) as app,
        EngineThread(tmp_path, catalog=CATALOG, api_token="engine-api-token") as eng,
    ):
        status, report, _ = drill(capsys, f"{app.url}/webhooks/stripe", eng.api_url)

    assert status == 1
    detail = stage(report, Stage.ENGINE)["detail"]
    assert detail.startswith("the engine refused the API token (HTTP 401")
    assert detail.endswith("set ACCESSPROOF_API_TOKEN")
    assert app.seen == []


def test_polling_stops_at_the_first_refusal_instead_of_waiting_out_the_timeout() -> (
    None
):
    """A 401 while waiting for the proof ends the stage at once, after one call."""
    runs_refused = {
        **ENGINE_PROBES,
        "/api/v1/runs/": (
            401,
            {"error": {"code": "unauthenticated", "message": "token expired"}},
        ),
    }
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    with stub_http(WEBHOOK) as app, stub_http(runs_refused) as api:
        target = DrillTarget(
            webhook_url=f"{app.url}/webhooks/stripe",
            webhook_secret=SECRET,
            customer="cus_drill0errors",
            price=Price("price_1Pro"),
        )
        report = Drill(
            target,
            EngineApi(api.url, token="stale-token"),
            timeout=60,
            monotonic=lambda: clock[0],
            sleep=sleep,
        ).run()

    proof = next(s for s in report.stages if s.stage is Stage.PROVE)
    assert proof.ok is False
    assert proof.detail.startswith("the engine refused the API token (HTTP 401")
    assert proof.detail.endswith("check ACCESSPROOF_API_TOKEN")
    assert len([path for path in api.seen if path.startswith("/api/v1/runs/")]) == 1
    assert clock[0] < 1


def test_only_the_run_not_found_code_means_not_yet_known(
    engine: EngineThread,
) -> None:
    """The engine's run_not_found 404 is 'not yet'; a bare 404 is a wrong URL."""
    with stub_http({}, fallback=(404, {"detail": "Not Found"})) as other:
        wrong = EngineApi(other.url)

        assert EngineApi(engine.api_url).run("evt_never_sent") is None
        with pytest.raises(EngineRefused, match="not an accessproof engine API"):
            wrong.run("evt_never_sent")
