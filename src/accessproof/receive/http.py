"""The OTLP/HTTP trace receiver: ``POST /v1/traces`` on aiohttp.

Bodies are ``application/x-protobuf`` or ``application/json`` (OTLP/JSON), plain or
with ``Content-Encoding: gzip`` or ``deflate``; the reply uses the request's type.
aiohttp's own decompression is turned off so this module can inflate the body in
steps and refuse it with 413 the moment it outgrows ``max_body_bytes``: a small
gzip bomb never expands past the limit in memory. The same limit applies to the
bytes on the wire.

Refusals follow :data:`accessproof.receive.errors.ERRORS` and carry a
``google.rpc.Status`` body; the Status of a request whose type is neither of ours
is JSON, since only a person or a misconfigured client sends one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from typing import Final

from aiohttp import hdrs, web
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from google.protobuf.message import (  # type: ignore[import-untyped]
    DecodeError,
    Message,
)
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from accessproof.engine.evidence import Decoded, evidence_from_request
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
from accessproof.receive.otlp_json import OtlpJsonError, parse_trace_request

logger = logging.getLogger(__name__)

TRACES_PATH: Final = "/v1/traces"
PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
#: The OTLP specification's recommended limit, applied after decompression.
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024

_TRANSPORT = "http"
_CHUNK_BYTES = 64 * 1024
# Decoding a large batch takes long enough to stall every other connection.
_THREAD_DECODE_BYTES = 1024 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_WBITS = {"gzip": _GZIP_WBITS, "x-gzip": _GZIP_WBITS, "deflate": zlib.MAX_WBITS}
_IDENTITY = frozenset({"", "identity"})


def build_otlp_http_app(
    sink: EvidenceSink,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    token: str | None = None,
) -> web.Application:
    """Build the aiohttp application that serves ``POST /v1/traces``.

    With ``token`` set, requests must carry ``Authorization: Bearer <token>``.
    Run it on its own listener: it turns off aiohttp's request decompression,
    which is a per-server setting.
    """
    receiver = _HttpReceiver(sink, max_body_bytes, token)
    app = web.Application(
        client_max_size=max_body_bytes, handler_args={"auto_decompress": False}
    )
    app.router.add_route("*", TRACES_PATH, receiver.handle)
    return app


class _HttpReceiver:
    """Answers OTLP/HTTP export requests; holds no per-request state."""

    __slots__ = ("_max_body_bytes", "_sink", "_token")

    def __init__(
        self, sink: EvidenceSink, max_body_bytes: int, token: str | None
    ) -> None:
        self._sink = sink
        self._max_body_bytes = max_body_bytes
        self._token = None if token is None else token.encode()

    async def handle(self, request: web.Request) -> web.Response:
        try:
            return await self._receive(request)
        except ReceiveError as error:
            error.log(logger, "HTTP")
            return _refusal(error, request.content_type)

    async def _receive(self, request: web.Request) -> web.Response:
        if request.method != hdrs.METH_POST:
            detail = f"method {request.method!r}"
            raise ReceiveError(ErrorKind.METHOD_NOT_ALLOWED, detail)
        check_bearer(request.headers.get(hdrs.AUTHORIZATION, ""), self._token)
        media = _media_type(request)

        body = await _read_body(request, self._max_body_bytes)
        if len(body) > _THREAD_DECODE_BYTES:
            decoded = await asyncio.to_thread(_decode, body, media)
        else:
            decoded = _decode(body, media)

        await deliver(self._sink, decoded, _TRANSPORT)
        log_export(logger, "HTTP", decoded)
        return _reply(export_response(decoded), media)


def _media_type(request: web.Request) -> str:
    media = request.content_type.lower()
    if media in (PROTOBUF, JSON):
        return media
    raise ReceiveError(ErrorKind.UNSUPPORTED_MEDIA, f"content type {media!r}")


async def _read_body(request: web.Request, limit: int) -> bytes:
    """Read the body, inflating it if encoded, and refuse it past ``limit`` bytes."""
    inflater = _inflater_for(request.headers.get(hdrs.CONTENT_ENCODING, ""), limit)
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit, f"Content-Length {declared}")

    received = 0
    pieces: list[bytes] = []
    async for chunk in request.content.iter_chunked(_CHUNK_BYTES):
        received += len(chunk)
        if received > limit:
            raise _too_large(limit, f"more than {limit} bytes on the wire")
        if inflater is None:
            pieces.append(chunk)
        else:
            pieces.extend(inflater.feed(chunk))

    if inflater is not None:
        inflater.finish()
    return b"".join(pieces)


def _inflater_for(header: str, limit: int) -> _Inflater | None:
    encoding = header.strip().lower()
    if encoding in _IDENTITY:
        return None
    wbits = _WBITS.get(encoding)
    if wbits is None:
        detail = f"content encoding {encoding!r}"
        raise ReceiveError(ErrorKind.UNSUPPORTED_ENCODING, detail)
    return _Inflater(wbits, limit)


class _Inflater:
    """Inflates a gzip or deflate stream in steps, never past ``limit`` bytes.

    Each step asks zlib for at most one byte more than the room left, so the
    output held in memory is bounded by the limit whatever the input ratio.
    Concatenated gzip members are read one after another, as gzip tools do.
    """

    __slots__ = ("_inflate", "_limit", "_members", "_pending", "_size", "_wbits")

    def __init__(self, wbits: int, limit: int) -> None:
        self._wbits = wbits
        self._limit = limit
        self._size = 0
        self._members = 0
        self._pending = False
        self._inflate = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> list[bytes]:
        pieces: list[bytes] = []
        while data:
            piece = self._step(data)
            pieces.append(piece)
            if self._inflate.eof:
                data = self._inflate.unused_data
                self._members += 1
                self._pending = False
                self._inflate = zlib.decompressobj(self._wbits)
            else:
                data = self._inflate.unconsumed_tail
                self._pending = True
        return pieces

    def _step(self, data: bytes) -> bytes:
        try:
            piece = self._inflate.decompress(data, self._limit - self._size + 1)
        except zlib.error as error:
            raise _undecodable_encoding(f"zlib: {error}") from None
        self._size += len(piece)
        if self._size > self._limit:
            raise _too_large(self._limit, "after decompression")
        return piece

    def finish(self) -> None:
        if self._pending:
            raise _undecodable_encoding("compressed stream ends early")


def _too_large(limit: int, detail: str) -> ReceiveError:
    return ReceiveError(
        ErrorKind.TOO_LARGE,
        detail,
        client_message=f"request body exceeds {limit} bytes after decompression",
    )


def _undecodable_encoding(detail: str) -> ReceiveError:
    return ReceiveError(
        ErrorKind.UNDECODABLE,
        detail,
        client_message="body is not valid for its Content-Encoding",
    )


def _decode(body: bytes, media: str) -> Decoded:
    return evidence_from_request(_parse(body, media))


def _parse(body: bytes, media: str) -> ExportTraceServiceRequest:
    if not body:
        return ExportTraceServiceRequest()
    if media == JSON:
        try:
            return parse_trace_request(body)
        except OtlpJsonError as error:
            message = str(error)
            raise ReceiveError(
                ErrorKind.UNDECODABLE, message, client_message=message
            ) from None
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as error:
        raise ReceiveError(
            ErrorKind.UNDECODABLE,
            f"protobuf: {error}",
            client_message="body is not valid OTLP protobuf",
        ) from None
    return request


def _reply(message: Message, media: str, status: int = 200) -> web.Response:
    if media == JSON:
        text = json.dumps(MessageToDict(message), separators=(",", ":"))
        return web.Response(status=status, body=text.encode(), content_type=JSON)
    return web.Response(
        status=status, body=message.SerializeToString(), content_type=PROTOBUF
    )


def _refusal(error: ReceiveError, request_media: str) -> web.Response:
    spec = error.spec
    status = Status(code=spec.grpc_code.value[0], message=error.client_message)
    media = PROTOBUF if request_media.lower() == PROTOBUF else JSON
    response = _reply(status, media, spec.http_status)

    if spec.retryable:
        response.headers[hdrs.RETRY_AFTER] = str(retry_after_seconds(error.retry_after))
    if error.kind is ErrorKind.METHOD_NOT_ALLOWED:
        response.headers[hdrs.ALLOW] = hdrs.METH_POST
    if error.kind is ErrorKind.UNAUTHENTICATED:
        response.headers[hdrs.WWW_AUTHENTICATE] = "Bearer"
    return response
