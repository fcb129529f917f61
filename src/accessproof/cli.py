"""The ``accessproof`` command: the one place errors become exit statuses.

Exit statuses: 0 success, 1 a check failed (a drill stage, an unknown run), 2 bad
usage or configuration, 3 the engine's API could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import sqlite3
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from accessproof.catalog import CatalogError, check_config

if TYPE_CHECKING:
    from accessproof.server import Server
    from accessproof.settings import ServeSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

DEFAULT_API = "http://127.0.0.1:8080"


class CommandError(Exception):
    """A failure the command reports in one line and an exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        status: int = args.handler(args)
    except CommandError as error:
        print(f"accessproof: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        return 130
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accessproof",
        description="Prove that each Stripe event changed what the customer can do.",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("ACCESSPROOF_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the proof engine")
    serve.add_argument("--config", help="plan catalog (default ./accessproof.yaml)")
    serve.add_argument("--store", help="sqlite:///PATH (default) or postgresql://...")
    serve.add_argument(
        "--otlp-http", help="OTLP/HTTP listen HOST:PORT (127.0.0.1:4318)"
    )
    serve.add_argument(
        "--otlp-grpc", help="OTLP/gRPC listen HOST:PORT (127.0.0.1:4317)"
    )
    serve.add_argument(
        "--http", help="API, pages and /metrics HOST:PORT (127.0.0.1:8080)"
    )
    serve.add_argument("--logs-endpoint", help="OTLP endpoint for incident log records")
    serve.add_argument("--logs-protocol", choices=["grpc", "http"])
    serve.add_argument(
        "--behind-proxy",
        action="store_true",
        default=None,
        help="allow listening beyond loopback without tokens (a proxy authenticates)",
    )
    serve.add_argument(
        "--ready-file",
        help="write the bound addresses here as JSON once listening (for scripts)",
    )
    serve.set_defaults(handler=_serve)

    runs = commands.add_parser("runs", help="read runs").add_subparsers(
        dest="runs_command", required=True
    )
    show = runs.add_parser("show", help="show one run by Stripe event id")
    show.add_argument("event_id")
    _api_options(show)
    show.set_defaults(handler=_runs_show)

    incidents = commands.add_parser("incidents", help="read incidents").add_subparsers(
        dest="incidents_command", required=True
    )
    listing = incidents.add_parser("list", help="list incidents")
    listing.add_argument(
        "--state", default="open", choices=["open", "acknowledged", "resolved", "all"]
    )
    listing.add_argument("--reason")
    listing.add_argument("--event-type")
    listing.add_argument("--limit", type=int, default=50)
    _api_options(listing)
    listing.set_defaults(handler=_incidents_list)

    ack = incidents.add_parser("ack", help="acknowledge an incident")
    ack.add_argument("incident_id")
    ack.add_argument("--by", default=os.environ.get("USER", "operator"))
    _api_options(ack)
    ack.set_defaults(handler=_incidents_ack)

    check = commands.add_parser("check-config", help="validate a plan catalog file")
    check.add_argument("file")
    check.set_defaults(handler=_check_config)

    _add_optional_commands(commands)
    return parser


def _add_optional_commands(commands: Any) -> None:
    """Add ``drill`` and ``demo``, which live in their own modules."""
    from accessproof.drill.cli import add_demo_command, add_drill_command

    add_drill_command(commands)
    add_demo_command(commands)


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        default=os.environ.get("ACCESSPROOF_API", DEFAULT_API),
        help=f"engine URL (default {DEFAULT_API} or $ACCESSPROOF_API)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _serve(args: argparse.Namespace) -> int:
    from accessproof.settings import ServeSettings
    from accessproof.store import StoreURLError
    from accessproof.store.sqlite import StoreInUseError

    flags = {
        "config": args.config,
        "store": args.store,
        "otlp_http": args.otlp_http,
        "otlp_grpc": args.otlp_grpc,
        "http": args.http,
        "logs_endpoint": args.logs_endpoint,
        "logs_protocol": args.logs_protocol,
        "behind_proxy": args.behind_proxy,
        "ready_file": args.ready_file,
    }
    try:
        settings = ServeSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as error:
        raise CommandError(_settings_problems(error), EXIT_USAGE) from None
    try:
        asyncio.run(_serve_until_stopped(settings))
    except (CatalogError, StoreURLError, StoreInUseError) as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    return EXIT_OK


async def _serve_until_stopped(settings: ServeSettings) -> None:
    """Open the store, bind the listeners, serve until SIGINT or SIGTERM.

    Opening (in the server's constructor) and binding (in ``start()``) are
    apart so that each failure is reported as what it is.
    """
    import signal

    server = _open_server(settings)
    try:
        await server.start()
    except (OSError, RuntimeError) as error:
        await server.stop()
        raise CommandError(_start_failure(settings, error), EXIT_USAGE) from None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        logging.getLogger(__name__).info("shutting down")
        await server.stop()


def _open_server(settings: ServeSettings) -> Server:
    """Build the server, which loads the catalog and opens the store."""
    from accessproof.server import Server
    from accessproof.store import redacted_url

    try:
        return Server(settings)
    except (OSError, sqlite3.Error) as error:
        problem = str(error)
    except Exception as error:
        if not _is_database_error(error):
            raise
        problem = " ".join(str(error).split())
    raise CommandError(
        f"cannot open store {redacted_url(settings.store)}: {problem}", EXIT_USAGE
    )


def _is_database_error(error: Exception) -> bool:
    """Whether ``error`` is psycopg's, without importing psycopg when absent."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(error, psycopg.Error)


def _start_failure(settings: ServeSettings, error: Exception) -> str:
    ready_file = settings.ready_file
    if isinstance(error, OSError) and ready_file and error.filename == str(ready_file):
        return f"cannot write --ready-file {ready_file}: {error.strerror}"
    return f"cannot listen: {error}"


def _settings_problems(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "settings"
        lines.append(f"{where}: {problem['msg']}")
    return "invalid settings: " + "; ".join(lines)


def _check_config(args: argparse.Namespace) -> int:
    problems = check_config(args.file)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.file}: ok")
    return EXIT_OK


def _runs_show(args: argparse.Namespace) -> int:
    quoted = urllib.parse.quote(args.event_id, safe="")
    run = api_get(args.api, f"/api/v1/runs/{quoted}")
    if args.json:
        print(json.dumps(run, indent=2))
        return EXIT_OK
    print(format_run(run))
    return EXIT_OK


def _incidents_list(args: argparse.Namespace) -> int:
    query = {"state": args.state, "limit": str(args.limit)}
    if args.reason:
        query["reason"] = args.reason
    if args.event_type:
        query["event_type"] = args.event_type
    page = api_get(args.api, "/api/v1/incidents?" + urllib.parse.urlencode(query))
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    print(format_incidents(page.get("incidents", [])))
    return EXIT_OK


def _incidents_ack(args: argparse.Namespace) -> int:
    quoted = urllib.parse.quote(args.incident_id, safe="")
    incident = api_request(
        args.api, f"/api/v1/incidents/{quoted}/ack", body={"by": args.by}
    )
    if args.json:
        print(json.dumps(incident, indent=2))
    else:
        print(f"{incident['id']}: acknowledged by {incident['acknowledged_by']}")
    return EXIT_OK


def api_get(api: str, path: str) -> Any:
    """GET a path of the engine's API and return the decoded JSON."""
    return api_request(api, path)


def api_request(api: str, path: str, body: Any = None) -> Any:
    """Call the engine's API (POST when ``body`` is given) and decode its JSON."""
    url = _checked_api(api).rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    method = "GET" if body is None else "POST"
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    token = os.environ.get("ACCESSPROOF_API_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise CommandError(_http_error(error)) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CommandError(
            f"cannot reach the engine at {api}: {reason}", EXIT_UNREACHABLE
        ) from None
    except http.client.HTTPException as error:
        raise CommandError(
            f"no HTTP answer from {api} ({type(error).__name__}): is --api the "
            "engine's API URL?",
            EXIT_UNREACHABLE,
        ) from None
    except ValueError:
        raise CommandError(
            f"{api} answered without JSON: is --api the engine's API URL?",
            EXIT_UNREACHABLE,
        ) from None


def _checked_api(api: str) -> str:
    """Return ``api`` if it is an http(s) URL with a host and a valid port."""
    try:
        parts = urllib.parse.urlsplit(api)
        port = parts.port
    except ValueError as error:
        raise CommandError(f"--api {api!r}: {error}", EXIT_USAGE) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise CommandError(
            f"--api {api!r} must be an http(s) URL with a host and a port, such as "
            f"{DEFAULT_API}",
            EXIT_USAGE,
        )
    return api


def _http_error(error: urllib.error.HTTPError) -> str:
    try:
        message = json.load(error)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = error.reason
    return f"{error.code} from the engine: {message}"


def format_run(run: dict[str, Any]) -> str:
    """Render a run resource as a short human-readable report."""
    expected = run.get("expected") or {}
    observed = run.get("observed") or {}
    lines = [
        f"run        {run['event_id']}  ({run.get('event_type') or 'unknown type'})",
        f"state      {run['state']}" + ("  [drill]" if run.get("drill") else ""),
        f"customer   {run.get('customer_id') or '-'}",
        f"expected   {_access(expected)}",
        f"observed   {_access(observed)}",
        "steps      " + (_steps(run.get("steps") or []) or "none yet"),
    ]
    for incident in run.get("incidents", []):
        lines.append(
            f"incident   {incident['id']}  {incident['reason']}  {incident['state']}"
        )
        lines.append(f"           {incident.get('summary', '')}")
    return "\n".join(lines)


def _steps(steps: list[dict[str, Any]]) -> str:
    """'webhook ok, entitlement failed x2': each step and how its attempts went."""
    shown = []
    for step in steps:
        attempts = step.get("attempts") or []
        ok = any(attempt.get("ok") for attempt in attempts)
        extra = f" x{len(attempts)}" if len(attempts) > 1 else ""
        shown.append(f"{step['step']} {'ok' if ok else 'failed'}{extra}")
    return ", ".join(shown)


def _access(state: dict[str, Any]) -> str:
    plan = state.get("plan") or "-"
    access = state.get("access") or "-"
    features = state.get("features")
    shown = ", ".join(features) if features else "-"
    return f"plan {plan}, access {access}, features {shown}"


def format_incidents(incidents: list[dict[str, Any]]) -> str:
    """Render incidents as a fixed-width table, newest first."""
    if not incidents:
        return "no incidents"
    header = ("ID", "REASON", "STATE", "EVENT", "CUSTOMER", "OPENED", "DRILL")
    rows = [
        (
            i["id"],
            i["reason"],
            i["state"],
            i["event_id"],
            i.get("customer_id") or "-",
            str(i.get("opened_at", ""))[:19],
            "yes" if i.get("drill") else "",
        )
        for i in incidents
    ]
    widths = [max(len(str(row[n])) for row in [header, *rows]) for n in range(7)]
    return "\n".join(
        "  ".join(
            str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in [header, *rows]
    )


if __name__ == "__main__":
    sys.exit(main())
