"""The store contract, held by SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from accessproof.conventions import IncidentState, Reason, RunState
from accessproof.engine.incidents import Incident
from accessproof.store import ExportKind, IncidentQuery, Store, Subject
from tests.store.conftest import Opener
from tests.store.samples import SECOND, T0, facts, incident, run


def _save(store: Store, *incidents: Incident) -> None:
    with store.transaction() as tx:
        tx.save_incidents(incidents)


def test_a_saved_run_reads_back_field_for_field(store: Store) -> None:
    """A run comes back from the store with exactly the document it was saved with."""
    saved = run("evt_1", state=RunState.INCIDENT, deadline_ns=T0, decided_ns=T0)

    with store.transaction() as tx:
        tx.save_runs([saved])

    with store.transaction() as tx:
        loaded = tx.load_runs(["evt_1"])
    assert loaded["evt_1"].to_dict() == saved.to_dict()
    stored = store.get_run("evt_1")
    assert stored is not None
    assert stored.to_dict() == saved.to_dict()


def test_saving_a_run_again_replaces_it(store: Store) -> None:
    """The second save of a run overwrites the first."""
    first = run("evt_1", deadline_ns=T0)
    with store.transaction() as tx:
        tx.save_runs([first])

    first.state = RunState.PROVEN
    first.deadline_ns = None
    with store.transaction() as tx:
        tx.save_runs([first])

    stored = store.get_run("evt_1")
    assert stored is not None
    assert stored.state is RunState.PROVEN
    assert stored.deadline_ns is None


def test_loading_unknown_runs_returns_only_the_known_ones(store: Store) -> None:
    """Ids with no stored run are left out of ``load_runs``, not errors."""
    with store.transaction() as tx:
        tx.save_runs([run("evt_1")])

    with store.transaction() as tx:
        assert set(tx.load_runs(["evt_1", "evt_missing"])) == {"evt_1"}
        assert tx.load_runs(["evt_missing"]) == {}
        assert tx.load_runs([]) == {}
    assert store.get_run("evt_missing") is None


def test_claim_due_returns_only_due_runs_in_deadline_order(store: Store) -> None:
    """Runs due at ``now`` come oldest deadline first; later and no deadline stay."""
    with store.transaction() as tx:
        tx.save_runs(
            [
                run("evt_late", deadline_ns=T0 + 10 * SECOND),
                run("evt_second", deadline_ns=T0),
                run("evt_first", deadline_ns=T0 - SECOND),
                run("evt_none"),
            ]
        )

    with store.transaction() as tx:
        due = tx.claim_due(T0, limit=10)

    assert [r.event_id for r in due] == ["evt_first", "evt_second"]


def test_claim_due_returns_at_most_limit_runs(store: Store) -> None:
    """``limit`` caps the claim, keeping the earliest deadlines."""
    with store.transaction() as tx:
        tx.save_runs([run(f"evt_{i}", deadline_ns=T0 - i * SECOND) for i in range(5)])

    with store.transaction() as tx:
        due = tx.claim_due(T0, limit=2)

    assert [r.event_id for r in due] == ["evt_4", "evt_3"]


def test_subjects_round_trip(store: Store) -> None:
    """A subject's newest event id and facts come back as saved, and can be replaced."""
    subject = Subject("sub_1", "evt_1", facts("evt_1"))
    with store.transaction() as tx:
        tx.save_subjects([subject])
    with store.transaction() as tx:
        assert tx.load_subjects(["sub_1", "sub_missing"]) == {"sub_1": subject}

    newer = Subject("sub_1", "evt_2", facts("evt_2"))
    with store.transaction() as tx:
        tx.save_subjects([newer])
    with store.transaction() as tx:
        assert tx.load_subjects(["sub_1"]) == {"sub_1": newer}


def test_incidents_read_back_by_id_and_by_run(store: Store) -> None:
    """An incident is found by its id and among its run's, oldest first."""
    older = incident("evt_1", opened_ns=T0)
    newer = incident("evt_1", opened_ns=T0 + SECOND)
    other = incident("evt_2")
    _save(store, newer, other, older)

    assert store.get_incident(older.id) == older
    assert store.get_incident("inc_unknown") is None
    assert store.incidents_of("evt_1") == [older, newer]
    with store.transaction() as tx:
        assert tx.load_incidents([other.id, "inc_unknown"]) == {other.id: other}


def test_incident_listing_is_newest_first(store: Store) -> None:
    """Without filters every incident is listed, newest first, with no next page."""
    made = [incident(f"evt_{i}", opened_ns=T0 + i * SECOND) for i in range(3)]
    _save(store, *made)

    page, cursor = store.list_incidents(IncidentQuery())

    assert [i.id for i in page] == [i.id for i in reversed(made)]
    assert cursor is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (IncidentQuery(states=frozenset({IncidentState.RESOLVED})), {"resolved"}),
        (
            IncidentQuery(
                states=frozenset({IncidentState.OPEN, IncidentState.ACKNOWLEDGED})
            ),
            {"open", "step_failed", "checkout", "drill"},
        ),
        (IncidentQuery(reason=Reason.STEP_FAILED), {"step_failed"}),
        (IncidentQuery(event_type="checkout.session.completed"), {"checkout"}),
        (IncidentQuery(drill=True), {"drill"}),
        (
            IncidentQuery(drill=False),
            {"open", "resolved", "step_failed", "checkout"},
        ),
        (
            IncidentQuery(
                states=frozenset({IncidentState.OPEN}), reason=Reason.STEP_FAILED
            ),
            {"step_failed"},
        ),
    ],
)
def test_incident_listing_applies_each_filter(
    store: Store, query: IncidentQuery, expected: set[str]
) -> None:
    """Each filter of a listing keeps exactly the incidents that match it."""
    _save(
        store,
        incident("open"),
        incident("resolved", state=IncidentState.RESOLVED),
        incident("step_failed", reason=Reason.STEP_FAILED),
        incident("checkout", event_type="checkout.session.completed"),
        incident("drill", drill=True),
    )

    page, _ = store.list_incidents(query)

    assert {i.event_id for i in page} == expected


def test_incident_cursor_walks_every_page_once(store: Store) -> None:
    """Following cursors lists each incident exactly once, ties on time included."""
    made = [incident(f"evt_{i}", opened_ns=T0 + (i // 3) * SECOND) for i in range(11)]
    _save(store, *made)

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        page, cursor = store.list_incidents(IncidentQuery(limit=4, cursor=cursor))
        seen += [i.id for i in page]
        pages += 1
        if cursor is None:
            break

    assert pages == 3
    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == {i.id for i in made}


def test_a_malformed_cursor_is_refused(store: Store) -> None:
    """A cursor the store did not make raises ValueError rather than listing."""
    with pytest.raises(ValueError, match="malformed cursor"):
        store.list_incidents(IncidentQuery(cursor="12:evt_1"))


def test_acknowledge_records_who_and_when(store: Store) -> None:
    """Acknowledging an open incident stores the operator and the time."""
    opened = incident("evt_1")
    _save(store, opened)

    acked = store.acknowledge(opened.id, "oncall@example.com", T0 + 5 * SECOND)

    assert acked is not None
    assert acked.state is IncidentState.ACKNOWLEDGED
    assert acked.acknowledged_by == "oncall@example.com"
    assert acked.acknowledged_at is not None
    assert acked.acknowledged_at.timestamp() == (T0 + 5 * SECOND) / 1e9
    assert store.get_incident(opened.id) == acked


def test_acknowledging_a_resolved_incident_changes_nothing(store: Store) -> None:
    """A resolved incident stays as it was, and unknown ids give ``None``."""
    resolved = incident("evt_1", state=IncidentState.RESOLVED)
    _save(store, resolved)

    assert store.acknowledge(resolved.id, "oncall", T0) == resolved
    assert store.get_incident(resolved.id) == resolved
    assert store.acknowledge("inc_unknown", "oncall", T0) is None


def test_open_counts_leave_out_resolved_incidents_and_decided_runs(
    store: Store,
) -> None:
    """Counts are of unresolved incidents by reason, and of open runs."""
    _save(
        store,
        incident("evt_1"),
        incident("evt_2", state=IncidentState.ACKNOWLEDGED),
        incident("evt_3", reason=Reason.STEP_FAILED),
        incident("evt_4", state=IncidentState.RESOLVED),
    )
    with store.transaction() as tx:
        tx.save_runs([run("evt_1"), run("evt_2"), run("evt_3", state=RunState.PROVEN)])

    assert store.open_incident_counts() == {
        Reason.ACCESS_NOT_CHANGED: 2,
        Reason.STEP_FAILED: 1,
    }
    assert store.open_run_count() == 2


def test_outbox_hands_out_entries_in_order_until_exported(store: Store) -> None:
    """Entries come oldest first; exported ones never come again."""
    first, second = incident("evt_1"), incident("evt_2")
    with store.transaction() as tx:
        tx.enqueue_export(ExportKind.OPENED, first)
        tx.enqueue_export(ExportKind.OPENED, second)
        tx.enqueue_export(ExportKind.RESOLVED, first)

    batch = store.pending_exports(2)
    store.exported([entry.seq for entry in batch])
    rest = store.pending_exports(10)

    assert [(e.kind, e.incident) for e in batch] == [
        (ExportKind.OPENED, first),
        (ExportKind.OPENED, second),
    ]
    assert batch[0].seq < batch[1].seq < rest[0].seq
    assert [(e.kind, e.incident) for e in rest] == [(ExportKind.RESOLVED, first)]
    store.exported([rest[0].seq])
    assert store.pending_exports(10) == []


def test_purge_removes_old_decided_runs_with_their_incidents(store: Store) -> None:
    """Finished runs decided before the cutoff go, with their incidents; open
    runs and runs still in incident stay, however old."""
    old = run("evt_old", state=RunState.RESOLVED, decided_ns=T0 - SECOND)
    recent = run("evt_recent", state=RunState.PROVEN, decided_ns=T0 + SECOND)
    still_open = run("evt_open", decided_ns=T0 - SECOND)
    unresolved = run("evt_unresolved", state=RunState.INCIDENT, decided_ns=T0 - SECOND)
    gone, kept = incident("evt_old"), incident("evt_unresolved")
    with store.transaction() as tx:
        tx.save_runs([old, recent, still_open, unresolved])
        tx.save_incidents([gone, kept])

    removed = store.purge(T0)

    assert removed == 1
    assert store.get_run("evt_old") is None
    assert store.get_incident(gone.id) is None
    assert store.get_run("evt_recent") is not None
    assert store.get_run("evt_open") is not None
    assert store.get_run("evt_unresolved") is not None
    assert store.get_incident(kept.id) == kept


def test_an_exception_rolls_back_the_whole_transaction(store: Store) -> None:
    """Nothing a failed transaction saved or enqueued is visible afterwards."""
    with pytest.raises(RuntimeError, match="boom"):
        _save_then_fail(store)

    assert store.get_run("evt_1") is None
    assert store.incidents_of("evt_1") == []
    assert store.pending_exports(10) == []
    with store.transaction() as tx:
        assert tx.claim_due(T0, 10) == []


def _save_then_fail(store: Store) -> None:
    with store.transaction() as tx:
        tx.save_runs([run("evt_1", deadline_ns=T0)])
        tx.save_incidents([incident("evt_1")])
        tx.enqueue_export(ExportKind.OPENED, incident("evt_1"))
        raise RuntimeError("boom")


def test_a_reopened_store_sees_what_was_committed(opener: Opener) -> None:
    """A new instance over the same database reads the runs, incidents and outbox."""
    first = opener.open()
    saved, opened = run("evt_1", deadline_ns=T0), incident("evt_1")
    with first.transaction() as tx:
        tx.save_runs([saved])
        tx.save_incidents([opened])
        tx.enqueue_export(ExportKind.OPENED, opened)
    first.close()

    second = opener.open()

    stored = second.get_run("evt_1")
    assert stored is not None
    assert stored.to_dict() == saved.to_dict()
    assert second.get_incident(opened.id) == opened
    assert [e.incident for e in second.pending_exports(10)] == [opened]
