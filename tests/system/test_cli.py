"""The command line, through its entry point, against a real engine."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from accessproof.cli import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, main
from tests.conftest import require
from tests.drill.stubs import not_http, stub_http
from tests.harness import LOOPBACK_ANY_PORT, EngineThread
from tests.scenario import CATALOG, PRO, Scenario, exporting_to

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> EngineThread:
    """An engine holding one proven run and one incident."""
    folder = tmp_path_factory.mktemp("cli")
    running = EngineThread(folder, catalog=CATALOG).__enter__()
    with exporting_to(running) as provider:
        scenario = Scenario(running, provider)
        scenario.run("healthy", observe=PRO)
        scenario.run("broken", observe={**PRO, "plan": "free"})
        scenario.wait("healthy", "proven")
        scenario.wait("broken", "incident")
    running.scenario = scenario  # type: ignore[attr-defined]
    yield running  # type: ignore[misc]
    running.stop()


def test_check_config_accepts_the_example_catalog(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The shipped example catalog is valid."""
    status = main(["check-config", "examples/accessproof.yaml"])

    assert status == EXIT_OK
    assert capsys.readouterr().out.strip() == "examples/accessproof.yaml: ok"


def test_check_config_names_file_line_field_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken catalog exits 2 with a precise message per problem."""
    broken = tmp_path / "accessproof.yaml"
    broken.write_text(
        "plans:\n  pro:\n    prices: [price_1Pro]\n"
        "steps:\n  default:\n    deadlines: {entitlement: soon}\n"
    )

    status = main(["check-config", str(broken)])

    err = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert f"{broken}:6" in err
    assert "steps.default.deadlines.entitlement" in err
    assert "'soon'" in err


def test_runs_show_prints_a_proven_run(
    engine: EngineThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """The human view names the state and the expected and observed plans."""
    event_id = engine.scenario.event_ids["healthy"]  # type: ignore[attr-defined]

    status = main(["runs", "show", event_id, "--api", engine.api_url])

    out = capsys.readouterr().out
    assert status == EXIT_OK
    assert f"run        {event_id}" in out
    assert "state      proven" in out
    assert "expected   plan pro, access granted" in out
    assert "steps      webhook ok, reconcile ok, entitlement ok, notify ok" in out


def test_runs_show_json_is_the_run_resource(
    engine: EngineThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints the API's run resource, incidents included."""
    event_id = engine.scenario.event_ids["broken"]  # type: ignore[attr-defined]

    status = main(["runs", "show", event_id, "--api", engine.api_url, "--json"])

    run = json.loads(capsys.readouterr().out)
    assert status == EXIT_OK
    assert run["event_id"] == event_id
    assert run["state"] == "incident"
    assert [i["reason"] for i in run["incidents"]] == ["access_mismatch"]


def test_runs_show_of_an_unknown_event_fails_with_the_engines_word(
    engine: EngineThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown event id is exit 1 and a one-line message."""
    status = main(["runs", "show", "evt_1Unknown", "--api", engine.api_url])

    assert status == EXIT_FAILED
    assert capsys.readouterr().err.startswith("accessproof: 404 from the engine")


def test_incidents_list_shows_the_open_incident(
    engine: EngineThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table lists open incidents with reason and event id."""
    event_id = engine.scenario.event_ids["broken"]  # type: ignore[attr-defined]

    status = main(["incidents", "list", "--api", engine.api_url])

    out = capsys.readouterr().out.splitlines()
    assert status == EXIT_OK
    assert out[0].split() == [
        "ID", "REASON", "STATE", "EVENT", "CUSTOMER", "OPENED", "DRILL"
    ]  # fmt: skip
    assert any("access_mismatch" in line and event_id in line for line in out[1:])


def test_incidents_ack_records_who(
    engine: EngineThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """Acknowledging through the CLI is visible in the JSON listing."""
    main(["incidents", "list", "--api", engine.api_url, "--json"])
    (incident,) = json.loads(capsys.readouterr().out)["incidents"]

    status = main(["incidents", "ack", incident["id"], "--by", "alice", "--api",
                   engine.api_url])  # fmt: skip

    assert status == EXIT_OK
    assert capsys.readouterr().out.strip() == f"{incident['id']}: acknowledged by alice"


def test_an_unreachable_engine_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """No engine at the URL: a clear message, not a traceback."""
    status = main(["incidents", "list", "--api", "http://127.0.0.1:9"])

    assert status == EXIT_UNREACHABLE
    assert "cannot reach the engine at http://127.0.0.1:9" in capsys.readouterr().err


def test_serve_refuses_a_public_listener_without_tokens(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listening beyond loopback needs a token or an explicit proxy flag."""
    monkeypatch.delenv("ACCESSPROOF_API_TOKEN", raising=False)

    status = main(["serve", "--http", "0.0.0.0:8080"])

    assert status == EXIT_USAGE
    assert "listens beyond loopback without a token" in capsys.readouterr().err


def test_serve_refuses_a_broken_catalog_and_does_not_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Configuration errors stop the engine before it binds a port."""
    broken = tmp_path / "accessproof.yaml"
    broken.write_text("plans:\n  pro:\n    prices: price_1Pro\n")

    status = main(
        ["serve", "--config", str(broken), "--store", f"sqlite:///{tmp_path}/e.db"]
    )

    err = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert f"{broken}:3" in err
    assert "plans.pro.prices" in err


def test_serve_refuses_a_store_another_engine_holds(
    engine: EngineThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """One engine per SQLite file: a second one says who holds it."""
    status = main(["serve", "--store", engine.settings.store, "--http", "127.0.0.1:0"])

    err = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert "is in use by accessproof process" in err
    assert "one engine per SQLite file" in err


def test_serve_refuses_an_unknown_store_scheme(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A store URL of another kind is named in the error."""
    status = main(["serve", "--store", "mysql://localhost/accessproof"])

    assert status == EXIT_USAGE
    assert "the scheme must be sqlite:// or postgresql://" in capsys.readouterr().err


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    "api", ["http://127.0.0.1:abc", "http://[::1", "127.0.0.1:8080", "http://:8080"]
)
def test_a_malformed_api_url_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], api: str
) -> None:
    """A bad port, a broken IPv6 host or a missing scheme exits 2, naming --api."""
    status = main(["runs", "show", "evt_1", "--api", api])

    assert status == EXIT_USAGE
    assert f"--api {api!r}" in one_line_error(capsys)


def test_an_api_answering_html_is_not_taken_for_the_engine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 200 without JSON exits 3 and asks whether --api is the engine's URL."""
    with stub_http({"/": (200, "<html><body>Grafana</body></html>")}) as other:
        status = main(["runs", "show", "evt_1", "--api", other.url])

    assert status == EXIT_UNREACHABLE
    assert "answered without JSON" in one_line_error(capsys)


def test_an_api_port_that_does_not_speak_http_is_exit_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A non-HTTP server at --api is reported in one line, not a traceback."""
    with not_http() as url:
        status = main(["incidents", "list", "--api", url])

    assert status == EXIT_UNREACHABLE
    assert f"no HTTP answer from {url}" in one_line_error(capsys)


def serve(store: str, *listen: str) -> int:
    """Run ``accessproof serve`` on any free ports, with the given store."""
    ports = {"--otlp-http": LOOPBACK_ANY_PORT, "--otlp-grpc": LOOPBACK_ANY_PORT}
    ports["--http"] = LOOPBACK_ANY_PORT
    ports.update(zip(listen[::2], listen[1::2], strict=True))
    return main(["serve", "--store", store, *(x for kv in ports.items() for x in kv)])


def test_serve_names_a_postgresql_store_it_cannot_connect_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused database connection exits 2 naming the store, without the user."""
    require(importlib.util.find_spec("psycopg") is not None, "psycopg")

    status = serve("postgresql://someone@127.0.0.1:1/db")

    err = one_line_error(capsys)
    assert status == EXIT_USAGE
    assert err.startswith("accessproof: cannot open store postgresql://127.0.0.1:1/db:")
    assert "someone" not in err


def test_serve_without_psycopg_says_which_extra_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A postgresql:// store without psycopg installed points at the extra."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "accessproof.store.postgresql", raising=False)

    status = serve("postgresql://127.0.0.1:1/db")

    assert status == EXIT_USAGE
    assert "pip install 'accessproof[postgresql]'" in one_line_error(capsys)


def test_serve_names_a_sqlite_store_whose_folder_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unusable SQLite path is a store problem, not a listening one."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")

    status = serve(f"sqlite:///{blocker}/e.db")

    err = one_line_error(capsys)
    assert status == EXIT_USAGE
    assert err.startswith(f"accessproof: cannot open store sqlite:///{blocker}/e.db: ")


def test_serve_names_a_sqlite_store_that_is_not_a_database(tmp_path: Path) -> None:
    """A file that is not SQLite exits 2 naming the store, with no traceback."""
    other = tmp_path / "notes.db"
    other.write_text("not a database\n" * 100)

    command = [sys.executable, "-m", "accessproof", "serve"]
    command += ["--store", f"sqlite:///{other}", "--http", LOOPBACK_ANY_PORT]
    command += ["--otlp-http", LOOPBACK_ANY_PORT, "--otlp-grpc", LOOPBACK_ANY_PORT]

    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )

    assert done.returncode == EXIT_USAGE, done.stderr
    assert "Traceback" not in done.stderr
    assert f"accessproof: cannot open store sqlite:///{other}: " in done.stderr


@pytest.fixture
def taken_port() -> Iterator[str]:
    """A loopback HOST:PORT that another socket is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield f"127.0.0.1:{holder.getsockname()[1]}"


@pytest.mark.parametrize("flag", ["--http", "--otlp-grpc"])
def test_serve_says_it_cannot_listen_when_a_port_is_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], taken_port: str, flag: str
) -> None:
    """A listener that cannot bind is reported as such, in one line."""
    status = serve(f"sqlite:///{tmp_path}/e.db", flag, taken_port)

    assert status == EXIT_USAGE
    assert one_line_error(capsys).startswith("accessproof: cannot listen: ")
