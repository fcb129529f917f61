"""The OpenAPI 3.1 document of every route, with schemas from the pydantic models.

The document is built from the same models the handlers serialise, so a field
added to a record shows up here without a second edit.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from pydantic import BaseModel

from accessproof.conventions import Reason
from accessproof.engine.incidents import Incident
from accessproof.web.api import (
    ACK_PATH,
    DEFAULT_LIMIT,
    INCIDENT_PATH,
    INCIDENTS_PATH,
    MAX_LIMIT,
    RUN_PATH,
    STATE_FILTERS,
    AckRequest,
    ErrorBody,
    Health,
    IncidentPage,
    RunResource,
)

OPENAPI_PATH: Final = "/openapi.json"

_REF: Final = "#/components/schemas/{model}"
_MODELS: Final[tuple[type[BaseModel], ...]] = (
    RunResource,
    Incident,
    IncidentPage,
    AckRequest,
    Health,
    ErrorBody,
)
_OPENMETRICS: Final = "application/openmetrics-text"
_PUBLIC: Final[list[dict[str, list[str]]]] = []


def build_openapi(version: str) -> dict[str, Any]:
    """Return the OpenAPI document for this server's version."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "accessproof engine",
            "version": version,
            "description": "Runs, incidents, metrics and probes of the proof engine.",
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The engine's API token, when one is configured.",
                }
            },
        },
    }


@cache
def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template=_REF, mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _paths() -> dict[str, Any]:
    return {
        RUN_PATH: {"get": _get_run()},
        INCIDENTS_PATH: {"get": _list_incidents()},
        INCIDENT_PATH: {"get": _get_incident()},
        ACK_PATH: {"post": _acknowledge()},
        "/healthz": {"get": _probe("Liveness: 200 whenever the process serves.")},
        "/readyz": {
            "get": _probe(
                "Readiness: 200 once the engine is started, 503 before.",
                {"503": _error("The engine is not ready.")},
            )
        },
        "/metrics": {"get": _metrics()},
        OPENAPI_PATH: {
            "get": {
                "summary": "This document.",
                "security": _PUBLIC,
                "responses": {
                    "200": _json("The OpenAPI document.", {"type": "object"})
                },
            }
        },
        "/incidents": {"get": _page("The open incidents, newest first.", [_cursor()])},
        "/incidents/{incident_id}": {
            "get": _page("One incident, as an operator acts on it.", [_incident_id()])
        },
    }


def _get_run() -> dict[str, Any]:
    return {
        "summary": "One Stripe event's run: expected and observed access, steps, "
        "incidents.",
        "parameters": [_path_parameter("event_id", "The Stripe event id (evt_...).")],
        "responses": {
            "200": _json("The run.", _ref(RunResource)),
            "401": _error("No or wrong API token."),
            "404": _error("No run for this event id."),
        },
    }


def _list_incidents() -> dict[str, Any]:
    return {
        "summary": "Incidents, newest first, one page at a time.",
        "parameters": [
            _query(
                "state",
                "open lists open and acknowledged incidents.",
                {"type": "string", "enum": list(STATE_FILTERS), "default": "open"},
            ),
            _query(
                "reason",
                "Only incidents of this reason.",
                {"type": "string", "enum": [reason.value for reason in Reason]},
            ),
            _query("event_type", "Only this Stripe event type.", {"type": "string"}),
            _query("drill", "Only drills, or only real ones.", {"type": "boolean"}),
            _query(
                "limit",
                "Incidents per page.",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LIMIT,
                    "default": DEFAULT_LIMIT,
                },
            ),
            _cursor(),
        ],
        "responses": {
            "200": _json("One page of incidents.", _ref(IncidentPage)),
            "400": _error("A filter value is invalid; the message names it."),
            "401": _error("No or wrong API token."),
        },
    }


def _get_incident() -> dict[str, Any]:
    return {
        "summary": "One incident record.",
        "parameters": [_incident_id()],
        "responses": {
            "200": _json("The incident.", _ref(Incident)),
            "401": _error("No or wrong API token."),
            "404": _error("No such incident."),
        },
    }


def _acknowledge() -> dict[str, Any]:
    return {
        "summary": "Acknowledge an incident: records who and when. Acknowledging "
        "an acknowledged incident changes nothing.",
        "parameters": [_incident_id()],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(AckRequest)}},
        },
        "responses": {
            "200": _json("The incident, acknowledged.", _ref(Incident)),
            "400": _error('The body is not {"by": "<name>"}.'),
            "401": _error("No or wrong API token."),
            "404": _error("No such incident."),
            "409": _error("The incident is resolved."),
        },
    }


def _probe(summary: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": _PUBLIC,
        "responses": {
            "200": _json("Status and version.", _ref(Health)),
            **(extra or {}),
        },
    }


def _metrics() -> dict[str, Any]:
    text = {"schema": {"type": "string"}}
    return {
        "summary": "Prometheus metrics; OpenMetrics (with exemplars) when the "
        f"Accept header asks for {_OPENMETRICS}.",
        "responses": {
            "200": {
                "description": "The exposition.",
                "content": {"text/plain": text, _OPENMETRICS: text},
            },
            "401": _error("No or wrong API token."),
        },
    }


def _page(summary: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "summary": f"{summary} Server-rendered HTML. Besides the bearer header, "
        "?token=<token> once sets a cookie for the pages.",
        "parameters": parameters,
        "responses": {
            "200": {"description": "The page.", "content": html},
            "401": {"description": "No or wrong API token.", "content": html},
            "404": {"description": "No such incident.", "content": html},
        },
    }


def _incident_id() -> dict[str, Any]:
    return _path_parameter("incident_id", "The incident id (inc_...).")


def _cursor() -> dict[str, Any]:
    return _query("cursor", "next_cursor of the previous page.", {"type": "string"})


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _error(description: str) -> dict[str, Any]:
    return _json(description, _ref(ErrorBody))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}
