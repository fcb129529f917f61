"""``accessproof demo``: the engine, the example app and the drill, with nothing to set.

:class:`Demo` starts the proof engine in this process (on a temporary SQLite store,
with a built-in catalog whose deadlines are seconds, not minutes), starts the
example billing app as a subprocess with a generated webhook secret and its OTLP
exporter pointed at the engine, runs the drill against them and prints the proof,
the incidents and the operator page. The engine listens on the default ports when
they are free and on ports the OS picks when they are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

import yaml
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from accessproof import __version__
from accessproof.conventions import Attr
from accessproof.drill.drill import Drill, DrillReport, DrillTarget, EngineApi
from accessproof.drill.events import Price
from accessproof.server import Server
from accessproof.settings import ServeSettings

#: Seconds by which the demo engine expects each step: short, so the drill's
#: skipped-entitlement stage ends within seconds.
DEMO_DEADLINE: Final = 5

#: The demo's plan catalog, matching the example app's own price mapping.
DEMO_CATALOG: Final[dict[str, Any]] = {
    "plans": {
        "free": {"features": []},
        "pro": {
            "prices": ["price_1Pro"],
            "lookup_keys": ["pro_monthly"],
            "products": ["prod_Pro"],
            "features": ["api", "exports"],
        },
    },
    "default_plan": "free",
    "steps": {
        "default": {
            "required": ["reconcile", "entitlement"],
            "deadlines": {
                "reconcile": f"{DEMO_DEADLINE}s",
                "entitlement": f"{DEMO_DEADLINE}s",
            },
        }
    },
    "owners": [{"match": "customer.subscription.*", "team": "billing"}],
}

DEMO_PRICE: Final = Price("price_1Pro", lookup_key="pro_monthly", product="prod_Pro")
DEMO_PLAN: Final = "pro"

_LOOPBACK: Final = "127.0.0.1"
_DEFAULT_PORTS: Final = {"otlp_http": 4318, "otlp_grpc": 4317, "http": 8080}
_START_TIMEOUT: Final = 30.0


class _DemoSettings(ServeSettings):
    """Serve settings from the arguments alone, never from ``ACCESSPROOF_*``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(catalog: Path, store: str, ports: dict[str, int]) -> ServeSettings:
    """The demo engine's settings: loopback, no tokens, nothing from the environment.

    An operator's ``ACCESSPROOF_OTLP_TOKEN`` or ``ACCESSPROOF_API_TOKEN`` (from a
    sourced ``.env``, say) must not reach the demo engine: the example app and
    the drill it starts send no token. ``ports`` maps ``otlp_http``,
    ``otlp_grpc`` and ``http`` to a port, 0 for any.
    """
    return _DemoSettings(
        config=catalog,
        store=store,
        tick_interval=0.1,
        otlp_http=f"{_LOOPBACK}:{ports['otlp_http']}",
        otlp_grpc=f"{_LOOPBACK}:{ports['otlp_grpc']}",
        http=f"{_LOOPBACK}:{ports['http']}",
    )


class DemoError(Exception):
    """A part of the demo could not start; the message says which and why."""


class EngineInThread:
    """A :class:`Server` on an event loop of its own, in a daemon thread."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="accessproof-demo-engine", daemon=True
        )
        self.server: Server | None = None

    def start(self) -> Server:
        """Start the loop and the server; raises what the server's start raised."""
        self._thread.start()
        self.server = self._run(self._start())
        return self.server

    def stop(self) -> None:
        """Stop the server, then the loop; safe to call twice."""
        if self.server is not None:
            server, self.server = self.server, None
            self._run(server.stop())
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self.loop.is_closed() and not self.loop.is_running():
            self.loop.close()

    async def _start(self) -> Server:
        server = Server(self.settings)
        await server.start()
        return server

    def _run(self, coroutine: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(_START_TIMEOUT)


class Demo:
    """One demo: a folder, an engine, the example app and a drill.

    >>> Demo().run(wait=False)   # exit status of the drill
    """

    def __init__(self, *, timeout: float = 60.0, out: IO[str] | None = None) -> None:
        self.timeout = timeout
        self.out = out if out is not None else sys.stdout
        self.secret = "whsec_" + secrets.token_hex(24)
        self.revision = secrets.token_hex(20)
        self.folder = Path(tempfile.mkdtemp(prefix="accessproof-demo-"))
        self._engine: EngineInThread | None = None
        self._app: subprocess.Popen[bytes] | None = None

    def run(self, *, wait: bool = True) -> int:
        """Start everything, run the drill, print the results; return the status.

        With ``wait``, keep serving until SIGINT or SIGTERM before shutting down.
        """
        try:
            server = self._start_engine()
            webhook_url = self._start_app(server)
            report = self._drill(server, webhook_url)
            self._show(server, report)
            if wait:
                self._say("engine and app keep running; press Ctrl-C to stop")
                self._wait_for_signal()
        except DemoError as error:
            print(f"accessproof demo: {error}", file=sys.stderr)
            return 1
        finally:
            self.close()
        return 0 if report.ok else 1

    def close(self) -> None:
        """Stop the app, then the engine, and remove the temporary folder."""
        if self._app is not None:
            app, self._app = self._app, None
            _stop_process(app)
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _start_engine(self) -> Server:
        catalog = self.folder / "accessproof.yaml"
        catalog.write_text(yaml.safe_dump(DEMO_CATALOG, sort_keys=False))
        store = f"sqlite:///{self.folder / 'accessproof.db'}"
        try:
            return self._listen(catalog, store, _preferred_ports())
        except (OSError, RuntimeError):
            # A default port was taken between the check and the bind.
            return self._listen(catalog, store, dict.fromkeys(_DEFAULT_PORTS, 0))

    def _listen(self, catalog: Path, store: str, ports: dict[str, int]) -> Server:
        engine = EngineInThread(demo_settings(catalog, store, ports))
        try:
            server = engine.start()
        except BaseException:
            engine.stop()
            raise
        self._engine = engine
        endpoints = server.endpoints
        self._say(
            f"engine   API http://{endpoints.http}  OTLP/gRPC {endpoints.otlp_grpc}  "
            f"OTLP/HTTP {endpoints.otlp_http}"
        )
        self._say(f"store    {self.folder / 'accessproof.db'} (temporary)")
        return server

    def _start_app(self, server: Server) -> str:
        port = _free_port()
        log = self.folder / "billing-app.log"
        command = [
            sys.executable,
            "-m",
            "accessproof.examples.billing_app",
            "--port",
            str(port),
            "--webhook-secret",
            self.secret,
            "--database",
            str(self.folder / "billing-accounts.db"),
            "--otlp-endpoint",
            f"http://{server.endpoints.otlp_grpc}",
            "--otlp-protocol",
            "grpc",
        ]
        with log.open("wb") as output:
            self._app = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command,
                cwd=self.folder,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self._app_environment(),
                start_new_session=True,
            )
        base = f"http://{_LOOPBACK}:{port}"
        self._await_app(base, log)
        self._say(f"app      {base}/webhooks/stripe (example billing app)")
        self._say(f"deploy   {self.revision}")
        return f"{base}/webhooks/stripe"

    def _app_environment(self) -> dict[str, str]:
        resource = ",".join(
            f"{key}={value}"
            for key, value in (
                (Attr.VCS_REVISION, self.revision),
                (Attr.SERVICE_VERSION, __version__),
                (Attr.DEPLOYMENT_ENVIRONMENT, "demo"),
            )
        )
        # Export the web process's spans within half a second, not the SDK's five.
        return {
            **os.environ,
            "OTEL_RESOURCE_ATTRIBUTES": resource,
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }

    def _await_app(self, base: str, log: Path) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._app is None or self._app.poll() is not None:
                raise DemoError(f"the example app exited:\n{_tail(log)}")
            if _answers(f"{base}/healthz"):
                return
            time.sleep(0.1)
        raise DemoError(f"the example app did not start in {_START_TIMEOUT:g}s")

    def _drill(self, server: Server, webhook_url: str) -> DrillReport:
        self._say(
            f"running the drill (the skipped-entitlement stage waits out the "
            f"{DEMO_DEADLINE}s entitlement deadline)"
        )
        target = DrillTarget(
            webhook_url=webhook_url,
            webhook_secret=self.secret,
            customer="cus_demo" + secrets.token_hex(6),
            price=DEMO_PRICE,
            plan=DEMO_PLAN,
        )
        api = EngineApi(f"http://{server.endpoints.http}")
        drill = Drill(
            target,
            api,
            timeout=self.timeout,
            incident_timeout=self.timeout + DEMO_DEADLINE,
            progress_every=2.0,
        )
        report = drill.run()
        self._say("")
        self._say(report.render())
        return report

    def _show(self, server: Server, report: DrillReport) -> None:
        api = EngineApi(f"http://{server.endpoints.http}")
        if report.proof is not None:
            self._say("")
            self._say("the proof:")
            self._say(format_proof(report.proof))
        if report.incidents:
            self._say("")
            self._say("the incidents an operator gets:")
        for incident in report.incidents:
            self._say(f"  {incident['id']}  {incident['reason']}")
            self._say(f"    {incident.get('summary', '')}")
            self._say(f"    {api.page_url(str(incident['id']))}")
        self._say("")
        self._say(f"operator page: {api.page_url()}")

    def _wait_for_signal(self) -> None:
        stop = threading.Event()

        def handle(signum: int, frame: FrameType | None) -> None:
            stop.set()

        with _signal_handlers(handle):
            while not stop.wait(0.5):
                if self._app is not None and self._app.poll() is not None:
                    self._say("the example app exited; stopping")
                    return
        self._say("stopping")

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)


@contextlib.contextmanager
def _signal_handlers(handler: Any) -> Iterator[None]:
    previous = {
        signum: signal.signal(signum, handler)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _preferred_ports() -> dict[str, int]:
    """The default ports where they are free, 0 (any) where they are taken."""
    return {
        name: port if _port_free(port) else 0 for name, port in _DEFAULT_PORTS.items()
    }


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((_LOOPBACK, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def format_proof(run: dict[str, Any]) -> str:
    """Render a proven run resource: what was expected, observed, and by which steps."""
    expected = run.get("expected") or {}
    observed = run.get("observed") or {}
    steps = [str(step.get("step")) for step in run.get("steps") or []]
    deploy = run.get("deploy") or {}
    rows = [
        ("event", f"{run.get('event_id')} ({run.get('event_type')})"),
        ("state", str(run.get("state"))),
        ("customer", str(run.get("customer_id") or "-")),
        ("expected", _access(expected)),
        ("observed", _access(observed)),
        ("steps", ", ".join(steps) or "none"),
        ("deploy", str(deploy.get("revision") or "-")),
    ]
    return "\n".join(f"  {name:<9} {value}" for name, value in rows)


def _access(state: dict[str, Any]) -> str:
    features = ", ".join(state.get("features") or []) or "-"
    return (
        f"plan {state.get('plan') or '-'}, access {state.get('access') or '-'}, "
        f"features {features}"
    )
