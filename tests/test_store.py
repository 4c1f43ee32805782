"""The database: created and migrated once, never silently rewritten."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hyperhive.core.store import SCHEMA_VERSION, open_store
from hyperhive.errors import StoreError


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
