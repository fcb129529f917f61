"""What only the shared store promises: replicas on one database do not collide."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from accessproof.catalog import Catalog
from accessproof.conventions import Attr, IncidentState, RunState, Step
from accessproof.engine.clock import FakeClock
from accessproof.engine.engine import Engine
from accessproof.engine.evidence import Decoded, SpanEvidence
from accessproof.redact import AttributeValue
from accessproof.store import ExportKind, IncidentQuery, Store, Subject
from accessproof.store.postgresql import PostgresStore
from tests.store.conftest import POSTGRES_URL, Opener
from tests.store.samples import SECOND, T0, facts, incident, run

pytestmark = pytest.mark.postgresql

_WAIT = 10.0


def _named(pg_opener: Opener, name: str, **options: object) -> Store:
    """Open a store whose sessions carry ``name`` and give up a lock wait in 5 s."""
    separator = "&" if "?" in POSTGRES_URL else "?"
    store = PostgresStore(
        f"{POSTGRES_URL}{separator}application_name={name}"
        "&options=-c%20lock_timeout%3D5000",
        schema=pg_opener.where,
        **options,  # type: ignore[arg-type]
    )
    pg_opener.track(store)
    return store


def _wait_until_blocked(application_name: str) -> None:
    """Poll the server until a session of that name waits for a lock."""
    deadline = time.monotonic() + _WAIT
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                (application_name,),
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            time.sleep(0.02)
    pytest.fail(f"{application_name} never waited for a lock")


def test_two_replicas_never_claim_the_same_due_run(pg_opener: Opener) -> None:
    """Claims held open at the same time by two stores are disjoint and cover all."""
    first, second = pg_opener.open(), pg_opener.open()
    with first.transaction() as tx:
        tx.save_runs([run(f"evt_{i}", deadline_ns=T0 - i) for i in range(10)])
    both_claimed = threading.Barrier(2, timeout=_WAIT)

    def claim(store: Store) -> list[str]:
        with store.transaction() as tx:
            due = tx.claim_due(T0, limit=5)
            both_claimed.wait()
            for claimed in due:
                claimed.deadline_ns = None
            tx.save_runs(due)
        return [claimed.event_id for claimed in due]

    with ThreadPoolExecutor(2) as pool:
        mine, theirs = pool.map(claim, [first, second])

    assert len(mine) == len(theirs) == 5
    assert set(mine) | set(theirs) == {f"evt_{i}" for i in range(10)}
    with first.transaction() as tx:
        assert tx.claim_due(T0, limit=10) == []


@pytest.mark.parametrize("exists", [True, False], ids=["stored", "new"])
def test_two_transactions_on_one_run_serialise(pg_opener: Opener, exists: bool) -> None:
    """The second replica to load a run waits for the first and sees its write."""
    writer, waiter = _named(pg_opener, "ap_writer"), _named(pg_opener, "ap_waiter")
    if exists:
        with writer.transaction() as tx:
            tx.save_runs([run("evt_1")])

    def append_trace(
        store: Store, trace_id: str, hold: Callable[[], None]
    ) -> list[str]:
        with store.transaction() as tx:
            current = tx.load_runs(["evt_1"]).get("evt_1") or run("evt_1")
            seen = list(current.trace_ids)
            hold()
            current.trace_ids.append(trace_id)
            tx.save_runs([current])
        return seen

    with ThreadPoolExecutor(1) as pool, writer.transaction() as tx:
        held = tx.load_runs(["evt_1"]).get("evt_1") or run("evt_1")
        later = pool.submit(append_trace, waiter, "cd" * 16, lambda: None)
        _wait_until_blocked("ap_waiter")
        held.trace_ids.append("ef" * 16)
        tx.save_runs([held])

    assert "ef" * 16 in later.result(timeout=_WAIT)
    stored = writer.get_run("evt_1")
    assert stored is not None
    assert stored.trace_ids[-2:] == ["ef" * 16, "cd" * 16]


def test_two_replicas_creating_one_subject_serialise(pg_opener: Opener) -> None:
    """A subject not stored yet is still locked: the second loader sees the first's."""
    writer, waiter = _named(pg_opener, "ap_writer"), _named(pg_opener, "ap_waiter")

    def load_subject() -> dict[str, Subject]:
        with waiter.transaction() as tx:
            return tx.load_subjects(["sub_1"])

    with ThreadPoolExecutor(1) as pool, writer.transaction() as tx:
        assert tx.load_subjects(["sub_1"]) == {}
        later = pool.submit(load_subject)
        _wait_until_blocked("ap_waiter")
        tx.save_subjects([Subject("sub_1", "evt_1", facts("evt_1"))])

    assert later.result(timeout=_WAIT)["sub_1"].event_id == "evt_1"


def test_claim_due_skips_a_run_another_replica_is_updating(pg_opener: Opener) -> None:
    """A due run locked by an ingest elsewhere is left to it, without waiting."""
    ingest, ticker = pg_opener.open(), _named(pg_opener, "ap_ticker")
    with ingest.transaction() as tx:
        tx.save_runs([run("evt_busy", deadline_ns=T0), run("evt_free", deadline_ns=T0)])

    with ingest.transaction() as tx:
        tx.load_runs(["evt_busy"])
        with ticker.transaction() as other:
            due = other.claim_due(T0, limit=10)

    assert [r.event_id for r in due] == ["evt_free"]


def test_each_export_goes_to_one_replica(pg_opener: Opener) -> None:
    """Two replicas draining the outbox together export every entry exactly once."""
    first, second = pg_opener.open(), pg_opener.open()
    with first.transaction() as tx:
        for i in range(30):
            tx.enqueue_export(ExportKind.OPENED, incident(f"evt_{i}"))

    def drain(store: Store) -> list[int]:
        taken: list[int] = []
        while batch := store.pending_exports(3):
            taken += [entry.seq for entry in batch]
            store.exported([entry.seq for entry in batch])
        return taken

    with ThreadPoolExecutor(2) as pool:
        mine, theirs = pool.map(drain, [first, second])

    assert len(mine) + len(theirs) == 30
    assert len(set(mine) | set(theirs)) == 30


def test_a_claimed_export_is_hidden_while_its_lease_lasts(pg_opener: Opener) -> None:
    """An entry one replica claimed is not offered to another before it expires."""
    leasing, other = pg_opener.open(), pg_opener.open()
    with leasing.transaction() as tx:
        tx.enqueue_export(ExportKind.OPENED, incident("evt_1"))

    assert len(leasing.pending_exports(10)) == 1
    assert other.pending_exports(10) == []
    assert leasing.pending_exports(10) == []


def test_an_export_whose_lease_lapsed_is_offered_again(pg_opener: Opener) -> None:
    """An entry claimed but never marked exported goes to the next claimer."""
    lapsing, other = pg_opener.open(export_lease_seconds=0), pg_opener.open()
    with lapsing.transaction() as tx:
        tx.enqueue_export(ExportKind.OPENED, incident("evt_1"))

    claimed = lapsing.pending_exports(10)
    again = other.pending_exports(10)

    assert len(claimed) == 1
    assert again == claimed
    assert lapsing.pending_exports(10) == []


def test_a_transaction_after_a_lost_connection_works(pg_opener: Opener) -> None:
    """A pooled connection killed by the server is replaced on the next use."""
    store = _named(pg_opener, "ap_victim", pool_size=1)
    assert store.open_run_count() == 0
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'ap_victim'"
        )

    with pytest.raises(psycopg.OperationalError):
        store.open_run_count()
    with store.transaction() as tx:
        tx.save_runs([run("evt_1")])
    assert store.open_run_count() == 1


def _span(
    clock: FakeClock,
    event_id: str,
    step: Step,
    span: int,
    attributes: dict[str, AttributeValue],
) -> SpanEvidence:
    now = clock.now_ns()
    return SpanEvidence(
        event_id,
        step,
        trace_id=event_id.encode().hex().ljust(32, "0")[:32],
        span_id=f"{span:016x}",
        start_ns=now - SECOND,
        end_ns=now,
        ok=True,
        attributes=attributes,
    )


def _webhook(clock: FakeClock, event_id: str, span: int) -> Decoded:
    created = facts(event_id, subscription=f"sub_{event_id}")
    attributes = dict(created.to_attributes())
    attributes[Attr.EVENT_TYPE] = "customer.subscription.created"
    attributes.pop(Attr.DRILL, None)
    attributes.pop(Attr.DRILL_MODE, None)
    return Decoded([_span(clock, event_id, Step.WEBHOOK, span, attributes)])


def test_two_engines_share_one_database(pg_opener: Opener) -> None:
    """Engines on two stores split a run's spans, fire a deadline once, export once."""
    clock = FakeClock(T0)
    stores = [pg_opener.open(), pg_opener.open()]
    one, two = (Engine(s, Catalog.builtin(), clock=clock) for s in stores)

    one.ingest(_webhook(clock, "evt_proven", 1), "http")
    two.ingest(
        Decoded(
            [
                _span(clock, "evt_proven", Step.RECONCILE, 2, {}),
                _span(
                    clock,
                    "evt_proven",
                    Step.ENTITLEMENT,
                    3,
                    {Attr.OBSERVED_ACCESS: "granted"},
                ),
            ]
        ),
        "grpc",
    )
    one.ingest(_webhook(clock, "evt_missing", 4), "http")
    clock.advance(3600)
    fired = one.tick() + two.tick()

    proven, missing = stores[1].get_run("evt_proven"), stores[0].get_run("evt_missing")
    assert proven is not None
    assert proven.state is RunState.PROVEN
    assert missing is not None
    assert missing.state is RunState.INCIDENT
    assert fired == 1
    page, _ = stores[1].list_incidents(IncidentQuery())
    assert [(i.event_id, i.state) for i in page] == [
        ("evt_missing", IncidentState.OPEN)
    ]
    exports = stores[0].pending_exports(10) + stores[1].pending_exports(10)
    assert [(e.kind, e.incident.id) for e in exports] == [
        (ExportKind.OPENED, page[0].id)
    ]
