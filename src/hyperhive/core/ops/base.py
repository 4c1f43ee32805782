"""The shape of an op: who calls it (the socket's identity), what it may use (the
:class:`Services`), and its handler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hyperhive.config import Config
from hyperhive.core.audit import AuditLog
from hyperhive.core.broker import Broker
from hyperhive.core.bus import EventBus
from hyperhive.core.caller import Caller, Role
from hyperhive.core.directory import AgentDirectory
from hyperhive.core.gateway.credentials import HiveCredentials
from hyperhive.core.gateway.meter import Meter
from hyperhive.core.gateway.setup_token import SetupTokens
from hyperhive.core.governance import Governance
from hyperhive.core.hosts.table import HostTable
from hyperhive.core.lifecycle import ContainersDisabled, Lifecycle
from hyperhive.core.metrics import Metrics
from hyperhive.core.notify.dispatcher import Notifications
from hyperhive.core.operator_token import DashboardLink
from hyperhive.core.protocol import Args
from hyperhive.core.registry import Registry
from hyperhive.core.stall_watch import StallWatch
from hyperhive.settings import LiveSettings

__all__ = ["Args", "Caller", "Handler", "Role", "Services", "Streamer"]


@dataclass(frozen=True, slots=True)
class Services:
    """What ops act on: the running hive's parts, and nothing of how they are wired."""

    config: Config
    broker: Broker
    registry: Registry
    directory: AgentDirectory
    bus: EventBus
    governance: Governance
    containers: Lifecycle | None  # None: a hive-c0re without a container backend
    dashboard_link: Callable[[], DashboardLink | None]  # set once the dashboard serves
    started: float  # time.monotonic() at start
    durability: str  # the store's, as sqlite runs it
    # The credentials only the core holds, and its setup-token flows (core/ops/logins.py).
    credentials: HiveCredentials | None = None
    setup_tokens: SetupTokens | None = None
    # Spend and budgets (core/gateway/meter.py, core/ops/usage.py); None: nothing metered.
    meter: Meter | None = None
    # What a reload may change (hive.toml): read at the moment of deciding.
    settings: LiveSettings = field(default_factory=LiveSettings)
    # The hash-chained audit log (core/audit.py); None: nothing is recorded.
    audit: AuditLog | None = None
    # Stall detection (core/stall_watch.py) and the core's own counters (core/metrics.py).
    stalls: StallWatch | None = None
    metrics: Metrics | None = None
    # Notifications to the operator's sinks (core/notify/); None: not composed.
    notifications: Notifications | None = None
    # The cores sharing the store and their beats (core/hosts/): which host is up, for the
    # hosts op and the agents' rows; None: not composed, every host is "unknown".
    hosts: HostTable | None = None

    @property
    def lifecycle(self) -> Lifecycle:
        if self.containers is None:
            raise ContainersDisabled("this hive-c0re runs without a container backend")
        return self.containers


Handler = Callable[[Services, Caller, Args], Awaitable[Any]]
Streamer = Callable[[Services, Caller, Args], AsyncIterator[dict[str, Any]]]


def agent_or_hive(s: Services, args: Args) -> str | None:
    """The agent ``agent`` names (checked registered: else UnknownAgent), or None for the
    whole hive."""
    name = args.opt_text("agent")
    if name is not None:
        s.registry.get(name)
    return name
