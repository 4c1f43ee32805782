"""The store seam: the core's persistence behind :class:`Database`, by name.

``sqlite`` (a path: the embedded default, one host) and ``postgresql`` (a libpq
URL: one database shared by the cores of several hosts) implement it, each with
the same numbered migrations and the same refusal of a newer or foreign schema.
"""

from __future__ import annotations

from pathlib import Path

from hyperhive.core.db.base import POSTGRESQL, SQLITE, Database, Dialect, Rows, returned_id
from hyperhive.core.db.signals import LocalSignals, Signals

__all__ = [
    "POSTGRESQL",
    "SQLITE",
    "Database",
    "Dialect",
    "Rows",
    "is_url",
    "open_signals",
    "open_store",
    "returned_id",
]

URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(target: str | Path) -> bool:
    """Whether ``target`` names a PostgreSQL database rather than a sqlite file."""
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def open_signals(store: Database, url: str | None) -> Signals:
    """How the cores sharing ``store`` tell each other of changes (none to tell: sqlite)."""
    if url is None or not store.shared:
        return LocalSignals()
    from hyperhive.core.db.pg_signals import PostgresSignals

    return PostgresSignals(url, store)


def open_store(target: str | Path, *, durability: str = "normal") -> Database:
    """Open and migrate the store ``target`` names: a libpq URL, or a sqlite path."""
    if is_url(target):
        # Imported here: a sqlite hive never loads the PostgreSQL driver.
        from hyperhive.core.db.postgres import open_postgres

        return open_postgres(str(target), durability=durability)
    from hyperhive.core.db.sqlite import open_sqlite

    return open_sqlite(Path(target), durability=durability)
