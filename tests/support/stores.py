"""A look into a running hive's store from outside it, whichever store it is."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

from hyperhive.config import Config
from hyperhive.core.db import open_store


def peek(where: Config | str | Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """The rows ``sql`` (with ``?`` placeholders) finds in the store, on a connection of
    its own, closed before this returns."""
    target = where.store if isinstance(where, Config) else where
    with closing(open_store(target)) as store:
        return store.execute(sql, params).fetchall()
