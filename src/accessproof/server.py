"""``accessproof serve``: the receivers, the engine and the web app in one process.

:class:`Server` wires the parts together; it is what the command line runs and
what end-to-end tests start on loopback ports chosen by the OS. Start-up checks
everything that can be wrong with the configuration before it binds a port.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from aiohttp import web
from prometheus_client import CollectorRegistry

from accessproof import __version__
from accessproof.catalog import Catalog, load_catalog
from accessproof.engine.clock import Clock, SystemClock
from accessproof.engine.engine import Engine
from accessproof.engine.service import EngineService
from accessproof.publish.logs import IncidentLogPublisher, build_log_exporter
from accessproof.publish.metrics import EngineMetrics
from accessproof.receive.grpc import start_otlp_grpc_server
from accessproof.receive.http import build_otlp_http_app
from accessproof.settings import ServeSettings, split_host_port
from accessproof.store import Store, open_store, redacted_url
from accessproof.web.app import WebContext, build_web_app

logger = logging.getLogger(__name__)

#: The catalog file read when ``--config`` is not given, if it exists.
DEFAULT_CATALOG = Path("accessproof.yaml")


def load_configured_catalog(path: Path | None) -> Catalog:
    """Load ``path``, or ``./accessproof.yaml`` if present, or the built-in catalog."""
    if path is not None:
        return load_catalog(path)
    if DEFAULT_CATALOG.exists():
        return load_catalog(DEFAULT_CATALOG)
    logger.warning(
        "no catalog file (--config or ./accessproof.yaml): judging access from "
        "subscription status and Stripe Entitlements only, not plan names"
    )
    return Catalog.builtin()


@dataclass
class Endpoints:
    """Where a started server listens: host:port strings with the bound ports."""

    otlp_http: str = ""
    otlp_grpc: str = ""
    http: str = ""


@dataclass
class Server:
    """One engine process. ``await start()``, then ``await stop()``."""

    settings: ServeSettings
    clock: Clock = field(default_factory=SystemClock)
    endpoints: Endpoints = field(default_factory=Endpoints)

    def __post_init__(self) -> None:
        self.catalog = load_configured_catalog(self.settings.config)
        self.store: Store = open_store(self.settings.store)
        try:
            self._assemble()
        except BaseException:
            self.store.close()
            raise

    def _assemble(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = EngineMetrics(self.registry, self.store, version=__version__)
        self.engine = Engine(
            self.store,
            self.catalog,
            clock=self.clock,
            listeners=[self.metrics],
            retention_seconds=self.settings.retention_seconds,
            export_incidents=bool(self.settings.logs_endpoint),
        )
        self.service = EngineService(
            self.engine,
            max_pending=self.settings.max_pending_requests,
            tick_interval=self.settings.tick_interval,
        )
        self._runners: list[web.AppRunner] = []
        self._grpc: grpc.aio.Server | None = None
        self._publisher: IncidentLogPublisher | None = None
        self._publisher_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Bind every listener and start deciding runs."""
        settings = self.settings
        otlp_app = build_otlp_http_app(
            self.service,
            max_body_bytes=settings.max_body_bytes,
            token=settings.otlp_token,
        )
        self.endpoints.otlp_http = await self._listen(otlp_app, settings.otlp_http)
        self._grpc, grpc_port = await start_otlp_grpc_server(
            self.service,
            settings.otlp_grpc,
            token=settings.otlp_token,
            max_message_bytes=settings.max_body_bytes,
        )
        grpc_host, _ = split_host_port(settings.otlp_grpc)
        self.endpoints.otlp_grpc = f"{grpc_host}:{grpc_port}"
        web_app = build_web_app(
            WebContext(
                store=self.store,
                clock=self.clock,
                registry=self.registry,
                api_token=settings.api_token,
                ready=lambda: self.service.ready,
                catalog=self.catalog,
                version=__version__,
                base_url=settings.base_url,
            )
        )
        self.endpoints.http = await self._listen(web_app, settings.http)
        if settings.logs_endpoint:
            self._publisher = IncidentLogPublisher(
                self.store,
                build_log_exporter(settings.logs_endpoint, settings.logs_protocol),
                clock=self.clock,
                metrics=self.metrics,
            )
            self._publisher_task = asyncio.create_task(
                self._publisher.run(self._stopping)
            )
        self.service.start()
        if settings.ready_file is not None:
            settings.ready_file.write_text(json.dumps(asdict(self.endpoints)))
        logger.info(
            "accessproof %s serving: OTLP/HTTP %s, OTLP/gRPC %s, API %s, store %s",
            __version__,
            self.endpoints.otlp_http,
            self.endpoints.otlp_grpc,
            self.endpoints.http,
            redacted_url(settings.store),
        )

    async def stop(self) -> None:
        """Stop listening, finish the work in hand and close the store."""
        self._stopping.set()
        if self._grpc is not None:
            await self._grpc.stop(grace=2)
        for runner in reversed(self._runners):
            await runner.cleanup()
        await self.service.stop()
        if self._publisher_task is not None:
            await self._publisher_task
        if self._publisher is not None:
            self._publisher.shutdown()
        self.store.close()

    async def _listen(self, app: web.Application, host_port: str) -> str:
        host, port = split_host_port(host_port)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runners.append(runner)
        bound = runner.addresses[-1][1] if runner.addresses else port
        return f"{host}:{bound}"
