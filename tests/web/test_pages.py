"""The operator pages: what an on-call engineer reads, escaped and script-free."""

from __future__ import annotations

import html
import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.web.conftest import (
    DRILL,
    LATE,
    MARKUP,
    MARKUP_PLAN,
    MISSING,
    REVISION,
    RUNBOOK,
    World,
    with_client,
)

Client = TestClient[Any, Any]


def get_page(world: World, path: str, **overrides: Any) -> tuple[int, Any, str]:
    """GET a page and return the status, headers and text."""

    async def scenario(client: Client) -> tuple[int, Any, str]:
        response = await client.get(path)
        return response.status, response.headers, await response.text()

    return with_client(world, scenario, **overrides)


def text_of(markup: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded."""
    without_style = re.sub(r"<style>.*?</style>", "", markup, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", without_style))


def test_incident_page_shows_what_an_operator_acts_on(world: World) -> None:
    """The page carries impact, state, deploy, owner, action, commands and guidance."""
    incident = world.store.get_incident(world.incident_of(MISSING))
    assert incident is not None

    status, headers, page = get_page(world, f"/incidents/{incident.id}")

    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    text = text_of(page)
    for expected in (
        incident.summary,
        incident.operator.consequence[1:],
        "Since 2023-11-14 22:14:32 UTC (1 minute ago)",
        "Current billing period ends 2023-12-14",
        incident.event_id,
        "customer.subscription.updated",
        "cus_1Missing",
        "sub_1Missing",
        REVISION,
        "billing-worker",
        "2.4.1",
        "production",
        "billing",
        incident.operator.safe_action,
        incident.retry_guidance,
    ):
        assert expected in text, expected
    assert f'<a href="{RUNBOOK}"' in page
    for command in incident.operator.commands:
        assert html.escape(command) in re.findall(r"<pre>(.*?)</pre>", page, re.S)[0]
    assert f"/api/v1/incidents/{incident.id}/ack" in page


def test_incident_page_sets_expected_and_observed_side_by_side(world: World) -> None:
    """One table row each for plan, features and access, expected then observed."""
    status, _, page = get_page(world, f"/incidents/{world.incident_of(DRILL)}")

    assert status == 200
    rows = {
        cells[0]: cells[1:]
        for cells in (
            [
                html.unescape(re.sub(r"<[^>]+>", "", c))
                for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
            ]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S)
        )
        if cells
    }
    assert rows["Plan"] == ["pro", "accessproof-drill-wrong-plan"]
    assert rows["Features"] == ["api, exports", "api, exports"]
    assert rows["Access"] == ["granted", "granted"]
    assert "drill: not a real customer problem" in page


def test_markup_in_a_plan_name_is_shown_as_text(world: World) -> None:
    """A plan name full of markup reaches the page escaped, never as a tag."""
    status, headers, page = get_page(world, f"/incidents/{world.incident_of(MARKUP)}")

    assert status == 200
    assert "<script" not in page
    assert html.escape(MARKUP_PLAN) in page
    assert MARKUP_PLAN in text_of(page)
    assert "script-src" not in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_trace_ids_link_through_the_catalog_template(world: World) -> None:
    """Each trace id links to the trace URL the catalog's template makes."""
    incident = world.store.get_incident(world.incident_of(MARKUP))
    assert incident is not None

    _, _, page = get_page(world, f"/incidents/{incident.id}")

    assert incident.trace_ids
    for trace_id in incident.trace_ids:
        url = f"https://grafana.example.com/explore?traceId={trace_id}"
        assert f'<a href="{html.escape(url)}"' in page


def test_only_http_urls_become_links(world: World) -> None:
    """A trace template that is not http(s) shows ids as plain text."""
    incident_id = world.incident_of(MARKUP)

    _, _, page = get_page(
        world,
        f"/incidents/{incident_id}",
        trace_link="javascript:alert('{trace_id}')",
    )

    assert "javascript:" not in page
    incident = world.store.get_incident(incident_id)
    assert incident is not None
    assert f"<code>{incident.trace_ids[0]}</code>" in page


def test_acknowledged_incident_names_who_and_when(world: World) -> None:
    """After an acknowledgement the page says by whom and when."""
    incident_id = world.incident_of(MISSING)
    world.store.acknowledge(incident_id, "ana <on-call>", world.clock.now_ns())

    _, _, page = get_page(world, f"/incidents/{incident_id}")

    text = text_of(page)
    assert "acknowledged" in text
    assert "Acknowledged by ana <on-call>" in " ".join(text.split())
    assert "ana &lt;on-call&gt;" in page


def test_resolved_incident_page_says_how_it_resolved(world: World) -> None:
    """A resolved incident shows its resolution and offers no acknowledgement."""
    _, _, page = get_page(world, f"/incidents/{world.incident_of(LATE)}")

    text = " ".join(text_of(page).split())
    assert "Resolution proven" in text
    assert "/ack" not in page


def test_list_page_links_each_open_incident(world: World) -> None:
    """The list shows open incidents only, each linking to its page, drills marked."""
    status, _, page = get_page(world, "/incidents")

    assert status == 200
    for event_id in (MISSING, DRILL, MARKUP):
        assert f'href="/incidents/{world.incident_of(event_id)}"' in page
    assert world.incident_of(LATE) not in page
    drill_row = next(
        row for row in page.split("<tr>") if world.incident_of(DRILL) in row
    )
    assert 'class="badge drill"' in drill_row
    assert "<script" not in page


def test_list_page_pages_with_an_older_link(world: World) -> None:
    """A list longer than the limit links to the older incidents."""
    _, _, page = get_page(world, "/incidents?limit=2")

    older = re.search(r'href="(/incidents\?[^"]+)">Older incidents', page)
    assert older is not None
    _, _, rest = get_page(world, html.unescape(older.group(1)))
    assert f'href="/incidents/{world.incident_of(MARKUP)}"' in rest


def test_unknown_incident_page_is_a_404_page(world: World) -> None:
    """An unknown incident id gets a 404 HTML page."""
    status, headers, page = get_page(world, "/incidents/inc_%3Cb%3Enope")

    assert status == 404
    assert headers["Content-Type"].startswith("text/html")
    assert "<b>" not in page
    assert "inc_&lt;b&gt;nope" in page


def test_ack_command_uses_the_request_origin_when_the_base_url_has_port_0(
    world: World,
) -> None:
    """An engine started on HOST:0 shows the port the reader reached, not port 0."""
    incident_id = world.incident_of(MISSING)

    async def scenario(client: Client) -> tuple[str, str]:
        response = await client.get(f"/incidents/{incident_id}")
        return str(client.make_url("/")).rstrip("/"), await response.text()

    origin, page = with_client(world, scenario, base_url="http://127.0.0.1:0")

    assert f"{origin}/api/v1/incidents/{incident_id}/ack" in page
    assert "127.0.0.1:0/" not in page


def test_ack_command_keeps_a_configured_public_url(world: World) -> None:
    """A base URL with a real port (a public URL) is what the command shows."""
    incident_id = world.incident_of(MISSING)

    _, _, page = get_page(
        world, f"/incidents/{incident_id}", base_url="https://ap.example.com"
    )

    assert f"https://ap.example.com/api/v1/incidents/{incident_id}/ack" in page


def test_list_page_with_a_superscript_limit_is_a_400_page(world: World) -> None:
    """A limit of non-ASCII digits is refused with a page, not a server error."""
    status, _, page = get_page(world, "/incidents?limit=%C2%B2")

    assert status == 400
    assert "bad_parameter" in page
