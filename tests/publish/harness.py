"""Test doubles of the publish tests: a real engine and real OTLP log receivers."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.proto.collector.logs.v1 import (
    logs_service_pb2,
    logs_service_pb2_grpc,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from accessproof.catalog import Catalog
from accessproof.conventions import Access, Attr, DrillMode, Step
from accessproof.engine.clock import FakeClock
from accessproof.engine.engine import Engine, Listener
from accessproof.engine.evidence import Decoded, SpanEvidence
from accessproof.facts import ProviderFacts
from accessproof.redact import AttributeValue
from accessproof.store.sqlite import SqliteStore

NS = 1_000_000_000
EVENT_TYPE = "customer.subscription.updated"
CUSTOMER = "cus_QXg1o8vcGmoR32"
SUBSCRIPTION = "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"
PRICE = "price_1Pro"
RUNBOOK = "https://runbooks.example.com/billing/access"
TRACE_LINK = "https://grafana.example.com/explore?traceId={trace_id}"
DEADLINE = 60.0

RESOURCE = {
    Attr.SERVICE_NAME: "billing-worker",
    Attr.SERVICE_VERSION: "2.4.1",
    Attr.DEPLOYMENT_ENVIRONMENT: "production",
    Attr.VCS_REVISION: "9f3c2e1d4b5a69788796a5b4c3d2e1f001122334",
}

CATALOG = Catalog.model_validate(
    {
        "plans": {
            "free": {"features": []},
            "pro": {"prices": [PRICE], "features": ["api", "exports"]},
        },
        "steps": {
            "default": {
                "required": ["entitlement"],
                "deadlines": {"entitlement": f"{int(DEADLINE)}s"},
            }
        },
        "owners": [
            {"match": "customer.subscription.*", "team": "billing", "runbook": RUNBOOK}
        ],
        "links": {"trace": TRACE_LINK},
    }
)


@dataclass
class Billing:
    """An engine over a SQLite file, fed the spans an instrumented app sends."""

    path: Path
    clock: FakeClock
    listeners: list[Listener] = field(default_factory=list)
    store: SqliteStore = field(init=False)
    engine: Engine = field(init=False)
    sent: list[SpanEvidence] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = SqliteStore(self.path)
        self.engine = Engine(
            self.store, CATALOG, clock=self.clock, listeners=self.listeners
        )

    def restart(self, listeners: list[Listener] | None = None) -> None:
        """Close the store and start a new engine over the same file."""
        self.store.close()
        self.listeners = listeners or []
        self.__post_init__()

    def send(self, *spans: SpanEvidence, transport: str = "http") -> None:
        self.sent.extend(spans)
        self.engine.ingest(Decoded(evidence=list(spans)), transport)

    def webhook(self, event_id: str, *, drill: bool = False) -> SpanEvidence:
        facts = ProviderFacts(
            event_id=event_id,
            event_type=EVENT_TYPE,
            created=self.clock.now_ns() // NS,
            livemode=False,
            customer_id=CUSTOMER,
            subscription_id=f"{SUBSCRIPTION}{event_id[-4:]}",
            status="active",
            price_ids=(PRICE,),
            drill_mode=DrillMode.HEALTHY if drill else None,
        )
        return self._span(event_id, Step.WEBHOOK, facts.to_attributes())

    def entitlement(
        self, event_id: str, *, plan: str = "pro", drill: bool = False
    ) -> SpanEvidence:
        attributes: dict[str, AttributeValue] = {
            Attr.OBSERVED_PLAN: plan,
            Attr.OBSERVED_FEATURES: ("api", "exports") if plan == "pro" else (),
            Attr.OBSERVED_ACCESS: Access.GRANTED.value,
        }
        if drill:
            attributes[Attr.DRILL] = True
        return self._span(event_id, Step.ENTITLEMENT, attributes)

    def notify(self, event_id: str) -> SpanEvidence:
        return self._span(event_id, Step.NOTIFY, {Attr.NOTIFY_CHANNEL: "email"})

    def prove(self, event_id: str, *, after: float = 2.0) -> None:
        """Send a healthy run whose entitlement lands ``after`` seconds later."""
        self.send(self.webhook(event_id))
        self.clock.advance(after)
        self.send(self.entitlement(event_id), transport="grpc")

    def break_run(self, event_id: str, *, drill: bool = False) -> None:
        """Send a webhook and let the entitlement deadline pass without it."""
        self.send(self.webhook(event_id, drill=drill))
        self.clock.advance(DEADLINE + 1)
        self.engine.tick()

    def _span(
        self, event_id: str, step: Step, attributes: dict[str, AttributeValue]
    ) -> SpanEvidence:
        now = self.clock.now_ns()
        return SpanEvidence(
            event_id=event_id,
            step=step,
            trace_id=secrets.token_hex(16),
            span_id=secrets.token_hex(8),
            start_ns=now - NS // 100,
            end_ns=now,
            ok=True,
            attributes={Attr.EVENT_ID: event_id, Attr.STEP: step.value, **attributes},
            resource=dict(RESOURCE),
        )


@dataclass
class Received:
    """What an OTLP logs receiver got: resource and record of every log record."""

    records: list[tuple[Resource, str, LogRecord]] = field(default_factory=list)
    fail_with: grpc.StatusCode | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: logs_service_pb2.ExportLogsServiceRequest) -> None:
        with self.lock:
            for resource_logs in request.resource_logs:
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        self.records.append(
                            (resource_logs.resource, scope_logs.scope.name, record)
                        )

    def wait_for(self, count: int, timeout: float = 5.0) -> list[LogRecord]:
        """Poll until ``count`` records arrived, bounded by ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return [record for _, _, record in self.records]


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(  # noqa: N802
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: Any
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        if self.received.fail_with is not None:
            context.abort(self.received.fail_with, "refused by the test")
        self.received.add(request)
        return logs_service_pb2.ExportLogsServiceResponse()


@contextmanager
def grpc_logs_receiver() -> Iterator[tuple[Received, str]]:
    """A gRPC OTLP LogsService on a loopback port; yields it and its endpoint."""
    received = Received()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
        _LogsService(received), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield received, f"http://127.0.0.1:{port}"
    server.stop(None).wait()


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextmanager
def http_logs_receiver() -> Iterator[tuple[Received, str]]:
    """An OTLP/HTTP ``/v1/logs`` endpoint on a loopback port; yields it and its URL."""
    received = Received()

    async def export(request: web.Request) -> web.Response:
        body = await request.read()
        received.add(logs_service_pb2.ExportLogsServiceRequest.FromString(body))
        answer = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/logs", export)
    runner = web.AppRunner(app)
    loop = _LoopThread()
    loop.run(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run(site.start())
    port = runner.addresses[0][1]
    yield received, f"http://127.0.0.1:{port}"
    loop.run(runner.cleanup())
    loop.close()


def attributes_of(record: LogRecord) -> dict[str, object]:
    """The record's attributes as plain Python values."""
    values: dict[str, object] = {}
    for kv in record.attributes:
        kind = kv.value.WhichOneof("value")
        if kind == "array_value":
            values[kv.key] = [item.string_value for item in kv.value.array_value.values]
        else:
            values[kv.key] = getattr(kv.value, str(kind))
    return values
