"""An agent's cost and tokens so far, summed from its history (:mod:`hyperhive.agent.history`).

Read on the host by the dashboard, next to the schema it reads, so only the agent's
package knows that schema.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hyperhive.agent.layout import history_db

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stats:
    turns: int
    cost_usd: float
    input_tokens: int
    output_tokens: int

    def to_wire(self) -> dict[str, int | float]:
        # Not dataclasses.asdict: its deep copy costs more than the rest of a listing.
        return {
            "turns": self.turns,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


# cached: the sum of the history as it is; scanned: summed just now; stale: an older sum.
Freshness = Literal["cached", "scanned", "stale"]


class StatsReader:
    """Sums the ``turn_end`` events of an agent's history.db.

    The file is written by the agent, so it is untrusted: opened read-only, never through a
    symlink, with SQLite's untrusted-schema guard on. Results are cached until the file (or
    its WAL) changes, because a long history makes the sum a full scan.
    """

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[tuple[int, ...], Stats | None]] = {}
        # The history's and its WAL's paths as strings, made once: a listing of 200
        # agents checks both for each, and pathlib's joins cost more than the lstat.
        self._paths: dict[Path, tuple[Path, str, str]] = {}

    def read(self, state_dir: Path) -> Stats | None:
        """The stats of the agent whose ``/state`` is ``state_dir``; None if unreadable."""
        return self.read_within(state_dir, scan=True)[0]

    def read_within(self, state_dir: Path, scan: bool) -> tuple[Stats | None, Freshness]:
        """The stats and how current they are. Without ``scan``, a history that changed
        since it was last summed is not summed again: the last sum comes back, ``stale``."""
        paths = self._paths.get(state_dir)
        if paths is None:
            db = history_db(state_dir)
            paths = self._paths[state_dir] = (db, str(db), f"{db}-wal")
        db, db_path, wal_path = paths
        try:
            info = os.lstat(db_path)
        except OSError:
            return None, "cached"
        if not stat.S_ISREG(info.st_mode):
            return None, "cached"
        signature = (info.st_mtime_ns, info.st_size, *_wal_signature(wal_path))
        cached = self._cache.get(db)
        if cached is not None and cached[0] == signature:
            return cached[1], "cached"
        if not scan:
            return (cached[1] if cached is not None else None), "stale"
        stats = _query(db)
        self._cache[db] = (signature, stats)
        return stats, "scanned"


def _query(db: Path) -> Stats | None:
    try:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA query_only = ON")
        row = conn.execute(
            "SELECT count(*), total(json_extract(data, '$.cost_usd')),"
            " total(json_extract(data, '$.input_tokens')),"
            " total(json_extract(data, '$.output_tokens'))"
            " FROM events WHERE kind = 'turn_end'"
        ).fetchone()
        return Stats(int(row[0]), float(row[1]), int(row[2]), int(row[3]))
    except (sqlite3.Error, TypeError, ValueError) as exc:
        logger.debug("no stats from %s: %s", db, exc)
        return None
    finally:
        conn.close()


def _wal_signature(wal: str) -> tuple[int, int]:
    try:
        info = os.lstat(wal)
    except OSError:
        return (0, 0)
    return (info.st_mtime_ns, info.st_size)
