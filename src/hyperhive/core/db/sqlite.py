"""The embedded store: one sqlite file, ``<state>/hive.db``.

sqlite runs in WAL mode. With durability ``normal`` (``synchronous=NORMAL``) a
commit is in the OS before we answer, so killing the daemon (even ``-9``) loses
nothing that was acknowledged; only a power cut can take the last few commits.
With ``full`` (``synchronous=FULL``) each commit is also fsynced before the answer,
so a power cut loses nothing acknowledged either.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from hyperhive.core.db.base import SQLITE, Dialect, Rows
from hyperhive.core.db.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from hyperhive.errors import DatabaseError, StoreError

SYNCHRONOUS: Final = {"normal": "NORMAL", "full": "FULL"}


class SqliteDatabase:
    """A :class:`~hyperhive.core.db.base.Database` over one sqlite connection."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    @property
    def dialect(self) -> Dialect:
        return SQLITE

    @property
    def shared(self) -> bool:
        return False  # <state>/hive.db is one core's

    @property
    def location(self) -> str:
        return str(self._path)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self._path}: {exc}") from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self._path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock at BEGIN, before the first read.
        self.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def durability(self) -> str:
        value: int = self._conn.execute("PRAGMA synchronous").fetchone()[0]
        named = {1: "normal", 2: "full"}  # sqlite's numbers for NORMAL and FULL
        return named.get(value, f"synchronous={value}")

    def schema_version(self) -> int:
        version: int = self._conn.execute("PRAGMA user_version").fetchone()[0]
        return version

    def close(self) -> None:
        self._conn.close()


def open_sqlite(path: Path, *, durability: str = "normal") -> SqliteDatabase:
    """Open (creating if needed) and migrate the database at ``path``.

    A file that is not a sqlite database, or whose schema is newer than this
    code knows, is a :class:`StoreError`; it is never rewritten.
    """
    synchronous = SYNCHRONOUS.get(durability)
    if synchronous is None:
        raise StoreError(f"unknown durability {durability!r}: choose one of normal, full")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    try:
        # Read-only checks first: a database we refuse must stay byte-identical,
        # and switching to WAL already writes its header.
        conn.execute("PRAGMA busy_timeout=5000")
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {path} has schema version {version}, newer than this hyperhive "
                f"understands ({SCHEMA_VERSION}); upgrade hyperhive or use another state dir"
            )
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise StoreError(f"database {path} failed its integrity check: {check}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn, version)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"database {path} is unreadable ({exc}); refusing to touch it") from exc
    except StoreError:
        conn.close()
        raise
    return SqliteDatabase(conn, path)


def migrate(conn: sqlite3.Connection, version: int) -> None:
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # executescript commits first, so wrap the step in our own transaction
        # to make the schema change and the version bump one atomic unit.
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{MIGRATIONS[target - 1]}\nPRAGMA user_version = {target};\nCOMMIT;"
        )
