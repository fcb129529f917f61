"""The demo's own engine: settings that ignore the operator's environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from accessproof.drill.demo import DEMO_CATALOG, EngineInThread, demo_settings
from accessproof.server import Server
from tests.harness import http_json, write_catalog

ANY_PORT = {"otlp_http": 0, "otlp_grpc": 0, "http": 0}


@pytest.fixture
def operator_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``set -a; . ./.env`` leaves behind on an operator's machine."""
    monkeypatch.setenv("ACCESSPROOF_OTLP_TOKEN", "otlp-token-from-dotenv")
    monkeypatch.setenv("ACCESSPROOF_API_TOKEN", "api-token-from-dotenv")
    monkeypatch.setenv("ACCESSPROOF_PUBLIC_URL", "https://accessproof.example.com")
    monkeypatch.setenv("ACCESSPROOF_LOGS_ENDPOINT", "http://127.0.0.1:9/v1/logs")
    monkeypatch.setenv("ACCESSPROOF_BEHIND_PROXY", "true")


@pytest.fixture
def demo_engine(operator_environment: None, tmp_path: Path) -> Iterator[Server]:
    """The demo's engine, started with the demo's settings on any free ports."""
    catalog = write_catalog(tmp_path, DEMO_CATALOG)
    settings = demo_settings(catalog, f"sqlite:///{tmp_path / 'demo.db'}", ANY_PORT)
    engine = EngineInThread(settings)
    try:
        yield engine.start()
    finally:
        engine.stop()


def _one_span() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("test").start_span("accessproof.webhook").end()
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_demo_settings_take_nothing_from_the_environment(
    operator_environment: None, tmp_path: Path
) -> None:
    """Tokens, public URL, logs endpoint and proxy mode set in the env stay unset."""
    settings = demo_settings(tmp_path / "accessproof.yaml", "sqlite:///x.db", ANY_PORT)

    assert settings.otlp_token is None
    assert settings.api_token is None
    assert settings.public_url is None
    assert settings.logs_endpoint is None
    assert settings.behind_proxy is False


def test_demo_engine_accepts_spans_and_api_calls_without_a_token(
    demo_engine: Server,
) -> None:
    """The example app and the drill send no token, and the demo engine needs none."""
    exporter = OTLPSpanExporter(
        endpoint=f"http://{demo_engine.endpoints.otlp_http}/v1/traces", timeout=10
    )

    exported = exporter.export(_one_span())
    status, _ = http_json(f"http://{demo_engine.endpoints.http}/api/v1/incidents")
    exporter.shutdown()

    assert exported is SpanExportResult.SUCCESS
    assert status == 200
