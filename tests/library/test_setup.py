"""The tracing helper for apps without a tracer provider."""

from __future__ import annotations

from typing import Any

import pytest

import accessproof
from accessproof.conventions import Attr
from tests.library.library_helpers import OtlpSink


def test_setup_tracing_exports_with_the_deploy_resource(
    otlp_sink: OtlpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spans leave over OTLP/HTTP with service, version, environment and revision."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=billing,service.version=0")
    provider = accessproof.setup_tracing(
        "billing-api",
        endpoint=otlp_sink.endpoint.removesuffix("/v1/traces"),
        protocol="http",
        service_version="2.3.1",
        environment="staging",
        revision="4f2a9c1",
        set_global=False,
    )

    with accessproof.resume("evt_1Setup", tracer_provider=provider).step("notify"):
        pass
    provider.shutdown()

    (span,) = otlp_sink.spans("evt_1Setup")
    assert span.resource[Attr.SERVICE_NAME] == "billing-api"
    assert span.resource[Attr.SERVICE_VERSION] == "2.3.1"
    assert span.resource[Attr.DEPLOYMENT_ENVIRONMENT] == "staging"
    assert span.resource[Attr.VCS_REVISION] == "4f2a9c1"
    assert span.resource["team"] == "billing"


def test_protocol_comes_from_the_environment(
    otlp_sink: OtlpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL chooses the transport when none is given."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    provider = accessproof.setup_tracing(
        "billing-api", endpoint=otlp_sink.endpoint, set_global=False
    )

    with accessproof.resume("evt_1EnvProtocol", tracer_provider=provider).step(
        "notify"
    ):
        pass
    provider.shutdown()

    assert len(otlp_sink.spans("evt_1EnvProtocol")) == 1


def test_unknown_protocol_fails_at_start_up() -> None:
    """A protocol the SDK cannot export with is a configuration error."""
    unsupported: Any = "http/json"

    with pytest.raises(ValueError, match="http/json"):
        accessproof.setup_tracing("x", protocol=unsupported, set_global=False)
