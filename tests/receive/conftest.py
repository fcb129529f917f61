"""Real receivers on loopback ports, a recording sink, and spans from the real SDK."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import grpc
import pytest
from aiohttp import web
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import format_span_id, format_trace_id

from accessproof.conventions import Attr, Step
from accessproof.engine.evidence import Decoded
from accessproof.receive import build_otlp_http_app, start_otlp_grpc_server

_T = TypeVar("_T")

EVENT_ID = "evt_1ReceiveTest"
REVISION = "4f2c9e1d0b7a"
CARD_NUMBER = "4242 4242 4242 4242"


class LoopThread:
    """An asyncio loop running in a daemon thread, for servers the tests call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float = 10.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class RecordingSink:
    """An evidence sink that keeps every batch, or raises ``failure`` when set."""

    def __init__(self) -> None:
        self.batches: list[tuple[Decoded, str]] = []
        self.failure: Exception | None = None

    async def accept(self, decoded: Decoded, transport: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.batches.append((decoded, transport))

    @property
    def evidence(self) -> list[Any]:
        return [item for decoded, _ in self.batches for item in decoded.evidence]


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def serve_http(loop_thread: LoopThread) -> Iterator[Callable[..., int]]:
    """Start the OTLP/HTTP app on 127.0.0.1 port 0 and return the port."""
    runners: list[web.AppRunner] = []

    def start(sink: RecordingSink, **options: Any) -> int:
        runner = web.AppRunner(build_otlp_http_app(sink, **options))
        loop_thread.run(runner.setup())
        runners.append(runner)
        loop_thread.run(web.TCPSite(runner, "127.0.0.1", 0).start())
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        loop_thread.run(runner.cleanup())


@pytest.fixture
def serve_grpc(loop_thread: LoopThread) -> Iterator[Callable[..., int]]:
    """Start the OTLP/gRPC server on 127.0.0.1 port 0 and return the port."""
    servers: list[grpc.aio.Server] = []

    def start(sink: RecordingSink, **options: Any) -> int:
        server, port = loop_thread.run(
            start_otlp_grpc_server(sink, "127.0.0.1:0", **options)
        )
        servers.append(server)
        return port

    yield start
    for server in servers:
        loop_thread.run(server.stop(None))


@pytest.fixture
def run_spans() -> Sequence[ReadableSpan]:
    """Spans of one run as an app would emit them, plus one span that is not ours.

    The webhook span is the parent of the reconcile span; the notify span carries
    a card number in an allowed attribute.
    """
    memory = InMemorySpanExporter()
    resource = Resource.create(
        {Attr.SERVICE_NAME: "billing", Attr.VCS_REVISION: REVISION}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.receive")

    run = {Attr.EVENT_ID: EVENT_ID}
    webhook = {**run, Attr.STEP: Step.WEBHOOK.value}
    reconcile = {**run, Attr.STEP: Step.RECONCILE.value}
    with (
        tracer.start_as_current_span("webhook", attributes=webhook),
        tracer.start_as_current_span("reconcile", attributes=reconcile),
    ):
        pass
    with tracer.start_as_current_span("GET /health"):
        pass
    notify = {**run, Attr.STEP: Step.NOTIFY.value, Attr.NOTIFY_TEMPLATE: CARD_NUMBER}
    with tracer.start_as_current_span("notify", attributes=notify):
        pass

    provider.shutdown()
    return memory.get_finished_spans()


def _check_run_received(
    sink: RecordingSink, spans: Sequence[ReadableSpan], transport: str
) -> None:
    """Assert the sink got the spans of ``run_spans`` exactly once, decoded right."""
    assert [transport] == [used for _, used in sink.batches]
    decoded = sink.batches[0][0]
    assert decoded.ignored == 1
    assert decoded.redacted == 1
    assert decoded.rejected == {}

    sent = {
        format_span_id(span.context.span_id): span
        for span in spans
        if span.attributes and Attr.EVENT_ID in span.attributes
    }
    received = {evidence.span_id: evidence for evidence in decoded.evidence}
    assert sent.keys() == received.keys()
    for span_id, evidence in received.items():
        span = sent[span_id]
        assert format_trace_id(span.context.trace_id) == evidence.trace_id
        assert span.attributes[Attr.STEP] == evidence.step
        assert evidence.event_id == EVENT_ID
        assert (evidence.resource) == {
            Attr.SERVICE_NAME: "billing",
            Attr.VCS_REVISION: REVISION,
        }
        assert span.start_time == evidence.start_ns

    notify = next(item for item in decoded.evidence if item.step is Step.NOTIFY)
    assert Attr.NOTIFY_TEMPLATE not in notify.attributes


@pytest.fixture
def check_run_received() -> Callable[
    [RecordingSink, Sequence[ReadableSpan], str], None
]:
    """The checks every transport must pass after exporting ``run_spans``."""
    return _check_run_received
