"""Tracing set-up for apps that have none of their own.

An app that already configures OpenTelemetry needs nothing from here: the library
uses the global provider, or the one passed as ``tracer_provider=``.
"""

from __future__ import annotations

import os
from typing import Final, Literal
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from accessproof.conventions import Attr

Protocol = Literal["grpc", "http"]

_PROTOCOL_ENV: Final = (
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
)
_PROTOCOLS: Final[dict[str, Protocol]] = {
    "grpc": "grpc",
    "http": "http",
    "http/protobuf": "http",
}
_TRACES_PATH: Final = "/v1/traces"


def setup_tracing(
    service_name: str,
    *,
    endpoint: str | None = None,
    protocol: Protocol | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    revision: str | None = None,
    set_global: bool = True,
) -> TracerProvider:
    """Install a tracer provider that exports spans over OTLP, and return it.

    The resource carries ``service.name``, ``service.version``,
    ``deployment.environment.name`` and ``vcs.ref.head.revision`` from the
    arguments given; ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` fill
    in the rest, arguments winning. ``protocol`` defaults to
    ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, then ``OTEL_EXPORTER_OTLP_PROTOCOL``,
    then ``grpc``. Without ``endpoint`` the exporter reads the standard
    ``OTEL_EXPORTER_OTLP_*`` variables; an HTTP endpoint without a path gets
    ``/v1/traces``, and a gRPC endpoint without a scheme is plain-text ``http``.
    Spans are batched (``OTEL_BSP_*`` apply); call ``shutdown()`` or
    ``force_flush()`` on the provider before the process exits.

    With ``set_global`` (the default) the provider becomes the global one. This
    is the only place accessproof ever sets it. Raises :class:`ValueError` for a
    protocol it does not know.
    """
    resource = Resource.create(
        {
            key: value
            for key, value in (
                (Attr.SERVICE_NAME, service_name),
                (Attr.SERVICE_VERSION, service_version),
                (Attr.DEPLOYMENT_ENVIRONMENT, environment),
                (Attr.VCS_REVISION, revision),
            )
            if value
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(_exporter(_protocol(protocol), endpoint))
    )
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def _protocol(protocol: str | None) -> Protocol:
    chosen = protocol or next(
        (value for name in _PROTOCOL_ENV if (value := os.environ.get(name))), "grpc"
    )
    try:
        return _PROTOCOLS[chosen.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unsupported OTLP protocol {chosen!r}: use grpc or http/protobuf"
        ) from None


def _exporter(protocol: Protocol, endpoint: str | None) -> SpanExporter:
    # Import only the transport in use: the gRPC one loads grpcio.
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=_http_endpoint(endpoint))

    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    return GrpcExporter(endpoint=_grpc_endpoint(endpoint))


def _http_endpoint(endpoint: str | None) -> str | None:
    if endpoint is None:
        return None
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + _TRACES_PATH
    return endpoint


def _grpc_endpoint(endpoint: str | None) -> str | None:
    if endpoint is None or "://" in endpoint:
        return endpoint
    return f"http://{endpoint}"
