"""The failure drill: prove the whole path, then break it on purpose and get caught.

:class:`Drill` sends signed test-mode events to an app's real webhook endpoint and
reads the engine's verdicts back through its HTTP API:

0. the engine's API must answer as an accessproof engine and take the API token,
   before any event is sent;
1. a healthy ``customer.subscription.updated`` must be accepted (2xx),
2. and proven by the engine;
3. a drill event with ``falsify_entitlement`` must raise ``access_mismatch``,
4. and one with ``skip_entitlement`` must raise ``access_not_changed`` once the
   catalog's entitlement deadline has passed;

each incident must say that the customer's access did not change and name the
expected and observed plan, the event id, the customer id and the deploy SHA.
When every stage passed, the drill acknowledges its own incidents.

Every drill event is about a subscription of its own, so that no drill event
supersedes another before its verdict is in; ``created`` also increases from
one event to the next, as it would for a real subscription. The pieces that
touch the world (the engine API, the webhook sender, the clocks, the progress
stream) are constructor arguments.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TextIO

from accessproof.conventions import DRILL_FALSE_PLAN, DrillMode, Reason, RunState
from accessproof.drill.events import Price, new_id, sign_event, subscription_event

#: Who acknowledges the drill's own incidents.
ACK_BY: Final = "accessproof drill"
#: The words every drill incident's summary must contain.
NOT_CHANGED: Final = "did not change"
#: The API's error code for an event it has no run for (yet).
RUN_NOT_FOUND: Final = "run_not_found"

_EXCERPT: Final = 200


class Stage(StrEnum):
    """The stages of a drill, in the order they run."""

    ENGINE = "reach engine API"
    DELIVER = "deliver healthy event"
    PROVE = "prove healthy run"
    FALSIFY = "catch falsified read-back"
    SKIP = "catch skipped entitlement"
    ACKNOWLEDGE = "acknowledge drill incidents"


#: The incident reason each breaking drill mode must raise.
EXPECTED_REASON: Final[Mapping[DrillMode, Reason]] = {
    DrillMode.FALSIFY_ENTITLEMENT: Reason.ACCESS_MISMATCH,
    DrillMode.SKIP_ENTITLEMENT: Reason.ACCESS_NOT_CHANGED,
}


@dataclass(frozen=True, slots=True)
class DrillTarget:
    """What the drill exercises.

    ``price`` is the Stripe price of the plan the healthy event moves the
    customer to; ``plan`` is the catalog's name for it, when known (the drill
    then also checks that the engine expected exactly that plan).
    """

    webhook_url: str
    webhook_secret: str = field(repr=False)
    customer: str
    price: Price
    plan: str | None = None


@dataclass(slots=True)
class StageResult:
    """How one stage went. ``ok`` is ``None`` for a stage that did not run."""

    stage: Stage
    ok: bool | None
    seconds: float = 0.0
    detail: str = ""
    event_id: str | None = None
    incident: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            "stage": self.stage.value,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "event_id": self.event_id,
            "incident_id": self.incident.get("id") if self.incident else None,
        }


@dataclass(slots=True)
class DrillReport:
    """Every stage's result, the healthy run as proven, and the drill incidents."""

    customer: str
    stages: list[StageResult]
    proof: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether every stage ran and passed."""
        return all(stage.ok for stage in self.stages)

    @property
    def failed(self) -> StageResult | None:
        """The first stage that failed, if any."""
        return next((stage for stage in self.stages if stage.ok is False), None)

    @property
    def incidents(self) -> list[dict[str, Any]]:
        """The incidents the drill events raised, in stage order."""
        return [stage.incident for stage in self.stages if stage.incident]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "ok": self.ok,
            "customer": self.customer,
            "stages": [stage.to_dict() for stage in self.stages],
        }

    def render(self) -> str:
        """Return the report as a few lines for people: stage, time, verdict, why."""
        width = max(len(stage.stage.value) for stage in self.stages)
        lines = [f"accessproof drill for customer {self.customer}"]
        for stage in self.stages:
            mark = {True: "PASS", False: "FAIL", None: "----"}[stage.ok]
            took = f"{stage.seconds:6.1f}s" if stage.ok is not None else " " * 7
            name = stage.stage.value.ljust(width)
            lines.append(f"  {mark}  {name}  {took}  {stage.detail}".rstrip())
        failed = self.failed
        if failed is not None:
            lines.append(f"drill FAILED at '{failed.stage}': {failed.detail}")
        elif self.ok:
            lines.append("drill passed")
        return "\n".join(lines)


def checked_url(url: str, what: str) -> str:
    """Return ``url`` if it is an http(s) URL with a host and a valid port.

    Raises :class:`ValueError` naming ``what`` (``"webhook URL"``...) otherwise,
    so a typo is a usage error rather than a failure deep inside a request.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{what} {url!r} is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{what} {url!r} must be an http(s) URL with a host, "
            "such as http://127.0.0.1:8000"
        )
    if port == 0:
        raise ValueError(f"{what} {url!r}: port 0 is not a port to connect to")
    return url


class EngineUnavailable(Exception):
    """The engine's API could not be reached or refused the call."""


class EngineRefused(EngineUnavailable):
    """The engine answered, and asking again will not help (a wrong URL or token)."""


class EngineApi:
    """The few calls of the engine's HTTP API the drill makes.

    ``token`` defaults to ``$ACCESSPROOF_API_TOKEN`` and is sent as a bearer
    token when set.
    """

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = checked_url(base_url, "engine URL").rstrip("/")
        self._token = (
            token if token is not None else os.environ.get("ACCESSPROOF_API_TOKEN")
        )
        self._timeout = timeout

    def check(self) -> str:
        """Check that an accessproof engine answers and takes the token.

        ``/healthz`` must answer like the engine's, and an API call must not be
        refused. Returns the engine's version; raises :class:`EngineRefused`
        when something else answers or the token is refused, and
        :class:`EngineUnavailable` when nothing answers.
        """
        status, body = self._call("/healthz")
        if status != 200 or not isinstance(body, dict) or body.get("status") != "ok":
            raise EngineRefused(
                f"not an accessproof engine at {self.base_url}: GET /healthz "
                f"answered HTTP {status}: {_excerpt(_message(body))} "
                "(is --api the engine's API URL?)"
            )
        version = str(body.get("version") or "")
        status, body = self._call("/api/v1/incidents?limit=1")
        self._expect_ok(status, body)
        return version

    def run(self, event_id: str) -> dict[str, Any] | None:
        """Return the run resource of an event, or ``None`` while it is unknown."""
        quoted = urllib.parse.quote(event_id, safe="")
        status, body = self._call(f"/api/v1/runs/{quoted}")
        if status == 404 and _error_code(body) == RUN_NOT_FOUND:
            return None
        return self._expect_ok(status, body)

    def acknowledge(self, incident_id: str, by: str) -> dict[str, Any]:
        """Acknowledge an incident; return the incident as it now stands."""
        quoted = urllib.parse.quote(incident_id, safe="")
        status, body = self._call(f"/api/v1/incidents/{quoted}/ack", {"by": by})
        return self._expect_ok(status, body)

    def page_url(self, incident_id: str | None = None) -> str:
        """Return the operator page of an incident, or of all open incidents."""
        if incident_id is None:
            return f"{self.base_url}/incidents"
        return f"{self.base_url}/incidents/{urllib.parse.quote(incident_id, safe='')}"

    def _call(self, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            self.base_url + path, data=data, method="GET" if data is None else "POST"
        )
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self._timeout
            ) as response:
                return response.status, _json_or_text(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _json_or_text(error.read())
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise EngineUnavailable(
                f"cannot reach the engine at {self.base_url}: {reason}"
            ) from None
        except (http.client.HTTPException, ValueError) as error:
            raise EngineRefused(
                f"no HTTP answer from {self.base_url} ({_failure(error)}): "
                "is --api the engine's API URL?"
            ) from None

    def _expect_ok(self, status: int, body: Any) -> dict[str, Any]:
        if status == 200 and isinstance(body, dict):
            return body
        if status == 200:
            raise EngineRefused(
                f"not an accessproof engine at {self.base_url}: it answered "
                f"HTTP 200 without JSON: {_excerpt(_message(body))}"
            )
        raise _refusal_of(status, body, self.base_url, bool(self._token))


@dataclass(frozen=True, slots=True)
class Delivery:
    """The app's answer to one webhook delivery."""

    status: int
    body: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class WebhookUnreachable(Exception):
    """The webhook URL did not answer at all."""


class WebhookSender:
    """Signs events with the endpoint's secret and POSTs them, as Stripe does."""

    def __init__(self, url: str, secret: str, *, timeout: float = 30.0) -> None:
        self.url = checked_url(url, "webhook URL")
        self._secret = secret
        self._timeout = timeout

    def send(self, event: Mapping[str, Any]) -> Delivery:
        """Deliver one event; raises :class:`WebhookUnreachable` without an answer."""
        body, header = sign_event(dict(event), self._secret)
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            self.url, data=body, method="POST"
        )
        request.add_header("Content-Type", "application/json; charset=utf-8")
        request.add_header("Stripe-Signature", header)
        request.add_header("User-Agent", "accessproof-drill")
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self._timeout
            ) as response:
                return Delivery(response.status, _text(response.read()))
        except urllib.error.HTTPError as error:
            return Delivery(error.code, _text(error.read()))
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise WebhookUnreachable(f"cannot reach {self.url}: {reason}") from None
        except (http.client.HTTPException, ValueError) as error:
            raise WebhookUnreachable(
                f"no HTTP answer from {self.url} ({_failure(error)}): "
                "is --webhook-url the app's webhook endpoint?"
            ) from None


class Drill:
    """One drill against an app's webhook endpoint and the engine behind it.

    >>> drill = Drill(target, EngineApi("http://127.0.0.1:8080"))
    >>> report = drill.run()
    >>> print(report.render())

    ``timeout`` bounds each stage's wait, in seconds; ``incident_timeout``
    bounds the skipped-entitlement stage, which cannot finish before the
    engine's entitlement deadline (default: ``timeout``). Progress lines go to
    ``progress`` every ``progress_every`` seconds of a long wait.
    """

    def __init__(
        self,
        target: DrillTarget,
        api: EngineApi,
        *,
        sender: WebhookSender | None = None,
        timeout: float = 120.0,
        incident_timeout: float | None = None,
        poll_interval: float = 0.25,
        progress_every: float = 5.0,
        progress: TextIO | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.api = api
        self.sender = sender or WebhookSender(target.webhook_url, target.webhook_secret)
        self.timeout = timeout
        self.incident_timeout = incident_timeout or timeout
        self.poll_interval = poll_interval
        self.progress_every = progress_every
        self.progress = progress if progress is not None else sys.stderr
        self._monotonic = monotonic
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._created = int(wall_clock())

    def run(self) -> DrillReport:
        """Run every stage in order; stop at the first that fails."""
        report = DrillReport(
            self.target.customer, [StageResult(s, None) for s in Stage]
        )
        results = {result.stage: result for result in report.stages}

        results[Stage.ENGINE] = self._reach_engine()
        healthy = self._event(DrillMode.HEALTHY)
        if results[Stage.ENGINE].ok:
            results[Stage.DELIVER] = self._deliver(Stage.DELIVER, healthy)
        if results[Stage.DELIVER].ok:
            results[Stage.PROVE], report.proof = self._await_proof(healthy["id"])
        if results[Stage.PROVE].ok:
            results[Stage.FALSIFY], results[Stage.SKIP] = self._break_entitlement()
        if results[Stage.FALSIFY].ok and results[Stage.SKIP].ok:
            incidents = [results[Stage.FALSIFY].incident, results[Stage.SKIP].incident]
            results[Stage.ACKNOWLEDGE] = self._acknowledge(
                [incident for incident in incidents if incident is not None]
            )

        report.stages = [results[stage] for stage in Stage]
        return report

    def _reach_engine(self) -> StageResult:
        started = self._monotonic()
        try:
            version = self.api.check()
        except EngineUnavailable as error:
            return self._result(Stage.ENGINE, started, False, str(error))
        detail = (
            f"accessproof engine {version or '(no version)'} at {self.api.base_url}"
        )
        return self._result(Stage.ENGINE, started, True, detail)

    def _event(self, mode: DrillMode) -> dict[str, Any]:
        self._created += 1
        return subscription_event(
            "customer.subscription.updated",
            customer=self.target.customer,
            prices=[self.target.price],
            subscription=new_id("sub_drill"),
            event_id=new_id("evt_drill"),
            created=self._created,
            drill=mode,
            previous_attributes={"status": "trialing"},
        )

    def _deliver(self, stage: Stage, event: Mapping[str, Any]) -> StageResult:
        started = self._monotonic()
        event_id = str(event["id"])
        try:
            delivery = self.sender.send(event)
        except WebhookUnreachable as error:
            return self._result(stage, started, False, f"webhook unreachable: {error}")
        if delivery.accepted:
            detail = f"HTTP {delivery.status} for {event_id}"
            return self._result(stage, started, True, detail, event_id=event_id)
        return self._result(
            stage, started, False, _refusal(delivery), event_id=event_id
        )

    def _await_proof(self, event_id: str) -> tuple[StageResult, dict[str, Any] | None]:
        started = self._monotonic()
        outcome = self._poll(Stage.PROVE, event_id, started, self.timeout)
        run = outcome.run
        if outcome.failure is not None:
            return self._result(Stage.PROVE, started, False, outcome.failure), run
        assert run is not None
        if run["state"] != RunState.PROVEN:
            detail = f"wrong verdict: {_verdict(run)}"
            return self._result(
                Stage.PROVE, started, False, detail, event_id=event_id
            ), run
        expected = run.get("expected") or {}
        plan = self.target.plan
        if plan is not None and expected.get("plan") != plan:
            detail = (
                f"wrong verdict: proven, but the engine expected plan "
                f"{expected.get('plan')!r} where the catalog maps the price to {plan!r}"
            )
            return self._result(
                Stage.PROVE, started, False, detail, event_id=event_id
            ), run
        detail = (
            f"{event_id} proven: plan {expected.get('plan') or '-'}, "
            f"access {expected.get('access') or '-'}"
        )
        return self._result(Stage.PROVE, started, True, detail, event_id=event_id), run

    def _break_entitlement(self) -> tuple[StageResult, StageResult]:
        """Send both breaking drill events at once, then wait for each verdict."""
        sent: dict[Stage, tuple[float, dict[str, Any], StageResult]] = {}
        for stage, mode in (
            (Stage.FALSIFY, DrillMode.FALSIFY_ENTITLEMENT),
            (Stage.SKIP, DrillMode.SKIP_ENTITLEMENT),
        ):
            event = self._event(mode)
            sent[stage] = (self._monotonic(), event, self._deliver(stage, event))

        results = []
        for stage, mode, limit in (
            (Stage.FALSIFY, DrillMode.FALSIFY_ENTITLEMENT, self.timeout),
            (Stage.SKIP, DrillMode.SKIP_ENTITLEMENT, self.incident_timeout),
        ):
            started, event, delivered = sent[stage]
            if not delivered.ok:
                results.append(delivered)
                continue
            results.append(self._await_incident(stage, mode, event, started, limit))
        return results[0], results[1]

    def _await_incident(
        self,
        stage: Stage,
        mode: DrillMode,
        event: Mapping[str, Any],
        started: float,
        limit: float,
    ) -> StageResult:
        event_id = str(event["id"])
        outcome = self._poll(stage, event_id, started, limit)
        if outcome.failure is not None:
            return self._result(
                stage, started, False, outcome.failure, event_id=event_id
            )
        run = outcome.run
        assert run is not None

        wanted = EXPECTED_REASON[mode]
        incident = _current_incident(run)
        if run["state"] != RunState.INCIDENT or incident is None:
            detail = f"wrong verdict: {_verdict(run)}, expected incident/{wanted}"
            if run["state"] == RunState.PROVEN:
                detail += _NOT_BROKEN.format(mode=mode.value)
            return self._result(stage, started, False, detail, event_id=event_id)
        if incident.get("reason") != wanted:
            detail = f"wrong verdict: {_verdict(run)}, expected incident/{wanted}"
            return self._result(
                stage, started, False, detail, event_id=event_id, incident=incident
            )

        problems = self._incident_problems(incident, mode, event_id)
        if problems:
            detail = f"incident {incident.get('id')} " + "; ".join(problems)
            return self._result(
                stage, started, False, detail, event_id=event_id, incident=incident
            )
        detail = f"{incident.get('id')}: {incident.get('summary')}"
        return self._result(
            stage, started, True, detail, event_id=event_id, incident=incident
        )

    def _incident_problems(
        self, incident: Mapping[str, Any], mode: DrillMode, event_id: str
    ) -> list[str]:
        """Check that an incident says what an operator needs; list what is missing."""
        summary = str(incident.get("summary") or "")
        expected = (incident.get("expected") or {}).get("plan")
        observed = incident.get("observed") or {}
        deploy = incident.get("deploy") or {}
        problems = []
        if NOT_CHANGED not in summary:
            problems.append(f"summary does not say access {NOT_CHANGED}: {summary!r}")
        if not expected or expected not in summary:
            problems.append(f"does not name the expected plan ({expected!r})")
        elif self.target.plan is not None and expected != self.target.plan:
            problems.append(f"expected plan {expected!r}, not {self.target.plan!r}")
        if mode is DrillMode.FALSIFY_ENTITLEMENT and (
            observed.get("plan") != DRILL_FALSE_PLAN or DRILL_FALSE_PLAN not in summary
        ):
            problems.append(f"does not name the observed plan {DRILL_FALSE_PLAN!r}")
        if mode is DrillMode.SKIP_ENTITLEMENT and observed.get("plan") is not None:
            problems.append(f"observed plan {observed.get('plan')!r} without read-back")
        if incident.get("event_id") != event_id:
            problems.append(f"names event {incident.get('event_id')!r}")
        if incident.get("customer_id") != self.target.customer:
            problems.append(f"names customer {incident.get('customer_id')!r}")
        if not deploy.get("revision"):
            problems.append(
                "names no deploy SHA: set vcs.ref.head.revision in the app's "
                "OTEL_RESOURCE_ATTRIBUTES"
            )
        if incident.get("drill") is not True:
            problems.append("is not flagged as a drill")
        return problems

    def _acknowledge(self, incidents: list[dict[str, Any]]) -> StageResult:
        started = self._monotonic()
        ids = [str(incident["id"]) for incident in incidents]
        try:
            for incident_id in ids:
                self.api.acknowledge(incident_id, ACK_BY)
        except EngineUnavailable as error:
            return self._result(Stage.ACKNOWLEDGE, started, False, str(error))
        detail = f"{', '.join(ids)} acknowledged by {ACK_BY}"
        return self._result(Stage.ACKNOWLEDGE, started, True, detail)

    def _poll(
        self, stage: Stage, event_id: str, started: float, limit: float
    ) -> _Polled:
        """Read the run until it leaves ``open`` or the time is up."""
        run: dict[str, Any] | None = None
        unreachable: str | None = None
        said = started
        while True:
            try:
                run = self.api.run(event_id)
                unreachable = None
            except EngineRefused as error:
                return _Polled(run, str(error))
            except EngineUnavailable as error:
                unreachable = str(error)
            if run is not None and run.get("state") != RunState.OPEN:
                return _Polled(run)

            now = self._monotonic()
            if now - started >= limit:
                return _Polled(run, _timed_out(run, limit, unreachable))
            if now - said >= self.progress_every:
                said = now
                self._say(f"{stage}: waiting for {event_id}, {_progress(run)}")
            self._sleep(self.poll_interval)

    def _say(self, text: str) -> None:
        print(f"  ... {text}", file=self.progress, flush=True)

    def _result(
        self,
        stage: Stage,
        started: float,
        ok: bool,
        detail: str,
        *,
        event_id: str | None = None,
        incident: dict[str, Any] | None = None,
    ) -> StageResult:
        seconds = self._monotonic() - started
        return StageResult(stage, ok, seconds, detail, event_id, incident)


@dataclass(frozen=True, slots=True)
class _Polled:
    run: dict[str, Any] | None
    failure: str | None = None


_NOT_BROKEN: Final = (
    " (the app's accessproof library did not apply drill mode {mode}: does the "
    "worker resume the run with the carrier from run.carrier()?)"
)


def _timed_out(
    run: dict[str, Any] | None, limit: float, unreachable: str | None
) -> str:
    if unreachable is not None:
        return unreachable
    if run is None:
        return (
            f"no spans reached the engine within {limit:g}s (is the app's OTLP "
            "exporter pointed at this engine?)"
        )
    return f"timed out after {limit:g}s: {_progress(run)}"


def _progress(run: Mapping[str, Any] | None) -> str:
    if run is None:
        return "no spans at the engine yet"
    steps = [str(step.get("step")) for step in run.get("steps") or []]
    return f"run {run.get('state')}, steps seen: {', '.join(steps) or 'none'}"


def _verdict(run: Mapping[str, Any]) -> str:
    reason = run.get("reason")
    incident = _current_incident(run)
    text = f"{run.get('state')}/{reason}" if reason else str(run.get("state"))
    if run.get("superseded_by"):
        text += f" by {run['superseded_by']}"
    if incident is not None and incident.get("summary"):
        text += f" ({incident['summary']})"
    return text


def _current_incident(run: Mapping[str, Any]) -> dict[str, Any] | None:
    incidents = [i for i in run.get("incidents") or [] if isinstance(i, dict)]
    return incidents[-1] if incidents else None


def _refusal(delivery: Delivery) -> str:
    text = f"webhook refused (HTTP {delivery.status}: {_excerpt(delivery.body)})"
    if "signature" in delivery.body.lower():
        return f"signature rejected: {text} (is --webhook-secret the endpoint's?)"
    return text


def _refusal_of(status: int, body: Any, base_url: str, token: bool) -> Exception:
    """The exception for a non-200 answer: refused for good, or worth retrying."""
    message = _excerpt(_message(body))
    if status in (401, 403):
        advice = "check" if token else "set"
        return EngineRefused(
            f"the engine refused the API token (HTTP {status}: {message}): "
            f"{advice} ACCESSPROOF_API_TOKEN"
        )
    if status == 404:
        return EngineRefused(
            f"not an accessproof engine API at {base_url}: HTTP 404 ({message})"
        )
    if 400 <= status < 500 and status not in (408, 429):
        return EngineRefused(f"the engine refused the call: HTTP {status}: {message}")
    return EngineUnavailable(f"the engine answered HTTP {status}: {message}")


def _error_code(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def _failure(error: Exception) -> str:
    text = _excerpt(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return _text(raw)


def _message(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
    return body if isinstance(body, str) else json.dumps(body)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").strip()


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT else flat[: _EXCERPT - 3] + "..."
