"""A core's part among the hosts sharing its store: the signals it sends and hears
(core/db/signals.py), and its row in ``hosts``, kept fresh by its heartbeat."""

from __future__ import annotations

from collections.abc import Callable

from hyperhive.config import Config
from hyperhive.core.db import Database, open_signals
from hyperhive.core.hosts.heartbeat import Heartbeat
from hyperhive.core.hosts.table import HostTable


class Presence:
    def __init__(self, conn: Database, config: Config, *, runs_agents: bool = True) -> None:
        """``runs_agents``: whether this core has a container backend (hosts may pick it
        for a spawn)."""
        self.signals = open_signals(conn, config.database_url)
        self.hosts = HostTable(conn)
        self._name, self._url = config.host_name, config.front_door
        self._heartbeat: Heartbeat | None = None
        self._runs_agents = runs_agents

    async def start(self, agents: Callable[[], int]) -> None:
        """Listen, then announce this host; ``agents()``: how many it runs now."""
        # Before any socket opens: a wake from another host must find us listening.
        await self.signals.start()
        self._heartbeat = Heartbeat(
            self.hosts, self._name, self._url, agents, runs_agents=self._runs_agents
        )
        await self._heartbeat.start()

    async def close(self) -> None:
        """Before the store closes: the last beat must find it open."""
        await self.signals.close()
        if self._heartbeat is not None:
            await self._heartbeat.close()
