"""The example billing app as a real process, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.engine.events import sign
from tests.harness import wait_for

WEBHOOK_SECRET = "whsec_test_end_to_end_0123456789"

#: The deploy the app reports on its resource, as a real deployment would.
REVISION = "4b1d9c0e7a35f2b8c6d4e1f0a9b8c7d6e5f4a3b2"


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class BillingApp:
    """``python -m accessproof.examples.billing_app`` with its worker process."""

    def __init__(
        self,
        folder: Path,
        *,
        otlp_endpoint: str,
        protocol: str = "grpc",
        fault: str = "none",
        secret: str = WEBHOOK_SECRET,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhooks/stripe"
        self.log = folder / f"billing-app-{self.port}.log"
        env = {
            **os.environ,
            "OTEL_RESOURCE_ATTRIBUTES": f"vcs.ref.head.revision={REVISION},"
            "service.version=3.1.4,deployment.environment.name=test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        command = [
            sys.executable,
            "-m",
            "accessproof.examples.billing_app",
            "--port",
            str(self.port),
            "--webhook-secret",
            secret,
            "--database",
            str(folder / f"accounts-{self.port}.db"),
            "--fault",
            fault,
            "--otlp-endpoint",
            otlp_endpoint,
            "--otlp-protocol",
            protocol,
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder
            )
        wait_for(self._healthy, timeout=30, what="the billing app to serve")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("billing app exited:\n" + self.log.read_text())
        try:
            url = f"http://127.0.0.1:{self.port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def deliver(self, event: Mapping[str, Any], secret: str = WEBHOOK_SECRET) -> int:
        """Send a signed event as Stripe would; return the HTTP status."""
        body, header = sign(event, secret)
        request = urllib.request.Request(
            self.url,
            data=body,
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    def __enter__(self) -> BillingApp:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
