"""The engine inside the server: one thread, bounded intake, ticking on its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from accessproof.catalog import Catalog
from accessproof.conventions import RunState, Step
from accessproof.engine.clock import FakeClock
from accessproof.engine.engine import Engine
from accessproof.engine.evidence import Decoded
from accessproof.engine.intake import Overloaded
from accessproof.engine.service import EngineService
from accessproof.store.sqlite import SqliteStore
from tests.engine import spans
from tests.engine.events import subscription_event


class HeldEngine(Engine):
    """An engine whose ingest waits until the test lets it go."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.release = threading.Event()

    def ingest(self, decoded: Decoded, transport: str) -> None:
        self.release.wait(timeout=10)
        super().ingest(decoded, transport)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "service.db")
    yield store
    store.close()


def test_intake_pushes_back_instead_of_queueing_without_bound(
    store: SqliteStore,
) -> None:
    """Past max_pending requests in flight, the next one is told to retry."""
    clock = FakeClock()
    engine = HeldEngine(store, Catalog.builtin(), clock=clock)
    service = EngineService(engine, max_pending=2, retry_after=3.0)
    event = subscription_event()

    async def scenario() -> Overloaded:
        batch = spans.batch(spans.webhook(event, clock.now_ns()))
        first = asyncio.create_task(service.accept(batch, "http"))
        second = asyncio.create_task(service.accept(batch, "grpc"))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded) as refused:
            await service.accept(batch, "http")
        engine.release.set()
        await asyncio.gather(first, second)
        await service.stop()
        return refused.value

    refused = asyncio.run(scenario())

    assert refused.retry_after == 3.0
    run = store.get_run(str(event["id"]))
    assert run is not None
    assert len(run.attempts[Step.WEBHOOK]) == 1  # the same span, delivered twice


def test_the_service_ticks_deadlines_without_being_asked(store: SqliteStore) -> None:
    """Started, the service fires due deadlines on its own loop."""
    clock = FakeClock()
    engine = Engine(store, Catalog.builtin(), clock=clock)
    service = EngineService(engine, tick_interval=0.01)
    event = subscription_event()

    async def scenario() -> None:
        await service.accept(spans.batch(spans.webhook(event, clock.now_ns())), "x")
        service.start()
        clock.advance(61)
        for _ in range(500):
            run = store.get_run(str(event["id"]))
            if run is not None and run.state is RunState.INCIDENT:
                break
            await asyncio.sleep(0.01)
        await service.stop()

    asyncio.run(scenario())

    run = store.get_run(str(event["id"]))
    assert run is not None
    assert run.state is RunState.INCIDENT
