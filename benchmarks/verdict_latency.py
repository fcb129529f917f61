"""Verdict latency and deadline delay of a real ``accessproof serve``.

    python benchmarks/verdict_latency.py [--runs 2000] [--deadline-runs 200]

Starts the engine in this process on loopback ports (SQLite store in a temporary
folder, default tick interval), then:

1. sends complete runs over OTLP/HTTP (protobuf), one run's four spans per
   request, and times each request: the engine answers only after the spans are
   durable and the run is decided in the same transaction, so the round trip
   bounds the latency from the last step's arrival to the verdict;
2. sends ``--bulk-runs`` runs in requests of 512 spans from two client threads,
   as a collector would, and reports spans per second through the whole server;
3. sends runs whose entitlement never comes (deadline 1 s) and compares each
   incident's ``opened_at`` with its webhook's acceptance plus the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import yaml
from engine_throughput import CATALOG, build_requests, run_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

from accessproof.server import Server
from accessproof.settings import ServeSettings

DEADLINE_SECONDS = 1.0


def _body(spans: list[object]) -> bytes:
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def _start(folder: Path) -> tuple[Server, asyncio.AbstractEventLoop]:
    catalog = {
        **CATALOG,
        "steps": {
            "default": {
                "required": ["reconcile", "entitlement", "notify"],
                "deadlines": {"entitlement": f"{DEADLINE_SECONDS}s"},
            }
        },
    }
    config = folder / "accessproof.yaml"
    config.write_text(yaml.safe_dump(catalog))
    settings = ServeSettings(
        config=config,
        store=f"sqlite:///{folder / 'bench.db'}",
        otlp_http="127.0.0.1:0",
        otlp_grpc="127.0.0.1:0",
        http="127.0.0.1:0",
    )
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    server = Server(settings)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    return server, loop


def _post(connection: http.client.HTTPConnection, body: bytes) -> float:
    started = time.perf_counter()
    connection.request(
        "POST",
        "/v1/traces",
        body=body,
        headers={"Content-Type": "application/x-protobuf"},
    )
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"engine answered {response.status}")
    return time.perf_counter() - started


def _post_all(host: str, port: int, bodies: list[bytes]) -> None:
    connection = http.client.HTTPConnection(host, port)
    for body in bodies:
        _post(connection, body)


def _get(connection: http.client.HTTPConnection, path: str) -> dict[str, object]:
    connection.request("GET", path)
    response = connection.getresponse()
    body: dict[str, object] = json.loads(response.read())
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--deadline-runs", type=int, default=200)
    parser.add_argument("--bulk-runs", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        server, loop = _start(Path(folder))
        otlp_host, otlp_port = server.endpoints.otlp_http.rsplit(":", 1)
        api_host, api_port = server.endpoints.http.rsplit(":", 1)
        otlp = http.client.HTTPConnection(otlp_host, int(otlp_port))
        api = http.client.HTTPConnection(api_host, int(api_port))

        now = time.time_ns()
        latencies = [
            _post(otlp, _body(run_spans(index, now))) for index in range(args.runs)
        ]

        bulk = build_requests(args.bulk_runs, 512, first=args.runs + args.deadline_runs)
        started = time.perf_counter()
        threads = [
            threading.Thread(target=_post_all, args=(otlp_host, int(otlp_port), part))
            for part in (bulk[0::2], bulk[1::2])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        served = args.bulk_runs * 4 / (time.perf_counter() - started)

        pending = []
        for index in range(args.runs, args.runs + args.deadline_runs):
            webhook = run_spans(index, time.time_ns())[0]
            _post(otlp, _body([webhook]))
            pending.append((f"evt_bench{index:012d}", webhook.end_time_unix_nano))
        time.sleep(DEADLINE_SECONDS + 1.5)
        delays = []
        for event_id, accepted_ns in pending:
            run = _get(api, f"/api/v1/runs/{event_id}")
            incidents = run["incidents"]
            if not isinstance(incidents, list) or not incidents:
                raise RuntimeError(f"{event_id} has no incident: {run['state']}")
            opened = datetime.fromisoformat(incidents[0]["opened_at"]).timestamp()
            delays.append(opened - accepted_ns / 1e9 - DEADLINE_SECONDS)

        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)

    cuts = statistics.quantiles(latencies, n=100)
    late = statistics.quantiles(delays, n=100)
    print(f"runs proven              {args.runs} (one request each, sequential)")
    print(f"verdict latency p50      {cuts[49] * 1000:.1f} ms")
    print(f"verdict latency p99      {cuts[98] * 1000:.1f} ms")
    print(f"served throughput        {served:,.0f} spans/s (OTLP/HTTP, 512/request)")
    print(f"deadline -> incident p50 {late[49] * 1000:.0f} ms")
    print(f"deadline -> incident p99 {late[98] * 1000:.0f} ms")
    print(f"deadline -> incident max {max(delays) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
