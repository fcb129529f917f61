"""How many spans a second one engine process turns from OTLP bytes into verdicts.

    python benchmarks/engine_throughput.py [--runs 25000] [--spans-per-request 512]

Builds realistic OTLP/protobuf export requests (each run: webhook, reconcile,
entitlement and notify spans, as an instrumented app sends them, spread over
requests the way a collector batches them), then times the engine's whole intake
path per request: protobuf decoding, evidence extraction with redaction, and
``Engine.ingest`` with its SQLite transaction (WAL, synchronous=FULL). Verdicts
are made inside ``ingest``, so the time a request takes is also the latency from
its last step's arrival to the verdict.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from accessproof.catalog import Catalog
from accessproof.conventions import Attr, Step
from accessproof.engine.clock import SystemClock
from accessproof.engine.engine import Engine
from accessproof.engine.evidence import evidence_from_request
from accessproof.store.base import Store
from accessproof.store.sqlite import SqliteStore

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

CATALOG = {
    "plans": {
        "free": {"features": []},
        "pro": {"prices": ["price_1Pro"], "features": ["api", "exports"]},
    },
    "steps": {"default": {"required": ["reconcile", "entitlement", "notify"]}},
}


def _value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, list):
        return AnyValue(
            array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value])
        )
    return AnyValue(string_value=str(value))


def _span(event_id: str, step: Step, extra: dict[str, object], now: int) -> Span:
    attributes = {
        Attr.EVENT_ID: event_id,
        Attr.STEP: step.value,
        "http.route": "/webhooks/stripe",
        **extra,
    }
    return Span(
        trace_id=secrets.token_bytes(16),
        span_id=secrets.token_bytes(8),
        name=f"accessproof.{step.value}",
        start_time_unix_nano=now,
        end_time_unix_nano=now + 1_000_000,
        attributes=[KeyValue(key=k, value=_value(v)) for k, v in attributes.items()],
    )


def run_spans(index: int, now: int) -> list[Span]:
    """The four spans of one healthy subscription update."""
    event_id = f"evt_bench{index:012d}"
    webhook = {
        Attr.EVENT_TYPE: "customer.subscription.updated",
        Attr.EVENT_CREATED: 1_790_000_000 + index,
        Attr.LIVEMODE: False,
        Attr.CUSTOMER_ID: f"cus_bench{index:08d}",
        Attr.SUBSCRIPTION_ID: f"sub_bench{index:08d}",
        Attr.SUBSCRIPTION_STATUS: "active",
        Attr.PRICE_IDS: ["price_1Pro"],
        Attr.SUBSCRIPTION_CANCEL_AT_PERIOD_END: False,
        Attr.SUBSCRIPTION_CURRENT_PERIOD_END: 1_792_000_000,
    }
    return [
        _span(event_id, Step.WEBHOOK, webhook, now),
        _span(
            event_id,
            Step.RECONCILE,
            {Attr.RECONCILED_STATUS: "active", Attr.RECONCILED_PLAN: "pro"},
            now,
        ),
        _span(
            event_id,
            Step.ENTITLEMENT,
            {
                Attr.OBSERVED_PLAN: "pro",
                Attr.OBSERVED_FEATURES: ["api", "exports"],
                Attr.OBSERVED_ACCESS: "granted",
            },
            now,
        ),
        _span(event_id, Step.NOTIFY, {Attr.NOTIFY_CHANNEL: "email"}, now),
    ]


def build_requests(runs: int, per_request: int, first: int = 0) -> list[bytes]:
    """Serialised export requests; a run's steps land in consecutive requests."""
    now = time.time_ns()
    spans = [
        span for index in range(first, first + runs) for span in run_spans(index, now)
    ]
    resource = [
        KeyValue(key=Attr.SERVICE_NAME, value=AnyValue(string_value="billing")),
        KeyValue(key=Attr.VCS_REVISION, value=AnyValue(string_value="9f3c2e1d")),
    ]
    requests = []
    for start in range(0, len(spans), per_request):
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource={"attributes": resource},
                    scope_spans=[ScopeSpans(spans=spans[start : start + per_request])],
                )
            ]
        )
        requests.append(request.SerializeToString())
    return requests


def measure(store: Store, requests: list[bytes]) -> tuple[float, list[float], int]:
    """Feed every request through one engine; return seconds, latencies, open runs."""
    engine = Engine(store, Catalog.model_validate(CATALOG), clock=SystemClock())
    latencies = []
    started = time.perf_counter()
    for body in requests:
        begin = time.perf_counter()
        decoded = evidence_from_request(ExportTraceServiceRequest.FromString(body))
        engine.ingest(decoded, "http")
        latencies.append(time.perf_counter() - begin)
    elapsed = time.perf_counter() - started
    return elapsed, latencies, store.open_run_count()


@contextmanager
def open_store(kind: str, folder: Path) -> Iterator[Store]:
    """A fresh store of one kind: a SQLite file, or a PostgreSQL schema."""
    if kind == "sqlite":
        store: Store = SqliteStore(folder / "bench.db")
        yield store
        store.close()
        return

    import psycopg

    from accessproof.store.postgresql import PostgresStore

    url = os.environ.get("ACCESSPROOF_BENCH_POSTGRES_URL", POSTGRES_URL)
    schema = f"bench_{secrets.token_hex(4)}"
    store = PostgresStore(url, schema=schema)
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=25_000)
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--stores", default="sqlite", help="e.g. sqlite,postgresql")
    args = parser.parse_args()

    span_count = args.runs * 4
    print(f"{span_count} spans in requests of {args.spans_per_request}")
    rates = {}
    for kind in args.stores.split(","):
        requests = build_requests(args.runs, args.spans_per_request)
        with (
            tempfile.TemporaryDirectory() as folder,
            open_store(kind, Path(folder)) as store,
        ):
            elapsed, latencies, still_open = measure(store, requests)
        cuts = statistics.quantiles(latencies, n=100)
        rates[kind] = span_count / elapsed
        print(
            f"{kind:<11} {rates[kind]:>9,.0f} spans/s   request p50 "
            f"{cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms   "
            f"runs left open {still_open}"
        )
    if len(rates) > 1:
        first, *others = rates
        for other in others:
            print(f"{other} / {first}: {rates[other] / rates[first]:.2f}")


if __name__ == "__main__":
    main()
