"""Fixtures of the deployment tests: a real engine and a Prometheus scraping it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.prom import PrometheusServer, running_prometheus
from tests.harness import EngineThread
from tests.scenario import CATALOG, Scenario, broken, exporting_to, healthy


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineThread]:
    """A real engine with short deadlines, its store in a temporary folder."""
    folder: Path = tmp_path_factory.mktemp("engine")
    with EngineThread(folder, catalog=CATALOG) as running:
        yield running


@pytest.fixture(scope="session")
def engine_metrics_target(engine: EngineThread) -> str:
    """``host:port`` of the real engine's ``/metrics``."""
    return engine.live.endpoints.http


@pytest.fixture(scope="session")
def scenario(engine: EngineThread) -> Iterator[Scenario]:
    with exporting_to(engine) as provider:
        yield Scenario(engine, provider)


@pytest.fixture(scope="session")
def healthy_trace_id(scenario: Scenario) -> str:
    """The trace id of the healthy run, proven before Prometheus starts."""
    return healthy(scenario)


@pytest.fixture(scope="session")
def prometheus(
    engine_metrics_target: str, healthy_trace_id: str, scenario: Scenario
) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping the engine: first after a healthy run, then
    after broken ones, so ``increase()`` and ``rate()`` have two samples."""
    with running_prometheus([engine_metrics_target]) as server:
        broken(scenario)
        yield server
