"""The shared store: PostgreSQL, for several engine replicas on one database.

Every replica may take any span, so the transaction locks what it reads:

- ``load_runs`` first takes a transaction advisory lock per event id (a run that
  does not exist yet has no row to lock), in hash order, then locks the rows with
  ``FOR UPDATE`` in id order. Two replicas folding spans of one event serialise,
  and the second sees the first's write.
- ``claim_due`` locks due rows with ``FOR UPDATE SKIP LOCKED``: a run another
  replica holds is left to it, so no deadline fires twice.
- ``load_subjects`` takes an advisory lock per subject key, likewise.
- ``load_incidents`` locks incident rows, so an acknowledgement and a resolution
  of one incident do not overwrite each other.

Lock order inside one transaction is runs, then subjects, then incidents. A
transaction that loads runs twice (the engine does when a newer event supersedes
an older one) can still meet another in a cycle; PostgreSQL then aborts one with
``DeadlockDetected`` and its caller retries the request.

Exports are claimed, not only read: :meth:`PostgresStore.pending_exports` leases
the entries it returns for ``export_lease_seconds`` (on the database clock), so
two replicas never export the same entry, and an entry whose exporter died is
offered again once its lease lapses. :meth:`PostgresStore.exported` deletes them.

Documents are stored as JSON text, not ``jsonb``: ``jsonb`` refuses the ``\\u0000``
escape, and span attribute values may carry it.

Connections come from a small pool of this module's own (``psycopg_pool`` is not
a dependency); each is lent to one thread at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import QueryNoTemplate as Query

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

Row = tuple[Any, ...]
_Connection = psycopg.Connection[Row]

#: Seeds of ``hashtextextended`` that keep run and subject advisory locks apart.
_RUN_LOCK_SEED = 1
_SUBJECT_LOCK_SEED = 2
#: Advisory lock keys held while creating the schema and while purging.
_SCHEMA_LOCK = 0x6163_7072_6F6F_6601
_PURGE_LOCK = 0x6163_7072_6F6F_6602

_PAGE = 1000

_SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS runs (
        event_id    text COLLATE "C" PRIMARY KEY,
        state       text NOT NULL,
        event_type  text NOT NULL,
        drill       boolean NOT NULL,
        deadline_ns bigint,
        decided_ns  bigint,
        subject     text,
        doc         text NOT NULL
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS runs_subject ON runs (subject, decided_ns)
        WHERE subject IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS runs_deadline ON runs (deadline_ns)
        WHERE deadline_ns IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS runs_decided ON runs (decided_ns)
        WHERE decided_ns IS NOT NULL
    """,
    "CREATE INDEX IF NOT EXISTS runs_state ON runs (state)",
    """
    CREATE TABLE IF NOT EXISTS incidents (
        id          text COLLATE "C" PRIMARY KEY,
        event_id    text NOT NULL,
        reason      text NOT NULL,
        state       text NOT NULL,
        event_type  text NOT NULL,
        drill       boolean NOT NULL,
        opened_ns   bigint NOT NULL,
        doc         text NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS incidents_event ON incidents (event_id)",
    """
    CREATE INDEX IF NOT EXISTS incidents_listing
        ON incidents (opened_ns DESC, id DESC)
    """,
    """
    CREATE TABLE IF NOT EXISTS subjects (
        subject  text PRIMARY KEY,
        event_id text NOT NULL,
        facts    text NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS outbox (
        seq           bigserial PRIMARY KEY,
        kind          text NOT NULL,
        incident      text NOT NULL,
        claimed_until timestamptz
    )
    """,
]


def _run_row(run: Run) -> tuple[object, ...]:
    return (
        run.event_id,
        run.state.value,
        run.event_type,
        run.drill,
        run.deadline_ns,
        run.decided_ns,
        run.subject,
        run_to_json(run),
    )


def _incident_row(incident: Incident) -> tuple[object, ...]:
    return (
        incident.id,
        incident.event_id,
        incident.reason.value,
        incident.state.value,
        incident.event_type,
        incident.drill,
        int(incident.opened_at.timestamp() * 1_000_000_000),
        incident.model_dump_json(),
    )


def _load_run(doc: str) -> Run:
    return run_from_json(doc)


class _Pool:
    """At most ``size`` connections, each lent to one thread at a time.

    A connection that comes back broken, closed or inside a transaction is
    dropped, and a new one is opened when next needed.
    """

    def __init__(
        self, connect: Callable[[], _Connection], size: int, timeout: float
    ) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._idle: list[_Connection] = []
        self._opened = 0
        self._closed = False
        self._ready = threading.Condition()

    @contextmanager
    def connection(self) -> Iterator[_Connection]:
        """Lend a connection until the block exits."""
        conn = self._take()
        try:
            yield conn
        finally:
            self._give(conn)

    def _take(self) -> _Connection:
        with self._ready:
            if not self._ready.wait_for(self._available, self._timeout):
                raise TimeoutError(
                    f"no PostgreSQL connection free within {self._timeout} s"
                )
            if self._closed:
                raise RuntimeError("the store is closed")
            if self._idle:
                return self._idle.pop()
            self._opened += 1
        try:
            return self._connect()
        except BaseException:
            self._forget()
            raise

    def _available(self) -> bool:
        return self._closed or bool(self._idle) or self._opened < self._size

    def _give(self, conn: _Connection) -> None:
        healthy = (
            not conn.broken
            and not conn.closed
            and conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE
        )
        with self._ready:
            if healthy and not self._closed:
                self._idle.append(conn)
                self._ready.notify()
                return
        conn.close()
        self._forget()

    def _forget(self) -> None:
        with self._ready:
            self._opened -= 1
            self._ready.notify()

    def close(self) -> None:
        """Close idle connections now and lent ones when they come back."""
        with self._ready:
            self._closed = True
            idle, self._idle = self._idle, []
            self._opened -= len(idle)
            self._ready.notify_all()
        for conn in idle:
            conn.close()


class _PostgresTransaction:
    """One database transaction on one pooled connection."""

    def __init__(self, connection: _Connection) -> None:
        self._db = connection

    def load_runs(self, event_ids: Collection[str]) -> dict[str, Run]:
        ids = sorted(set(event_ids))
        if not ids:
            return {}

        _advisory_locks(self._db, ids, _RUN_LOCK_SEED)

        rows = self._db.execute(
            "SELECT doc FROM runs WHERE event_id = ANY(%s) "
            "ORDER BY event_id FOR UPDATE",
            (ids,),
        )
        runs = (_load_run(doc) for (doc,) in rows)
        return {run.event_id: run for run in runs}

    def claim_due(self, now_ns: int, limit: int) -> list[Run]:
        rows = self._db.execute(
            "SELECT doc FROM runs WHERE deadline_ns <= %s "
            "ORDER BY deadline_ns, event_id LIMIT %s FOR UPDATE SKIP LOCKED",
            (now_ns, limit),
        )
        return [_load_run(doc) for (doc,) in rows]

    def recent_runs(self, subject: str, limit: int) -> list[Run]:
        rows = self._db.execute(
            "SELECT doc FROM runs WHERE subject = %s AND decided_ns IS NOT NULL "
            "ORDER BY decided_ns DESC LIMIT %s",
            (subject, limit),
        )
        return [_load_run(doc) for (doc,) in rows]

    def load_subjects(self, keys: Collection[str]) -> dict[str, Subject]:
        ordered = sorted(set(keys))
        if not ordered:
            return {}

        _advisory_locks(self._db, ordered, _SUBJECT_LOCK_SEED)

        rows = self._db.execute(
            "SELECT subject, event_id, facts FROM subjects WHERE subject = ANY(%s) "
            "ORDER BY subject FOR UPDATE",
            (ordered,),
        )
        return {
            key: Subject(key, event_id, facts_from_json(facts))
            for key, event_id, facts in rows
        }

    def load_incidents(self, ids: Collection[str]) -> dict[str, Incident]:
        ordered = sorted(set(ids))
        if not ordered:
            return {}
        rows = self._db.execute(
            "SELECT id, doc FROM incidents WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (ordered,),
        )
        return {
            incident_id: Incident.model_validate_json(doc) for incident_id, doc in rows
        }

    def save_runs(self, runs: Collection[Run]) -> None:
        if not runs:
            return
        with self._db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO runs VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (event_id) DO UPDATE SET state = EXCLUDED.state, "
                "event_type = EXCLUDED.event_type, drill = EXCLUDED.drill, "
                "deadline_ns = EXCLUDED.deadline_ns, "
                "decided_ns = EXCLUDED.decided_ns, subject = EXCLUDED.subject, "
                "doc = EXCLUDED.doc",
                [_run_row(run) for run in runs],
            )

    def save_subjects(self, subjects: Collection[Subject]) -> None:
        if not subjects:
            return
        with self._db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO subjects VALUES (%s, %s, %s) "
                "ON CONFLICT (subject) DO UPDATE SET "
                "event_id = EXCLUDED.event_id, facts = EXCLUDED.facts",
                [(s.key, s.event_id, facts_to_json(s.facts)) for s in subjects],
            )

    def save_incidents(self, incidents: Collection[Incident]) -> None:
        if not incidents:
            return
        with self._db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO incidents VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET event_id = EXCLUDED.event_id, "
                "reason = EXCLUDED.reason, state = EXCLUDED.state, "
                "event_type = EXCLUDED.event_type, drill = EXCLUDED.drill, "
                "opened_ns = EXCLUDED.opened_ns, doc = EXCLUDED.doc",
                [_incident_row(incident) for incident in incidents],
            )

    def enqueue_export(self, kind: ExportKind, incident: Incident) -> None:
        self._db.execute(
            "INSERT INTO outbox (kind, incident) VALUES (%s, %s)",
            (kind.value, incident.model_dump_json()),
        )


def _advisory_locks(db: _Connection, keys: Sequence[str], seed: int) -> None:
    """Hold a transaction advisory lock per key, taken in hash order."""
    db.execute(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT "
        "hashtextextended(key, %s) AS k FROM unnest(%s::text[]) AS key ORDER BY k) "
        "AS locks",
        (seed, list(keys)),
    ).fetchall()


class PostgresStore:
    """Runs, incidents and the export outbox in one PostgreSQL database.

    ``schema`` puts the tables in that schema (created if missing) instead of
    the connection's ``search_path``. ``pool_size`` bounds open connections;
    ``export_lease_seconds`` is how long a claimed outbox entry stays hidden
    from other exporters.

    >>> store = PostgresStore("postgresql://postgres@127.0.0.1:5432/test")
    >>> with store.transaction() as tx:
    ...     tx.save_runs([run])
    """

    exclusive = False

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int = 4,
        pool_timeout: float = 30.0,
        export_lease_seconds: float = 30.0,
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, not {pool_size}")
        self.url = url
        self.schema = schema
        self.export_lease_seconds = export_lease_seconds
        self._pool = _Pool(self._connect, pool_size, pool_timeout)
        try:
            self._create_schema()
        except BaseException:
            self._pool.close()
            raise

    def _connect(self) -> _Connection:
        conn = psycopg.connect(self.url, autocommit=False)
        if self.schema is None:
            return conn

        try:
            conn.execute(
                sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))
            )
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_schema(self) -> None:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            if self.schema is not None:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(self.schema)
                    )
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.commit()

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTransaction]:
        with self._pool.connection() as conn:
            try:
                yield _PostgresTransaction(conn)
            except BaseException:
                _rollback(conn)
                raise
            conn.commit()

    def _read(self, query: Query, params: Sequence[object] = ()) -> list[Row]:
        """Run one query in a transaction of its own and return its rows."""
        with self._pool.connection() as conn:
            try:
                return conn.execute(query, params).fetchall()
            finally:
                _rollback(conn)

    def _write(self, query: Query, params: Sequence[object] = ()) -> list[Row]:
        """Run one statement in a transaction of its own; commit; return its rows."""
        with self._pool.connection() as conn:
            try:
                cursor = conn.execute(query, params)
                rows = cursor.fetchall() if cursor.description else []
                conn.commit()
            except BaseException:
                _rollback(conn)
                raise
        return rows

    def get_run(self, event_id: str) -> Run | None:
        rows = self._read("SELECT doc FROM runs WHERE event_id = %s", (event_id,))
        return _load_run(rows[0][0]) if rows else None

    def get_incident(self, incident_id: str) -> Incident | None:
        rows = self._read("SELECT doc FROM incidents WHERE id = %s", (incident_id,))
        return Incident.model_validate_json(rows[0][0]) if rows else None

    def incidents_of(self, event_id: str) -> list[Incident]:
        rows = self._read(
            "SELECT doc FROM incidents WHERE event_id = %s ORDER BY opened_ns, id",
            (event_id,),
        )
        return [Incident.model_validate_json(doc) for (doc,) in rows]

    def list_incidents(self, query: IncidentQuery) -> tuple[list[Incident], str | None]:
        clauses, params = _incident_filters(query)
        where = (
            sql.SQL("WHERE ") + sql.SQL(" AND ").join(clauses)
            if clauses
            else sql.SQL("")
        )
        statement = sql.SQL(
            "SELECT doc FROM incidents {} ORDER BY opened_ns DESC, id DESC LIMIT %s"
        ).format(where)
        rows = self._read(statement, (*params, query.limit + 1))

        incidents = [Incident.model_validate_json(doc) for (doc,) in rows]
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
            "SELECT reason, count(*) FROM incidents WHERE state <> %s GROUP BY reason",
            (IncidentState.RESOLVED.value,),
        )
        return {Reason(reason): int(count) for reason, count in rows}

    def open_run_count(self) -> int:
        rows = self._read(
            "SELECT count(*) FROM runs WHERE state = %s", (RunState.OPEN.value,)
        )
        return int(rows[0][0])

    def pending_exports(self, limit: int) -> list[OutboxEntry]:
        """Claim up to ``limit`` unclaimed (or lapsed) entries, oldest first."""
        rows = self._write(
            "UPDATE outbox SET claimed_until = now() + make_interval(secs => %s) "
            "WHERE seq IN (SELECT seq FROM outbox WHERE claimed_until IS NULL "
            "OR claimed_until <= now() ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED) "
            "RETURNING seq, kind, incident",
            (self.export_lease_seconds, limit),
        )
        entries = [
            OutboxEntry(seq, ExportKind(kind), Incident.model_validate_json(doc))
            for seq, kind, doc in rows
        ]
        return sorted(entries, key=lambda entry: entry.seq)

    def exported(self, seqs: Collection[int]) -> None:
        self._write("DELETE FROM outbox WHERE seq = ANY(%s)", (list(seqs),))

    def purge(self, decided_before_ns: int) -> int:
        """Remove finished runs decided before the cutoff, with their incidents.

        One replica purges at a time (the others return 0 at once), and rows a
        running transaction holds are left for the next purge.
        """
        with self.transaction() as tx:
            db = tx._db
            (mine,) = db.execute(
                "SELECT pg_try_advisory_xact_lock(%s)", (_PURGE_LOCK,)
            ).fetchone() or (False,)
            if not mine:
                return 0

            gone = db.execute(
                "DELETE FROM runs WHERE event_id IN (SELECT event_id FROM runs "
                "WHERE decided_ns < %s AND state = ANY(%s) FOR UPDATE SKIP LOCKED) "
                "RETURNING event_id",
                (decided_before_ns, list(PURGEABLE_STATES)),
            ).fetchall()
            event_ids = [event_id for (event_id,) in gone]
            db.execute("DELETE FROM incidents WHERE event_id = ANY(%s)", (event_ids,))
            return len(event_ids)

    def close(self) -> None:
        self._pool.close()


def _incident_filters(
    query: IncidentQuery,
) -> tuple[list[sql.Composable], list[object]]:
    clauses: list[sql.Composable] = []
    params: list[object] = []
    if query.states is not None:
        clauses.append(sql.SQL("state = ANY(%s)"))
        params.append(sorted(state.value for state in query.states))
    if query.reason is not None:
        clauses.append(sql.SQL("reason = %s"))
        params.append(query.reason.value)
    if query.event_type is not None:
        clauses.append(sql.SQL("event_type = %s"))
        params.append(query.event_type)
    if query.drill is not None:
        clauses.append(sql.SQL("drill = %s"))
        params.append(query.drill)
    if query.cursor is not None:
        opened, incident_id = parse_cursor(query.cursor)
        clauses.append(sql.SQL("(opened_ns, id) < (%s, %s)"))
        params.extend((opened, incident_id))
    return clauses, params


def _rollback(conn: _Connection) -> None:
    """End the connection's transaction; a dead connection is left to the pool."""
    if conn.closed or conn.broken:
        return
    try:
        conn.rollback()
    except psycopg.Error:
        return
