"""The host uid each agent's processes run as, when a backend runs them unprivileged.

A uid belongs to one agent name for good: it is allocated once, kept after the
agent is destroyed, and never handed to another name, so files a destroyed
agent left behind can never become another agent's. The range starts above
the ones systemd hands out (DynamicUser, nspawn's ``--private-users=pick``),
so it collides with no account a host is likely to have.
"""

from __future__ import annotations

from typing import Final

from hyperhive.core.db import Database
from hyperhive.errors import HiveError

DEFAULT_BASE: Final = 1_900_000_000
SPAN: Final = 1_000_000


class UidsExhausted(HiveError):
    code = "uids_exhausted"


class AgentUids:
    def __init__(self, conn: Database, base: int = DEFAULT_BASE) -> None:
        self._conn = conn
        self.base = base

    def get(self, name: str) -> int:
        """``name``'s uid, allocated on first use."""
        row = self._conn.execute("SELECT uid FROM agent_uids WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        top = self._conn.execute("SELECT max(uid) FROM agent_uids").fetchone()[0]
        uid = self.base if top is None else max(self.base, int(top) + 1)
        if uid >= self.base + SPAN:
            raise UidsExhausted(f"all {SPAN} agent uids from {self.base} are taken")
        self._conn.execute("INSERT INTO agent_uids (name, uid) VALUES (?, ?)", (name, uid))
        return uid
