"""What the core needs of a database: statements, transactions, and two dialect words.

The core's SQL is written once, in the subset sqlite and PostgreSQL share (``?``
placeholders, ``RETURNING``, ``ON CONFLICT``, ``IS NOT DISTINCT FROM``); the two
expressions with no shared spelling come from :class:`Dialect`. Statements are
short primary-key reads and writes issued in order by the one event loop, so
the interface is synchronous: a decision and the write that records it run with
nothing interleaved, as they always have (see core/db/postgres.py for what that
costs a remote server).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class Rows(Protocol):
    """The answer to one statement: read it once, by row."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None:
        """End a read that stopped early, now rather than at garbage collection."""
        ...


def returned_id(rows: Rows) -> int:
    """The id an ``INSERT … RETURNING id`` gave. Read to the end: sqlite finishes the
    statement, and with it an implicit transaction, only once its rows are all read."""
    ((value,),) = rows.fetchall()
    return int(value)


@dataclass(frozen=True, slots=True)
class Dialect:
    """The spellings that differ between the stores, as format strings."""

    name: str
    octets: str  # "{}" is a text column: its length in UTF-8 bytes
    json_text: str  # "{column}" holds JSON text; "{key}" a top-level key: its value as text

    def octets_of(self, column: str) -> str:
        return self.octets.format(column)

    def json_field(self, column: str, key: str) -> str:
        return self.json_text.format(column=column, key=key)


SQLITE = Dialect("sqlite", "length(CAST({} AS BLOB))", "json_extract({column}, '$.{key}')")
POSTGRESQL = Dialect("postgresql", "octet_length({})", "({column}::jsonb ->> '{key}')")


class Database(Protocol):
    """One open store. Every driver error surfaces as :class:`~hyperhive.errors.DatabaseError`."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def shared(self) -> bool:
        """Whether the cores of other hosts may use this store too."""
        ...

    @property
    def location(self) -> str:
        """Where the store is, for messages (a path, or a URL without its password)."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic unit that holds the write lock from its first statement, so a
        check and the change it allows cannot be split by another writer."""
        ...

    def durability(self) -> str:
        """The durability the store really runs with, read back from it."""
        ...

    def close(self) -> None: ...
