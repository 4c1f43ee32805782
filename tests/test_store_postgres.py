"""The PostgreSQL store, against a real server: migrated once, never silently
rewritten, and behaving as the sqlite store does where the core can tell."""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hyperhive.core.db import POSTGRESQL, open_store, returned_id
from hyperhive.core.db.postgres import WRITE_LOCK, PostgresDatabase, open_postgres, redact
from hyperhive.core.db.postgres_schema import SCHEMA_VERSION
from hyperhive.errors import DatabaseError, StoreError
from support.postgres import connect, postgres_url, with_dbname

__all__ = ["postgres_url"]  # the fixture, imported so pytest finds it here

WAIT = 10.0  # seconds: a bound on every wait, never a pause


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresDatabase]:
    db = open_postgres(postgres_url)
    try:
        yield db
    finally:
        db.close()


def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {WAIT} s waiting for {what}")


def _snapshot(url: str) -> tuple[Any, ...]:
    """What a refused open must not change: every relation, and every row of hive_schema."""
    with connect(url) as raw:
        relations = raw.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1"
        ).fetchall()
        versions: list[Any] = []
        if any(name == "hive_schema" for name, _ in relations):
            versions = raw.execute("SELECT xmin::text, version FROM hive_schema").fetchall()
        return tuple(relations), tuple(versions)


def test_a_fresh_database_migrates_to_the_current_version_and_reopening_migrates_nothing(
    postgres_url: str,
) -> None:
    first = open_store(postgres_url)
    assert isinstance(first, PostgresDatabase)
    assert first.schema_version() == SCHEMA_VERSION
    assert first.dialect is POSTGRESQL
    first.execute("INSERT INTO counters (name, value) VALUES ('x', 1)")
    first.close()
    before = _snapshot(postgres_url)

    again = open_store(postgres_url.replace("postgresql://", "postgres://", 1))
    assert isinstance(again, PostgresDatabase)
    assert again.shared
    assert again.schema_version() == SCHEMA_VERSION
    assert again.execute("SELECT value FROM counters WHERE name = 'x'").fetchone() == (1,)
    again.close()
    # The same xmin: the version row was not rewritten, no step ran again.
    assert _snapshot(postgres_url) == before


def test_two_cores_opening_a_fresh_database_at_once_migrate_it_once(postgres_url: str) -> None:
    start = threading.Barrier(2, timeout=WAIT)

    def open_one() -> PostgresDatabase:
        start.wait()
        return open_postgres(postgres_url)

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(open_one) for _ in range(2)]
        opened = [future.result(WAIT) for future in futures]
    assert [db.schema_version() for db in opened] == [SCHEMA_VERSION, SCHEMA_VERSION]
    assert opened[0].execute("SELECT count(*) FROM hive_schema").fetchone() == (1,)
    for db in opened:
        db.close()


def _sqlite_shape(path: Path) -> tuple[dict[str, list[tuple[str, str, bool, Any]]], set[Any]]:
    db = open_store(path)
    tables: dict[str, list[tuple[str, str, bool, Any]]] = {}
    indexes: set[Any] = set()
    names = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    for (table,) in names:
        types = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text"}
        tables[table] = [
            # sqlite lets a non-INTEGER primary key hold NULL (a quirk kept for
            # compatibility); PostgreSQL's primary keys are NOT NULL, as ours mean to be.
            (name, types[decl], bool(notnull) or pk > 0, default)
            for _, name, decl, notnull, default, pk in db.execute(f"PRAGMA table_info({table})")
        ]
        for _, index, unique, origin, partial in db.execute(f"PRAGMA index_list({table})"):
            if origin == "c":  # made by CREATE INDEX, not by a PRIMARY KEY or UNIQUE
                columns = tuple(r[2] for r in db.execute(f"PRAGMA index_info({index})"))
                indexes.add((index, table, bool(unique), columns, bool(partial)))
    db.close()
    return tables, indexes


def _postgres_shape(db: PostgresDatabase) -> tuple[dict[str, list[Any]], set[Any]]:
    tables: dict[str, list[Any]] = {}
    for table, name, kind, nullable, default in db.execute(
        "SELECT table_name, column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " AND table_name != 'hive_schema' ORDER BY table_name, ordinal_position"
    ):
        if isinstance(default, str):
            default = default.removesuffix("::text")
        tables.setdefault(table, []).append((name, kind, nullable == "NO", default))
    indexes: set[Any] = set()
    for index, table, unique, columns, partial in db.execute(
        "SELECT i.relname, t.relname, x.indisunique,"
        " array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(n, o)"
        "  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o),"
        " x.indpred IS NOT NULL"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = 'public'"
        " AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
    ):
        indexes.add((index, table, unique, tuple(columns), partial))
    return tables, indexes


def test_postgres_and_sqlite_end_with_the_same_tables_columns_and_indexes(
    store: PostgresDatabase, tmp_path: Path
) -> None:
    sqlite_tables, sqlite_indexes = _sqlite_shape(tmp_path / "hive.db")
    pg_tables, pg_indexes = _postgres_shape(store)
    assert sorted(pg_tables) == sorted(sqlite_tables)
    for table, columns in sqlite_tables.items():
        assert pg_tables[table] == columns, table
    assert pg_indexes == sqlite_indexes
    assert {"messages_key", "approvals_tool_use", "notify_outbox_done"} <= {
        index[0] for index in pg_indexes
    }


def test_the_checks_admit_and_refuse_the_same_values_in_both_stores(
    store: PostgresDatabase, tmp_path: Path
) -> None:
    lite = open_store(tmp_path / "hive.db")
    insert = (
        "INSERT INTO approvals (kind, agent, requester, reason, state, created_at)"
        " VALUES (?, 'a', 'op', 'r', ?, 0)"
    )
    for db in (lite, store):
        db.execute(insert, ("tool_use", "pending"))  # admitted since migration 4
        for kind, state in (("bogus", "pending"), ("spawn", "bogus")):
            with pytest.raises(DatabaseError):
                db.execute(insert, (kind, state))
        with pytest.raises(DatabaseError):
            db.execute(
                "INSERT INTO notify_outbox (sink, kind, payload, created, next_at,"
                " state) VALUES ('s', 'k', '{}', 0, 0, 'lost')"
            )
    lite.close()


def test_a_newer_schema_is_refused_and_left_untouched(postgres_url: str) -> None:
    with connect(postgres_url) as raw:
        raw.execute("CREATE TABLE hive_schema (version BIGINT NOT NULL)")
        raw.execute("INSERT INTO hive_schema VALUES (%s)", (SCHEMA_VERSION + 1,))
        raw.execute("CREATE TABLE future (x BIGINT)")
    before = _snapshot(postgres_url)
    with pytest.raises(StoreError, match="newer than this hyperhive understands"):
        open_postgres(postgres_url)
    assert _snapshot(postgres_url) == before


def test_a_database_holding_foreign_tables_is_refused_and_left_untouched(
    postgres_url: str,
) -> None:
    with connect(postgres_url) as raw:
        raw.execute("CREATE TABLE invoices (id BIGINT PRIMARY KEY)")
    before = _snapshot(postgres_url)
    with pytest.raises(StoreError, match=r"is not a hyperhive database.*refusing to touch it"):
        open_postgres(postgres_url)
    assert _snapshot(postgres_url) == before


def test_question_marks_become_parameters_and_percent_signs_stay_literal(
    store: PostgresDatabase,
) -> None:
    row = store.execute(
        "SELECT ?, ? IS NULL, 127 - 127 % 60, '100%', ? || '%'", ("x", None, "5")
    ).fetchone()
    assert row == ("x", True, 120, "100%", "5%")
    assert store.execute("SELECT 7 % 3").fetchone() == (1,)
    # The same SQL twice comes from the translation cache; it must read the same.
    assert store.execute("SELECT 7 % 3").fetchone() == (1,)


def test_insert_returning_id_hands_out_increasing_ids(store: PostgresDatabase) -> None:
    insert = (
        "INSERT INTO messages (sender, recipient, body, kind, created_at)"
        " VALUES (?, ?, ?, 'message', ?) RETURNING id"
    )
    ids = [returned_id(store.execute(insert, ("a", "b", f"m{i}", 1.5))) for i in range(3)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


def test_rowcount_counts_the_rows_a_statement_touched(store: PostgresDatabase) -> None:
    store.executemany(
        "INSERT INTO counters (name, value) VALUES (?, ?)", [("a", 1), ("b", 2), ("c", 3)]
    )
    assert (
        store.execute("UPDATE counters SET value = value + 1 WHERE value >= ?", (2,)).rowcount == 2
    )
    assert store.execute("DELETE FROM counters WHERE name = ?", ("zz",)).rowcount == 0


def test_every_driver_error_is_a_database_error_naming_the_store(
    store: PostgresDatabase,
) -> None:
    store.execute("INSERT INTO counters (name, value) VALUES ('x', 1)")
    with pytest.raises(DatabaseError, match=store.location.split("?")[0]):
        store.execute("INSERT INTO counters (name, value) VALUES ('x', 2)")
    with pytest.raises(DatabaseError):
        store.executemany("INSERT INTO nowhere VALUES (?)", [(1,)])
    assert store.execute("SELECT 1").fetchone() == (1,)  # autocommit: nothing left aborted


def test_a_transaction_rolls_back_when_its_body_raises(store: PostgresDatabase) -> None:
    def change_my_mind() -> None:
        with store.transaction():
            store.execute("INSERT INTO counters (name, value) VALUES ('x', 1)")
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        change_my_mind()
    assert store.execute("SELECT count(*) FROM counters").fetchone() == (0,)
    with store.transaction():
        store.execute("INSERT INTO counters (name, value) VALUES ('y', 1)")
    assert store.execute("SELECT name FROM counters").fetchall() == [("y",)]


def test_a_transaction_whose_statement_failed_raises_at_commit_instead_of_pretending(
    store: PostgresDatabase,
) -> None:
    store.execute("INSERT INTO counters (name, value) VALUES ('x', 1)")

    def carry_on_after_a_failure() -> None:
        with store.transaction():
            store.execute("INSERT INTO counters (name, value) VALUES ('y', 1)")
            with pytest.raises(DatabaseError):
                store.execute("INSERT INTO counters (name, value) VALUES ('x', 2)")

    with pytest.raises(DatabaseError, match="rolled back"):
        carry_on_after_a_failure()
    assert store.execute("SELECT name FROM counters").fetchall() == [("x",)]


def test_check_then_insert_from_two_cores_inserts_once(postgres_url: str) -> None:
    first, second = open_postgres(postgres_url), open_postgres(postgres_url)
    release = threading.Event()
    checked: list[int] = []
    inserted: list[int] = []

    def claim(db: PostgresDatabase, who: int, hold: bool) -> None:
        with db.transaction():
            taken = db.execute("SELECT count(*) FROM counters WHERE name = 'lock'")
            checked.append(who)
            if taken.fetchone() == (0,):
                db.execute("INSERT INTO counters (name, value) VALUES ('lock', ?)", (who,))
                inserted.append(who)
            if hold:
                assert release.wait(WAIT)

    pool = ThreadPoolExecutor(2)
    holder = pool.submit(claim, first, 1, True)
    _until(lambda: inserted == [1] or holder.done(), "the first core to insert")
    waiter = pool.submit(claim, second, 2, False)
    with connect(postgres_url) as watch:
        _until(
            lambda: (
                watch.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database"
                    "  WHERE datname = current_database())"
                ).fetchone()
                == (1,)
            ),
            "the second core to wait for the write lock",
        )
    assert checked == [1]  # the second core has not even looked yet
    release.set()
    holder.result(WAIT)
    waiter.result(WAIT)
    pool.shutdown()
    assert checked == [1, 2]
    assert inserted == [1]
    assert first.execute("SELECT value FROM counters").fetchall() == [(1,)]
    first.close()
    second.close()


def test_durability_reads_back_as_chosen(postgres_url: str) -> None:
    for durability in ("normal", "full"):
        db = open_postgres(postgres_url, durability=durability)
        assert db.durability() == durability
        db.close()


def test_an_unknown_durability_is_refused(postgres_url: str) -> None:
    with pytest.raises(StoreError, match="normal, full"):
        open_postgres(postgres_url, durability="paranoid")


def test_the_location_and_messages_hide_the_password(postgres_url: str) -> None:
    url = postgres_url.replace("postgres@", "postgres:s3cret@", 1)
    assert "s3cret" in url
    db = open_postgres(url)  # trust auth: the password is never asked for
    assert "s3cret" not in db.location
    assert ":***@" in db.location
    with pytest.raises(DatabaseError) as raised:
        db.execute("SELECT * FROM nowhere")
    assert "s3cret" not in str(raised.value)
    db.close()
    assert redact("postgresql://u@h/db?password=s3cret&sslmode=require") == (
        "postgresql://u@h/db?password=***&sslmode=require"
    )


def test_a_url_with_no_server_behind_it_is_a_store_error_quickly(postgres_url: str) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as empty:
        nowhere = with_dbname(postgres_url, "hive").split("?")[0] + f"?host={empty}"
        started = time.monotonic()
        with pytest.raises(StoreError, match=re.escape(f"cannot open database {nowhere}:")):
            open_store(nowhere)
        assert time.monotonic() - started < 5.0


def _terminate(url: str, pid: int) -> None:
    with connect(url) as admin:
        # With a timeout, pg_terminate_backend returns once the backend has exited.
        done = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
        assert done == (True,)


def test_a_terminated_connection_is_replaced_before_the_next_statement(
    postgres_url: str,
) -> None:
    db = open_postgres(postgres_url, durability="full")
    (pid,) = db.execute("SELECT pg_backend_pid()").fetchone()
    _terminate(postgres_url, pid)
    (again,) = db.execute("SELECT pg_backend_pid()").fetchone()
    assert again != pid
    assert db.durability() == "full"  # the new session has the same settings
    db.close()


def test_a_connection_lost_inside_a_transaction_fails_it_and_the_next_statement_reconnects(
    postgres_url: str,
) -> None:
    db = open_postgres(postgres_url)

    def lose_the_connection_midway() -> None:
        with db.transaction():
            db.execute("INSERT INTO counters (name, value) VALUES ('x', 1)")
            (pid,) = db.execute("SELECT pg_backend_pid()").fetchone()
            _terminate(postgres_url, pid)
            db.execute("INSERT INTO counters (name, value) VALUES ('y', 1)")

    with pytest.raises(DatabaseError, match="terminating connection"):
        lose_the_connection_midway()
    assert db.execute("SELECT count(*) FROM counters").fetchone() == (0,)
    db.close()


def test_a_closed_store_refuses_statements(store: PostgresDatabase) -> None:
    store.close()
    with pytest.raises(DatabaseError):
        store.execute("SELECT 1")


def test_a_write_lock_that_cannot_be_taken_fails_the_transaction_and_leaves_the_store_usable(
    store: PostgresDatabase, postgres_url: str
) -> None:
    store.execute("SET lock_timeout = '50ms'")
    with connect(postgres_url) as holder:  # another host's core, mid-transaction
        holder.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
        with pytest.raises(DatabaseError, match="lock timeout"), store.transaction():
            raise AssertionError("the transaction ran without its lock")
        holder.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
    with store.transaction():  # not left inside the failed BEGIN
        assert store.execute("SELECT 1").fetchone() == (1,)
