"""The operator's ``metrics`` op: every figure of the scrape, read now (core/metrics.py)."""

from __future__ import annotations

from typing import Any, Final

from hyperhive.core import metrics as shape
from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args

EVERY_DAY: Final = "0000-01-01"  # the ledger's first day and on


async def metrics(s: Services, caller: Caller, args: Args) -> Any:
    args.finish()
    names = [a.name for a in s.registry.all()]
    sent, delivered = s.broker.message_totals()
    pending = s.broker.pending()
    records = s.containers.records.all() if s.containers is not None else {}
    states = {name: record.state for name, record in records.items()}
    return {
        "messages": {
            "sent": sent,
            "delivered": delivered,
            "refused": dict(s.broker.refusals),
            # Found by the re-check, not a signal: a lost NOTIFY (core/routing.py).
            "found_by_recheck": s.broker.routing.found_by_recheck,
        },
        "dead_letters": s.metrics.dead_letters if s.metrics is not None else 0,
        "queue_depth": {name: pending.get(name, 0) for name in names},
        "approvals_pending": shape.approvals_by_kind(a.kind for a in s.governance.queue.pending()),
        "questions_pending": len(s.governance.book.pending()),
        "agents": shape.agents_by_state(names, states, s.containers is not None),
        "turns": {n: c for n, c in (s.metrics.turns() if s.metrics else {}).items() if n in names},
        "spend": (
            shape.spend_totals(s.meter.ledger.days(None, EVERY_DAY), names)
            if s.meter is not None
            else {}
        ),
        "notifications": shape.notification_stats(
            s.notifications.stats() if s.notifications is not None else None
        ),
        "stalls": shape.stalls_by_kind(s.stalls.stalls() if s.stalls is not None else []),
    }
