"""The running core: store, registry, broker, bus, sockets and (with a backend)
the lifecycle of agents' containers, wired together.

:class:`Hive` only composes. It is built from a resolved :class:`Config` without
touching anything; :meth:`Hive.start` opens the store, wires the services, opens the
sockets and boots the containers; :meth:`Hive.shutdown` undoes it in the reverse
order: stop accepting, let requests in flight finish, stop the containers, close
the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hyperhive.backends.base import Backend
from hyperhive.config import Config
from hyperhive.core.agent_uids import AgentUids
from hyperhive.core.audit import AuditLog
from hyperhive.core.broker import Broker
from hyperhive.core.bus import EventBus
from hyperhive.core.caller import Caller
from hyperhive.core.config_repo import ConfigRepos
from hyperhive.core.connections import ConnectionBudget
from hyperhive.core.containers import (
    ContainerRecords,
    agent_state_dir,
    forwarded_env,
)
from hyperhive.core.db import Database, open_store
from hyperhive.core.directory import AgentDirectory
from hyperhive.core.gateway.budget import Budget
from hyperhive.core.gateway.credentials import HiveCredentials
from hyperhive.core.gateway.meter import Meter, build_meter
from hyperhive.core.gateway.service import Gateway
from hyperhive.core.gateway.setup_token import SetupTokens
from hyperhive.core.gateway.wiring import gateway_for, logins
from hyperhive.core.governance import Governance
from hyperhive.core.hosts.presence import Presence
from hyperhive.core.lifecycle import ContainersDisabled, Lifecycle, container_services
from hyperhive.core.notifier import Notifier
from hyperhive.core.notify.dispatcher import Notifications
from hyperhive.core.operator_desk import OperatorDesk
from hyperhive.core.operator_token import DashboardLink
from hyperhive.core.ops import NotStarted, OpTable, Services
from hyperhive.core.oversight import Oversight
from hyperhive.core.page_relay import PageRelays
from hyperhive.core.registry import AgentRecord, Registry
from hyperhive.core.server import DRAIN_SECONDS, SocketServer
from hyperhive.core.sockets import SocketFactory
from hyperhive.core.supervision import Policy
from hyperhive.errors import HiveError
from hyperhive.names import OPERATOR
from hyperhive.settings import LiveSettings

__all__ = ["ContainersDisabled", "Hive", "NotStarted", "private_dirs"]

log = logging.getLogger(__name__)


def private_dirs(*dirs: Path) -> None:
    """The core's state and run dirs: the core's alone (0700), whatever umask made them."""
    for path in dirs:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)


@dataclass(frozen=True, slots=True)
class _Parts:
    """The services of a started hive."""

    registry: Registry
    bus: EventBus
    broker: Broker
    uids: AgentUids
    governance: Governance
    directory: AgentDirectory
    lifecycle: Lifecycle | None
    sockets: SocketFactory
    ops: OpTable
    started: float


class Hive:
    def __init__(
        self,
        config: Config,
        backend: Backend | None = None,
        *,
        env: Mapping[str, str] | None = None,
        policy: Policy | None = None,
        operator_token: str | None = None,
        settings: LiveSettings | None = None,
    ) -> None:
        """``env``: the environment forwarded into containers (default: the core's own);
        ``settings``: what a reload may change (hive.toml), read live by the services."""
        self.config = config
        self.settings = settings if settings is not None else LiveSettings()
        self._backend = backend
        self._env = env
        self._policy = policy
        self._operator_token = operator_token
        self._conn: Database | None = None
        self._presence: Presence | None = None
        self._parts: _Parts | None = None
        self._host: SocketServer | None = None
        self._setup_tokens: SetupTokens | None = None
        self._gateway: Gateway | None = None
        self._meter: Meter | None = None
        self._oversight: Oversight | None = None
        # Set by whoever serves the dashboard; the host socket's dashboard_url answers it.
        self.dashboard_link: DashboardLink | None = None

    # -- the parts ----------------------------------------------------------------

    @property
    def _given_env(self) -> Mapping[str, str]:
        """The env the hive is given: its containers' and its gateway's (tests give
        FakeAnthropic's); the core's own by default."""
        return os.environ if self._env is None else self._env

    @property
    def conn(self) -> Database:
        """The store, opened at start (or at the first look before it)."""
        if self._conn is None:
            private_dirs(self.config.state_dir, self.config.run_dir)
            self._conn = open_store(self.config.store, durability=self.config.durability)
        return self._conn

    def _running(self) -> _Parts:
        if self._parts is None:
            raise NotStarted("the hive is not started: call start() first")
        return self._parts

    @property
    def registry(self) -> Registry:
        return self._running().registry

    @property
    def broker(self) -> Broker:
        return self._running().broker

    @property
    def bus(self) -> EventBus:
        return self._running().bus

    @property
    def uids(self) -> AgentUids:
        return self._running().uids

    @property
    def governance(self) -> Governance:
        return self._running().governance

    @property
    def directory(self) -> AgentDirectory:
        return self._running().directory

    @property
    def sockets(self) -> SocketFactory:
        return self._running().sockets

    @property
    def connections(self) -> ConnectionBudget:
        """The connection budget every socket shares."""
        return self._running().sockets.budget

    @property
    def started(self) -> float:
        """When it started, on the monotonic clock."""
        return self._running().started

    @property
    def lifecycle(self) -> Lifecycle:
        if self._backend is None:
            raise ContainersDisabled("this hive-c0re runs without a container backend")
        lifecycle = self._running().lifecycle
        assert lifecycle is not None  # wired whenever there is a backend
        return lifecycle

    @property
    def credentials(self) -> HiveCredentials:
        """The credentials only the core holds (core/gateway/credentials.py)."""
        found = self._running().ops.services.credentials
        assert found is not None  # always composed
        return found

    @property
    def has_containers(self) -> bool:
        return self._backend is not None

    def operator_desk(self) -> OperatorDesk:
        """The operator's ops as calls, for the dashboard."""
        parts = self._running()
        state_dir = self.config.state_dir
        return OperatorDesk(
            parts.ops.call, parts.bus, lambda name: agent_state_dir(state_dir, name)
        )

    def socket_path(self, agent: AgentRecord) -> Path:
        return self.directory.socket_path(agent)

    # -- wiring -------------------------------------------------------------------

    def _compose(self, conn: Database) -> _Parts:
        """Every service, each given exactly what it uses."""
        config, backend = self.config, self._backend
        presence = self._presence = Presence(conn, config, runs_agents=backend is not None)
        signals = presence.signals
        registry, bus = Registry(conn, config.host_name, signals), EventBus()
        oversight = self._oversight = Oversight.build(
            conn, bus, self.settings, config.state_dir, lambda: self.dashboard_link
        )
        broker = Broker.for_config(conn, registry, bus, config, signals)
        uids = AgentUids(conn)
        notifier = Notifier(bus, broker, registry)
        credentials, self._setup_tokens = logins(config, self._given_env, bus)
        ops = OpTable()
        sockets = SocketFactory.for_config(config, ops, broker)
        # Agents that run as their own uids get their sockets as theirs too.
        own_uids = backend is not None and backend.agent_uids
        meter = self._meter = self._metering(conn, broker, notifier, registry)
        self._gateway = gateway_for(
            config, self._given_env, meter, credentials, sockets.budget, self.settings
        )
        directory = AgentDirectory(
            config,
            registry,
            sockets,
            notifier,
            uids=uids if own_uids else None,
            gateway=self._gateway,
            # Their 127.0.0.1 is their own: the seed's page ports live on in the core.
            relays=PageRelays() if backend is not None and backend.own_network else None,
        )
        repos, lifecycle = self._containers(conn, registry, directory, notifier, uids)
        governance = Governance(
            conn,
            registry,
            notifier,
            state_dir=config.state_dir,
            run_dir=config.run_dir,
            repos=repos,
            lifecycle=lifecycle,
            settings=self.settings,
            audit=oversight.audit,
            signals=signals,
            hosts=presence.hosts,
        )
        started = time.monotonic()
        stalls = oversight.watch(bus, self.settings, governance, broker)
        ops.bind(
            Services(
                config=config,
                broker=broker,
                registry=registry,
                directory=directory,
                bus=bus,
                governance=governance,
                containers=lifecycle,
                dashboard_link=lambda: self.dashboard_link,
                started=started,
                durability=conn.durability(),
                credentials=credentials,
                setup_tokens=self._setup_tokens,
                meter=meter,
                settings=self.settings,
                audit=oversight.audit,
                notifications=oversight.notifications,
                stalls=stalls,
                metrics=oversight.metrics,
                hosts=presence.hosts,
            )
        )
        return _Parts(
            registry, bus, broker, uids, governance, directory, lifecycle, sockets, ops, started
        )

    def _metering(
        self, conn: Database, broker: Broker, notifier: Notifier, registry: Registry
    ) -> Meter:
        """Spend and budgets; a bad <state>/prices.toml is a ConfigError here, at start."""
        return build_meter(
            self.config, conn, holds=broker, teller=notifier,
            agents=lambda: [a.name for a in registry.all()],
            budgets_of=self._budget_of, settings=self.settings,
        )  # fmt: skip

    def _containers(
        self,
        conn: Database,
        registry: Registry,
        directory: AgentDirectory,
        notifier: Notifier,
        uids: AgentUids,
    ) -> tuple[ConfigRepos | None, Lifecycle | None]:
        """With a backend: the agents' config repos and their containers' lifecycle."""
        if self._backend is None:
            return None, None
        records = ContainerRecords(conn, time.time)
        env = forwarded_env(self._given_env)
        return container_services(
            self._backend, self.config, records, registry, directory, notifier, uids,
            env=env, policy=self._policy, operator_token=self._operator_token,
        )  # fmt: skip

    def _budget_of(self, name: str) -> Budget:
        """``name``'s ``[budget]`` from the agent.toml its container runs with; none
        without a backend (or a config that cannot be read: the hive budget still holds)."""
        lifecycle = self._parts.lifecycle if self._parts is not None else None
        if lifecycle is None:
            return Budget()
        record = lifecycle.records.get(name)
        try:
            return lifecycle.repos.applied_agent(name, record.config_sha if record else None).budget
        except HiveError:
            return Budget()

    @property
    def oversight(self) -> Oversight:
        """The audit log, notifications, stall watch and metrics (core/oversight.py)."""
        self._running()
        assert self._oversight is not None  # composed with the rest
        return self._oversight

    @property
    def audit(self) -> AuditLog:
        return self.oversight.audit

    @property
    def meter(self) -> Meter:
        """Spend and budgets (core/gateway/meter.py)."""
        self._running()
        assert self._meter is not None  # composed with the rest
        return self._meter

    @property
    def notifications(self) -> Notifications:
        return self.oversight.notifications

    @property
    def gateway(self) -> Gateway:
        self._running()
        assert self._gateway is not None  # composed with the rest
        return self._gateway

    # -- running ------------------------------------------------------------------

    async def start(self, *, manager: bool = False) -> None:
        if self._parts is not None:
            raise HiveError("the hive is started already")
        parts = self._parts = self._compose(self.conn)
        assert self._presence is not None  # composed with the rest
        await self._presence.start(lambda: len(parts.registry.local()))
        self.meter.start()  # spent agents held again before any socket opens
        self.oversight.start()  # before any request can ask for the operator
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        self._host = parts.sockets(self.config.host_socket, Caller(OPERATOR, "operator", via="cli"))
        await self._host.start()
        await parts.directory.open_all()
        if parts.lifecycle is not None:
            await parts.lifecycle.boot(manager=manager)
        log.info("hive-c0re up: %d agent(s), host socket %s", len(parts.directory), self._host.path)

    async def add_agent(self, name: object, allow_send: list[str] | None) -> AgentRecord:
        return await self.directory.add(name, allow_send)

    async def remove_agent(self, name: str) -> None:
        await self.directory.remove(name)

    async def shutdown(self, grace: float = DRAIN_SECONDS) -> None:
        """Drain: long-polls answer ``null``, streams end, requests in flight finish;
        then the containers stop and the store closes."""
        parts = self._parts
        if parts is not None:
            parts.broker.close()
            parts.bus.close()
            self.meter.close()
            await self.oversight.stop_watching()
            host, self._host = self._host, None
            closing = [parts.directory.close(grace)]
            if host is not None:
                closing.append(host.close(grace))
            await asyncio.gather(*closing)
            if parts.lifecycle is not None:
                await parts.lifecycle.shutdown()
            await self.oversight.close(grace)
        if self._presence is not None:
            await self._presence.close()
        if self._setup_tokens is not None:
            await self._setup_tokens.close()
        if self._conn is not None:
            self._conn.close()
