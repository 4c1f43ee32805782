"""Building the hive's sockets: limits and the hive-wide connection budget resolved from
the config, and one factory that makes every :class:`SocketServer` alike."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from hyperhive.config import Config
from hyperhive.core.caller import Caller
from hyperhive.core.connections import ConnectionBudget, budget_for_nofile
from hyperhive.core.server import Dispatch, LeaseHook, SocketLimits, SocketServer


def connection_budget(config: Config) -> ConnectionBudget:
    """The hive-wide budget: the configured one, else what RLIMIT_NOFILE leaves."""
    total = config.max_connections
    if total is None:
        total = budget_for_nofile(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    return ConnectionBudget.create(total, config.host_socket_connections)


def socket_limits(config: Config, *, host: bool) -> SocketLimits:
    return SocketLimits(
        connections=config.host_socket_connections if host else config.agent_socket_connections,
        max_line=config.max_line,
        line_timeout=config.line_timeout,
        idle_timeout=config.idle_timeout,
    )


@dataclass(frozen=True, slots=True)
class SocketFactory:
    """Makes (unstarted) sockets that answer through ``dispatch``, within ``budget``."""

    dispatch: Dispatch
    budget: ConnectionBudget
    leases: LeaseHook
    host_limits: SocketLimits
    agent_limits: SocketLimits

    @classmethod
    def for_config(cls, config: Config, dispatch: Dispatch, leases: LeaseHook) -> SocketFactory:
        return cls(
            dispatch,
            connection_budget(config),
            leases,
            socket_limits(config, host=True),
            socket_limits(config, host=False),
        )

    def __call__(self, path: Path, caller: Caller, *, owner: int | None = None) -> SocketServer:
        limits = self.host_limits if caller.role == "operator" else self.agent_limits
        return SocketServer(
            path, caller, self.dispatch, limits, self.budget, self.leases, owner=owner
        )
