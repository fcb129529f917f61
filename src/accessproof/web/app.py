"""The engine's HTTP face: the JSON API, ``/metrics``, health and operator pages.

:func:`build_web_app` returns one aiohttp application serving every route of
DESIGN.md's wire contract. Authentication, when ``api_token`` is set:

- every route except ``/healthz``, ``/readyz`` and ``/openapi.json`` needs
  ``Authorization: Bearer <token>``; tokens are compared in constant time and a
  refusal is 401 with ``WWW-Authenticate: Bearer``;
- the operator pages (``/incidents``...) also accept the token once in the
  address, ``/incidents?token=<token>``: the reply sets a cookie derived from the
  token (``HttpOnly``, ``SameSite=Lax``) and redirects to the same page without
  it, so the token does not stay in the address bar or the history. The cookie
  opens the read-only pages only, never the API, so no page can be made to
  acknowledge an incident on a visitor's behalf.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from accessproof.catalog import Catalog
from accessproof.engine.clock import Clock
from accessproof.store.base import Store
from accessproof.web.api import (
    ApiError,
    ApiHandlers,
    Health,
    error_response,
    json_response,
)
from accessproof.web.openapi import OPENAPI_PATH, build_openapi
from accessproof.web.pages import PAGES_PATH, PageHandlers, error_page, is_page

logger = logging.getLogger(__name__)

HEALTHZ_PATH: Final = "/healthz"
READYZ_PATH: Final = "/readyz"
METRICS_PATH: Final = "/metrics"
#: Routes that answer without a token: probes and the API's description.
PUBLIC_PATHS: Final = frozenset({HEALTHZ_PATH, READYZ_PATH, OPENAPI_PATH})
#: The cookie the operator pages accept in place of the bearer header.
PAGE_COOKIE: Final = "accessproof_page"

_CODES: Final = {
    401: "unauthenticated",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _always_ready() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class WebContext:
    """What the web application reads from the engine.

    ``ready`` answers ``/readyz``; the engine service is ready once started
    (pass ``lambda: service.ready``). ``trace_link`` is a URL template with
    ``{trace_id}`` (and any other placeholder of the catalog's ``links``);
    ``None`` uses the catalog's ``links.trace``. ``base_url`` is where people
    reach this server, for commands shown on pages; ``None`` uses the request's.
    """

    store: Store
    clock: Clock
    registry: CollectorRegistry
    catalog: Catalog
    version: str
    api_token: str | None = field(default=None, repr=False)
    ready: Callable[[], bool] = _always_ready
    trace_link: str | None = None
    base_url: str | None = None

    @property
    def trace_template(self) -> str | None:
        """The trace URL template in force: ours, else the catalog's."""
        return self.trace_link or self.catalog.links.get("trace")


def build_web_app(ctx: WebContext) -> web.Application:
    """Build the application serving the API, metrics, probes and operator pages."""
    app = web.Application(middlewares=[_errors, _authenticator(ctx.api_token)])
    app.add_routes(ApiHandlers(ctx).routes())
    app.add_routes(PageHandlers(ctx).routes())
    app.add_routes(_Probes(ctx).routes())
    return app


@dataclass(frozen=True, slots=True)
class _Probes:
    """Health, readiness, metrics and the OpenAPI document."""

    ctx: WebContext

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(HEALTHZ_PATH, self.healthz, allow_head=False),
            web.get(READYZ_PATH, self.readyz, allow_head=False),
            web.get(METRICS_PATH, self.metrics, allow_head=False),
            web.get(OPENAPI_PATH, self.openapi, allow_head=False),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response(Health(status="ok", version=self.ctx.version))

    async def readyz(self, request: web.Request) -> web.Response:
        if not self.ctx.ready():
            raise ApiError(503, "not_ready", "the engine is starting or stopping")
        return json_response(Health(status="ready", version=self.ctx.version))

    async def metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get(hdrs.ACCEPT, ""))
        # Collectors may read the store to rebuild gauges.
        body = await asyncio.to_thread(encoder, self.ctx.registry)
        response = web.Response(body=body)
        response.headers[hdrs.CONTENT_TYPE] = content_type
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(build_openapi(self.ctx.version))


@web.middleware
async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Turn every refusal into the JSON error shape (HTML on operator pages)."""
    try:
        return await handler(request)
    except ApiError as error:
        return _refusal(request, error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _refusal(request, _from_http_exception(request, error))
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return _refusal(
            request, ApiError(500, "internal", "the server failed; see its log")
        )


def _from_http_exception(request: web.Request, error: web.HTTPException) -> ApiError:
    code = _CODES.get(error.status, "http_error")
    message = error.reason
    headers = {key: value for key, value in error.headers.items() if key == hdrs.ALLOW}
    if error.status == 404:
        message = f"nothing is served at {request.path}"
    elif hdrs.ALLOW in headers:
        message = f"{request.method} is not allowed here; use {headers[hdrs.ALLOW]}"
    return ApiError(error.status, code, message, headers)


def _refusal(request: web.Request, error: ApiError) -> web.Response:
    if is_page(request.path) and request.method == hdrs.METH_GET:
        return error_page(error)
    return error_response(error)


def page_key(token: str) -> str:
    """The cookie value standing for ``token`` on the pages; useless for the API."""
    return hmac.new(
        token.encode(), b"accessproof operator pages", hashlib.sha256
    ).hexdigest()


def _authenticator(token: str | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    expected = None if token is None else token.encode()
    cookie = None if token is None else page_key(token).encode()

    @web.middleware
    async def authenticate(
        request: web.Request, handler: _Handler
    ) -> web.StreamResponse:
        if expected is None or cookie is None or request.path in PUBLIC_PATHS:
            return await handler(request)

        page = is_page(request.path)
        if page and "token" in request.query:
            return _exchange(request, expected)
        if _matches(_bearer(request), expected):
            return await handler(request)
        if page and _matches(request.cookies.get(PAGE_COOKIE), cookie):
            return await handler(request)
        raise _unauthenticated(page)

    return authenticate


def _exchange(request: web.Request, expected: bytes) -> web.StreamResponse:
    """Trade a valid ``?token=`` for the page cookie and a clean address."""
    if not _matches(request.query["token"], expected):
        raise _unauthenticated(page=True)
    query = {k: v for k, v in request.query.items() if k != "token"}
    response = web.Response(status=303)
    response.headers[hdrs.LOCATION] = str(request.rel_url.with_query(query))
    response.set_cookie(
        PAGE_COOKIE,
        page_key(request.query["token"]),
        path=PAGES_PATH,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
    )
    return response


def _bearer(request: web.Request) -> str | None:
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _matches(presented: str | None, expected: bytes) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), expected)


def _unauthenticated(page: bool) -> ApiError:
    how = "send Authorization: Bearer <token>"
    if page:
        how += f", or open {PAGES_PATH}?token=<token> once"
    return ApiError(
        401,
        "unauthenticated",
        f"this server needs its API token: {how}",
        {hdrs.WWW_AUTHENTICATE: 'Bearer realm="accessproof"'},
    )
