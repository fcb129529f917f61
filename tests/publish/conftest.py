"""Fixtures of the publish tests: an engine over a SQLite file, OTLP log receivers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accessproof.engine.clock import FakeClock
from tests.publish.harness import (
    Billing,
    Received,
    grpc_logs_receiver,
    http_logs_receiver,
)


@pytest.fixture
def billing(tmp_path: Path) -> Iterator[Billing]:
    harness = Billing(tmp_path / "accessproof.db", FakeClock())
    yield harness
    harness.store.close()


@pytest.fixture
def grpc_logs() -> Iterator[tuple[Received, str]]:
    with grpc_logs_receiver() as receiver:
        yield receiver


@pytest.fixture
def http_logs() -> Iterator[tuple[Received, str]]:
    with http_logs_receiver() as receiver:
        yield receiver
