"""Agent ops: the registry, and containers' lifecycle for the operator and the manager.

The operator may do anything to any agent. The manager's ``start``, ``kill``
and ``restart`` act at once on other agents; spawning needs an approval and
``destroy`` is the operator's alone (DESIGN §5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from hyperhive.core.agent_config import default_agent_toml, parse_agent_toml
from hyperhive.core.ops.base import Caller
from hyperhive.core.protocol import Args
from hyperhive.errors import Forbidden, HiveError
from hyperhive.names import MANAGER
from hyperhive.tool_defaults import shown

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

MAX_LOG_LINES: Final = 2000


async def agents(hive: Hive, caller: Caller, args: Args) -> Any:
    name = args.opt_text("name")
    args.finish()
    pending = hive.broker.pending()
    containers = hive.lifecycle.records.all() if hive.has_containers else {}
    listed = [hive.registry.get(name)] if name is not None else hive.registry.all()
    rows = []
    for a in listed:
        row = {**a.to_wire(), "socket": str(hive.socket_path(a)), "pending": pending.get(a.name, 0)}
        record = containers.get(a.name)
        row["container"] = record.to_wire() if record else None
        row["tools"] = agent_tools(hive, a.name) if record else None
        rows.append(row)
    return rows


def agent_tools(hive: Hive, name: str) -> dict[str, Any] | None:
    """The tool policy ``name``'s container runs with (DESIGN §10), from its applied
    config and the backend; None for an agent without a container."""
    if not hive.has_containers:
        return None
    try:
        text = hive.lifecycle.repos.read_applied(name, "agent.toml")
        configured = parse_agent_toml(text or default_agent_toml(name)).tools
    except HiveError:
        return None
    isolated = hive.lifecycle.backend.isolating
    return shown(configured, isolated=isolated, manager=name == MANAGER)


async def agent_add(hive: Hive, caller: Caller, args: Args) -> Any:
    name = args.raw("name")
    allow_send = args.text_list("allow_send")
    args.finish()
    record = await hive.add_agent(name, allow_send)
    return {**record.to_wire(), "socket": str(hive.socket_path(record))}


async def spawn(hive: Hive, caller: Caller, args: Args) -> Any:
    name = args.raw("name")
    config = args.opt_text("config")
    args.finish()
    record = await hive.lifecycle.spawn(name, config)
    return _state(hive, record.name)


def _target(hive: Hive, caller: Caller, args: Args) -> str:
    name = args.text("name")
    args.finish()
    if caller.role == "manager" and name == MANAGER:
        raise Forbidden("the manager cannot do that to itself; ask the operator")
    hive.registry.get(name)
    return name


async def start(hive: Hive, caller: Caller, args: Args) -> Any:
    name = _target(hive, caller, args)
    await hive.lifecycle.start(name)
    return _state(hive, name)


async def stop(hive: Hive, caller: Caller, args: Args) -> Any:
    name = _target(hive, caller, args)
    await hive.lifecycle.stop(name)
    return _state(hive, name)


async def restart(hive: Hive, caller: Caller, args: Args) -> Any:
    name = _target(hive, caller, args)
    await hive.lifecycle.restart(name)
    return _state(hive, name)


async def destroy(hive: Hive, caller: Caller, args: Args) -> Any:
    name = args.text("name")
    purge = args.flag("purge")
    args.finish()
    hive.registry.get(name)
    await hive.lifecycle.destroy(name, purge=purge)
    return {"name": name, "destroyed": True, "purged": purge}


async def rebuild(hive: Hive, caller: Caller, args: Args) -> Any:
    args.finish()
    return {"rebuilt": await hive.lifecycle.rebuild(), "rev": hive.lifecycle.rev}


async def logs(hive: Hive, caller: Caller, args: Args) -> Any:
    name = args.text("name")
    lines = args.integer("lines", 200, 1, MAX_LOG_LINES)
    args.finish()
    hive.registry.get(name)
    return hive.lifecycle.logs(name, lines)


def _state(hive: Hive, name: str) -> dict[str, Any]:
    record = hive.lifecycle.records.get(name)
    return {"name": name, **(record.to_wire() if record else {"state": "missing"})}
