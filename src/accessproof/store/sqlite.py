"""The embedded default store: one SQLite file in WAL mode.

One engine process owns the file. Writes go through one connection behind
``_write_lock``; reads for the API use a second connection behind ``_read_lock``,
which WAL lets run beside a write. ``synchronous=FULL`` makes each committed
transaction survive a power cut, not only a process crash: the engine batches a
whole OTLP request into one transaction, so that costs one sync per request.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from accessproof.conventions import IncidentState, Reason, RunState
from accessproof.engine.incidents import Incident
from accessproof.engine.model import (
    Run,
    facts_from_json,
    facts_to_json,
    run_from_json,
    run_to_json,
)
from accessproof.store.base import (
    PURGEABLE_STATES,
    ExportKind,
    IncidentQuery,
    OutboxEntry,
    Subject,
    acknowledged,
    one_page,
    parse_cursor,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    event_id    TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    drill       INTEGER NOT NULL,
    deadline_ns INTEGER,
    decided_ns  INTEGER,
    subject     TEXT,
    doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_deadline ON runs (deadline_ns)
    WHERE deadline_ns IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_decided ON runs (decided_ns)
    WHERE decided_ns IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_state ON runs (state);
CREATE INDEX IF NOT EXISTS runs_subject ON runs (subject, decided_ns)
    WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS incidents (
    id          TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    state       TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    drill       INTEGER NOT NULL,
    opened_ns   INTEGER NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_event ON incidents (event_id);
CREATE INDEX IF NOT EXISTS incidents_listing ON incidents (opened_ns DESC, id DESC);
CREATE TABLE IF NOT EXISTS subjects (
    subject  TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    facts    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL,
    incident TEXT NOT NULL
);
"""


def _dump_run(run: Run) -> tuple[object, ...]:
    return (
        run.event_id,
        run.state.value,
        run.event_type,
        int(run.drill),
        run.deadline_ns,
        run.decided_ns,
        run.subject,
        run_to_json(run),
    )


def _chunks(keys: Collection[str], size: int = 500) -> Iterator[list[str]]:
    """Split keys into lists short enough for one ``IN (...)`` clause."""
    keys = list(keys)
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _load_run(doc: str) -> Run:
    return run_from_json(doc)


def _opened_ns(incident: Incident) -> int:
    return int(incident.opened_at.timestamp() * 1_000_000_000)


class _SqliteTransaction:
    """A ``BEGIN IMMEDIATE`` transaction on the writer connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def load_runs(self, event_ids: Collection[str]) -> dict[str, Run]:
        found: dict[str, Run] = {}
        for chunk in _chunks(event_ids):
            rows = self._db.execute(
                "SELECT doc FROM runs "  # noqa: S608
                f"WHERE event_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for (doc,) in rows:
                run = _load_run(doc)
                found[run.event_id] = run
        return found

    def claim_due(self, now_ns: int, limit: int) -> list[Run]:
        rows = self._db.execute(
            "SELECT doc FROM runs WHERE deadline_ns <= ? ORDER BY deadline_ns LIMIT ?",
            (now_ns, limit),
        )
        return [_load_run(doc) for (doc,) in rows]

    def recent_runs(self, subject: str, limit: int) -> list[Run]:
        rows = self._db.execute(
            "SELECT doc FROM runs WHERE subject = ? AND decided_ns IS NOT NULL "
            "ORDER BY decided_ns DESC LIMIT ?",
            (subject, limit),
        )
        return [_load_run(doc) for (doc,) in rows]

    def load_subjects(self, keys: Collection[str]) -> dict[str, Subject]:
        found: dict[str, Subject] = {}
        for chunk in _chunks(keys):
            rows = self._db.execute(
                "SELECT subject, event_id, facts FROM subjects "  # noqa: S608
                f"WHERE subject IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for key, event_id, facts in rows:
                found[key] = Subject(key, event_id, facts_from_json(facts))
        return found

    def load_incidents(self, ids: Collection[str]) -> dict[str, Incident]:
        found: dict[str, Incident] = {}
        for incident_id in ids:
            row = self._db.execute(
                "SELECT doc FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
            if row is not None:
                found[incident_id] = Incident.model_validate_json(row[0])
        return found

    def save_runs(self, runs: Collection[Run]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [_dump_run(run) for run in runs],
        )

    def save_subjects(self, subjects: Collection[Subject]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO subjects VALUES (?, ?, ?)",
            [
                (
                    s.key,
                    s.event_id,
                    facts_to_json(s.facts),
                )
                for s in subjects
            ],
        )

    def save_incidents(self, incidents: Collection[Incident]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i.id,
                    i.event_id,
                    i.reason.value,
                    i.state.value,
                    i.event_type,
                    int(i.drill),
                    _opened_ns(i),
                    i.model_dump_json(),
                )
                for i in incidents
            ],
        )

    def enqueue_export(self, kind: ExportKind, incident: Incident) -> None:
        self._db.execute(
            "INSERT INTO outbox (kind, incident) VALUES (?, ?)",
            (kind.value, incident.model_dump_json()),
        )


class SqliteStore:
    """Runs, incidents and the export outbox in one SQLite file."""

    exclusive = True

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._owner: TextIO | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._owner = _claim(Path(self.path + ".lock"))
        try:
            self._writer = self._connect()
            self._writer.executescript(_SCHEMA)
            self._reader = self._connect() if self.path != ":memory:" else self._writer
        except BaseException:
            if self._owner is not None:
                self._owner.close()
            raise
        self._write_lock = threading.RLock()
        self._read_lock = (
            self._write_lock if self.path == ":memory:" else (threading.Lock())
        )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        return db

    @contextmanager
    def transaction(self) -> Iterator[_SqliteTransaction]:
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(self._writer)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def _read(
        self, sql: str, params: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        with self._read_lock:
            return list(self._reader.execute(sql, params))

    def get_run(self, event_id: str) -> Run | None:
        rows = self._read("SELECT doc FROM runs WHERE event_id = ?", (event_id,))
        return _load_run(str(rows[0][0])) if rows else None

    def get_incident(self, incident_id: str) -> Incident | None:
        rows = self._read("SELECT doc FROM incidents WHERE id = ?", (incident_id,))
        return Incident.model_validate_json(str(rows[0][0])) if rows else None

    def incidents_of(self, event_id: str) -> list[Incident]:
        rows = self._read(
            "SELECT doc FROM incidents WHERE event_id = ? ORDER BY opened_ns, id",
            (event_id,),
        )
        return [Incident.model_validate_json(str(doc)) for (doc,) in rows]

    def list_incidents(self, query: IncidentQuery) -> tuple[list[Incident], str | None]:
        clauses: list[str] = []
        params: list[object] = []
        if query.states is not None:
            clauses.append(f"state IN ({','.join('?' * len(query.states))})")
            params.extend(sorted(state.value for state in query.states))
        if query.reason is not None:
            clauses.append("reason = ?")
            params.append(query.reason.value)
        if query.event_type is not None:
            clauses.append("event_type = ?")
            params.append(query.event_type)
        if query.drill is not None:
            clauses.append("drill = ?")
            params.append(int(query.drill))
        if query.cursor is not None:
            opened, incident_id = parse_cursor(query.cursor)
            clauses.append("(opened_ns < ? OR (opened_ns = ? AND id < ?))")
            params.extend((opened, opened, incident_id))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            f"SELECT doc FROM incidents {where} "  # noqa: S608
            "ORDER BY opened_ns DESC, id DESC LIMIT ?",
            (*params, query.limit + 1),
        )
        incidents = [Incident.model_validate_json(str(doc)) for (doc,) in rows]
        return one_page(incidents, query.limit)

    def acknowledge(self, incident_id: str, by: str, at_ns: int) -> Incident | None:
        with self.transaction() as tx:
            incident = tx.load_incidents([incident_id]).get(incident_id)
            if incident is None or incident.state is not IncidentState.OPEN:
                return incident
            incident = acknowledged(incident, by, at_ns)
            tx.save_incidents([incident])
            return incident

    def open_incident_counts(self) -> dict[Reason, int]:
        rows = self._read(
            "SELECT reason, COUNT(*) FROM incidents WHERE state != ? GROUP BY reason",
            (IncidentState.RESOLVED.value,),
        )
        return {Reason(str(reason)): int(str(count)) for reason, count in rows}

    def open_run_count(self) -> int:
        rows = self._read(
            "SELECT COUNT(*) FROM runs WHERE state = ?", (RunState.OPEN.value,)
        )
        return int(str(rows[0][0]))

    def pending_exports(self, limit: int) -> list[OutboxEntry]:
        rows = self._read(
            "SELECT seq, kind, incident FROM outbox ORDER BY seq LIMIT ?", (limit,)
        )
        return [
            OutboxEntry(
                int(str(seq)),
                ExportKind(str(kind)),
                Incident.model_validate_json(str(doc)),
            )
            for seq, kind, doc in rows
        ]

    def exported(self, seqs: Collection[int]) -> None:
        with self._write_lock:
            self._writer.executemany(
                "DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in seqs]
            )

    def purge(self, decided_before_ns: int) -> int:
        with self.transaction() as tx:
            db = tx._db
            params = (decided_before_ns, *PURGEABLE_STATES)
            db.execute(
                "DELETE FROM incidents WHERE event_id IN (SELECT event_id FROM runs "
                "WHERE decided_ns < ? AND state IN (?, ?, ?))",
                params,
            )
            cursor = db.execute(
                "DELETE FROM runs WHERE decided_ns < ? AND state IN (?, ?, ?)", params
            )
            return cursor.rowcount

    def close(self) -> None:
        with self._write_lock:
            if self._reader is not self._writer:
                self._reader.close()
            self._writer.close()
            if self._owner is not None:
                self._owner.close()
                self._owner = None


def _claim(lock_path: Path) -> TextIO:
    """Hold an exclusive lock on the store for this process, or refuse.

    The engine caches open runs of its SQLite store in memory, so a second engine
    on the same file would decide from stale runs. The operating system releases
    the lock when the process ends, however it ends.
    """
    owner = lock_path.open("a+")
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner.seek(0)
        holder = owner.read().strip() or "another process"
        owner.close()
        raise StoreInUseError(
            f"store {lock_path.with_suffix('')} is in use by {holder}: one engine "
            "per SQLite file (use PostgreSQL for several replicas)"
        ) from None
    owner.seek(0)
    owner.truncate()
    owner.write(f"accessproof process {os.getpid()}\n")
    owner.flush()
    return owner


class StoreInUseError(RuntimeError):
    """The SQLite store is held by another engine process."""
