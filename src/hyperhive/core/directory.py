"""Who the agents are and where they are reached: the registry, and one listening
socket per agent, kept in step (an agent exists exactly while its socket is open)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hyperhive.agent.settings import PAGE_SOCKET_NAME
from hyperhive.config import Config
from hyperhive.core.agent_uids import AgentUids
from hyperhive.core.caller import Caller
from hyperhive.core.gateway.service import Gateway
from hyperhive.core.notifier import Notifier
from hyperhive.core.page_relay import PageRelays
from hyperhive.core.registry import AgentRecord, Registry
from hyperhive.core.server import DRAIN_SECONDS, SocketServer
from hyperhive.core.sockets import SocketFactory

REMOVE_GRACE = 1.0  # seconds a removed agent's requests in flight get


class AgentDirectory:
    def __init__(
        self,
        config: Config,
        registry: Registry,
        sockets: SocketFactory,
        notifier: Notifier,
        *,
        uids: AgentUids | None = None,
        gateway: Gateway | None = None,
        relays: PageRelays | None = None,
    ) -> None:
        """``uids``: when agents run as their own uids, their sockets are theirs too.
        ``gateway``: serves each agent the Messages API on an ``api.sock`` beside its
        socket, opened and closed with it. ``relays``: each agent's page port on the
        host, relayed to its ``page.sock`` (backends where its loopback is its own)."""
        self._config = config
        self.registry = registry
        self._sockets = sockets
        self._notifier = notifier
        self._uids = uids
        self._gateway = gateway
        self.relays = relays
        self._servers: dict[str, SocketServer] = {}
        self._paths: dict[str, Path] = {}  # asked for on every listing of every agent
        registry.watch(self._changed_elsewhere)

    def _changed_elsewhere(self, name: str, record: AgentRecord | None) -> None:
        """Another host added, changed or removed an agent: this host's dashboards and
        watchers hear of it as of a change made here."""
        if record is not None:
            self._notifier.publish({"type": "agent_added", "agent": record.to_wire()})
        else:
            self._paths.pop(name, None)
            self._notifier.publish({"type": "agent_removed", "agent": name})

    def __contains__(self, name: object) -> bool:
        return name in self.registry

    def __len__(self) -> int:
        return len(self._servers)

    def socket_path(self, agent: AgentRecord) -> Path:
        path = self._paths.get(agent.name)
        if path is None:
            path = self._config.agent_socket(agent.name, manager=agent.role == "manager")
            self._paths[agent.name] = path
        return path

    async def open_all(self) -> None:
        """Open the socket of every agent this host runs (at start)."""
        for agent in self.registry.local():
            await self._open(agent)

    async def add(self, name: object, allow_send: list[str] | None) -> AgentRecord:
        record = self.registry.add(name, allow_send)
        await self._open(record)
        self._notifier.publish({"type": "agent_added", "agent": record.to_wire()})
        return record

    async def remove(self, name: str) -> None:
        self.registry.remove(name)
        self._paths.pop(name, None)
        server = self._servers.pop(name, None)
        if server is not None:
            await server.close(grace=REMOVE_GRACE)
        if self._gateway is not None:
            await self._gateway.close(name, grace=REMOVE_GRACE)
        if self.relays is not None:
            await self.relays.close(name)
        self._notifier.publish({"type": "agent_removed", "agent": name})

    async def close(self, grace: float = DRAIN_SECONDS) -> None:
        """Drain and close every agent's socket (the hive is going away)."""
        servers, self._servers = list(self._servers.values()), {}
        closing = [s.close(grace) for s in servers]
        if self._gateway is not None:
            closing.append(self._gateway.close_all(grace))
        if self.relays is not None:
            closing.append(self.relays.close_all())
        await asyncio.gather(*closing)

    async def _open(self, agent: AgentRecord) -> None:
        owner = self._uids.get(agent.name) if self._uids is not None else None
        caller = Caller(agent.name, agent.role)
        server = self._sockets(self.socket_path(agent), caller, owner=owner)
        await server.start()
        self._servers[agent.name] = server
        if self._gateway is not None:
            # After mcp.sock: its start made the directory (the agent's own, if it has a uid).
            await self._gateway.open(agent.name, server.path.parent, owner)

    async def relay_page(self, name: str) -> None:
        """Relay ``name``'s page port to its page.sock, once its container runs (an agent
        registered by hand, outside any container, binds its port itself)."""
        agent = self.registry.get(name)
        if self.relays is not None and agent.port is not None:
            page = self.socket_path(agent).parent / PAGE_SOCKET_NAME
            await self.relays.open(name, agent.port, page)
