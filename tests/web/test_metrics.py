"""GET /metrics serves the given registry, as OpenMetrics when asked."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import Histogram

from tests.web.conftest import World, with_client

Client = TestClient[Any, Any]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
OPENMETRICS = "application/openmetrics-text"


def scrape(world: World, accept: str | None) -> tuple[str, str]:
    """Return the content type and body of /metrics."""

    async def scenario(client: Client) -> tuple[str, str]:
        headers = {"Accept": accept} if accept else {}
        response = await client.get("/metrics", headers=headers)
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()

    return with_client(world, scenario)


def observe(world: World) -> None:
    histogram = Histogram(
        "accessproof_proof_duration_seconds",
        "Time from webhook to proof.",
        ["event_type"],
        registry=world.registry,
    )
    histogram.labels("customer.subscription.updated").observe(
        0.4, exemplar={"trace_id": TRACE_ID}
    )


def test_metrics_serve_the_registry_as_prometheus_text(world: World) -> None:
    """Without an OpenMetrics Accept header the text format has no exemplars."""
    observe(world)

    content_type, body = scrape(world, None)

    assert content_type.startswith("text/plain")
    assert 'accessproof_proof_duration_seconds_count{event_type="customer' in body
    assert TRACE_ID not in body


def test_metrics_show_exemplars_as_openmetrics(world: World) -> None:
    """A scraper asking for OpenMetrics gets the trace id exemplar."""
    observe(world)

    content_type, body = scrape(world, f"{OPENMETRICS}; version=1.0.0,text/plain;q=0.5")

    assert content_type.startswith(OPENMETRICS)
    assert f'# {{trace_id="{TRACE_ID}"}} 0.4' in body
    assert body.rstrip().endswith("# EOF")
