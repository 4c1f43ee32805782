"""What each socket can ask of the core, by role.

The caller's identity is the socket it came in on (DESIGN §2): the operator on
``host.sock``, an agent on its own ``mcp.sock``. No op takes a sender from
the request, and unknown arguments are refused, so nobody speaks for another.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from hyperhive import __version__
from hyperhive.core.protocol import Args
from hyperhive.errors import Forbidden, UnknownOp
from hyperhive.names import OPERATOR

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

Role = Literal["operator", "agent", "manager"]
MAX_LIMIT: Final = 1000


@dataclass(eq=False)
class Caller:
    """Who is on the other end of one connection; also the holder of its leases."""

    name: str
    role: Role


Handler = Callable[["Hive", Caller, Args], Awaitable[Any]]
Streamer = Callable[["Hive", Caller, Args], AsyncIterator[dict[str, Any]]]


async def ping(hive: Hive, caller: Caller, args: Args) -> Any:
    return {"pong": True, "version": __version__}


async def whoami(hive: Hive, caller: Caller, args: Args) -> Any:
    return {"name": caller.name, "role": caller.role}


async def send(hive: Hive, caller: Caller, args: Args) -> Any:
    to, body = args.raw("to"), args.raw("body")
    args.finish()
    return hive.broker.send(caller.name, to, body).to_wire()


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
        "agents": len(hive.registry.all()),
        "pending": hive.broker.pending(),
        "waiting": hive.broker.waiting(),
        "refusals": dict(hive.broker.refusals),
        "subscribers": hive.bus.subscribers,
    }


async def agents(hive: Hive, caller: Caller, args: Args) -> Any:
    args.finish()
    pending = hive.broker.pending()
    return [
        {**a.to_wire(), "socket": str(hive.socket_path(a)), "pending": pending.get(a.name, 0)}
        for a in hive.registry.all()
    ]


async def agent_add(hive: Hive, caller: Caller, args: Args) -> Any:
    name = args.raw("name")
    allow_send = args.text_list("allow_send")
    args.finish()
    record = await hive.add_agent(name, allow_send)
    return {**record.to_wire(), "socket": str(hive.socket_path(record))}


async def messages(hive: Hive, caller: Caller, args: Args) -> Any:
    agent = args.opt_text("agent")
    limit = args.integer("limit", 50, 1, MAX_LIMIT)
    args.finish()
    if agent is not None and agent != OPERATOR:
        hive.registry.get(agent)
    return [m.to_wire() for m in hive.broker.history(agent, limit)]


def tail(hive: Hive, caller: Caller, args: Args) -> AsyncIterator[dict[str, Any]]:
    args.finish()
    return _bus_events(hive)


async def _bus_events(hive: Hive) -> AsyncIterator[dict[str, Any]]:
    subscription = hive.bus.subscribe()
    try:
        async for event in subscription:
            yield event
        if subscription.lagged:
            yield {"type": "lagged", "message": "this subscriber fell behind; events were lost"}
    finally:
        hive.bus.unsubscribe(subscription)


_AGENT: Final[dict[str, Handler]] = {
    "ping": ping,
    "whoami": whoami,
    "send": send,
    "recv": recv,
    "ack": ack,
    "nack": nack,
}
_HOST: Final[dict[str, Handler]] = {
    **_AGENT,
    "status": status,
    "agents": agents,
    "agent_add": agent_add,
    "messages": messages,
}
HANDLERS: Final[Mapping[Role, Mapping[str, Handler]]] = {
    "operator": _HOST,
    "agent": _AGENT,
    "manager": _AGENT,
}
STREAMS: Final[Mapping[Role, Mapping[str, Streamer]]] = {
    "operator": {"tail": tail},
    "agent": {},
    "manager": {},
}
_ALL_OPS: Final = frozenset(op for table in (*HANDLERS.values(), *STREAMS.values()) for op in table)


def streamer(role: Role, op: str) -> Streamer | None:
    return STREAMS[role].get(op)


def handler(role: Role, op: str) -> Handler:
    found = HANDLERS[role].get(op)
    if found is not None:
        return found
    if op in _ALL_OPS:
        raise Forbidden(f"op {op!r} is not available on {role} sockets")
    raise UnknownOp(f"unknown op {op!r}")
