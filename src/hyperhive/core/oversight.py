"""What keeps the operator informed and the record straight: the hash-chained audit log
(core/audit.py), notifications to the operator's sinks (core/notify/), the stall watch
(core/stall_watch.py) and the metrics' counters (core/metrics.py).

They all hang off the bus and the store, and none of them decides anything for the
hive; built together by :meth:`Oversight.build` before any other service publishes, so
the audit log and the counters see the first event. The stall watch needs the
governance and the broker, so it joins once those exist (:meth:`Oversight.watch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hyperhive.core.audit import AuditLog
from hyperhive.core.audit_observer import AgentAudit
from hyperhive.core.broker import Broker
from hyperhive.core.bus import EventBus
from hyperhive.core.db import Database
from hyperhive.core.governance import Governance
from hyperhive.core.metrics import Metrics
from hyperhive.core.notify.dispatcher import Notifications, dashboard_base
from hyperhive.core.operator_token import DashboardLink
from hyperhive.core.stall_watch import HiveSources, StallWatch
from hyperhive.settings import LiveSettings

AUDIT_HEAD: Final = "audit.head"  # in the state dir: the chain's end, outside the db


@dataclass
class Oversight:
    audit: AuditLog
    notifications: Notifications
    metrics: Metrics
    stalls: StallWatch | None = None

    @classmethod
    def build(
        cls,
        conn: Database,
        bus: EventBus,
        settings: LiveSettings,
        state_dir: Path,
        dashboard_link: Callable[[], DashboardLink | None],
    ) -> Oversight:
        audit = AuditLog(conn, state_dir / AUDIT_HEAD)
        bus.observe(AgentAudit(audit).observe)  # lifecycle and agents, from the first event
        links = dashboard_base(settings, dashboard_link)
        notifications = Notifications(conn, bus, settings, links)
        metrics = Metrics()
        bus.observe(metrics.observe)
        return cls(audit, notifications, metrics)

    def watch(
        self, bus: EventBus, settings: LiveSettings, governance: Governance, broker: Broker
    ) -> StallWatch:
        sources = HiveSources(governance.queue, governance.book, broker)
        self.stalls = StallWatch(bus, settings, sources)
        return self.stalls

    def start(self) -> None:
        """Before any socket opens: a request may ask for the operator at once."""
        self.notifications.start()
        if self.stalls is not None:
            self.stalls.start()

    async def stop_watching(self) -> None:
        """First in a drain: the agents going away are no stalls."""
        if self.stalls is not None:
            await self.stalls.close()

    async def close(self, grace: float) -> None:
        """Last in a drain, after the containers: what they did going down is told and
        recorded too."""
        await self.notifications.close(grace)
        self.audit.flush()
