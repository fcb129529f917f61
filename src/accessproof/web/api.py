"""The JSON API: runs, incidents, acknowledgement, and the error shape they share.

Every error, whatever the route, is ``{"error": {"code": ..., "message": ...}}``
with the matching HTTP status. Store calls block, so handlers run them on a
worker thread; the SQLite store reads on its own connection and the
PostgreSQL store from its pool, so they do not wait for the engine's writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Final, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from accessproof.conventions import Attr, IncidentState, Reason, RunState, Step
from accessproof.engine.incidents import AccessState, Deploy, Incident
from accessproof.engine.model import Attempt, Run
from accessproof.engine.verdict import Observed
from accessproof.expect import expect
from accessproof.redact import is_sensitive
from accessproof.store.base import IncidentQuery, parse_cursor

if TYPE_CHECKING:
    from accessproof.web.app import WebContext

API_PREFIX: Final = "/api/v1"
RUN_PATH: Final = API_PREFIX + "/runs/{event_id}"
INCIDENTS_PATH: Final = API_PREFIX + "/incidents"
INCIDENT_PATH: Final = INCIDENTS_PATH + "/{incident_id}"
ACK_PATH: Final = INCIDENT_PATH + "/ack"

#: Incidents per page when ``limit`` is not given, and the most one page holds.
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
#: Longest name accepted as who acknowledged an incident.
MAX_ACK_BY: Final = 200

#: What each ``state`` filter value lists; ``open`` is what still needs a person.
STATE_FILTERS: Final[Mapping[str, frozenset[IncidentState] | None]] = {
    "open": frozenset({IncidentState.OPEN, IncidentState.ACKNOWLEDGED}),
    "acknowledged": frozenset({IncidentState.ACKNOWLEDGED}),
    "resolved": frozenset({IncidentState.RESOLVED}),
    "all": None,
}
_LIST_PARAMETERS: Final = frozenset(
    {"state", "reason", "event_type", "drill", "limit", "cursor"}
)
_BOOLEANS: Final = {"true": True, "false": False}
_NS: Final = 1_000_000_000

_E = TypeVar("_E", bound=StrEnum)


class ApiError(Exception):
    """A refusal with its HTTP status, a stable ``code`` and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error reply: a stable machine code and a sentence for people."""

    error: ErrorDetail


class AttemptRecord(BaseModel):
    """One span of one step, as the API shows it."""

    ok: bool
    error_type: str | None = None
    trace_id: str
    span_id: str
    ended_at: datetime


class StepRecord(BaseModel):
    """Every attempt seen at one step, oldest first."""

    step: Step
    attempts: list[AttemptRecord]


class RunResource(BaseModel):
    """One Stripe event's run: what was expected, what was observed, what happened.

    ``expected`` is computed from the run's provider facts and the catalog the
    engine runs with now; ``observed`` is the newest successful entitlement
    read-back. ``steps`` lists the steps seen, in workflow order.
    """

    event_id: str
    event_type: str
    state: RunState
    reason: Reason | None = None
    expected: AccessState
    expectation_basis: str = ""
    observed: AccessState
    steps: list[StepRecord]
    customer_id: str | None = None
    subscription_id: str | None = None
    livemode: bool | None = None
    drill: bool
    trace_ids: list[str]
    deploy: Deploy
    superseded_by: str | None = None
    first_seen_at: datetime
    decided_at: datetime | None = None
    incidents: list[Incident]


class IncidentPage(BaseModel):
    """One page of incidents, newest first; pass ``next_cursor`` to get the next."""

    incidents: list[Incident]
    next_cursor: str | None = None


class AckRequest(BaseModel):
    """Who acknowledges an incident: a name or handle, not an email address."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=MAX_ACK_BY)


class Health(BaseModel):
    status: str
    version: str


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    """Serialise a model as the JSON body of a response."""
    return web.Response(
        status=status,
        body=model.model_dump_json().encode(),
        content_type="application/json",
    )


def error_response(error: ApiError) -> web.Response:
    """The JSON reply to a refusal."""
    body = ErrorBody(error=ErrorDetail(code=error.code, message=error.message))
    response = json_response(body, error.status)
    response.headers.update(error.headers)
    return response


def run_resource(run: Run, incidents: list[Incident], ctx: WebContext) -> RunResource:
    """Build the API view of a run, with its expectation under the current catalog."""
    facts = run.facts
    expectation = expect(facts, ctx.catalog) if facts is not None else None
    expected = AccessState()
    if expectation is not None:
        features = expectation.features
        expected = AccessState(
            plan=expectation.plan,
            features=sorted(features) if features is not None else None,
            access=expectation.access,
            grace=expectation.grace,
        )
    observed = Observed.from_attempt(run.latest_success(Step.ENTITLEMENT))
    return RunResource(
        event_id=run.event_id,
        event_type=run.event_type,
        state=run.state,
        reason=run.reason,
        expected=expected,
        expectation_basis=expectation.basis if expectation else "",
        observed=AccessState(
            plan=observed.plan,
            features=sorted(observed.features)
            if observed.features is not None
            else None,
            access=observed.access,
        ),
        steps=_steps(run),
        customer_id=facts.customer_id if facts else None,
        subscription_id=facts.subscription_id if facts else None,
        livemode=facts.livemode if facts else None,
        drill=run.drill,
        trace_ids=list(run.trace_ids),
        deploy=_deploy(run.resource),
        superseded_by=run.superseded_by,
        first_seen_at=_datetime(run.first_seen_ns),
        decided_at=_datetime(run.decided_ns) if run.decided_ns else None,
        incidents=incidents,
    )


def _steps(run: Run) -> list[StepRecord]:
    return [
        StepRecord(step=step, attempts=[_attempt(a) for a in run.attempts[step]])
        for step in Step
        if run.attempts.get(step)
    ]


def _attempt(attempt: Attempt) -> AttemptRecord:
    return AttemptRecord(
        ok=attempt.ok,
        error_type=attempt.error_type,
        trace_id=attempt.trace_id,
        span_id=attempt.span_id,
        ended_at=_datetime(attempt.end_ns),
    )


def _deploy(resource: Mapping[str, str]) -> Deploy:
    return Deploy(
        revision=resource.get(Attr.VCS_REVISION),
        service_version=resource.get(Attr.SERVICE_VERSION),
        service_name=resource.get(Attr.SERVICE_NAME),
        environment=resource.get(Attr.DEPLOYMENT_ENVIRONMENT),
    )


def _datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / _NS, UTC)


def incident_query(query: Mapping[str, str], *, default_limit: int) -> IncidentQuery:
    """Read the listing filters from a query string; raises ApiError (400) if bad."""
    unknown = sorted(set(query) - _LIST_PARAMETERS)
    if unknown:
        known = ", ".join(sorted(_LIST_PARAMETERS))
        raise bad_parameter(unknown[0], query[unknown[0]], f"use only {known}")
    cursor = query.get("cursor") or None
    if cursor is not None:
        try:
            parse_cursor(cursor)
        except ValueError:
            raise bad_parameter(
                "cursor", cursor, "pass next_cursor from a previous page"
            ) from None
    return IncidentQuery(
        states=_choice(query, "state", STATE_FILTERS, "open"),
        reason=_enum(query, "reason", Reason),
        event_type=query.get("event_type") or None,
        drill=_choice(query, "drill", {"": None, **_BOOLEANS}, ""),
        limit=_limit(query.get("limit"), default_limit),
        cursor=cursor,
    )


def bad_parameter(name: str, value: str, hint: str) -> ApiError:
    """A 400 naming the query parameter, the value sent, and what would do."""
    return ApiError(
        400,
        "bad_parameter",
        f"invalid value {value!r} for query parameter {name!r}: {hint}",
    )


_V = TypeVar("_V")

#: More digits than any accepted limit needs, with room for leading zeros.
_LIMIT_DIGITS: Final = 12


def _choice(
    query: Mapping[str, str], name: str, values: Mapping[str, _V], default: str
) -> _V:
    raw = query.get(name, default)
    if raw not in values:
        choices = ", ".join(key for key in values if key)
        raise bad_parameter(name, raw, f"use one of {choices}")
    return values[raw]


def _enum(query: Mapping[str, str], name: str, kind: type[_E]) -> _E | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise bad_parameter(name, raw, f"use one of {choices}") from None


def _limit(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    # isdigit() alone also accepts "²" and other digits int() refuses, and a
    # long enough string of ASCII digits is beyond int()'s limit.
    whole = raw.isascii() and raw.isdigit() and len(raw) <= _LIMIT_DIGITS
    value = int(raw) if whole else 0
    if not 1 <= value <= MAX_LIMIT:
        raise bad_parameter("limit", raw, f"use a whole number from 1 to {MAX_LIMIT}")
    return value


@dataclass(frozen=True, slots=True)
class ApiHandlers:
    """The JSON endpoints under ``/api/v1``."""

    ctx: WebContext

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(RUN_PATH, self.get_run, allow_head=False),
            web.get(INCIDENTS_PATH, self.list_incidents, allow_head=False),
            web.get(INCIDENT_PATH, self.get_incident, allow_head=False),
            web.post(ACK_PATH, self.acknowledge),
        ]

    async def get_run(self, request: web.Request) -> web.Response:
        event_id = request.match_info["event_id"]
        run = await _blocking(self.ctx.store.get_run, event_id)
        if run is None:
            raise ApiError(404, "run_not_found", f"no run for event {event_id!r}")
        incidents = await _blocking(self.ctx.store.incidents_of, event_id)
        return json_response(run_resource(run, incidents, self.ctx))

    async def list_incidents(self, request: web.Request) -> web.Response:
        query = incident_query(request.query, default_limit=DEFAULT_LIMIT)
        incidents, cursor = await _blocking(self.ctx.store.list_incidents, query)
        return json_response(IncidentPage(incidents=incidents, next_cursor=cursor))

    async def get_incident(self, request: web.Request) -> web.Response:
        incident = await find_incident(self.ctx, request.match_info["incident_id"])
        return json_response(incident)

    async def acknowledge(self, request: web.Request) -> web.Response:
        incident_id = request.match_info["incident_id"]
        ack = _ack_request(await request.read())
        now = self.ctx.clock.now_ns()
        incident = await _blocking(self.ctx.store.acknowledge, incident_id, ack.by, now)
        if incident is None:
            raise _incident_not_found(incident_id)
        if incident.state is IncidentState.RESOLVED:
            raise ApiError(
                409,
                "incident_resolved",
                f"incident {incident_id} was resolved at "
                f"{incident.resolved_at}; there is nothing left to acknowledge",
            )
        return json_response(incident)


async def find_incident(ctx: WebContext, incident_id: str) -> Incident:
    """Return a stored incident, or raise ApiError (404)."""
    incident = await _blocking(ctx.store.get_incident, incident_id)
    if incident is None:
        raise _incident_not_found(incident_id)
    return incident


def _incident_not_found(incident_id: str) -> ApiError:
    return ApiError(404, "incident_not_found", f"no incident {incident_id!r}")


def _ack_request(body: bytes) -> AckRequest:
    try:
        ack = AckRequest.model_validate_json(body or b"null")
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        raise ApiError(
            400,
            "bad_request",
            f'send JSON {{"by": "<name>"}}; {where}: {problem["msg"]}',
        ) from None
    if not ack.by.strip() or is_sensitive(ack.by):
        raise ApiError(
            400,
            "bad_request",
            "'by' must be a name or handle, not blank, an email address or a secret",
        )
    return ack


_R = TypeVar("_R")


async def _blocking(function: Callable[..., _R], *args: object) -> _R:
    return await asyncio.to_thread(function, *args)
