"""Bearer-token authentication of the API, the metrics and the operator pages."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from accessproof.web.app import PAGE_COOKIE, page_key
from tests.web.conftest import MARKUP, TOKEN, World, bearer, with_client

Client = TestClient[Any, Any]

PROTECTED = [
    f"/api/v1/runs/{MARKUP}",
    "/api/v1/incidents",
    "/metrics",
    "/incidents",
]


def status_of(world: World, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    """GET a path with a token configured; return status and headers."""

    async def scenario(client: Client) -> tuple[int, Any]:
        response = await client.get(path, headers=headers, allow_redirects=False)
        await response.read()
        return response.status, response.headers

    return with_client(world, scenario, api_token=TOKEN)


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong-token"), {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "not-bearer"],
)
def test_protected_routes_refuse_without_the_token(
    world: World, path: str, headers: dict[str, str]
) -> None:
    """Without the right bearer token the answer is 401 with a challenge."""
    status, reply = status_of(world, path, headers)

    assert status == 401
    assert reply["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", PROTECTED)
def test_protected_routes_answer_with_the_token(world: World, path: str) -> None:
    """The configured bearer token opens every protected route."""
    status, _ = status_of(world, path, bearer())

    assert status == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_probes_and_the_api_description_stay_open(world: World, path: str) -> None:
    """Probes and the OpenAPI document need no token."""
    status, _ = status_of(world, path, {})

    assert status == 200


def test_unauthenticated_api_error_is_json(world: World) -> None:
    """A refused API call gets the JSON error shape."""

    async def scenario(client: Client) -> Any:
        response = await client.get("/api/v1/incidents")
        return await response.json()

    body = with_client(world, scenario, api_token=TOKEN)

    assert body["error"]["code"] == "unauthenticated"
    assert TOKEN not in str(body)


def test_ack_needs_the_token(world: World) -> None:
    """Acknowledging without the token is refused and changes nothing."""
    incident_id = world.incident_of(MARKUP)

    async def scenario(client: Client) -> int:
        path = f"/api/v1/incidents/{incident_id}/ack"
        response = await client.post(path, json={"by": "mallory"})
        return response.status

    assert with_client(world, scenario, api_token=TOKEN) == 401
    stored = world.store.get_incident(incident_id)
    assert stored is not None
    assert stored.acknowledged_by is None


def test_page_token_in_the_address_becomes_a_cookie(world: World) -> None:
    """?token= on a page redirects to the clean address and sets the page cookie."""

    async def scenario(client: Client) -> tuple[int, str, str, int]:
        response = await client.get(
            "/incidents?token=" + TOKEN + "&state=all", allow_redirects=False
        )
        cookie = response.cookies[PAGE_COOKIE]
        followed = await client.get(response.headers["Location"])
        return (
            response.status,
            response.headers["Location"],
            cookie.value,
            followed.status,
        )

    status, location, cookie, followed = with_client(world, scenario, api_token=TOKEN)

    assert status == 303
    assert location == "/incidents?state=all"
    assert cookie == page_key(TOKEN)
    assert TOKEN not in cookie
    assert followed == 200


def test_page_cookie_does_not_open_the_api(world: World) -> None:
    """The page cookie is refused by the JSON API."""

    async def scenario(client: Client) -> int:
        headers = {"Cookie": f"{PAGE_COOKIE}={page_key(TOKEN)}"}
        response = await client.get("/api/v1/incidents", headers=headers)
        return response.status

    assert with_client(world, scenario, api_token=TOKEN) == 401


def test_wrong_page_token_is_refused_with_a_page(world: World) -> None:
    """A wrong ?token= gets a 401 HTML page and no cookie."""

    async def scenario(client: Client) -> tuple[int, str, bool, str]:
        response = await client.get("/incidents?token=nope", allow_redirects=False)
        text = await response.text()
        return (
            response.status,
            response.content_type,
            PAGE_COOKIE in response.cookies,
            text,
        )

    status, content_type, has_cookie, text = with_client(
        world, scenario, api_token=TOKEN
    )

    assert (status, content_type, has_cookie) == (401, "text/html", False)
    assert "?token=" in text
