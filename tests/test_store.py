"""The database: created and migrated once, never silently rewritten."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hyperhive.core.db import open_store
from hyperhive.core.db.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from hyperhive.errors import DatabaseError, StoreError


def test_a_new_database_is_created_in_wal_mode_at_the_current_version(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "state" / "hive.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"agents", "messages", "counters"} <= tables
    conn.close()


def test_reopening_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "hive.db"
    conn = open_store(path)
    conn.execute("INSERT INTO counters (name, value) VALUES ('x', 1)")
    conn.close()
    again = open_store(path)
    assert again.execute("SELECT value FROM counters WHERE name='x'").fetchone() == (1,)
    again.close()


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "hive.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE future (x)")
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer than this hyperhive"):
        open_store(path)
    assert path.read_bytes() == before


def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "hive.db"
    garbage = b"this is not sqlite " * 300
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match=r"refusing to touch it|integrity"):
        open_store(path)
    assert path.read_bytes() == garbage


def v3_database(path: Path) -> None:
    """A database as schema version 3 left it, with approvals of both old kinds."""
    raw = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:3]:
        raw.executescript(step)
    raw.execute("PRAGMA user_version = 3")
    raw.execute(
        "INSERT INTO approvals (kind, agent, requester, reason, sha, config, state, decided_by,"
        " decision_reason, error, created_at, decided_at, finished_at, tree, digest, diff)"
        " VALUES ('spawn', 'alice', 'hm1nd', 'a tester', NULL, 'role = \"t\"\n', 'failed',"
        " 'operator', NULL, 'bwrap exited 1', 10.0, 11.0, 12.0, NULL, NULL, NULL)"
    )
    raw.execute(
        "INSERT INTO approvals (kind, agent, requester, reason, sha, config, state, decided_by,"
        " decision_reason, error, created_at, decided_at, finished_at, tree, digest, diff)"
        " VALUES ('apply_commit', 'bob', 'hm1nd', 'more memory', ?, NULL, 'denied',"
        " 'operator', 'not now', NULL, 20.0, 21.0, NULL, ?, ?, '-a\n+b\n')",
        ("ab" * 20, "cd" * 20, "ef" * 32),
    )
    raw.execute(
        "INSERT INTO approvals (kind, agent, requester, reason, state, created_at)"
        " VALUES ('spawn', 'carol', 'hm1nd', 'pending one', 'pending', 30.0)"
    )
    # An id counter ahead of the rows, as if later rows had existed: it must be kept.
    raw.execute("UPDATE sqlite_sequence SET seq = 7 WHERE name = 'approvals'")
    raw.close()


def test_a_v3_database_migrates_with_every_approval_field_intact(tmp_path: Path) -> None:
    path = tmp_path / "hive.db"
    v3_database(path)
    columns = (
        "id, kind, agent, requester, reason, sha, config, state, decided_by, decision_reason,"
        " error, created_at, decided_at, finished_at, tree, digest, diff"
    )
    raw = sqlite3.connect(path)
    before = raw.execute(f"SELECT {columns} FROM approvals ORDER BY id").fetchall()
    raw.close()
    conn = open_store(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute(f"SELECT {columns} FROM approvals ORDER BY id").fetchall() == before
    added = conn.execute("SELECT tool, input, always, answered_at FROM approvals").fetchall()
    assert added == [(None, None, 0, None)] * 3
    # The pending index is back, the id counter kept, and a tool use now fits the CHECK.
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"approvals_pending", "approvals_tool_use", "tool_rules_live"} <= indexes
    cur = conn.execute(
        "INSERT INTO approvals (kind, agent, requester, reason, state, created_at, tool, input)"
        " VALUES ('tool_use', 'alice', 'alice', 'r', 'pending', 40.0, 'Bash', '{}') RETURNING id"
    )
    assert cur.fetchall() == [(8,)]
    with pytest.raises(DatabaseError, match="CHECK"):
        conn.execute(
            "INSERT INTO approvals (kind, agent, requester, reason, state, created_at)"
            " VALUES ('launch_missiles', 'a', 'a', 'r', 'pending', 1.0)"
        )
    assert conn.execute("SELECT count(*) FROM tool_rules").fetchone() == (0,)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
