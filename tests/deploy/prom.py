"""A real Prometheus server for tests, started from the ``prometheus`` binary on PATH.

``running_prometheus`` writes a temporary configuration that scrapes the given
``host:port`` targets every second, starts the server on a free loopback port with
exemplar storage on and a temporary data directory, waits until every target has
been scraped successfully, and stops the server on exit::

    with running_prometheus(["127.0.0.1:8080"]) as prometheus:
        samples = prometheus.wait_for_data("accessproof_runs_open")

Queries go through the server's HTTP API; a PromQL error raises ``PromQLError``
with the server's message.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require_binary

#: How long the server may take to start and to scrape every target once.
START_TIMEOUT = 30.0

#: How long ``wait_for_data`` polls before giving up.
DATA_TIMEOUT = 15.0

_POLL = 0.1


class PromQLError(Exception):
    """The server refused a query; the message is the server's own."""


class PrometheusServer:
    """A running Prometheus server reached over its HTTP API."""

    def __init__(self, url: str, log_path: Path) -> None:
        self.url = url
        self.log_path = log_path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate an instant query now and return its samples (may be empty)."""
        data = self._api("query", {"query": expr})
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    def query_exemplars(self, expr: str, start: float, end: float) -> list[Any]:
        """Return the exemplars stored for a selector between two Unix times."""
        params = {"query": expr, "start": str(start), "end": str(end)}
        return list(self._api("query_exemplars", params))

    def wait_for_data(self, expr: str, timeout: float = DATA_TIMEOUT) -> list[Any]:
        """Poll a query until it returns a sample, or fail after ``timeout`` seconds.

        A query the server refuses raises at once rather than being retried.
        """
        deadline = time.monotonic() + timeout
        while True:
            samples = self.query(expr)
            if samples or time.monotonic() > deadline:
                break
            time.sleep(_POLL)

        if not samples:
            raise AssertionError(f"no data within {timeout}s for: {expr}")
        return samples

    def targets(self) -> list[dict[str, Any]]:
        """Return the active scrape targets with their health and last error."""
        data = self._api("targets", {"state": "active"}, post=False)
        return list(data["activeTargets"])

    def log(self) -> str:
        """Return what the server has logged so far."""
        return self.log_path.read_text(errors="replace")

    def _api(self, endpoint: str, params: dict[str, str], post: bool = True) -> Any:
        url = f"{self.url}/api/v1/{endpoint}"
        encoded = urllib.parse.urlencode(params)
        if post:
            request = urllib.request.Request(url, data=encoded.encode())
        else:
            request = urllib.request.Request(f"{url}?{encoded}")

        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)["data"]
        except urllib.error.HTTPError as error:
            with error:
                message = error.read().decode(errors="replace")
            raise PromQLError(f"{_error_text(message)} in: {params}") from None


def _error_text(body: str) -> str:
    try:
        return str(json.loads(body).get("error", body))
    except ValueError:
        return body.strip()


@contextmanager
def running_prometheus(
    targets: Sequence[str], *, job: str = "accessproof"
) -> Iterator[PrometheusServer]:
    """Run a Prometheus server scraping ``targets`` every second, then stop it.

    Skips the test (fails under CI) when the ``prometheus`` binary is missing.
    ``job`` is the scrape job's name, and so the ``job`` label of ``up``.
    """
    binary = require_binary("prometheus")

    with tempfile.TemporaryDirectory(prefix="prometheus-") as tmp:
        workdir = Path(tmp)
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(_config(targets, job)))
        log_path = workdir / "prometheus.log"
        address = f"127.0.0.1:{_free_port()}"
        server = PrometheusServer(f"http://{address}", log_path)

        with (
            log_path.open("wb") as log,
            _process(_command(binary, config, workdir, address), log) as process,
        ):
            _wait_until_scraped(server, process, len(targets))
            yield server


def _config(targets: Sequence[str], job: str) -> dict[str, Any]:
    scrape = {"job_name": job, "static_configs": [{"targets": list(targets)}]}
    interval = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    return {"global": interval, "scrape_configs": [scrape]}


def _command(binary: str, config: Path, workdir: Path, address: str) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={address}",
        "--enable-feature=exemplar-storage",
        "--log.level=warn",
    ]


@contextmanager
def _process(command: list[str], log: Any) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_until_scraped(
    server: PrometheusServer, process: subprocess.Popen[bytes], count: int
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited early:\n{server.log()}")
        if _all_up(server, count):
            return
        time.sleep(_POLL)

    raise RuntimeError(f"prometheus scraped no target in time:\n{server.log()}")


def _all_up(server: PrometheusServer, count: int) -> bool:
    try:
        targets = server.targets()
    except (OSError, PromQLError):
        return False
    healthy = [t for t in targets if t["health"] == "up"]
    return len(healthy) == count
