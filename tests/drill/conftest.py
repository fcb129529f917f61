"""A real engine in a thread and the real example app as a subprocess."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from accessproof.examples.billing_config import Fault
from tests.harness import EngineThread, wait_for

#: Short deadlines, so a skipped step becomes an incident within seconds.
DEADLINE_SECONDS = 2

CATALOG: dict[str, Any] = {
    "plans": {
        "free": {"features": []},
        "pro": {
            "prices": ["price_1Pro"],
            "lookup_keys": ["pro_monthly"],
            "features": ["api", "exports"],
        },
    },
    "default_plan": "free",
    "steps": {
        "default": {
            "required": ["reconcile", "entitlement"],
            "deadlines": {
                "reconcile": f"{DEADLINE_SECONDS}s",
                "entitlement": f"{DEADLINE_SECONDS}s",
            },
        }
    },
}

REVISION = "3f9c2d1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"


class App:
    """The example billing app running in a process of its own."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path):
        self.process = process
        self.webhook_url = f"http://127.0.0.1:{port}/webhooks/stripe"
        self.health_url = f"http://127.0.0.1:{port}/healthz"
        self.log = log

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the example app exited:\n{self.log.read_text()}")
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=15)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineThread]:
    """A real engine on loopback ports, with a catalog of 2-second deadlines."""
    with EngineThread(tmp_path_factory.mktemp("engine"), catalog=CATALOG) as running:
        yield running


@pytest.fixture
def start_app(engine: EngineThread, tmp_path: Path) -> Iterator[Callable[..., App]]:
    """Start the example app, exporting to the engine; stopped after the test."""
    apps: list[App] = []

    def start(secret: str, fault: Fault = "none") -> App:
        port = free_port()
        log = tmp_path / f"app-{port}.log"
        env = {
            **os.environ,
            "OTEL_RESOURCE_ATTRIBUTES": f"vcs.ref.head.revision={REVISION}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
        command = [
            sys.executable,
            "-m",
            "accessproof.examples.billing_app",
            "--port",
            str(port),
            "--webhook-secret",
            secret,
            "--database",
            str(tmp_path / f"accounts-{port}.db"),
            "--fault",
            fault,
            "--otlp-endpoint",
            f"http://{engine.grpc_endpoint}",
        ]
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=tmp_path
            )
        app = App(process, port, log)
        apps.append(app)
        wait_for(app.healthy, timeout=30, what="the example app to answer")
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture
def webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)
