"""The verdict: a pure function of a run's evidence, its expectation and ``now``.

Nothing here reads a clock, a store or the network. :func:`decide` looks at the
newest successful attempt of each step, compares what the app reported with what
the provider state implies, and says whether the run is proven, still open (and
until when), or an incident (and why).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from accessproof.conventions import Access, Attr, Reason, RunState, Step
from accessproof.engine.model import Attempt, Run
from accessproof.expect import Expectation

_NS = 1_000_000_000

#: When several problems are true at once, the first in this order is the reason.
REASON_PRIORITY: tuple[Reason, ...] = (
    Reason.ACCESS_MISMATCH,
    Reason.ACCESS_NOT_CHANGED,
    Reason.STEP_FAILED,
    Reason.SUBSCRIPTION_MISMATCH,
    Reason.NOTIFICATION_MISSING,
    Reason.WEBHOOK_MISSING,
)

_STEPS_IN_ORDER = tuple(Step)

#: What a required step's absence at its deadline means.
_MISSING_REASON = {
    Step.RECONCILE: Reason.SUBSCRIPTION_MISMATCH,
    Step.ENTITLEMENT: Reason.ACCESS_NOT_CHANGED,
    Step.NOTIFY: Reason.NOTIFICATION_MISSING,
}


@dataclass(frozen=True, slots=True)
class Observed:
    """What the app's entitlement read-back reported; ``None`` where it said nothing."""

    plan: str | None = None
    features: frozenset[str] | None = None
    access: Access | None = None

    @classmethod
    def from_attempt(cls, attempt: Attempt | None) -> Observed:
        if attempt is None:
            return cls()
        get = attempt.attributes.get
        plan = get(Attr.OBSERVED_PLAN)
        features = get(Attr.OBSERVED_FEATURES)
        access = get(Attr.OBSERVED_ACCESS)
        return cls(
            plan=plan if isinstance(plan, str) else None,
            features=frozenset(features) if isinstance(features, tuple) else None,
            access=Access(access) if access in ("granted", "revoked") else None,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one evaluation.

    ``state`` is ``open``, ``proven`` or ``incident``. ``detail`` is one plain
    sentence for the incident record. ``deadline_ns`` is when, without new
    evidence, the verdict would next change (``None``: only evidence can change it).
    ``step`` names the step the reason is about, where there is one.
    """

    state: RunState
    reason: Reason | None = None
    detail: str = ""
    step: Step | None = None
    deadline_ns: int | None = None
    observed: Observed = Observed()


@dataclass(frozen=True, slots=True)
class Rules:
    """The catalog's word on one event type, resolved to what the verdict needs.

    ``deadlines`` are seconds from the webhook's acceptance; ``known_plans`` is
    ``None`` when the catalog defines no plans (plan names are then not judged).
    """

    required: frozenset[Step]
    deadlines: Mapping[Step, float]
    webhook_deadline: float
    known_plans: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class _Problem:
    reason: Reason
    detail: str
    step: Step | None


def decide(
    run: Run, expectation: Expectation | None, rules: Rules, now_ns: int
) -> Verdict:
    """Judge a run at ``now_ns`` (unix nanoseconds)."""
    observed = Observed.from_attempt(run.latest_success(Step.ENTITLEMENT))
    accepted = run.accepted_ns()
    if accepted is None or run.facts is None or expectation is None:
        return _without_webhook(run, rules, now_ns, observed)

    required = set(rules.required)
    if expectation.access is None:
        required.discard(Step.ENTITLEMENT)

    problems = _contradictions(run, expectation, rules, observed)
    waiting: list[int] = []
    for step in _STEPS_IN_ORDER:
        if step not in required:
            continue
        if run.latest_success(step) is not None:
            continue
        due = accepted + int(rules.deadlines.get(step, 60.0) * _NS)
        if now_ns < due:
            waiting.append(due)
        else:
            problems.append(_missing(run, step, rules.deadlines.get(step, 60.0)))

    if problems:
        worst = min(problems, key=lambda p: REASON_PRIORITY.index(p.reason))
        return Verdict(
            state=RunState.INCIDENT,
            reason=worst.reason,
            detail=worst.detail,
            step=worst.step,
            deadline_ns=min(waiting, default=None),
            observed=observed,
        )
    if waiting:
        return Verdict(RunState.OPEN, deadline_ns=min(waiting), observed=observed)
    return Verdict(RunState.PROVEN, observed=observed)


def _without_webhook(
    run: Run, rules: Rules, now_ns: int, observed: Observed
) -> Verdict:
    """A run whose webhook step has not been accepted: wait, then say why not."""
    failed = [a for a in run.attempts.get(Step.WEBHOOK, ()) if not a.ok]
    since = min((a.end_ns for a in failed), default=run.first_seen_ns)
    due = since + int(rules.webhook_deadline * _NS)
    if now_ns < due:
        return Verdict(RunState.OPEN, deadline_ns=due, observed=observed)
    if failed:
        return Verdict(
            RunState.INCIDENT,
            Reason.STEP_FAILED,
            f"the webhook step failed ({failed[-1].error_type}) and no attempt "
            "succeeded",
            step=Step.WEBHOOK,
            observed=observed,
        )
    return Verdict(
        RunState.INCIDENT,
        Reason.WEBHOOK_MISSING,
        "later steps arrived but the webhook step never did, so the provider "
        "state is unknown",
        step=Step.WEBHOOK,
        observed=observed,
    )


def _contradictions(
    run: Run, expectation: Expectation, rules: Rules, observed: Observed
) -> list[_Problem]:
    """Problems visible now, whatever the deadlines: wrong data, not missing data."""
    problems: list[_Problem] = []
    if expectation.problem:
        problems.append(
            _Problem(Reason.ACCESS_MISMATCH, expectation.problem, Step.WEBHOOK)
        )

    reconciled = run.latest_success(Step.RECONCILE)
    if reconciled is not None:
        mismatch = _reconcile_mismatch(run, expectation, reconciled)
        if mismatch:
            problems.append(
                _Problem(Reason.SUBSCRIPTION_MISMATCH, mismatch, Step.RECONCILE)
            )

    if expectation.access is not None and run.latest_success(Step.ENTITLEMENT):
        mismatch = _access_mismatch(expectation, observed, rules)
        if mismatch:
            problems.append(
                _Problem(Reason.ACCESS_MISMATCH, mismatch, Step.ENTITLEMENT)
            )
    return problems


def _reconcile_mismatch(
    run: Run, expectation: Expectation, attempt: Attempt
) -> str | None:
    status = attempt.attributes.get(Attr.RECONCILED_STATUS)
    plan = attempt.attributes.get(Attr.RECONCILED_PLAN)
    provider_status = run.facts.status if run.facts else None
    if isinstance(status, str) and provider_status and status != provider_status:
        return (
            f"the app reconciled status {status!r}, but Stripe says {provider_status!r}"
        )
    if isinstance(plan, str) and expectation.plan and plan != expectation.plan:
        return (
            f"the app reconciled plan {plan!r}, but the provider state maps to "
            f"{expectation.plan!r}"
        )
    return None


def _access_mismatch(
    expectation: Expectation, observed: Observed, rules: Rules
) -> str | None:
    if observed.access is None:
        return "the entitlement read-back did not report access (granted or revoked)"
    if observed.access is not expectation.access:
        return f"expected access {expectation.access}, observed {observed.access}"
    known = rules.known_plans
    if known is not None and observed.plan is not None and observed.plan not in known:
        return f"observed plan {observed.plan!r} is not in the catalog"
    if expectation.plan is not None and observed.plan != expectation.plan:
        seen = repr(observed.plan) if observed.plan else "no plan"
        return f"expected plan {expectation.plan!r}, observed {seen}"
    if expectation.features is not None and observed.features is not None:
        return _feature_mismatch(expectation, observed.features)
    return None


def _feature_mismatch(expectation: Expectation, features: frozenset[str]) -> str | None:
    expected = expectation.features or frozenset()
    missing = sorted(expected - features)
    extra = [] if expectation.features_partial else sorted(features - expected)
    if not missing and not extra:
        return None
    parts = []
    if missing:
        parts.append("missing features " + ", ".join(missing))
    if extra:
        parts.append("unexpected features " + ", ".join(extra))
    return "; ".join(parts)


def _missing(run: Run, step: Step, deadline: float) -> _Problem:
    failures = [a for a in run.attempts.get(step, ()) if not a.ok]
    if failures:
        return _Problem(
            Reason.STEP_FAILED,
            f"the {step} step failed ({failures[-1].error_type}) and no later "
            "attempt succeeded",
            step,
        )
    return _Problem(
        _MISSING_REASON[step],
        f"the {step} step did not arrive within {_duration(deadline)} of the "
        "webhook's acceptance",
        step,
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
