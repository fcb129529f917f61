"""Headless Chromium reads the operator page from a real server on loopback."""

from __future__ import annotations

import asyncio
import html
import os
import shutil
from pathlib import Path

import pytest
from aiohttp import web

from accessproof.web import build_web_app
from tests.conftest import require_binary
from tests.web.conftest import MARKUP, MARKUP_PLAN, REVISION, TOKEN, World

pytestmark = pytest.mark.chromium

_BROWSER_TIMEOUT = 60.0


async def browse(chromium: str, profile: Path, url: str, *args: str) -> bytes:
    """Run headless Chromium once on ``url`` and return what it prints."""
    process = await asyncio.create_subprocess_exec(
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,1600",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), _BROWSER_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0
    return output


def visit(world: World, chromium: str, tmp_path: Path, path: str) -> tuple[str, Path]:
    """Serve the app with a token; dump the page's DOM and screenshot it."""
    screenshot = tmp_path / "operator-page.png"

    async def main() -> str:
        runner = web.AppRunner(build_web_app(world.context(api_token=TOKEN)))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            url = f"http://127.0.0.1:{port}{path}?token={TOKEN}"
            dom = await browse(chromium, tmp_path / "dom-profile", url, "--dump-dom")
            await browse(
                chromium, tmp_path / "shot-profile", url, f"--screenshot={screenshot}"
            )
            return dom.decode()
        finally:
            await runner.cleanup()

    return asyncio.run(main()), screenshot


def test_chromium_renders_the_incident_page(world: World, tmp_path: Path) -> None:
    """The page loads through the token exchange, reads as text, and is captured."""
    chromium = require_binary("chromium")
    incident = world.store.get_incident(world.incident_of(MARKUP))
    assert incident is not None

    dom, screenshot = visit(world, chromium, tmp_path, f"/incidents/{incident.id}")

    assert html.escape(incident.summary) in dom
    assert html.escape(incident.operator.consequence[1:]) in dom
    assert REVISION in dom
    assert html.escape(MARKUP_PLAN) in dom
    assert "<script" not in dom
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    artifacts = os.environ.get("ACCESSPROOF_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / screenshot.name)
