"""Messaging ops (every role) and the operator's view of the log and the core."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any, Final

from hyperhive import __version__
from hyperhive.core import previews
from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args
from hyperhive.names import OPERATOR

MAX_LIMIT: Final = 1000


async def ping(s: Services, caller: Caller, args: Args) -> Any:
    return {"pong": True, "version": __version__}


async def whoami(s: Services, caller: Caller, args: Args) -> Any:
    return {"name": caller.name, "role": caller.role}


async def send(s: Services, caller: Caller, args: Args) -> Any:
    to, body, key = args.raw("to"), args.raw("body"), args.raw("key")
    args.finish()
    return s.broker.send(caller.name, to, body, key=key).to_wire()


async def recv(s: Services, caller: Caller, args: Args) -> Any:
    wait = args.number("wait", 0.0, 0.0, 3600.0)
    lease = args.flag("lease")
    args.finish()
    got = await s.broker.recv(caller.name, wait, holder=caller if lease else None)
    if got is None:
        return None
    message, held = got
    if held is None:
        return {"message": message.to_wire(), "lease": None}
    return {"message": message.to_wire(), "lease": held.token, "lease_expires_at": held.expires_at}


async def ack(s: Services, caller: Caller, args: Args) -> Any:
    token = args.raw("lease")
    args.finish()
    return {"id": s.broker.ack(caller.name, token)}


async def nack(s: Services, caller: Caller, args: Args) -> Any:
    token = args.raw("lease")
    args.finish()
    return {"id": s.broker.nack(caller.name, token)}


async def status(s: Services, caller: Caller, args: Args) -> Any:
    args.finish()
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - s.started, 3),
        "state_dir": str(s.config.state_dir),
        "run_dir": str(s.config.run_dir),
        "durability": s.durability,
        "store": "postgresql" if s.config.database_url is not None else "sqlite",
        "host": s.config.host_name,
        "containers": s.containers is not None,  # whether a backend runs agents at all
        "agents": len(s.registry.all()),
        "pending": s.broker.pending(),
        "waiting": s.broker.waiting(),
        "refusals": dict(s.broker.refusals),
        "subscribers": s.bus.subscribers,
    }


async def messages(s: Services, caller: Caller, args: Args) -> Any:
    """A page of the log, oldest first: bodies cut to a preview, the page capped in bytes.

    Page back with ``before`` = the first id of this page; ``message`` gives one whole.
    """
    agent = args.opt_text("agent")
    limit = args.integer("limit", 50, 1, MAX_LIMIT)
    before = None if args.raw("before") is None else args.integer("before", None, 1, 2**62)
    args.finish()
    if agent is not None and agent != OPERATOR:
        s.registry.get(agent)
    return s.broker.page(agent, limit, before)


async def message(s: Services, caller: Caller, args: Args) -> Any:
    message_id = args.integer("id", None, 1, 2**62)
    args.finish()
    return s.broker.get(message_id).to_wire()


def tail(s: Services, caller: Caller, args: Args) -> AsyncIterator[dict[str, Any]]:
    args.finish()
    return _bus_events(s)


async def _bus_events(s: Services) -> AsyncIterator[dict[str, Any]]:
    subscription = s.bus.subscribe()
    try:
        async for event in subscription:
            # Like the dashboard's feed: previews only, so a flood cannot fill a terminal.
            if event.get("type") == "message":
                event = {**event, "message": previews.preview(event["message"])}
            yield event
        if subscription.lagged:
            yield {"type": "lagged", "message": "this subscriber fell behind; events were lost"}
    finally:
        s.bus.unsubscribe(subscription)
