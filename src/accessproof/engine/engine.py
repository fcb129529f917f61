"""The engine: evidence in, verdicts and incidents out, all state in the store.

:meth:`Engine.ingest` folds one request's evidence into its runs and
:meth:`Engine.tick` fires deadlines; both do their work in one store transaction
and return only after it committed, so a receiver that awaited them may answer
200. Neither reads the wall clock: the injected :class:`Clock` decides ``now``.

Thread-safety: an engine is not thread-safe. :class:`EngineService` calls it from
one worker thread only; tests call it directly.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from accessproof.catalog import Catalog
from accessproof.conventions import IncidentState, Outcome, Reason, RunState, Step
from accessproof.engine.clock import Clock
from accessproof.engine.evidence import Decoded, Rejection, SpanEvidence
from accessproof.engine.incidents import EarlierReadBack, Incident, open_incident
from accessproof.engine.model import Attempt, Run
from accessproof.engine.verdict import Observed, Rules, Verdict, decide
from accessproof.expect import (
    Expectation,
    carries_state,
    expect,
    newer,
    subject_of,
)
from accessproof.store.base import ExportKind, Store, Subject, Transaction

logger = logging.getLogger(__name__)

_NS = 1_000_000_000
_FINAL = frozenset({RunState.PROVEN, RunState.RESOLVED, RunState.SUPERSEDED})

#: How long a run whose evaluation failed waits before the next attempt.
_RETRY_SECONDS = 60

#: Event types whose resolved rules are kept; the rest are resolved each time, so
#: spans naming endless made-up event types cannot grow memory.
_MAX_CACHED_RULES = 1024

#: Default time decided runs are kept: Stripe retries for up to three days.
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class RunDecided:
    """A run left ``open``, or an incident run was resolved or superseded."""

    event_type: str
    outcome: Outcome
    drill: bool
    proof_seconds: float | None = None
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class IncidentOpened:
    """An incident was raised (also when a run's reason changed)."""

    incident: Incident


@dataclass(frozen=True, slots=True)
class IncidentResolved:
    """An incident was closed: proven by late evidence, superseded, or replaced."""

    incident: Incident


@dataclass(frozen=True, slots=True)
class LateEvidence:
    """A span arrived for a run that was already decided."""

    step: Step


@dataclass(frozen=True, slots=True)
class SpansReceived:
    """One export request's spans: used as evidence, ignored, or rejected."""

    transport: str
    accepted: int
    ignored: int
    rejected: dict[Rejection, int]


EngineEvent = (
    RunDecided | IncidentOpened | IncidentResolved | LateEvidence | SpansReceived
)


class Listener(Protocol):
    """Something that reacts to what the engine decided, after it is durable."""

    def on_events(self, events: Sequence[EngineEvent]) -> None: ...


@dataclass(slots=True)
class _Batch:
    """The work of one transaction: runs touched, incidents changed, events."""

    now_ns: int
    tx: Transaction | None = None
    runs: dict[str, Run] = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)
    exports: list[tuple[ExportKind, Incident]] = field(default_factory=list)
    subjects: dict[str, Subject] = field(default_factory=dict)
    events: list[EngineEvent] = field(default_factory=list)


class Engine:
    """Groups evidence into runs by Stripe event id and decides each run.

    >>> engine = Engine(store, Catalog.builtin(), clock=SystemClock())
    >>> engine.ingest(decoded, "http")   # durable when it returns
    >>> engine.tick()                    # fires deadlines that are due

    With ``export_incidents`` (the default) every incident opened or resolved is
    queued in the store's outbox, in the same transaction, for the OTLP log
    publisher; an engine without a publisher turns it off so the outbox does
    not grow unread.
    """

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        *,
        clock: Clock,
        listeners: Iterable[Listener] = (),
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        max_cached_runs: int = 500_000,
        export_incidents: bool = True,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.listeners = list(listeners)
        self.retention_seconds = retention_seconds
        self.export_incidents = export_incidents
        self._cache: dict[str, Run] = {}
        self._max_cached = max_cached_runs if store.exclusive else 0
        self._rules: dict[str, Rules] = {}
        self._last_purge_ns = 0

    def ingest(self, decoded: Decoded, transport: str) -> None:
        """Fold one request's evidence into its runs; durable when it returns."""
        batch = _Batch(now_ns=self.clock.now_ns())
        by_event: dict[str, list[SpanEvidence]] = defaultdict(list)
        for evidence in decoded.evidence:
            by_event[evidence.event_id].append(evidence)
        batch.events.append(
            SpansReceived(
                transport, len(decoded.evidence), decoded.ignored, decoded.rejected
            )
        )
        if by_event:
            self._commit(
                batch, functools.partial(self._fold, batch=batch, by_event=by_event)
            )
        else:
            self._notify(batch.events)

    def tick(self, now_ns: int | None = None, limit: int = 1000) -> int:
        """Fire every deadline due at ``now_ns`` (default: now); return how many."""
        now = self.clock.now_ns() if now_ns is None else now_ns
        fired = 0
        while True:
            batch = _Batch(now_ns=now)
            self._commit(
                batch, functools.partial(self._fire_due, batch=batch, limit=limit)
            )
            fired += len(batch.runs)
            if len(batch.runs) < limit:
                break
        if now - self._last_purge_ns > 60 * _NS:
            self._last_purge_ns = now
            removed = self.store.purge(now - int(self.retention_seconds * _NS))
            if removed:
                logger.info("removed %d runs past retention", removed)
        return fired

    def expectation(self, run: Run) -> Expectation | None:
        """What the run's provider facts imply, through the catalog."""
        return expect(run.facts, self.catalog) if run.facts is not None else None

    def rules(self, event_type: str) -> Rules:
        """The catalog's rules for an event type, resolved once and cached."""
        rules = self._rules.get(event_type)
        if rules is None:
            resolved = self.catalog.rule_for(event_type)
            rules = Rules(
                required=frozenset(resolved.required),
                deadlines=dict(resolved.deadlines),
                webhook_deadline=self.catalog.webhook_deadline,
                known_plans=frozenset(self.catalog.plans) or None,
            )
            if len(self._rules) < _MAX_CACHED_RULES:
                self._rules[event_type] = rules
        return rules

    def _commit(self, batch: _Batch, work: _Work) -> None:
        try:
            with self.store.transaction() as tx:
                batch.tx = tx
                work(tx)
                tx.save_runs(list(batch.runs.values()))
                tx.save_incidents(batch.incidents)
                tx.save_subjects(list(batch.subjects.values()))
                for kind, incident in batch.exports if self.export_incidents else ():
                    tx.enqueue_export(kind, incident)
        except BaseException:
            for event_id in batch.runs:
                self._cache.pop(event_id, None)
            raise
        self._recache(batch.runs.values())
        self._notify(batch.events)

    def _fold(
        self,
        tx: Transaction,
        *,
        batch: _Batch,
        by_event: dict[str, list[SpanEvidence]],
    ) -> None:
        runs = self._load(tx, by_event.keys())
        learned: list[Run] = []
        for event_id, evidence in by_event.items():
            run = runs.get(event_id) or Run(event_id, first_seen_ns=batch.now_ns)
            had_facts = run.facts is not None
            for span in evidence:
                if run.add(span, batch.now_ns) and run.state in _FINAL:
                    batch.events.append(LateEvidence(span.step))
            if run.facts is not None and not had_facts:
                learned.append(run)
            batch.runs[event_id] = run
        if learned:
            self._supersede(tx, batch, learned)
        for run in batch.runs.values():
            self._evaluate_apart(tx, batch, run)

    def _fire_due(self, tx: Transaction, *, batch: _Batch, limit: int) -> None:
        for stored in tx.claim_due(batch.now_ns, limit):
            run = self._cache.get(stored.event_id, stored)
            batch.runs[run.event_id] = run
            self._evaluate_apart(tx, batch, run)

    def _load(self, tx: Transaction, event_ids: Iterable[str]) -> dict[str, Run]:
        found: dict[str, Run] = {}
        missing: list[str] = []
        for event_id in event_ids:
            cached = self._cache.get(event_id)
            if cached is None:
                missing.append(event_id)
            else:
                found[event_id] = cached
        if missing:
            found.update(tx.load_runs(missing))
        return found

    def _supersede(self, tx: Transaction, batch: _Batch, learned: list[Run]) -> None:
        """Let only the newest provider state of each subscription decide."""
        keyed = [
            (subject_of(run.facts), run)
            for run in learned
            if run.facts and carries_state(run.facts)
        ]
        keys = {key for key, _ in keyed if key is not None}
        known = tx.load_subjects(keys) if keys else {}
        known.update(batch.subjects)
        for key, run in sorted(keyed, key=_by_created):
            if key is None or run.facts is None:
                continue
            current = known.get(key)
            if current is not None and current.event_id != run.event_id:
                if not newer(run.facts, current.facts):
                    self._mark_superseded(batch, run, by=current.event_id)
                    continue
                older = batch.runs.get(current.event_id) or self._load(
                    tx, [current.event_id]
                ).get(current.event_id)
                if older is not None:
                    batch.runs[older.event_id] = older
                    self._mark_superseded(batch, older, by=run.event_id)
            known[key] = batch.subjects[key] = Subject(key, run.event_id, run.facts)

    def _mark_superseded(self, batch: _Batch, run: Run, *, by: str) -> None:
        if run.state not in (RunState.OPEN, RunState.INCIDENT):
            return
        if run.state is RunState.INCIDENT:
            self._resolve(batch, run, "superseded")
        run.state = RunState.SUPERSEDED
        run.superseded_by = by
        run.deadline_ns = None
        run.decided_ns = batch.now_ns
        batch.events.append(RunDecided(run.event_type, Outcome.SUPERSEDED, run.drill))

    def _evaluate_apart(self, tx: Transaction, batch: _Batch, run: Run) -> None:
        """Evaluate one run so that its failure cannot sink the others.

        A run whose evaluation raises (data no test foresaw) keeps its evidence
        and its state, is tried again after :data:`_RETRY_SECONDS`, and the rest
        of the batch commits. Evaluation only appends to the batch, so cutting
        the batch back to its length before the run undoes the run's part.
        """
        marks = (len(batch.incidents), len(batch.exports), len(batch.events))
        try:
            self._evaluate(tx, batch, run)
        except Exception:
            logger.exception(
                "could not decide stripe_event_id=%s; trying again in %ds",
                run.event_id,
                _RETRY_SECONDS,
            )
            del batch.incidents[marks[0] :]
            del batch.exports[marks[1] :]
            del batch.events[marks[2] :]
            run.deadline_ns = batch.now_ns + _RETRY_SECONDS * _NS

    def _evaluate(self, tx: Transaction, batch: _Batch, run: Run) -> None:
        if run.state in _FINAL:
            run.deadline_ns = None
            return
        expectation = self.expectation(run)
        verdict = decide(run, expectation, self.rules(run.event_type), batch.now_ns)
        run.deadline_ns = verdict.deadline_ns
        if verdict.state is RunState.PROVEN:
            self._prove(batch, run)
        elif verdict.state is RunState.INCIDENT and (
            run.state is RunState.OPEN or verdict.reason is not run.reason
        ):
            self._raise(batch, run, verdict, expectation)

    def _prove(self, batch: _Batch, run: Run) -> None:
        run.deadline_ns = None
        if run.state is RunState.INCIDENT:
            self._resolve(batch, run, "proven")
            run.state = RunState.RESOLVED
            return
        run.state = RunState.PROVEN
        run.decided_ns = batch.now_ns
        accepted = run.accepted_ns() or run.first_seen_ns
        batch.events.append(
            RunDecided(
                run.event_type,
                Outcome.PROVEN,
                run.drill,
                proof_seconds=max(0.0, (batch.now_ns - accepted) / _NS),
                trace_id=run.trace_ids[0] if run.trace_ids else None,
            )
        )

    def _raise(
        self,
        batch: _Batch,
        run: Run,
        verdict: Verdict,
        expectation: Expectation | None,
    ) -> None:
        if run.state is RunState.INCIDENT:
            self._resolve(batch, run, "reason_changed")
        else:
            run.decided_ns = batch.now_ns
            batch.events.append(RunDecided(run.event_type, Outcome.INCIDENT, run.drill))
        earlier = None
        if verdict.reason is Reason.ACCESS_NOT_CHANGED and batch.tx is not None:
            earlier = self._earlier_read_back(batch.tx, run)
        incident = open_incident(
            run, verdict, expectation, self.catalog, batch.now_ns, earlier=earlier
        )
        run.state = RunState.INCIDENT
        run.reason = verdict.reason
        run.incident_ids.append(incident.id)
        batch.incidents.append(incident)
        batch.exports.append((ExportKind.OPENED, incident))
        batch.events.append(IncidentOpened(incident))
        logger.info(
            "incident %s reason=%s stripe_event_id=%s drill=%s",
            incident.id,
            incident.reason,
            run.event_id,
            run.drill,
        )

    def _earlier_read_back(self, tx: Transaction, run: Run) -> EarlierReadBack | None:
        """The newest read-back of an earlier run about the same subscription."""
        if run.subject is None:
            return None
        best: tuple[str, Attempt] | None = None
        for other in tx.recent_runs(run.subject, limit=20):
            attempt = other.latest_success(Step.ENTITLEMENT)
            if other.event_id == run.event_id or attempt is None:
                continue
            if best is None or attempt.end_ns > best[1].end_ns:
                best = (other.event_id, attempt)
        if best is None:
            return None
        event_id, attempt = best
        return EarlierReadBack(event_id, attempt.end_ns, Observed.from_attempt(attempt))

    def _resolve(self, batch: _Batch, run: Run, resolution: str) -> None:
        incident_id = run.open_incident_id
        if incident_id is None:
            return
        pending = {i.id: i for i in batch.incidents}
        incident = pending.get(incident_id)
        if incident is None and batch.tx is not None:
            incident = batch.tx.load_incidents([incident_id]).get(incident_id)
        if incident is None:
            logger.warning("incident %s of %s is missing", incident_id, run.event_id)
            return
        resolved_at = datetime.fromtimestamp(batch.now_ns / _NS, UTC)
        resolved = incident.model_copy(
            update={
                "state": IncidentState.RESOLVED,
                "resolved_at": resolved_at,
                "resolution": resolution,
                "resolution_seconds": (
                    resolved_at - incident.opened_at
                ).total_seconds(),
            }
        )
        batch.incidents.append(resolved)
        batch.exports.append((ExportKind.RESOLVED, resolved))
        batch.events.append(IncidentResolved(resolved))

    def _recache(self, runs: Iterable[Run]) -> None:
        for run in runs:
            if run.state is RunState.OPEN and len(self._cache) < self._max_cached:
                self._cache[run.event_id] = run
            else:
                self._cache.pop(run.event_id, None)

    def _notify(self, events: Sequence[EngineEvent]) -> None:
        for listener in self.listeners:
            try:
                listener.on_events(events)
            except Exception:
                logger.exception("listener %r failed", listener)


class _Work(Protocol):
    def __call__(self, tx: Transaction, /) -> None: ...


def _by_created(item: tuple[str | None, Run]) -> tuple[int, str]:
    facts = item[1].facts
    return (facts.created or 0) if facts else 0, item[1].event_id


__all__ = [
    "DEFAULT_RETENTION_SECONDS",
    "Engine",
    "EngineEvent",
    "IncidentOpened",
    "IncidentResolved",
    "LateEvidence",
    "Listener",
    "RunDecided",
    "SpansReceived",
]
