"""The JSON API over a real engine's store: runs, incidents, filters, paging, ack."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from accessproof.conventions import IncidentState, Reason
from tests.web.conftest import (
    DRILL,
    LATE,
    MARKUP,
    MARKUP_PLAN,
    MISSING,
    PROVEN,
    REVISION,
    SUBSCRIPTION_CREATED,
    World,
    with_client,
)

Client = TestClient[Any, Any]


def get_json(world: World, path: str, **overrides: Any) -> tuple[int, Any]:
    """GET a path and return the status and the decoded JSON body."""

    async def scenario(client: Client) -> tuple[int, Any]:
        response = await client.get(path)
        assert response.content_type == "application/json"
        return response.status, await response.json()

    return with_client(world, scenario, **overrides)


def post_ack(world: World, incident_id: str, body: object) -> tuple[int, Any]:
    """POST an acknowledgement and return the status and the decoded JSON body."""

    async def scenario(client: Client) -> tuple[int, Any]:
        path = f"/api/v1/incidents/{incident_id}/ack"
        if isinstance(body, bytes):
            response = await client.post(path, data=body)
        else:
            response = await client.post(path, json=body)
        return response.status, await response.json()

    return with_client(world, scenario)


def ids(page: dict[str, Any]) -> list[str]:
    return [incident["event_id"] for incident in page["incidents"]]


def test_run_resource_sets_expected_and_observed_side_by_side(world: World) -> None:
    """A run shows the catalog's expectation beside the app's read-back."""
    status, run = get_json(world, f"/api/v1/runs/{MARKUP}")

    assert status == 200
    assert (run["event_id"], run["event_type"]) == (
        MARKUP,
        "customer.subscription.updated",
    )
    assert (run["state"], run["reason"]) == ("incident", Reason.ACCESS_MISMATCH)
    assert run["expected"] == {
        "plan": "pro",
        "features": ["api", "exports"],
        "access": "granted",
        "grace": False,
    }
    assert run["observed"]["plan"] == MARKUP_PLAN
    assert run["observed"]["access"] == "granted"
    assert "price_1Pro" in run["expectation_basis"]


def test_run_resource_lists_steps_ids_deploy_and_incidents(world: World) -> None:
    """A run names its steps' attempts, its ids, its deploy and its incidents."""
    status, run = get_json(world, f"/api/v1/runs/{MARKUP}")

    assert status == 200
    assert [step["step"] for step in run["steps"]] == [
        "webhook",
        "reconcile",
        "entitlement",
    ]
    attempt = run["steps"][2]["attempts"][0]
    assert attempt["ok"] is True
    assert attempt["error_type"] is None
    assert attempt["trace_id"] in run["trace_ids"]
    assert len(attempt["span_id"]) == 16
    assert datetime.fromisoformat(attempt["ended_at"]).tzinfo is not None
    assert (run["customer_id"], run["subscription_id"]) == (
        "cus_1Markup",
        "sub_1Markup",
    )
    assert run["livemode"] is False
    assert run["drill"] is False
    assert run["superseded_by"] is None
    assert run["deploy"]["revision"] == REVISION
    [incident] = run["incidents"]
    assert incident["id"] == world.incident_of(MARKUP)
    assert (incident["reason"], incident["state"], incident["drill"]) == (
        Reason.ACCESS_MISMATCH,
        IncidentState.OPEN,
        False,
    )


def test_proven_run_has_no_incidents(world: World) -> None:
    """A proven run shows matching states and an empty incident list."""
    status, run = get_json(world, f"/api/v1/runs/{PROVEN}")

    assert status == 200
    assert run["state"] == "proven"
    assert run["incidents"] == []
    assert run["observed"]["plan"] == run["expected"]["plan"] == "pro"
    assert run["decided_at"] is not None


def test_resolved_run_lists_its_resolved_incident(world: World) -> None:
    """A run whose late evidence proved it shows the incident as resolved."""
    _, run = get_json(world, f"/api/v1/runs/{LATE}")

    assert run["state"] == "resolved"
    assert [i["state"] for i in run["incidents"]] == [IncidentState.RESOLVED]


def test_unknown_run_is_a_404_json_error(world: World) -> None:
    """An event id the engine never saw answers 404 with the error shape."""
    status, body = get_json(world, "/api/v1/runs/evt_1Nobody")

    assert status == 404
    assert body["error"]["code"] == "run_not_found"
    assert "evt_1Nobody" in body["error"]["message"]


def test_incident_list_defaults_to_open_and_acknowledged(world: World) -> None:
    """Without a state filter the list holds what still needs a person, newest first."""
    status, page = get_json(world, "/api/v1/incidents")

    assert status == 200
    assert ids(page) == [MISSING, DRILL, MARKUP]
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=all", [MISSING, LATE, DRILL, MARKUP]),
        ("state=resolved", [LATE]),
        ("state=acknowledged", []),
        ("reason=access_mismatch", [DRILL, MARKUP]),
        ("reason=access_not_changed&state=all", [MISSING, LATE]),
        (f"event_type={SUBSCRIPTION_CREATED}", [DRILL]),
        ("drill=true", [DRILL]),
        ("drill=false", [MISSING, MARKUP]),
    ],
)
def test_incident_list_filters(world: World, query: str, expected: list[str]) -> None:
    """State, reason, event type and drill each narrow the listing."""
    status, page = get_json(world, f"/api/v1/incidents?{query}")

    assert status == 200
    assert sorted(ids(page)) == sorted(expected)


def test_incident_list_pages_through_every_incident_once(world: World) -> None:
    """Following next_cursor with limit=1 visits each incident exactly once."""

    async def scenario(client: Client) -> list[str]:
        seen: list[str] = []
        url = "/api/v1/incidents?state=all&limit=1"
        while True:
            page = await (await client.get(url)).json()
            assert len(page["incidents"]) <= 1
            seen += ids(page)
            if page["next_cursor"] is None:
                return seen
            url = f"/api/v1/incidents?state=all&limit=1&cursor={page['next_cursor']}"

    seen = with_client(world, scenario)

    assert sorted(seen) == sorted([MISSING, LATE, DRILL, MARKUP])


@pytest.mark.parametrize(
    ("query", "parameter", "value"),
    [
        ("state=closed", "state", "closed"),
        ("reason=slow", "reason", "slow"),
        ("drill=maybe", "drill", "maybe"),
        ("limit=0", "limit", "0"),
        ("limit=501", "limit", "501"),
        ("limit=ten", "limit", "ten"),
        ("limit=%C2%B2", "limit", "\u00b2"),
        ("limit=%D9%A3", "limit", "\u0663"),
        pytest.param("limit=" + "9" * 5000, "limit", "9" * 5000, id="limit=9x5000"),
        ("cursor=garbage", "cursor", "garbage"),
        ("status=open", "status", "open"),
    ],
)
def test_bad_filter_value_is_a_400_naming_it(
    world: World, query: str, parameter: str, value: str
) -> None:
    """A bad filter answers 400 naming the parameter and the value sent."""
    status, body = get_json(world, f"/api/v1/incidents?{query}")

    assert status == 400
    assert body["error"]["code"] == "bad_parameter"
    assert repr(parameter) in body["error"]["message"]
    assert repr(value) in body["error"]["message"]


def test_incident_resource_is_the_full_record(world: World) -> None:
    """One incident carries everything an operator needs, by its id."""
    incident_id = world.incident_of(DRILL)

    status, incident = get_json(world, f"/api/v1/incidents/{incident_id}")

    assert status == 200
    assert incident["id"] == incident_id
    assert incident["drill"] is True
    assert incident["deploy"]["revision"] == REVISION
    assert incident["operator"]["owner"] == "billing"
    assert incident["operator"]["commands"]
    assert incident["retry_guidance"]
    assert incident["links"]["trace"].startswith("https://grafana.example.com/")


def test_unknown_incident_is_a_404(world: World) -> None:
    """An incident id the store does not hold answers 404."""
    status, body = get_json(world, "/api/v1/incidents/inc_0000")

    assert status == 404
    assert body["error"]["code"] == "incident_not_found"


def test_ack_records_who_and_when(world: World) -> None:
    """Acknowledging stores the name given and the engine clock's time."""
    incident_id = world.incident_of(MISSING)
    now = datetime.fromtimestamp(world.clock.now_ns() / 1e9, UTC)

    status, incident = post_ack(world, incident_id, {"by": "ana.on-call"})

    assert status == 200
    assert incident["state"] == IncidentState.ACKNOWLEDGED
    assert incident["acknowledged_by"] == "ana.on-call"
    assert datetime.fromisoformat(incident["acknowledged_at"]) == now
    stored = world.store.get_incident(incident_id)
    assert stored is not None
    assert stored.acknowledged_by == "ana.on-call"


def test_acknowledged_incidents_stay_in_the_open_list(world: World) -> None:
    """An acknowledged incident is listed as open and as acknowledged."""
    post_ack(world, world.incident_of(MARKUP), {"by": "ana"})

    _, open_page = get_json(world, "/api/v1/incidents")
    _, acked_page = get_json(world, "/api/v1/incidents?state=acknowledged")

    assert MARKUP in ids(open_page)
    assert ids(acked_page) == [MARKUP]


def test_ack_twice_keeps_the_first_acknowledgement(world: World) -> None:
    """A second acknowledgement succeeds and changes nothing."""
    incident_id = world.incident_of(MISSING)
    _, first = post_ack(world, incident_id, {"by": "ana"})
    world.clock.advance(30)

    status, second = post_ack(world, incident_id, {"by": "ben"})

    assert status == 200
    assert second["acknowledged_by"] == "ana"
    assert second["acknowledged_at"] == first["acknowledged_at"]


def test_ack_of_resolved_incident_is_a_409(world: World) -> None:
    """A resolved incident cannot be acknowledged."""
    incident_id = world.incident_of(LATE)

    status, body = post_ack(world, incident_id, {"by": "ana"})

    assert status == 409
    assert body["error"]["code"] == "incident_resolved"
    stored = world.store.get_incident(incident_id)
    assert stored is not None
    assert stored.acknowledged_by is None


def test_ack_of_unknown_incident_is_a_404(world: World) -> None:
    """Acknowledging an id the store does not hold answers 404."""
    status, body = post_ack(world, "inc_0000", {"by": "ana"})

    assert status == 404
    assert body["error"]["code"] == "incident_not_found"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"by": ""},
        {"by": "   "},
        {"by": 7},
        {"by": "ana", "note": "extra"},
        {"by": "ana@example.com"},
        b"not json",
        b"",
    ],
)
def test_ack_without_a_usable_name_is_a_400(world: World, body: object) -> None:
    """The body must name who acknowledges, as a name rather than an email."""
    incident_id = world.incident_of(MISSING)

    status, reply = post_ack(world, incident_id, body)

    assert status == 400
    assert reply["error"]["code"] == "bad_request"
    stored = world.store.get_incident(incident_id)
    assert stored is not None
    assert stored.state is IncidentState.OPEN


def test_healthz_answers_even_when_not_ready(world: World) -> None:
    """Liveness is 200 whenever the process serves, with the version."""
    world.ready[0] = False

    status, body = get_json(world, "/healthz")

    assert status == 200
    assert body == {"status": "ok", "version": "0.1.0-test"}


def test_readyz_is_503_until_ready(world: World) -> None:
    """Readiness follows the ready callable."""
    world.ready[0] = False
    before, body = get_json(world, "/readyz")
    world.ready[0] = True
    after, _ = get_json(world, "/readyz")

    assert (before, after) == (503, 200)
    assert body["error"]["code"] == "not_ready"


def test_method_not_allowed_is_a_405_json_error(world: World) -> None:
    """A wrong method answers 405 with Allow and the error shape."""

    async def scenario(client: Client) -> tuple[int, str, Any]:
        response = await client.delete("/api/v1/incidents")
        return response.status, response.headers["Allow"], await response.json()

    status, allow, body = with_client(world, scenario)

    assert status == 405
    assert allow == "GET"
    assert body["error"]["code"] == "method_not_allowed"


def test_unknown_path_is_a_404_json_error(world: World) -> None:
    """A path no route serves answers 404 with the error shape."""
    status, body = get_json(world, "/api/v2/runs")

    assert status == 404
    assert body["error"]["code"] == "not_found"
