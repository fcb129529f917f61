"""Real engines for end-to-end tests: in a thread of the test process, or as a
separate ``accessproof serve`` process, always on loopback ports the OS picks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml

from accessproof.engine.clock import Clock, SystemClock
from accessproof.server import Server
from accessproof.settings import ServeSettings

T = TypeVar("T")

LOOPBACK_ANY_PORT = "127.0.0.1:0"


def wait_for(
    check: Callable[[], T | None], *, timeout: float = 15.0, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def http_json(
    url: str, *, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """GET (or POST ``body`` as JSON) and return the status and decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def write_catalog(folder: Path, catalog: Mapping[str, Any]) -> Path:
    """Write a catalog dict as ``accessproof.yaml`` in ``folder``."""
    path = folder / "accessproof.yaml"
    path.write_text(yaml.safe_dump(dict(catalog), sort_keys=False))
    return path


class EngineThread:
    """A real :class:`Server` running on its own event loop in a thread.

    >>> with EngineThread(tmp_path, catalog=CATALOG) as engine:
    ...     exporter = OTLPSpanExporter(endpoint=engine.traces_url)
    """

    def __init__(
        self,
        folder: Path,
        *,
        catalog: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        store: str | None = None,
        **settings: Any,
    ) -> None:
        config = write_catalog(folder, catalog) if catalog is not None else None
        self.settings = ServeSettings(
            config=config,
            store=store or f"sqlite:///{folder / 'engine.db'}",
            otlp_http=LOOPBACK_ANY_PORT,
            otlp_grpc=LOOPBACK_ANY_PORT,
            http=LOOPBACK_ANY_PORT,
            tick_interval=0.05,
            **settings,
        )
        self.clock = clock or SystemClock()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: Server | None = None

    def __enter__(self) -> EngineThread:
        self._thread.start()
        self.server = self.run(self._start())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server and its loop; safe to call twice."""
        if self.server is not None:
            self.run(self.server.stop())
            self.server = None
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()

    async def _start(self) -> Server:
        server = Server(self.settings, clock=self.clock)
        await server.start()
        return server

    def run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def live(self) -> Server:
        assert self.server is not None, "the engine is not running"
        return self.server

    @property
    def traces_url(self) -> str:
        return f"http://{self.live.endpoints.otlp_http}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        return self.live.endpoints.otlp_grpc

    @property
    def api_url(self) -> str:
        return f"http://{self.live.endpoints.http}"

    def run_resource(self, event_id: str) -> dict[str, Any] | None:
        """The run resource from the API, or ``None`` while it is unknown."""
        status, body = http_json(f"{self.api_url}/api/v1/runs/{event_id}")
        return body if status == 200 else None

    def wait_for_state(
        self, event_id: str, *states: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Wait until the run reaches one of ``states``; return its resource."""

        def reached() -> dict[str, Any] | None:
            run = self.run_resource(event_id)
            return run if run is not None and run["state"] in states else None

        return wait_for(reached, timeout=timeout, what=f"{event_id} to be {states}")


class EngineProcess:
    """``accessproof serve`` as a separate process, for crash and CLI tests."""

    def __init__(self, folder: Path, *args: str, env: Mapping[str, str] = {}) -> None:
        self.folder = folder
        self.ready_file = folder / f"ready-{time.monotonic_ns()}.json"
        self.log = folder / "engine.log"
        command = [
            sys.executable,
            "-m",
            "accessproof",
            "serve",
            "--otlp-http",
            LOOPBACK_ANY_PORT,
            "--otlp-grpc",
            LOOPBACK_ANY_PORT,
            "--http",
            LOOPBACK_ANY_PORT,
            "--ready-file",
            str(self.ready_file),
            *args,
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )
        self.endpoints: dict[str, str] = wait_for(
            self._ready, timeout=30, what="accessproof serve to listen"
        )

    def _ready(self) -> dict[str, str] | None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"accessproof serve exited {self.process.returncode}:\n"
                + self.log.read_text()
            )
        if not self.ready_file.exists():
            return None
        text = self.ready_file.read_text()
        return json.loads(text) if text else None

    @property
    def api_url(self) -> str:
        return f"http://{self.endpoints['http']}"

    @property
    def traces_url(self) -> str:
        return f"http://{self.endpoints['otlp_http']}/v1/traces"

    def kill(self) -> None:
        """End the process abruptly, as a crash would."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> int:
        """Ask the process to stop (SIGTERM) and return its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=15)
