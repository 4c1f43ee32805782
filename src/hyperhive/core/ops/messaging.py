"""Messaging ops (every role) and the operator's view of the log and the core."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from hyperhive import __version__
from hyperhive.core import previews
from hyperhive.core.ops.base import Caller
from hyperhive.core.protocol import Args
from hyperhive.core.store import durability
from hyperhive.names import OPERATOR

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

MAX_LIMIT: Final = 1000


async def ping(hive: Hive, caller: Caller, args: Args) -> Any:
    return {"pong": True, "version": __version__}


async def whoami(hive: Hive, caller: Caller, args: Args) -> Any:
    return {"name": caller.name, "role": caller.role}


async def send(hive: Hive, caller: Caller, args: Args) -> Any:
    to, body, key = args.raw("to"), args.raw("body"), args.raw("key")
    args.finish()
    return hive.broker.send(caller.name, to, body, key=key).to_wire()


async def recv(hive: Hive, caller: Caller, args: Args) -> Any:
    wait = args.number("wait", 0.0, 0.0, 3600.0)
    lease = args.flag("lease")
    args.finish()
    got = await hive.broker.recv(caller.name, wait, holder=caller if lease else None)
    if got is None:
        return None
    message, held = got
    if held is None:
        return {"message": message.to_wire(), "lease": None}
    return {"message": message.to_wire(), "lease": held.token, "lease_expires_at": held.expires_at}


async def ack(hive: Hive, caller: Caller, args: Args) -> Any:
    token = args.raw("lease")
    args.finish()
    return {"id": hive.broker.ack(caller.name, token)}


async def nack(hive: Hive, caller: Caller, args: Args) -> Any:
    token = args.raw("lease")
    args.finish()
    return {"id": hive.broker.nack(caller.name, token)}


async def status(hive: Hive, caller: Caller, args: Args) -> Any:
    args.finish()
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - hive.started, 3),
        "state_dir": str(hive.config.state_dir),
        "run_dir": str(hive.config.run_dir),
        "durability": durability(hive.conn),
        "agents": len(hive.registry.all()),
        "pending": hive.broker.pending(),
        "waiting": hive.broker.waiting(),
        "refusals": dict(hive.broker.refusals),
        "subscribers": hive.bus.subscribers,
    }


async def messages(hive: Hive, caller: Caller, args: Args) -> Any:
    """A page of the log, oldest first: bodies cut to a preview, the page capped in bytes.

    Page back with ``before`` = the first id of this page; ``message`` gives one whole.
    """
    agent = args.opt_text("agent")
    limit = args.integer("limit", 50, 1, MAX_LIMIT)
    before = None if args.raw("before") is None else args.integer("before", None, 1, 2**62)
    args.finish()
    if agent is not None and agent != OPERATOR:
        hive.registry.get(agent)
    return hive.broker.page(agent, limit, before)


async def message(hive: Hive, caller: Caller, args: Args) -> Any:
    message_id = args.integer("id", None, 1, 2**62)
    args.finish()
    return hive.broker.get(message_id).to_wire()


def tail(hive: Hive, caller: Caller, args: Args) -> AsyncIterator[dict[str, Any]]:
    args.finish()
    return _bus_events(hive)


async def _bus_events(hive: Hive) -> AsyncIterator[dict[str, Any]]:
    subscription = hive.bus.subscribe()
    try:
        async for event in subscription:
            # Like the dashboard's feed: previews only, so a flood cannot fill a terminal.
            if event.get("type") == "message":
                event = {**event, "message": previews.preview(event["message"])}
            yield event
        if subscription.lagged:
            yield {"type": "lagged", "message": "this subscriber fell behind; events were lost"}
    finally:
        hive.bus.unsubscribe(subscription)
