"""The running core: store, registry, broker, bus and sockets, wired together.

:class:`Hive` is built from a resolved :class:`Config`, started, and shut down
in the reverse order: stop accepting, let requests in flight finish, close.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from hyperhive.config import Config
from hyperhive.core.broker import Broker
from hyperhive.core.bus import EventBus
from hyperhive.core.registry import AgentRecord, Registry
from hyperhive.core.server import DRAIN_SECONDS, SocketServer
from hyperhive.core.store import open_store
from hyperhive.names import OPERATOR

log = logging.getLogger(__name__)


class Hive:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = time.monotonic()
        self._conn = open_store(config.db_path)
        self.registry = Registry(self._conn)
        self.bus = EventBus()
        self.broker = Broker(
            self._conn,
            self.registry,
            self.bus,
            max_body=config.max_body,
            lease_seconds=config.lease_seconds,
        )
        self._servers: dict[str, SocketServer] = {}

    def socket_path(self, agent: AgentRecord) -> Path:
        return self.config.agent_socket(agent.name, manager=agent.role == "manager")

    async def start(self) -> None:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        host = SocketServer(self, self.config.host_socket, OPERATOR, "operator")
        await host.start()
        self._servers[OPERATOR] = host
        for agent in self.registry.all():
            await self._open_agent_socket(agent)
        log.info("hive-c0re up: %d agent(s), host socket %s", len(self._servers) - 1, host.path)

    async def add_agent(self, name: object, allow_send: list[str] | None) -> AgentRecord:
        record = self.registry.add(name, allow_send)
        await self._open_agent_socket(record)
        self.bus.publish({"type": "agent_added", "agent": record.to_wire()})
        return record

    async def _open_agent_socket(self, agent: AgentRecord) -> None:
        server = SocketServer(self, self.socket_path(agent), agent.name, agent.role)
        await server.start()
        self._servers[agent.name] = server

    async def shutdown(self, grace: float = DRAIN_SECONDS) -> None:
        """Drain: long-polls answer ``null``, streams end, requests in flight finish."""
        self.broker.close()
        self.bus.close()
        await asyncio.gather(*(s.close(grace) for s in self._servers.values()))
        self._servers.clear()
        self._conn.close()
