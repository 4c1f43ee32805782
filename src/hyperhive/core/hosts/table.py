"""The ``hosts`` table: one row per core sharing the store, written by that core alone.

Only SQL sqlite and PostgreSQL share (``?`` placeholders, ``ON CONFLICT … excluded``), so
the same statements serve one machine's file and several machines' server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from hyperhive.core.db import Database
from hyperhive.core.hosts.status import HEARTBEAT_SECONDS, HostRow
from hyperhive.errors import HiveError

_COLUMNS: Final = (
    "name, url, started_at, heartbeat_at, agents, cpus, load, mem_available, runs_agents"
)
# A (re)started core's last numbers were of a process that is gone: they start again at
# zero until its first beat.
_ANNOUNCE: Final = f"""
    INSERT INTO hosts ({_COLUMNS}) VALUES (?, ?, ?, ?, 0, ?, 0, 0, ?)
    ON CONFLICT (name) DO UPDATE SET
        url = excluded.url, started_at = excluded.started_at,
        heartbeat_at = excluded.heartbeat_at, agents = excluded.agents,
        cpus = excluded.cpus, load = excluded.load, mem_available = excluded.mem_available,
        runs_agents = excluded.runs_agents
"""
_BEAT: Final = """
    UPDATE hosts SET heartbeat_at = ?, agents = ?, load = ?, mem_available = ? WHERE name = ?
"""


def _row(found: Any) -> HostRow:
    name, url, started, beat, agents, cpus, load, mem, runs = found
    return HostRow(
        name, url, float(started), float(beat), int(agents), int(cpus), float(load), int(mem),
        bool(runs),
    )  # fmt: skip


class HostTable:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], float] = time.time,
        *,
        interval: float = HEARTBEAT_SECONDS,
    ) -> None:
        """``interval``: how often the hosts beat, which is what "down" is measured in."""
        self._db = db
        self._clock = clock
        self.interval = interval
        # What each name was announced with here, to announce it again if its row goes.
        self._announced: dict[str, tuple[str | None, int, bool]] = {}

    def now(self) -> float:
        return self._clock()

    def announce(self, name: str, url: str | None, cpus: int, runs_agents: bool = True) -> None:
        """``name`` is (re)starting: its row, started and beating now. ``runs_agents``:
        False for a core without a container backend, where no spawn may go."""
        now = self._clock()
        self._db.execute(_ANNOUNCE, (name, url, now, now, cpus, int(runs_agents)))
        self._announced[name] = (url, cpus, runs_agents)

    def beat(self, name: str, agents: int, load: float, mem_available: int) -> None:
        """``name`` is alive; a row removed meanwhile (an operator forgot the host) is
        announced again, since the core it named evidently still runs."""
        rows = self._db.execute(_BEAT, (self._clock(), agents, load, mem_available, name))
        if rows.rowcount > 0:
            return
        announced = self._announced.get(name)
        if announced is None:
            raise HiveError(f"host {name!r} beat before it was announced")
        self.announce(name, *announced)
        self._db.execute(_BEAT, (self._clock(), agents, load, mem_available, name))

    def all(self) -> list[HostRow]:
        return [_row(r) for r in self._db.execute(f"SELECT {_COLUMNS} FROM hosts ORDER BY name")]

    def get(self, name: str) -> HostRow | None:
        found = self._db.execute(f"SELECT {_COLUMNS} FROM hosts WHERE name = ?", (name,))
        row = found.fetchone()
        return None if row is None else _row(row)
