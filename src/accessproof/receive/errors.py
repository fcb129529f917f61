"""Every way a receiver can refuse a request, in one table, and the replies.

Each :class:`ErrorKind` has one :class:`ErrorSpec`: the HTTP status, the gRPC code,
whether OTLP clients retry it, the message a client sees, what the log line adds,
and the level it is logged at. The client message never carries request content
or secrets; the logged detail never carries span attribute values or tokens.

=====================  ====  ==================  =========  ========================
kind                   HTTP  gRPC                retryable  logged beyond the message
=====================  ====  ==================  =========  ========================
undecodable            400   INVALID_ARGUMENT    no         the parser's own error
too_large              413   RESOURCE_EXHAUSTED  no         where the limit broke
unsupported_media      415   INVALID_ARGUMENT    no         the content type sent
unsupported_encoding   415   INVALID_ARGUMENT    no         the encoding sent
method_not_allowed     405   UNIMPLEMENTED       no         the method sent
unauthenticated        401   UNAUTHENTICATED     no         missing or wrong token
overloaded             429   UNAVAILABLE         yes        the engine's reason
store_failed           503   UNAVAILABLE         yes        the exception class
=====================  ====  ==================  =========  ========================

Both receivers hand evidence to the sink through :func:`deliver` and answer a
request that got through with :func:`export_response`, so the two transports
refuse, retry and partially accept alike.
"""

from __future__ import annotations

import hmac
import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from accessproof.engine.evidence import Decoded
from accessproof.engine.intake import EvidenceSink, Overloaded

#: Seconds a client is asked to wait after the sink failed for another reason.
STORE_FAILED_RETRY_AFTER: Final = 1.0


class ErrorKind(StrEnum):
    """Why a receiver refused a request."""

    UNDECODABLE = "undecodable"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA = "unsupported_media"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNAUTHENTICATED = "unauthenticated"
    OVERLOADED = "overloaded"
    STORE_FAILED = "store_failed"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How one kind of refusal is answered and logged.

    ``client_message`` is the default text of the ``google.rpc.Status`` sent back;
    a :class:`ReceiveError` may replace it with a more precise, equally safe one.
    """

    http_status: int
    grpc_code: grpc.StatusCode
    retryable: bool
    client_message: str
    log_level: int


ERRORS: Final[dict[ErrorKind, ErrorSpec]] = {
    ErrorKind.UNDECODABLE: ErrorSpec(
        400,
        grpc.StatusCode.INVALID_ARGUMENT,
        retryable=False,
        client_message="request is not a valid OTLP trace export",
        log_level=logging.INFO,
    ),
    ErrorKind.TOO_LARGE: ErrorSpec(
        413,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        retryable=False,
        client_message="request body is too large",
        log_level=logging.WARNING,
    ),
    ErrorKind.UNSUPPORTED_MEDIA: ErrorSpec(
        415,
        grpc.StatusCode.INVALID_ARGUMENT,
        retryable=False,
        client_message=(
            "unsupported content type: use application/x-protobuf or application/json"
        ),
        log_level=logging.INFO,
    ),
    ErrorKind.UNSUPPORTED_ENCODING: ErrorSpec(
        415,
        grpc.StatusCode.INVALID_ARGUMENT,
        retryable=False,
        client_message="unsupported content encoding: use gzip, deflate or identity",
        log_level=logging.INFO,
    ),
    ErrorKind.METHOD_NOT_ALLOWED: ErrorSpec(
        405,
        grpc.StatusCode.UNIMPLEMENTED,
        retryable=False,
        client_message="method not allowed: use POST",
        log_level=logging.INFO,
    ),
    ErrorKind.UNAUTHENTICATED: ErrorSpec(
        401,
        grpc.StatusCode.UNAUTHENTICATED,
        retryable=False,
        client_message="missing or invalid bearer token",
        log_level=logging.WARNING,
    ),
    ErrorKind.OVERLOADED: ErrorSpec(
        429,
        grpc.StatusCode.UNAVAILABLE,
        retryable=True,
        client_message="the engine is busy: retry later",
        log_level=logging.INFO,
    ),
    ErrorKind.STORE_FAILED: ErrorSpec(
        503,
        grpc.StatusCode.UNAVAILABLE,
        retryable=True,
        client_message="the engine could not store the evidence: retry later",
        log_level=logging.WARNING,
    ),
}


class ReceiveError(Exception):
    """A refusal: what the client is told, and what only the log gets.

    ``client_message`` defaults to the table's text. ``detail`` goes to the log
    only. ``retry_after`` is in seconds and set for retryable kinds.
    """

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        client_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.spec = ERRORS[kind]
        self.detail = detail
        self.client_message = client_message or self.spec.client_message
        self.retry_after = retry_after

    def log(self, logger: logging.Logger, transport: str) -> None:
        """Log the refusal once, at the level the table gives."""
        cause = self.__cause__ if logger.isEnabledFor(logging.DEBUG) else None
        logger.log(
            self.spec.log_level,
            "OTLP/%s request refused: %s: %s",
            transport,
            self.kind.value,
            self.detail,
            exc_info=cause,
        )


def retry_after_seconds(delay: float | None) -> int:
    """Round a retry delay up to whole seconds, at least one."""
    if delay is None or not math.isfinite(delay):
        return 1
    return max(1, math.ceil(delay))


def check_bearer(authorization: str, token: bytes | None) -> None:
    """Refuse unless ``authorization`` is ``Bearer <token>``; no token, no check.

    The comparison takes the same time wherever the strings differ.
    """
    if token is None:
        return
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise ReceiveError(ErrorKind.UNAUTHENTICATED, "no bearer token")
    if not hmac.compare_digest(credentials.strip().encode(), token):
        raise ReceiveError(ErrorKind.UNAUTHENTICATED, "bearer token does not match")


async def deliver(sink: EvidenceSink, decoded: Decoded, transport: str) -> None:
    """Hand evidence to the sink, turning its refusals into :class:`ReceiveError`.

    Any failure other than :class:`Overloaded` is reported as retryable: the
    evidence was not stored, and a retry may find the store healthy again.
    """
    try:
        await sink.accept(decoded, transport)
    except Overloaded as error:
        raise ReceiveError(
            ErrorKind.OVERLOADED, error.detail, retry_after=error.retry_after
        ) from None
    except Exception as error:
        detail = f"the sink raised {type(error).__qualname__}"
        raise ReceiveError(
            ErrorKind.STORE_FAILED, detail, retry_after=STORE_FAILED_RETRY_AFTER
        ) from error


def export_response(decoded: Decoded) -> ExportTraceServiceResponse:
    """The reply to a delivered request: empty, or a partial success."""
    rejected = decoded.rejected_count
    if rejected == 0:
        return ExportTraceServiceResponse()
    partial = ExportTracePartialSuccess(
        rejected_spans=rejected, error_message=decoded.rejection_message()
    )
    return ExportTraceServiceResponse(partial_success=partial)


def log_export(logger: logging.Logger, transport: str, decoded: Decoded) -> None:
    """Log one line for a delivered request: INFO with rejections, else DEBUG."""
    level = logging.INFO if decoded.rejected else logging.DEBUG
    if not logger.isEnabledFor(level):
        return
    logger.log(
        level,
        "OTLP/%s export: %d spans of evidence, %d ignored, %d redacted values; %s",
        transport,
        len(decoded.evidence),
        decoded.ignored,
        decoded.redacted,
        decoded.rejection_message() if decoded.rejected else "none rejected",
    )
