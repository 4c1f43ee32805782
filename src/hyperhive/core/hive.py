"""The running core: store, registry, broker, bus, sockets and (with a backend)
the lifecycle of agents' containers, wired together.

:class:`Hive` is built from a resolved :class:`Config`, started, and shut down
in the reverse order: stop accepting, let requests in flight finish, stop the
containers, close the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from hyperhive.backends.base import Backend
from hyperhive.config import Config
from hyperhive.core.agent_uids import AgentUids
from hyperhive.core.broker import Broker
from hyperhive.core.bus import EventBus
from hyperhive.core.config_repo import ConfigRepos
from hyperhive.core.containers import forwarded_env, hive_rev
from hyperhive.core.governance import Governance
from hyperhive.core.lifecycle import Lifecycle
from hyperhive.core.limits import SendPolicy
from hyperhive.core.operator_token import DashboardLink
from hyperhive.core.registry import AgentRecord, Registry
from hyperhive.core.server import DRAIN_SECONDS, SocketServer, connection_budget
from hyperhive.core.store import open_store
from hyperhive.core.supervision import Policy
from hyperhive.errors import HiveError
from hyperhive.names import MANAGER, OPERATOR

log = logging.getLogger(__name__)


def private_dirs(*dirs: Path) -> None:
    """The core's state and run dirs: the core's alone (0700), whatever umask made them."""
    for path in dirs:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)


class ContainersDisabled(HiveError):
    code = "no_containers"


class Hive:
    def __init__(
        self,
        config: Config,
        backend: Backend | None = None,
        *,
        env: Mapping[str, str] | None = None,
        policy: Policy | None = None,
        operator_token: str | None = None,
    ) -> None:
        self.config = config
        self.started = time.monotonic()
        private_dirs(config.state_dir, config.run_dir)
        self._conn = open_store(config.db_path, durability=config.durability)
        self.registry = Registry(self._conn)
        self.bus = EventBus()
        self.broker = Broker(
            self._conn,
            self.registry,
            self.bus,
            max_body=config.max_body,
            lease_seconds=config.lease_seconds,
            limits=SendPolicy.from_config(config),
            key_window=config.send_key_window,
            max_attempts=config.max_attempts,
        )
        self._lifecycle: Lifecycle | None = None
        self.uids = AgentUids(self._conn)
        # Agents that run as their own uids get their sockets as theirs too.
        self._socket_owners = backend is not None and backend.agent_uids
        if backend is not None:
            # The manager edits every agent's proposed config as its own uid.
            owner = self.uids.get(MANAGER) if backend.agent_uids else None
            self._lifecycle = Lifecycle(
                self,
                backend,
                ConfigRepos(config.state_dir, owner=owner),
                env=forwarded_env(os.environ if env is None else env),
                rev=hive_rev(),
                policy=policy,
                operator_token=operator_token,
                uids=self.uids,
            )
        self.governance = Governance(self)
        self.connections = connection_budget(config)  # shared by every socket
        self._servers: dict[str, SocketServer] = {}
        # Set by whoever serves the dashboard; the host socket's dashboard_url answers it.
        self.dashboard_link: DashboardLink | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    @property
    def lifecycle(self) -> Lifecycle:
        if self._lifecycle is None:
            raise ContainersDisabled("this hive-c0re runs without a container backend")
        return self._lifecycle

    @property
    def has_containers(self) -> bool:
        return self._lifecycle is not None

    def socket_path(self, agent: AgentRecord) -> Path:
        return self.config.agent_socket(agent.name, manager=agent.role == "manager")

    async def start(self, *, manager: bool = False) -> None:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        host = SocketServer(self, self.config.host_socket, OPERATOR, "operator")
        await host.start()
        self._servers[OPERATOR] = host
        for agent in self.registry.all():
            await self._open_agent_socket(agent)
        if self._lifecycle is not None:
            await self._lifecycle.boot(manager=manager)
        log.info("hive-c0re up: %d agent(s), host socket %s", len(self._servers) - 1, host.path)

    async def add_agent(self, name: object, allow_send: list[str] | None) -> AgentRecord:
        record = self.registry.add(name, allow_send)
        await self._open_agent_socket(record)
        self.bus.publish({"type": "agent_added", "agent": record.to_wire()})
        return record

    async def remove_agent(self, name: str) -> None:
        self.registry.remove(name)
        server = self._servers.pop(name, None)
        if server is not None:
            await server.close(grace=1.0)
        self.bus.publish({"type": "agent_removed", "agent": name})

    async def _open_agent_socket(self, agent: AgentRecord) -> None:
        owner = self.uids.get(agent.name) if self._socket_owners else None
        server = SocketServer(self, self.socket_path(agent), agent.name, agent.role, owner=owner)
        await server.start()
        self._servers[agent.name] = server

    async def shutdown(self, grace: float = DRAIN_SECONDS) -> None:
        """Drain: long-polls answer ``null``, streams end, requests in flight finish;
        then the containers stop and the store closes."""
        self.broker.close()
        self.bus.close()
        await asyncio.gather(*(s.close(grace) for s in self._servers.values()))
        self._servers.clear()
        if self._lifecycle is not None:
            await self._lifecycle.shutdown()
        self._conn.close()
