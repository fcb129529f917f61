"""The ``store`` fixture: each contract test runs on SQLite and on PostgreSQL.

The PostgreSQL store of a test lives in a schema of its own, dropped afterwards.
The server is ``ACCESSPROOF_TEST_POSTGRES_URL`` (default: the local one); when it
cannot be reached the test is skipped, or fails under CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from accessproof.store import Store
from accessproof.store.postgresql import PostgresStore
from accessproof.store.sqlite import SqliteStore
from tests.conftest import require

POSTGRES_URL = os.environ.get(
    "ACCESSPROOF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


class Opener:
    """Opens store instances over one database, and closes them all at the end."""

    def __init__(self, kind: str, where: str) -> None:
        self.kind = kind
        self.where = where
        self._opened: list[Store] = []

    def open(self, **options: Any) -> Store:
        """Open one more instance over the same file or schema."""
        store: Store
        if self.kind == "sqlite":
            store = SqliteStore(self.where, **options)
        else:
            store = PostgresStore(POSTGRES_URL, schema=self.where, **options)
        return self.track(store)

    def track(self, store: Store) -> Store:
        """Close ``store`` with the others at the end of the test."""
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema, dropped with everything in it afterwards."""
    name = f"test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        require(False, "PostgreSQL on 127.0.0.1:5432")
        raise
    with admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        try:
            yield name
        finally:
            admin.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name))
            )


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens instances of the backend under test, all over one database."""
    if request.param == "sqlite":
        opener = Opener("sqlite", str(tmp_path / "accessproof.db"))
    else:
        opener = Opener("postgresql", request.getfixturevalue("pg_schema"))
    yield opener
    opener.close_all()


@pytest.fixture
def store(opener: Opener) -> Store:
    """A store of the backend under test, over an empty database."""
    return opener.open()


@pytest.fixture
def pg_opener(pg_schema: str) -> Iterator[Opener]:
    """Opens PostgreSQL stores over one fresh schema."""
    opener = Opener("postgresql", pg_schema)
    yield opener
    opener.close_all()
