"""The shared store: one PostgreSQL database that the cores of several hosts use.

One psycopg 3 connection per core, in autocommit mode, binding parameters on the
client (``ClientCursor``): the core's SQL has ``? IS NULL`` checks whose types the
server could not infer from a bare ``$1``. Every statement is a round trip that
the event loop waits for; on a local socket that is tens of microseconds, across
a network it is the network's latency, which is the price of sharing the store.

Write transactions take one advisory lock (:data:`WRITE_LOCK`) right after
``BEGIN``, so, as with sqlite's ``BEGIN IMMEDIATE``, a check and the change it
allows are one step even when the other writer is a core on another host.

Durability ``normal`` runs the session with ``synchronous_commit = off``: a commit
survives the death of any hyperhive process (the server has it), and only a crash
of the PostgreSQL server itself can take the last ~0.6 s (three times
``wal_writer_delay``). ``full`` (``on``) waits for the WAL flush of every commit.

A connection the server dropped (restart, ``pg_terminate_backend``) is noticed
before the next statement is sent, from what the server left on the socket, and
replaced once: that statement then runs on the new connection. A statement that
was already sent when the connection broke is never re-sent (it may have been
committed), it fails with :class:`DatabaseError`; the one after it reconnects.
Nothing reconnects inside a transaction: its work is gone with the old session.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final

import psycopg
from psycopg import ClientCursor, Connection
from psycopg.conninfo import conninfo_to_dict

from hyperhive.core.db.base import POSTGRESQL, Dialect, Rows
from hyperhive.core.db.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from hyperhive.errors import DatabaseError, StoreError

SYNCHRONOUS_COMMIT: Final = {"normal": "off", "full": "on"}
DURABILITY_OF: Final = {value: name for name, value in SYNCHRONOUS_COMMIT.items()}

# Advisory lock keys (any fixed bigints no other application is likely to pick):
# the first serializes write transactions, the second migrations at open.
WRITE_LOCK: Final = 0x68697665_00000001
MIGRATE_LOCK: Final = 0x68697665_00000002

CONNECT_TIMEOUT: Final = 10  # seconds, unless the URL says otherwise
# sqlite waits 5 s for a busy database; a lock held longer than that by another
# core is a fault to report, not a queue to join.
LOCK_TIMEOUT: Final = "5s"
# A core starting while another migrates waits for it; a migration is seconds.
MIGRATE_LOCK_TIMEOUT: Final = "120s"

_SQL_CACHE_SIZE: Final = 1024
_sql_cache: dict[str, str] = {}

_URL_PASSWORD = re.compile(r"^(?P<scheme>[a-z]+://)(?P<user>[^:@/?]*):[^@/?]*@", re.IGNORECASE)
_PARAM_PASSWORD = re.compile(r"(?P<key>(?:^|[?&\s])password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^&\s]*)")


def to_pyformat(sql: str) -> str:
    """The core's ``?`` SQL in psycopg's words: ``%s`` placeholders, ``%%`` for ``%``."""
    translated = _sql_cache.get(sql)
    if translated is None:
        translated = sql.replace("%", "%%").replace("?", "%s")
        if len(_sql_cache) >= _SQL_CACHE_SIZE:
            # The core's statements are a fixed set; a full cache means something builds
            # SQL per call, and starting over keeps memory bounded without bookkeeping.
            _sql_cache.clear()
        _sql_cache[sql] = translated
    return translated


def _numbers_for_bools(params: Sequence[Any]) -> Sequence[Any]:
    # sqlite stores True as 1 in an INTEGER column; PostgreSQL refuses a boolean there.
    if any(type(p) is bool for p in params):
        return [int(p) if type(p) is bool else p for p in params]
    return params


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    url = _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", url, count=1)
    return _PARAM_PASSWORD.sub(r"\g<key>***", url)


class PostgresDatabase:
    """A :class:`~hyperhive.core.db.base.Database` over one PostgreSQL connection."""

    def __init__(self, conn: Connection[Any], url: str, synchronous_commit: str) -> None:
        self._conn = conn
        self._url = url
        self._location = redact(url)
        self._synchronous_commit = synchronous_commit
        self._in_transaction = False
        self._closed = False

    @property
    def dialect(self) -> Dialect:
        return POSTGRESQL

    @property
    def shared(self) -> bool:
        return True  # the point of a server: every host's core may use it

    @property
    def location(self) -> str:
        return self._location

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self._run(sql, params)

    def _run(self, sql: str, params: Sequence[Any]) -> ClientCursor[Any]:
        conn = self._live()
        try:
            cursor = ClientCursor(conn)
            cursor.execute(to_pyformat(sql), _numbers_for_bools(params))
        except psycopg.Error as exc:
            raise DatabaseError(f"{self._location}: {exc}") from exc
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        conn = self._live()
        try:
            ClientCursor(conn).executemany(to_pyformat(sql), [_numbers_for_bools(r) for r in rows])
        except psycopg.Error as exc:
            raise DatabaseError(f"{self._location}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            raise DatabaseError(f"{self._location}: transactions do not nest")
        # One round trip for both: client-side binding sends them as one simple query.
        try:
            self.execute("BEGIN; SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
        except DatabaseError:
            self._rollback()  # BEGIN ran; a lock that timed out must not leave it open
            raise
        self._in_transaction = True
        try:
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            status = self._run("COMMIT", ()).statusmessage
        finally:
            self._in_transaction = False
        if status != "COMMIT":
            # PostgreSQL answers COMMIT of a transaction that an earlier statement
            # aborted with ROLLBACK and no error; the caller must not think it landed.
            raise DatabaseError(
                f"{self._location}: the transaction was rolled back ({status}): "
                "a statement in it failed"
            )

    def _rollback(self) -> None:
        # A broken connection has already lost the transaction; the error the caller
        # is seeing is the one that matters.
        with suppress(psycopg.Error):
            self._conn.execute("ROLLBACK")

    def durability(self) -> str:
        value: str = self.execute("SHOW synchronous_commit").fetchone()[0]
        return DURABILITY_OF.get(value, f"synchronous_commit={value}")

    def schema_version(self) -> int:
        version: int = self.execute("SELECT version FROM hive_schema").fetchone()[0]
        return version

    def close(self) -> None:
        self._closed = True
        self._conn.close()

    def _live(self) -> Connection[Any]:
        """The connection, replaced first if the server has dropped it."""
        conn = self._conn
        if self._closed or self._in_transaction:
            return conn  # psycopg's own error for a closed one; no silent new session
        # Reads, without blocking, what the server sent while we were idle: the first
        # read takes a terminated backend's FATAL, the second finds the socket's end.
        # On a live connection both find nothing: two non-blocking reads.
        for _ in range(2):
            if conn.closed:
                break
            with suppress(psycopg.OperationalError):
                conn.pgconn.consume_input()
        if conn.closed:
            try:
                conn.close()
                self._conn = conn = _connect(self._url, self._synchronous_commit)
            except psycopg.Error as exc:
                raise DatabaseError(f"{self._location}: reconnecting failed: {exc}") from exc
        return conn


def _connect(url: str, synchronous_commit: str) -> Connection[Any]:
    extra: dict[str, Any] = {}
    if "connect_timeout" not in conninfo_to_dict(url):
        extra["connect_timeout"] = CONNECT_TIMEOUT
    conn: Connection[Any] = psycopg.connect(
        url, autocommit=True, cursor_factory=ClientCursor, **extra
    )
    try:
        conn.execute(f"SET synchronous_commit = {synchronous_commit}")
        conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    except psycopg.Error:
        conn.close()
        raise
    return conn


def _read_version(conn: Connection[Any], location: str) -> int:
    rows = conn.execute("SELECT version FROM hive_schema").fetchall()
    if len(rows) != 1:
        raise StoreError(f"database {location}: hive_schema holds {len(rows)} rows, not one")
    version: int = rows[0][0]
    return version


def open_postgres(url: str, *, durability: str = "normal") -> PostgresDatabase:
    """Connect to, and migrate, the database ``url`` (a libpq URL) names.

    A database that holds tables but no ``hive_schema``, or whose schema is newer
    than this code knows, is a :class:`StoreError`; nothing is written to it.
    """
    synchronous_commit = SYNCHRONOUS_COMMIT.get(durability)
    if synchronous_commit is None:
        raise StoreError(f"unknown durability {durability!r}: choose one of normal, full")
    location = redact(url)
    try:
        conn = _connect(url, synchronous_commit)
    except psycopg.Error as exc:
        raise StoreError(f"cannot open database {location}: {exc}") from exc
    try:
        _migrate(conn, location)
    except psycopg.Error as exc:
        conn.close()
        raise StoreError(f"cannot migrate database {location}: {exc}") from exc
    except StoreError:
        conn.close()
        raise
    return PostgresDatabase(conn, url, synchronous_commit)


def _migrate(conn: Connection[Any], location: str) -> None:
    conn.execute(f"SET lock_timeout = '{MIGRATE_LOCK_TIMEOUT}'")
    # Session-level, so two cores starting at once check and migrate one after the other.
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
    try:
        version = _current_version(conn, location)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {location} has schema version {version}, newer than this hyperhive "
                f"understands ({SCHEMA_VERSION}); upgrade hyperhive or use another database"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # The step and its version bump commit together, or neither does.
            with conn.transaction():
                if target == 1:
                    conn.execute("CREATE TABLE hive_schema (version BIGINT NOT NULL)")
                    conn.execute("INSERT INTO hive_schema (version) VALUES (0)")
                conn.execute(MIGRATIONS[target - 1])
                conn.execute("UPDATE hive_schema SET version = %s", (target,))
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
            conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")


def _current_version(conn: Connection[Any], location: str) -> int:
    # pg_class, not information_schema: the latter hides tables we hold no privilege on,
    # and a foreign table we cannot see is still not ours to write next to.
    found = conn.execute(
        "SELECT current_schema(),"
        " EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  WHERE n.nspname = current_schema() AND c.relname = 'hive_schema'),"
        " (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))"
    ).fetchone()
    assert found is not None  # a SELECT without FROM has one row
    schema, has_schema_table, tables = found
    if schema is None:
        raise StoreError(
            f"database {location} has no schema to create tables in (check its search_path)"
        )
    if has_schema_table:
        return _read_version(conn, location)
    if tables:
        raise StoreError(
            f"database {location} is not a hyperhive database (schema {schema} has "
            f"{tables} tables and no hive_schema); refusing to touch it"
        )
    return 0
