"""Which host a spawn approval spawns on, kept in ``approvals.host``.

Named by the requester (``hive spawn NAME --host H``, hm1nd's ``request_spawn``), or else
the up host with the most headroom (:func:`~hyperhive.core.hosts.status.pick_host`); none
known up: none is recorded and the deciding core spawns, as a single core always has. The
chosen host's core carries the approval out (core/approval_runs.py).
"""

from __future__ import annotations

from hyperhive.core.db import Database
from hyperhive.core.hosts.status import is_down, pick_host
from hyperhive.core.hosts.table import HostTable
from hyperhive.errors import BadRequest


class UnknownHost(BadRequest):
    code = "unknown_host"


class HostRunsNoAgents(BadRequest):
    code = "host_runs_no_agents"


class SpawnPlacement:
    def __init__(self, conn: Database, here: str, hosts: HostTable | None) -> None:
        """``here``: this core's host; ``hosts``: the cores sharing the store (None: this
        one alone)."""
        self._conn = conn
        self.here = here
        self._hosts = hosts

    def choose(self, named: object) -> str | None:
        """The host a new agent goes to; a named one must be an up core sharing the store
        that runs agents (one started with ``--no-containers`` has nowhere to put one)."""
        hosts = self._hosts
        if named is None:
            return None if hosts is None else pick_host(hosts.all(), hosts.now(), hosts.interval)
        if not isinstance(named, str) or not named:
            raise BadRequest("host must be a host's name")
        row = hosts.get(named) if hosts is not None else None
        if row is not None and not row.runs_agents:
            raise HostRunsNoAgents(
                f"host {named!r} runs no agents (its core has no container backend:"
                " --no-containers); spawn on another host"
            )
        if named == self.here:
            return named
        if hosts is None or row is None:
            raise UnknownHost(f"no host named {named!r} shares this hive's store")
        if is_down(row, hosts.now(), hosts.interval):
            raise UnknownHost(f"host {named!r} is down; spawn elsewhere or bring it up")
        return named

    def host_of(self, approval_id: int) -> str | None:
        found = self._conn.execute(
            "SELECT host FROM approvals WHERE id = ?", (approval_id,)
        ).fetchone()
        return None if found is None or found[0] is None else str(found[0])

    def is_here(self, approval_id: int) -> bool:
        """Whether this core spawns it: it was placed here, or nowhere, or the store is
        this core's alone (a renamed machine's old name is still this host)."""
        if not self._conn.shared:
            return True
        host = self.host_of(approval_id)
        return host is None or host == self.here

    def waiting_here(self) -> list[int]:
        """Approved spawns placed on this host and not yet carried out."""
        rows = self._conn.execute(
            "SELECT id FROM approvals WHERE state = 'approved' AND kind = 'spawn' AND host = ?"
            " ORDER BY id",
            (self.here,),
        ).fetchall()
        return [int(i) for (i,) in rows]
