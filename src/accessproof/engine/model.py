"""The run: everything the engine knows about one Stripe event's journey.

Runs are mutable and owned by one engine at a time; they are saved to the store
whole, as a JSON document, after every change. The engine's hot path builds and
updates them, so they are plain slotted dataclasses with hand-written
serialisation rather than validated models.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field, fields
from typing import Any

from accessproof.conventions import Attr, DrillMode, Reason, RunState, Step
from accessproof.engine.evidence import SpanEvidence
from accessproof.expect import subject_of
from accessproof.facts import ProviderFacts
from accessproof.redact import AttributeValue

#: Attempts kept per step; a run that retries more keeps the first and the newest.
MAX_ATTEMPTS_PER_STEP = 8

#: The attributes each step's verdict reads; everything else stays out of the run.
STEP_ATTRIBUTES: dict[Step, tuple[str, ...]] = {
    Step.WEBHOOK: (),
    Step.RECONCILE: (Attr.RECONCILED_STATUS, Attr.RECONCILED_PLAN),
    Step.ENTITLEMENT: (
        Attr.OBSERVED_PLAN,
        Attr.OBSERVED_FEATURES,
        Attr.OBSERVED_ACCESS,
    ),
    Step.NOTIFY: (Attr.NOTIFY_CHANNEL, Attr.NOTIFY_TEMPLATE),
}


@dataclass(slots=True)
class Attempt:
    """One span of one step: an attempt at doing it."""

    trace_id: str
    span_id: str
    end_ns: int
    ok: bool
    error_type: str | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    received_ns: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping; tuples stay tuples (JSON writes them as lists)."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "end_ns": self.end_ns,
            "ok": self.ok,
            "error_type": self.error_type,
            "attributes": self.attributes,
            "received_ns": self.received_ns,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        attributes = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in data["attributes"].items()
        }
        return cls(
            trace_id=data["trace_id"],
            span_id=data["span_id"],
            end_ns=data["end_ns"],
            ok=data["ok"],
            error_type=data["error_type"],
            attributes=attributes,
            received_ns=data.get("received_ns", 0),
        )


@dataclass(slots=True)
class Run:
    """One Stripe event's run, keyed by its event id.

    ``first_seen_ns`` is when the engine first heard of the event (engine clock);
    step times are the spans' own end times (the app's clock). ``state`` and
    ``reason`` are the last verdict applied; ``deadline_ns`` is when the verdict
    may next change without new evidence (``None`` when only evidence can change
    it). ``incident_ids`` lists every incident the run ever opened, oldest first.
    """

    event_id: str
    first_seen_ns: int
    facts: ProviderFacts | None = None
    attempts: dict[Step, list[Attempt]] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)
    trace_ids: list[str] = field(default_factory=list)
    drill: bool = False
    state: RunState = RunState.OPEN
    reason: Reason | None = None
    deadline_ns: int | None = None
    decided_ns: int | None = None
    superseded_by: str | None = None
    incident_ids: list[str] = field(default_factory=list)

    @property
    def event_type(self) -> str:
        return self.facts.event_type if self.facts else ""

    @property
    def subject(self) -> str | None:
        """The subscription (or customer) whose access this run is about."""
        return subject_of(self.facts) if self.facts is not None else None

    @property
    def open_incident_id(self) -> str | None:
        """The incident the run is in now, if its state is ``incident``."""
        if self.state is RunState.INCIDENT and self.incident_ids:
            return self.incident_ids[-1]
        return None

    def accepted_ns(self) -> int | None:
        """When the webhook was first accepted: end of its first successful span."""
        return min(
            (a.end_ns for a in self.attempts.get(Step.WEBHOOK, ()) if a.ok),
            default=None,
        )

    def latest_success(self, step: Step) -> Attempt | None:
        """The newest successful attempt at a step, by the span's end time."""
        best: Attempt | None = None
        for attempt in self.attempts.get(step, ()):
            if attempt.ok and (best is None or attempt.end_ns >= best.end_ns):
                best = attempt
        return best

    def add(self, evidence: SpanEvidence, received_ns: int) -> bool:
        """Fold one span into the run; return False when it was already here."""
        attempts = self.attempts.setdefault(evidence.step, [])
        span_id = evidence.span_id
        # A plain loop: any() over a generator costs more, once per span.
        for attempt in attempts:
            if attempt.span_id == span_id:
                return False
        given = evidence.attributes
        attempts.append(
            Attempt(
                trace_id=evidence.trace_id,
                span_id=span_id,
                end_ns=evidence.end_ns,
                ok=evidence.ok,
                error_type=evidence.error_type,
                attributes={
                    key: given[key]
                    for key in STEP_ATTRIBUTES[evidence.step]
                    if key in given
                },
                received_ns=received_ns,
            )
        )
        if len(attempts) > MAX_ATTEMPTS_PER_STEP:
            del attempts[1]
        if evidence.trace_id not in self.trace_ids:
            self.trace_ids.append(evidence.trace_id)
        if evidence.resource and evidence.resource != self.resource:
            self.resource.update(evidence.resource)
        if evidence.attributes.get(Attr.DRILL) is True:
            self.drill = True
        if evidence.step is Step.WEBHOOK and evidence.ok and self.facts is None:
            self.facts = ProviderFacts.from_attributes(evidence.attributes)
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "first_seen_ns": self.first_seen_ns,
            "facts": facts_to_dict(self.facts) if self.facts else None,
            "attempts": {
                step.value: [a.to_dict() for a in attempts]
                for step, attempts in self.attempts.items()
            },
            "resource": self.resource,
            "trace_ids": self.trace_ids,
            "drill": self.drill,
            "state": self.state.value,
            "reason": self.reason.value if self.reason else None,
            "deadline_ns": self.deadline_ns,
            "decided_ns": self.decided_ns,
            "superseded_by": self.superseded_by,
            "incident_ids": self.incident_ids,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        facts = None
        if data["facts"] is not None:
            facts = facts_from_dict(data["facts"])
        return cls(
            event_id=data["event_id"],
            first_seen_ns=data["first_seen_ns"],
            facts=facts,
            attempts={
                Step(step): [Attempt.from_dict(a) for a in attempts]
                for step, attempts in data["attempts"].items()
            },
            resource=data["resource"],
            trace_ids=data["trace_ids"],
            drill=data["drill"],
            state=RunState(data["state"]),
            reason=Reason(data["reason"]) if data["reason"] else None,
            deadline_ns=data["deadline_ns"],
            decided_ns=data["decided_ns"],
            superseded_by=data["superseded_by"],
            incident_ids=data["incident_ids"],
        )


_FACT_FIELDS = tuple(f.name for f in fields(ProviderFacts))
#: All of a facts record's values in one call, in :data:`_FACT_FIELDS` order; each
#: run's document and its subject row serialise the facts, so this is hot.
_FACT_VALUES = operator.attrgetter(*_FACT_FIELDS)


_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def facts_to_dict(facts: ProviderFacts) -> dict[str, Any]:
    """Return the known provider facts as a JSON-ready mapping."""
    return {
        name: value
        for name, value in zip(_FACT_FIELDS, _FACT_VALUES(facts), strict=True)
        if value is not None and value != ()
    }


def run_to_json(run: Run) -> str:
    """The run as the compact JSON document the stores keep."""
    return _ENCODER.encode(run.to_dict())


def run_from_json(document: str) -> Run:
    """Rebuild a run from :func:`run_to_json` output."""
    return Run.from_dict(json.loads(document))


def facts_to_json(facts: ProviderFacts) -> str:
    return _ENCODER.encode(facts_to_dict(facts))


def facts_from_json(document: str) -> ProviderFacts:
    return facts_from_dict(json.loads(document))


def facts_from_dict(data: dict[str, Any]) -> ProviderFacts:
    """Rebuild provider facts from :func:`facts_to_dict` output."""
    values = dict(data)
    for name in ("price_ids", "lookup_keys", "product_ids"):
        values[name] = tuple(values.get(name) or ())
    if values.get("entitlement_lookup_keys") is not None:
        values["entitlement_lookup_keys"] = tuple(values["entitlement_lookup_keys"])
    if values.get("drill_mode") is not None:
        values["drill_mode"] = DrillMode(values["drill_mode"])
    return ProviderFacts(**values)
