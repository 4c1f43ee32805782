"""On hm1nd's host, config repos for the agents of other hosts, so hm1nd can propose to them.

hm1nd edits ``<state>/proposed/<n>/config`` on its own host, and a request is staged (and
its diff computed) against the applied repo beside it (core/config_repo.py). For an agent
another host runs, that applied repo is a mirror: made here when the agent is first heard
of, from the config it was spawned with if an approval recorded one (else the default),
and moved along as its host applies approved changes (core/approval_runs.py). The agent's
host keeps the repo its container really runs.

A mirror goes (both repos, hm1nd's proposals with it) when its agent does: when another
host's removal is heard of, or, for a removal no signal brought, at a resync. Each mirror is
marked with the ``created_at`` of the agent it mirrors, so a resync tells a mirror from a
repo this host's own agent left (``destroy`` without ``--purge``), and a mirror of an agent
since destroyed and spawned again under the same name from one of the living agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Final

from hyperhive.core.agent_config import default_agent_toml
from hyperhive.core.config_repo import ConfigRepos
from hyperhive.core.db import Database
from hyperhive.core.db.signals import Signals
from hyperhive.core.registry import AgentRecord, Registry
from hyperhive.errors import AlreadyExists, HiveError
from hyperhive.names import MANAGER, validate_agent_name

log = logging.getLogger(__name__)

# In the mirror's applied .git (the core's own; git ignores it): the mirrored agent's
# created_at, exactly (repr of the float).
MARK: Final = "hyperhive-mirror"


class ProposalMirrors:
    def __init__(
        self, conn: Database, registry: Registry, repos: ConfigRepos, signals: Signals
    ) -> None:
        self._conn = conn
        self._registry = registry
        self._repos = repos
        self._queued: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._marks: dict[str, float | None] = {}  # as read from disk; dropped on change
        self._tasks: set[asyncio.Task[None]] = set()
        registry.watch(self._changed)
        registry.watch_removed(self._removed)
        signals.on_resync(self.resync)

    def missing(self) -> list[str]:
        """Other hosts' agents with no repos here, when hm1nd is this host's."""
        if not self._registry.is_local(MANAGER):
            return []
        return [a.name for a in self._registry.all() if self._wanted(a.name)]

    def stale(self) -> list[str]:
        """Mirrors here of agents that are gone, or were replaced by a newer one of the
        same name, when hm1nd is this host's."""
        if not self._registry.is_local(MANAGER):
            return []
        try:
            entries = os.listdir(self._repos.applied_root)
        except OSError:
            return []
        return sorted(n for n in entries if _is_name(n) and self._is_stale(n))

    async def settle(self, name: str) -> None:
        """Bring ``name``'s mirror in line with the registry: dropped when its agent is gone
        or was replaced by another of that name, then made if one is wanted."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            # From here on the registry is read: a change heard now starts another settle.
            self._queued.discard(name)
            if self._has(name) and self._is_stale(name):
                await self._drop(name)
            if self._wanted(name):
                await self._make(name, self._registry.get(name))

    async def idle(self) -> None:
        """Until every settle started so far has finished."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def resync(self) -> None:
        for name in self.missing() + self.stale():
            self._start(name)

    def _changed(self, name: str, record: AgentRecord | None) -> None:
        if record is not None and (self._wanted(name) or self._is_stale(name)):
            self._start(name)

    def _removed(self, record: AgentRecord) -> None:
        """Another host removed ``record``'s agent: the mirror of it here goes too. Repos
        without its mark stay: what this host's own agent of that name left (or a mirror
        made before marks), which only the operator may remove."""
        name = record.name
        if record.host != self._registry.host and self._mark(name) == record.created_at:
            self._start(name)

    def _start(self, name: str) -> None:
        if name in self._queued:
            return  # one settle waits already, and reads the registry when it runs
        self._queued.add(name)
        task = asyncio.ensure_future(self.settle(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _make(self, name: str, record: AgentRecord) -> None:
        try:
            await self._repos.init_agent(name, self._spawned_with(name))
            mark = self._repos.applied_dir(name) / ".git" / MARK
            await asyncio.to_thread(mark.write_text, f"{record.created_at!r}\n", "ascii")
            self._marks[name] = record.created_at
            log.info("proposals of %s (host %s) kept here", name, record.host)
        except AlreadyExists:
            return
        except (HiveError, OSError) as exc:
            log.warning("no proposals for %s here: %s", name, exc)

    async def _drop(self, name: str) -> None:
        self._marks.pop(name, None)
        try:
            await self._repos.remove(name)
        except (HiveError, OSError) as exc:
            log.warning("proposals of %s, gone, not removed here: %s", name, exc)
            return
        log.info("proposals of %s removed here: the agent is gone", name)

    def _wanted(self, name: str) -> bool:
        return (
            self._registry.is_local(MANAGER)
            and name in self._registry
            and not self._registry.is_local(name)
            and not self._has(name)
        )

    def _is_stale(self, name: str) -> bool:
        """A marked mirror whose agent is gone, or is another of the same name (a repo
        without a mark is not a mirror, or predates marks: only a removal heard drops it)."""
        mark = self._mark(name)
        if mark is None or self._registry.is_local(name):
            return False
        return name not in self._registry or self._registry.get(name).created_at != mark

    def _mark(self, name: str) -> float | None:
        if name not in self._marks:
            path = self._repos.applied_dir(name) / ".git" / MARK
            try:
                self._marks[name] = float(path.read_text(encoding="ascii"))
            except (OSError, ValueError):
                self._marks[name] = None
        return self._marks[name]

    def _has(self, name: str) -> bool:
        return self._repos.applied_dir(name).exists()

    def _spawned_with(self, name: str) -> str:
        found = self._conn.execute(
            # Approved, not only applied: the agent is heard of while its spawn still runs.
            "SELECT config FROM approvals WHERE kind = 'spawn' AND agent = ?"
            " AND state IN ('approved', 'applied') AND config IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            (name,),
        ).fetchone()
        return str(found[0]) if found is not None else default_agent_toml(name)


def _is_name(entry: str) -> bool:
    try:
        validate_agent_name(entry)
    except HiveError:
        return False
    return True
