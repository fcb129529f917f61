"""OTLP receivers: trace exports over HTTP and gRPC, delivered to the engine.

Both decode an ``ExportTraceServiceRequest``, reduce it to evidence with
:func:`accessproof.engine.evidence.evidence_from_request`, and answer only after
the :class:`~accessproof.engine.intake.EvidenceSink` has stored it::

    app = build_otlp_http_app(sink, token=token)
    server, port = await start_otlp_grpc_server(sink, "127.0.0.1:4317")
"""

from __future__ import annotations

from accessproof.receive.errors import ERRORS, ErrorKind, ErrorSpec
from accessproof.receive.grpc import DEFAULT_MAX_MESSAGE_BYTES, start_otlp_grpc_server
from accessproof.receive.http import (
    DEFAULT_MAX_BODY_BYTES,
    TRACES_PATH,
    build_otlp_http_app,
)
from accessproof.receive.otlp_json import OtlpJsonError, parse_trace_request

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "ERRORS",
    "TRACES_PATH",
    "ErrorKind",
    "ErrorSpec",
    "OtlpJsonError",
    "build_otlp_http_app",
    "parse_trace_request",
    "start_otlp_grpc_server",
]
