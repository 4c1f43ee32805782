"""How many socket connections the core holds open at once, hive-wide.

Plain code without I/O. Every connection costs a file descriptor, and the
process has RLIMIT_NOFILE of them for everything: sqlite, the sockets it
listens on, child pipes, git, the dashboard. The hive-wide budget leaves
headroom for those, and part of it is kept for ``host.sock`` alone, so the
operator can still reach the core when every agent holds all it may.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

# Below this the core could not serve a handful of agents; a soft limit so low is a
# misconfigured host, and failing accepts (logged, see fd_guard) beats refusing everyone.
FLOOR: Final = 32
# What an infinite RLIMIT_NOFILE is taken to mean: more than a hive ever needs.
UNLIMITED: Final = 1 << 20


def budget_for_nofile(soft_limit: int) -> int:
    """The hive-wide connection budget for a soft RLIMIT_NOFILE (negative: infinite).

    The headroom is a quarter of the limit or 256 descriptors, whichever is more.
    """
    limit = UNLIMITED if soft_limit < 0 else soft_limit
    return max(FLOOR, limit - max(limit // 4, 256))


@dataclass
class ConnectionBudget:
    """Admits and releases connections against a total, with a reserve for the host.

    Agents' sockets together may hold ``total - reserve``; ``host.sock`` may use
    the reserve and whatever of the rest is free.
    """

    total: int
    reserve: int
    _agents: int = field(default=0, init=False)
    _host: int = field(default=0, init=False)

    @classmethod
    def create(cls, total: int, host_cap: int) -> ConnectionBudget:
        """A budget whose reserve is the host socket's own cap, up to half the total."""
        return cls(total=total, reserve=min(host_cap, total // 2))

    @property
    def open(self) -> int:
        return self._agents + self._host

    def admit(self, *, host: bool) -> bool:
        """Count one more connection if it fits; False means refuse it."""
        if self.open >= self.total:
            return False
        if host:
            self._host += 1
            return True
        if self._agents >= self.total - self.reserve:
            return False
        self._agents += 1
        return True

    def release(self, *, host: bool) -> None:
        if host:
            self._host = max(0, self._host - 1)
        else:
            self._agents = max(0, self._agents - 1)
