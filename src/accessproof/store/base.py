"""The store contract: where runs, incidents and the export outbox live.

The engine changes state only inside :meth:`Store.transaction`. On PostgreSQL the
transaction locks every run it loads (and claims due runs with ``SKIP LOCKED``),
so several engine replicas can share one database; on SQLite one engine process
owns the file and :attr:`Store.exclusive` lets it cache open runs in memory.
Everything a transaction saves is durable when the ``with`` block exits cleanly.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from accessproof.conventions import IncidentState, Reason, RunState
from accessproof.engine.incidents import Incident
from accessproof.engine.model import Run
from accessproof.facts import ProviderFacts

#: Runs retention may remove: nothing left to decide. A run still in incident is
#: kept until late evidence resolves it or a newer event supersedes it.
PURGEABLE_STATES: tuple[str, ...] = (
    RunState.PROVEN.value,
    RunState.RESOLVED.value,
    RunState.SUPERSEDED.value,
)


class ExportKind(StrEnum):
    """What an outbox entry announces."""

    OPENED = "opened"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Subject:
    """The newest provider state seen for one subscription (or customer)."""

    key: str
    event_id: str
    facts: ProviderFacts


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An incident change decided but not yet exported as a log record."""

    seq: int
    kind: ExportKind
    incident: Incident


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """Filters of an incident listing; ``None`` means any."""

    states: frozenset[IncidentState] | None = None
    reason: Reason | None = None
    event_type: str | None = None
    drill: bool | None = None
    limit: int = 50
    cursor: str | None = None


class Transaction(Protocol):
    """One unit of work; see :class:`Store` for the locking it implies."""

    def load_runs(self, event_ids: Collection[str]) -> dict[str, Run]:
        """Return the stored runs among ``event_ids``, locked until commit."""
        ...

    def claim_due(self, now_ns: int, limit: int) -> list[Run]:
        """Return (and lock) runs whose deadline is at or before ``now_ns``."""
        ...

    def recent_runs(self, subject: str, limit: int) -> list[Run]:
        """Return the latest decided runs about one subject, newest first."""
        ...

    def load_subjects(self, keys: Collection[str]) -> dict[str, Subject]:
        """Return the stored newest provider state of each subject, locked."""
        ...

    def load_incidents(self, ids: Collection[str]) -> dict[str, Incident]:
        """Return the stored incidents among ``ids``."""
        ...

    def save_runs(self, runs: Collection[Run]) -> None: ...

    def save_subjects(self, subjects: Collection[Subject]) -> None: ...

    def save_incidents(self, incidents: Collection[Incident]) -> None: ...

    def enqueue_export(self, kind: ExportKind, incident: Incident) -> None: ...


class Store(Protocol):
    """Durable state of the engine."""

    #: True when this process is the only writer, so open runs may be cached.
    exclusive: bool

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Open a unit of work; it commits on a clean exit and rolls back on error."""
        ...

    def get_run(self, event_id: str) -> Run | None: ...

    def get_incident(self, incident_id: str) -> Incident | None: ...

    def incidents_of(self, event_id: str) -> list[Incident]: ...

    def list_incidents(self, query: IncidentQuery) -> tuple[list[Incident], str | None]:
        """Return one page of incidents, newest first, and the next page's cursor."""
        ...

    def acknowledge(self, incident_id: str, by: str, at_ns: int) -> Incident | None:
        """Mark an open incident acknowledged; return it, or ``None`` if unknown."""
        ...

    def open_incident_counts(self) -> dict[Reason, int]: ...

    def open_run_count(self) -> int: ...

    def pending_exports(self, limit: int) -> list[OutboxEntry]: ...

    def exported(self, seqs: Collection[int]) -> None: ...

    def purge(self, decided_before_ns: int) -> int:
        """Remove finished runs (:data:`PURGEABLE_STATES`) decided before the
        cutoff, with their incidents."""
        ...

    def close(self) -> None: ...


def acknowledged(incident: Incident, by: str, at_ns: int) -> Incident:
    """Return an open incident marked acknowledged by ``by`` at ``at_ns``."""
    return incident.model_copy(
        update={
            "state": IncidentState.ACKNOWLEDGED,
            "acknowledged_by": by,
            "acknowledged_at": datetime.fromtimestamp(at_ns / 1e9, UTC),
        }
    )


def one_page(
    incidents: list[Incident], limit: int
) -> tuple[list[Incident], str | None]:
    """Cut ``limit + 1`` fetched incidents to a page and the next page's cursor."""
    page = incidents[:limit]
    more = len(incidents) > limit
    return page, incident_cursor(page[-1]) if more and page else None


def incident_cursor(incident: Incident) -> str:
    """The opaque cursor that lists the incidents after this one."""
    return f"{int(incident.opened_at.timestamp() * 1e9)}:{incident.id}"


def parse_cursor(cursor: str) -> tuple[int, str]:
    """Split a cursor made by :func:`incident_cursor`; ValueError if malformed."""
    opened, _, incident_id = cursor.partition(":")
    if not incident_id.startswith("inc_"):
        raise ValueError(f"malformed cursor {cursor!r}")
    return int(opened), incident_id
