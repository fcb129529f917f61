"""The operator pages: open incidents, and one incident an on-call engineer acts from.

Server-rendered HTML without JavaScript. Every value from a record passes
through :func:`html.escape` before it reaches the markup, and only ``http`` and
``https`` URLs become links; a ``Content-Security-Policy`` that allows no script
and only this module's own stylesheet backs that up in the browser.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import shlex
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlsplit

from aiohttp import web

from accessproof.conventions import IncidentState
from accessproof.engine.incidents import AccessState, Incident
from accessproof.store.base import IncidentQuery
from accessproof.web.api import (
    ACK_PATH,
    ApiError,
    find_incident,
    incident_query,
)

if TYPE_CHECKING:
    from accessproof.web.app import WebContext

PAGES_PATH: Final = "/incidents"
PAGE_PATH: Final = PAGES_PATH + "/{incident_id}"
#: Incidents on one list page.
PAGE_LIMIT: Final = 100

_CSS: Final = (
    files("accessproof.web").joinpath("static/operator.css").read_text("utf-8")
)
_CSS_HASH: Final = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
_HEADERS: Final = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_UNKNOWN: Final = '<span class="unknown">unknown</span>'
_FORMATTER: Final = string.Formatter()


def is_page(path: str) -> bool:
    """Return whether a request path is one of the operator pages."""
    return path == PAGES_PATH or path.startswith(PAGES_PATH + "/")


def error_page(error: ApiError) -> web.Response:
    """The HTML reply to a refusal on an operator page."""
    body = f"<h1>{_e(error.status)}: {_e(error.code)}</h1><p>{_e(error.message)}</p>"
    response = _document(f"{error.status} {error.code}", body, status=error.status)
    response.headers.update(error.headers)
    return response


@dataclass(frozen=True, slots=True)
class PageHandlers:
    """The list of open incidents and the page of one incident."""

    ctx: WebContext

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PAGES_PATH, self.incident_list, allow_head=False),
            web.get(PAGE_PATH, self.incident_page, allow_head=False),
        ]

    async def incident_list(self, request: web.Request) -> web.Response:
        filters = {k: v for k, v in request.query.items() if k != "token"}
        query = incident_query(filters, default_limit=PAGE_LIMIT)
        incidents, cursor = await _list(self.ctx, query)
        state = request.query.get("state", "open")
        title = "Open incidents" if state == "open" else f"Incidents: {state}"
        now = _now(self.ctx)
        body = [f"<h1>{_e(title)}</h1>", _incident_table(incidents, now)]
        if cursor is not None:
            older = request.rel_url.update_query(cursor=cursor)
            body.append(f'<p><a href="{_e(older)}">Older incidents</a></p>')
        body.append(_footer(self.ctx))
        return _document(title, "\n".join(body))

    async def incident_page(self, request: web.Request) -> web.Response:
        incident = await find_incident(self.ctx, request.match_info["incident_id"])
        body = render_incident(incident, self.ctx, _base_url(self.ctx, request))
        return _document(incident.summary, body)


def _base_url(ctx: WebContext, request: web.Request) -> str:
    """Where the reader reached this server: the configured URL, else the request's.

    A configured URL with port 0 (an engine started on ``HOST:0``) names no
    port anyone can reach, so the request's own origin is used instead.
    """
    configured = ctx.base_url
    if configured:
        try:
            port = urlsplit(configured).port
        except ValueError:
            port = 0
        if port != 0:
            return configured
    return str(request.url.origin())


async def _list(
    ctx: WebContext, query: IncidentQuery
) -> tuple[list[Incident], str | None]:
    return await asyncio.to_thread(ctx.store.list_incidents, query)


def _incident_table(incidents: list[Incident], now: datetime) -> str:
    if not incidents:
        return "<p>No incidents. Every run checked so far was proven or is pending.</p>"
    rows = [
        "<tr>"
        f'<td><a href="{_e(_page_url(incident.id))}">{_e(incident.summary)}</a>'
        f"{_drill_badge(incident)}</td>"
        f"<td>{_badge(incident.reason, 'reason')}</td>"
        f"<td>{_state_badge(incident.state)}</td>"
        f"<td>{_text(incident.customer_id)}</td>"
        f"<td>{_when(incident.opened_at, now)}</td>"
        "</tr>"
        for incident in incidents
    ]
    head = "<tr><th>Incident</th><th>Reason</th><th>State</th><th>Customer</th>"
    head += "<th>Opened</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def render_incident(incident: Incident, ctx: WebContext, base_url: str) -> str:
    """The body of one incident's page."""
    now = _now(ctx)
    sections = [
        f'<p><a href="{PAGES_PATH}">All open incidents</a></p>',
        f"<h1>{_e(incident.summary)}</h1>",
        _badges(incident),
        _impact(incident, now),
        "<h2>Expected and observed</h2>",
        _comparison(incident.expected, incident.observed),
        f"<p>Observed is {_e(incident.observed_from)}: this event had no read-back "
        "of its own.</p>"
        if incident.observed_from
        else "",
        f"<p><strong>Why:</strong> {_e(incident.detail)}</p>"
        if incident.detail
        else "",
        _actions(incident, base_url),
        '<div class="columns"><section>',
        _event(incident),
        "</section><section>",
        _deploy_and_owner(incident),
        "</section></div>",
        _traces(incident, ctx),
        _status(incident, now),
        _footer(ctx),
    ]
    return "\n".join(part for part in sections if part)


def _badges(incident: Incident) -> str:
    parts = [_state_badge(incident.state), _badge(incident.reason, "reason")]
    if incident.drill:
        parts.append(_badge("drill: not a real customer problem", "drill"))
    return f'<div class="badges">{"".join(parts)}</div>'


def _impact(incident: Incident, now: datetime) -> str:
    operator = incident.operator
    lines = [
        f'<p class="what">{_e(_capital(operator.consequence))}</p>',
        f"<p>Since {_when(incident.opened_at, now)}.</p>",
    ]
    if operator.current_period_end is not None:
        period = _when(operator.current_period_end, now)
        lines.append(f"<p>Current billing period ends {period}.</p>")
    return f'<div class="impact">{"".join(lines)}</div>'


def _comparison(expected: AccessState, observed: AccessState) -> str:
    rows = [
        ("Plan", expected.plan, observed.plan),
        ("Features", expected.features, observed.features),
        ("Access", expected.access, observed.access),
    ]
    body = []
    for label, want, got in rows:
        differs = want is not None and want != got
        css = ' class="differs"' if differs else ""
        body.append(
            f"<tr{css}><th>{label}</th><td>{_value(want)}</td>"
            f'<td class="observed">{_value(got)}</td></tr>'
        )
    if expected.grace:
        body.append('<tr><th>Grace</th><td colspan="2">in the grace period</td></tr>')
    head = "<tr><th></th><th>Expected (from Stripe)</th><th>Observed (in the app)</th>"
    return f"<table><thead>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _actions(incident: Incident, base_url: str) -> str:
    operator = incident.operator
    parts = [
        "<h2>What to do</h2>",
        f"<p>{_e(operator.safe_action)}</p>",
    ]
    if operator.commands:
        parts.append("<p>Check the provider state first:</p>")
        parts.append(f"<pre>{_e(chr(10).join(operator.commands))}</pre>")
    parts += ["<h2>Retry guidance</h2>", f"<p>{_e(incident.retry_guidance)}</p>"]
    if incident.state is not IncidentState.RESOLVED:
        parts.append("<p>Acknowledge it, so the team knows someone is on it:</p>")
        parts.append(f"<pre>{_e(_ack_command(incident.id, base_url))}</pre>")
    return "\n".join(parts)


def _ack_command(incident_id: str, base_url: str) -> str:
    url = base_url.rstrip("/") + ACK_PATH.format(incident_id=quote(incident_id))
    return (
        'curl -X POST -H "Authorization: Bearer $ACCESSPROOF_API_TOKEN" \\\n'
        "  -H 'Content-Type: application/json' -d '{\"by\": \"YOUR_NAME\"}' \\\n"
        f"  {shlex.quote(url)}"
    )


def _event(incident: Incident) -> str:
    pairs = [
        ("Stripe event", f"<code>{_e(incident.event_id)}</code>"),
        ("Event type", _text(incident.event_type or None)),
        ("Customer", _code(incident.customer_id)),
        ("Subscription", _code(incident.subscription_id)),
        ("Live mode", _value(incident.livemode)),
        ("Step", _text(incident.step)),
        ("Incident", f"<code>{_e(incident.id)}</code>"),
    ]
    return "<h2>Event</h2>" + _facts(pairs)


def _deploy_and_owner(incident: Incident) -> str:
    deploy = incident.deploy
    operator = incident.operator
    runbook = _link(operator.runbook, operator.runbook) if operator.runbook else None
    pairs = [
        ("Deploy SHA", _code(deploy.revision)),
        ("Service", _text(deploy.service_name)),
        ("Version", _text(deploy.service_version)),
        ("Environment", _text(deploy.environment)),
        ("Owner", _text(operator.owner)),
        ("Runbook", runbook or _UNKNOWN),
    ]
    return "<h2>Deploy and owner</h2>" + _facts(pairs)


def _traces(incident: Incident, ctx: WebContext) -> str:
    template = ctx.trace_template
    items = []
    for trace_id in incident.trace_ids:
        url = _fill(template, _link_values(incident, trace_id)) if template else None
        items.append(f"<li>{_link(url, trace_id, code=True)}</li>")
    others = [
        f"<li>{_link(url, name)}</li>"
        for name, url in sorted(incident.links.items())
        if name != "trace" and _is_web_url(url)
    ]
    parts = ["<h2>Traces</h2>", f"<ul>{''.join(items)}</ul>" if items else _UNKNOWN]
    if others:
        parts += ["<h2>Links</h2>", f"<ul>{''.join(others)}</ul>"]
    return "\n".join(parts)


def _status(incident: Incident, now: datetime) -> str:
    pairs = [("State", _state_badge(incident.state))]
    if incident.acknowledged_by is not None:
        pairs.append(("Acknowledged by", _e(incident.acknowledged_by)))
    if incident.acknowledged_at is not None:
        pairs.append(("Acknowledged", _when(incident.acknowledged_at, now)))
    if incident.resolved_at is not None:
        pairs.append(("Resolved", _when(incident.resolved_at, now)))
        pairs.append(("Resolution", _text(incident.resolution)))
    return "<h2>Status</h2>" + _facts(pairs)


def _footer(ctx: WebContext) -> str:
    return f"<footer>accessproof {_e(ctx.version)}</footer>"


def _document(title: str, body: str, status: int = 200) -> web.Response:
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · accessproof</title><style>{_CSS}</style></head>"
        f'<body><header class="bar"><a href="{PAGES_PATH}">accessproof</a></header>'
        f"<main>\n{body}\n</main></body></html>\n"
    )
    return web.Response(
        status=status,
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers=_HEADERS,
    )


def _link_values(incident: Incident, trace_id: str) -> dict[str, str]:
    return {
        "trace_id": trace_id,
        "event_id": incident.event_id,
        "customer_id": incident.customer_id or "",
        "subscription_id": incident.subscription_id or "",
        "incident_id": incident.id,
        "livemode": "true" if incident.livemode else "false",
    }


def _fill(template: str, values: Mapping[str, str]) -> str | None:
    """Fill a URL template, percent-encoding values; ``None`` if it needs others."""
    try:
        names = [field for _, field, _, _ in _FORMATTER.parse(template) if field]
    except ValueError:
        return None
    if any(name not in values for name in names):
        return None
    return template.format_map({name: quote(values[name], safe="") for name in names})


def _page_url(incident_id: str) -> str:
    return PAGE_PATH.format(incident_id=quote(incident_id, safe=""))


def _is_web_url(url: str | None) -> bool:
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _link(url: str | None, text: object, *, code: bool = False) -> str:
    label = f"<code>{_e(text)}</code>" if code else _e(text)
    if not _is_web_url(url):
        return label
    return f'<a href="{_e(url)}" rel="noopener noreferrer">{label}</a>'


def _facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are markup the caller has already escaped."""
    items = "".join(f"<dt>{_e(label)}</dt><dd>{value}</dd>" for label, value in pairs)
    return f'<dl class="facts">{items}</dl>'


def _value(value: object) -> str:
    if value is None:
        return _UNKNOWN
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return _e(", ".join(map(str, value))) if value else "none"
    return _e(value)


def _text(value: object) -> str:
    return _UNKNOWN if value is None else _e(value)


def _code(value: str | None) -> str:
    return _UNKNOWN if value is None else f"<code>{_e(value)}</code>"


def _badge(text: object, css: str) -> str:
    return f'<span class="badge {css}">{_e(text)}</span>'


def _state_badge(state: IncidentState) -> str:
    return _badge(state.value, f"state-{state.value}")


def _drill_badge(incident: Incident) -> str:
    return " " + _badge("drill", "drill") if incident.drill else ""


def _when(moment: datetime, now: datetime) -> str:
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{_e(stamp)} ({_e(_relative(moment, now))})"


def _relative(moment: datetime, now: datetime) -> str:
    seconds = (now - moment).total_seconds()
    span = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if span >= size:
            count = int(span // size)
            amount = f"{count} {unit}{'' if count == 1 else 's'}"
            break
    else:
        amount = f"{int(span)} seconds"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


def _now(ctx: WebContext) -> datetime:
    return datetime.fromtimestamp(ctx.clock.now_ns() / 1e9, UTC)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
