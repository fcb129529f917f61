"""The OpenAPI document describes every route the application serves."""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs
from aiohttp.test_utils import TestClient

from accessproof.web import build_web_app
from tests.web.conftest import World, with_client

Client = TestClient[Any, Any]


def fetch_document(world: World) -> Any:
    async def scenario(client: Client) -> Any:
        response = await client.get("/openapi.json")
        assert response.status == 200
        return await response.json()

    return with_client(world, scenario)


def refs(node: Any) -> list[str]:
    """Every $ref in a JSON document."""
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def test_document_lists_every_route_and_method(world: World) -> None:
    """Each (method, path) the router serves is an operation of the document."""
    app = build_web_app(world.context())
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != hdrs.METH_HEAD
    }

    document = fetch_document(world)

    described = {
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert described == served


def test_document_is_openapi_3_1_with_resolvable_schemas(world: World) -> None:
    """The document declares 3.1, and every $ref names a component schema."""
    document = fetch_document(world)

    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == "0.1.0-test"
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas
    assert {
        "RunResource",
        "Incident",
        "IncidentPage",
        "AckRequest",
        "ErrorBody",
    } <= set(schemas)
    assert "acknowledged_by" in schemas["Incident"]["properties"]


def test_path_parameters_match_the_path_templates(world: World) -> None:
    """Every {name} in a path is declared as a required path parameter."""
    document = fetch_document(world)

    for path, operations in document["paths"].items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for operation in operations.values():
            declared = {
                p["name"] for p in operation.get("parameters", []) if p["in"] == "path"
            }
            assert declared == names, path
