"""The operator's view of notifications (core/notify/): per sink, what was delivered,
failed, dropped and is pending, and the recent outbox rows (no payloads, no secrets)."""

from __future__ import annotations

from typing import Any, Final

from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args

MAX_LIMIT: Final = 200


async def notifications(s: Services, caller: Caller, args: Args) -> Any:
    """``{sinks: {name: counts}, recent: [row]}``, newest first; ``sink`` narrows the rows."""
    sink = args.opt_text("sink")
    limit = args.integer("limit", 50, 1, MAX_LIMIT)
    args.finish()
    service = s.notifications
    if service is None:
        return {"sinks": {}, "recent": []}
    rows = service.outbox.recent(limit, sink)
    return {"sinks": service.stats(), "recent": [r.to_wire() for r in rows]}
