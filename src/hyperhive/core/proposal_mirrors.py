"""On hm1nd's host, config repos for the agents of other hosts, so hm1nd can propose to them.

hm1nd edits ``<state>/proposed/<n>/config`` on its own host, and a request is staged (and
its diff computed) against the applied repo beside it (core/config_repo.py). For an agent
another host runs, that applied repo is a mirror: made here when the agent is first heard
of, from the config it was spawned with if an approval recorded one (else the default),
and moved along as its host applies approved changes (core/approval_runs.py). The agent's
host keeps the repo its container really runs.
"""

from __future__ import annotations

import asyncio
import logging

from hyperhive.core.agent_config import default_agent_toml
from hyperhive.core.config_repo import ConfigRepos
from hyperhive.core.db import Database
from hyperhive.core.db.signals import Signals
from hyperhive.core.registry import AgentRecord, Registry
from hyperhive.errors import AlreadyExists, HiveError
from hyperhive.names import MANAGER

log = logging.getLogger(__name__)


class ProposalMirrors:
    def __init__(
        self, conn: Database, registry: Registry, repos: ConfigRepos, signals: Signals
    ) -> None:
        self._conn = conn
        self._registry = registry
        self._repos = repos
        self._making: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        registry.watch(self._changed)
        signals.on_resync(self.resync)

    def missing(self) -> list[str]:
        """Other hosts' agents with no repos here, when hm1nd is this host's."""
        if not self._registry.is_local(MANAGER):
            return []
        return [
            a.name
            for a in self._registry.all()
            if not self._registry.is_local(a.name) and not self._has(a.name)
        ]

    async def make(self, name: str) -> None:
        if name in self._making or self._has(name):
            return
        self._making.add(name)
        try:
            await self._repos.init_agent(name, self._spawned_with(name))
            log.info("proposals of %s (host %s) kept here", name, self._registry.get(name).host)
        except AlreadyExists:
            return
        except HiveError as exc:
            log.warning("no proposals for %s here: %s", name, exc.message)
        finally:
            self._making.discard(name)

    def resync(self) -> None:
        for name in self.missing():
            self._start(name)

    def _changed(self, name: str, record: AgentRecord | None) -> None:
        if record is not None and name in self.missing():
            self._start(name)

    def _start(self, name: str) -> None:
        task = asyncio.ensure_future(self.make(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
