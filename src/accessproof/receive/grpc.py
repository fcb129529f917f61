"""The OTLP/gRPC trace receiver: ``TraceService/Export`` on grpc.aio.

The service is the generated ``TraceServiceServicer``, registered with a request
deserializer that does not raise: grpc would answer a body it cannot parse with
a bare ``INTERNAL``, where OTLP wants ``INVALID_ARGUMENT`` and a reason. Push-back
is ``UNAVAILABLE`` with a ``google.rpc.RetryInfo``, carried both in the standard
``grpc-status-details-bin`` trailer (read by the Go and Java exporters) and in the
``google.rpc.retryinfo-bin`` trailer (read by the Python exporter). gzip-compressed
requests are inflated by grpc itself; ``max_message_bytes`` bounds the result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage  # type: ignore[import-untyped]
from google.protobuf.duration_pb2 import Duration  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from accessproof.engine.evidence import evidence_from_request
from accessproof.engine.intake import EvidenceSink
from accessproof.receive.errors import (
    ErrorKind,
    ReceiveError,
    check_bearer,
    deliver,
    export_response,
    log_export,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

#: The OTLP specification's recommended limit, applied after decompression.
DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
RETRY_INFO_KEY: Final = "google.rpc.retryinfo-bin"

_TRANSPORT = "grpc"
_SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name


async def start_otlp_grpc_server(
    sink: EvidenceSink,
    host_port: str,
    *,
    token: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> tuple[grpc.aio.Server, int]:
    """Start serving OTLP/gRPC on ``host_port``; return the server and its port.

    A port of 0 binds a free one. With ``token`` set, calls must carry
    ``authorization: Bearer <token>`` metadata. Stop it with ``server.stop(grace)``.
    """
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", max_message_bytes)]
    )
    server.add_generic_rpc_handlers((_handler(OtlpTraceService(sink, token)),))
    port: int = server.add_insecure_port(host_port)
    await server.start()
    return server, port


def _handler(service: OtlpTraceService) -> grpc.GenericRpcHandler:
    export = grpc.unary_unary_rpc_method_handler(
        service.Export,
        request_deserializer=_parse,
        response_serializer=ExportTraceServiceResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(_SERVICE, {"Export": export})


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """Stands in for a request whose bytes are not an export request."""

    detail: str


def _parse(data: bytes) -> ExportTraceServiceRequest | _Undecodable:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except DecodeError as error:
        return _Undecodable(f"protobuf: {error}")
    return request


class OtlpTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """Answers ``TraceService/Export`` by handing evidence to the sink."""

    def __init__(self, sink: EvidenceSink, token: str | None) -> None:
        self._sink = sink
        self._token = None if token is None else token.encode()

    async def Export(  # noqa: N802 (the generated servicer names the method)
        self,
        request: ExportTraceServiceRequest | _Undecodable,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ExportTraceServiceResponse:
        try:
            return await self._export(request, context)
        except ReceiveError as error:
            error.log(logger, "gRPC")
            await context.abort(
                error.spec.grpc_code,
                error.client_message,
                trailing_metadata=_trailers(error),
            )
            # abort() always raises; this keeps the declared return type true.
            raise

    async def _export(
        self,
        request: ExportTraceServiceRequest | _Undecodable,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ExportTraceServiceResponse:
        self._authenticate(context)
        if isinstance(request, _Undecodable):
            raise ReceiveError(
                ErrorKind.UNDECODABLE,
                request.detail,
                client_message="request is not a valid OTLP protobuf message",
            )

        decoded = evidence_from_request(request)
        await deliver(self._sink, decoded, _TRANSPORT)
        log_export(logger, "gRPC", decoded)
        return export_response(decoded)

    def _authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self._token is None:
            return
        metadata = dict(context.invocation_metadata() or ())
        check_bearer(str(metadata.get("authorization", "")), self._token)


def _trailers(error: ReceiveError) -> tuple[tuple[str, bytes], ...]:
    """The trailing metadata that tells clients how long to back off."""
    if not error.spec.retryable:
        return ()
    delay = Duration(seconds=retry_after_seconds(error.retry_after))
    retry_info = RetryInfo(retry_delay=delay)
    detail = AnyMessage()
    detail.Pack(retry_info)
    status = Status(
        code=error.spec.grpc_code.value[0],
        message=error.client_message,
        details=[detail],
    )
    return (
        (STATUS_DETAILS_KEY, status.SerializeToString()),
        (RETRY_INFO_KEY, retry_info.SerializeToString()),
    )
