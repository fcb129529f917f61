"""Fixtures for the instrumentation library's tests: spans, events, an OTLP sink."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from tests.library.library_helpers import (
    OtlpSink,
    Spans,
    event,
    handler,
    make_spans,
    signed,
    subscription,
)


@pytest.fixture
def spans() -> Iterator[Spans]:
    """A fresh in-memory span pipeline, shut down after the test."""
    pipeline = make_spans()
    yield pipeline
    pipeline.provider.shutdown()


@pytest.fixture(scope="session")
def build() -> Callable[..., dict[str, Any]]:
    """Build a subscription event: keyword arguments go to the subscription."""

    def _build(
        event_type: str = "customer.subscription.updated",
        event_id: str = "evt_1PgcTestUpdated",
        **fields: Any,
    ) -> dict[str, Any]:
        return event(subscription(**fields), event_type=event_type, event_id=event_id)

    return _build


@pytest.fixture(scope="session")
def sign() -> Callable[..., tuple[bytes, str]]:
    """Sign a payload with the test webhook secret."""
    return signed


@pytest.fixture(scope="module")
def otlp_sink() -> Iterator[OtlpSink]:
    """A real OTLP/HTTP receiver for spans exported by other processes."""
    sink = OtlpSink(endpoint="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(sink))
    sink.endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()
    thread.join()
