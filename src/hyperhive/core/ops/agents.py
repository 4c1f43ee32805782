"""Agent ops: the registry, and containers' lifecycle for the operator and the manager.

The operator may do anything to any agent. The manager's ``start``, ``kill``
and ``restart`` act at once on other agents; spawning needs an approval and
``destroy`` is the operator's alone (DESIGN §5).
"""

from __future__ import annotations

import functools
from typing import Any, Final

from hyperhive.core.agent_config import AgentConfig
from hyperhive.core.hosts.status import states
from hyperhive.core.ops.audit import record as audited
from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args
from hyperhive.errors import Forbidden, HiveError
from hyperhive.names import MANAGER
from hyperhive.tool_defaults import shown
from hyperhive.tool_rules import ToolPolicy

MAX_LOG_LINES: Final = 2000


async def agents(s: Services, caller: Caller, args: Args) -> Any:
    name = args.opt_text("name")
    args.finish()
    pending = s.broker.pending()
    containers = s.lifecycle.records.all() if s.containers is not None else {}
    listed = [s.registry.get(name)] if name is not None else s.registry.all()
    known = s.hosts.all() if s.hosts is not None else []
    hosts = states(known, s.hosts.now(), s.hosts.interval) if s.hosts is not None else None
    doors = {h.name: h.url for h in known}
    rows = []
    for a in listed:
        row = {
            **a.to_wire(),
            "socket": str(s.directory.socket_path(a)),
            "pending": pending.get(a.name, 0),
        }
        # Another host runs it: its page is behind that host's front door.
        row["elsewhere"] = not s.registry.is_local(a.name)
        if hosts is not None:
            row["host_state"] = hosts.get(a.host, "unknown")
            row["host_url"] = doors.get(a.host)
        record = containers.get(a.name)
        row["container"] = record.to_wire() if record else None
        applied = applied_config(s, a.name, record.config_sha) if record else None
        row["tools"] = _tools(s, a.name, applied) if applied else None
        row["model"] = applied.model if applied else None
        row["workspace"] = _workspace(s, a.name) if record else None
        row["paused"] = "budget" if s.meter is not None and s.meter.paused(a.name) else None
        relays = s.directory.relays
        # None: the agent binds its port itself (no container, or its 127.0.0.1 is the
        # host's); else whether the core's relay of it listens.
        relayed = relays is not None and record is not None
        row["port_relayed"] = relays.listening(a.name) if relays is not None and relayed else None
        rows.append(row)
    return rows


def applied_config(s: Services, name: str, sha: str | None = None) -> AgentConfig | None:
    """The config ``name``'s container runs with; None without a container or config.
    ``sha``: the applied commit its record names, under which the parsed config is kept."""
    if s.containers is None:
        return None
    try:
        return s.lifecycle.repos.applied_agent(name, sha)
    except HiveError:
        return None


def _tools(s: Services, name: str, applied: AgentConfig) -> dict[str, Any]:
    """The tool policy the container runs with (DESIGN §10): its config and the backend's."""
    isolated = s.lifecycle.backend.isolating
    return _shown(applied.tools, isolated, name == MANAGER)


# Pure, and parsing the default rules for every agent of every listing cost most of it;
# the answer is shared between rows, which are only ever read (sent as JSON).
@functools.lru_cache(maxsize=256)
def _shown(tools: ToolPolicy, isolated: bool, manager: bool) -> dict[str, Any]:
    return shown(tools, isolated=isolated, manager=manager)


def _workspace(s: Services, name: str) -> dict[str, Any] | None:
    """What the agent's workspace was cloned from (the branch itself is the ``work`` op)."""
    record = s.lifecycle.workspaces.record(name)
    return record.to_wire() if record else None


async def agent_add(s: Services, caller: Caller, args: Args) -> Any:
    name = args.raw("name")
    allow_send = args.text_list("allow_send")
    args.finish()
    record = await s.directory.add(name, allow_send)
    audited(s, caller, "agent_add", record.name, {"allow_send": list(record.allow_send)})
    return {**record.to_wire(), "socket": str(s.directory.socket_path(record))}


async def spawn(s: Services, caller: Caller, args: Args) -> Any:
    name = args.raw("name")
    config = args.opt_text("config")
    host = args.opt_text("host")
    args.finish()
    if host is not None and host != s.registry.host:
        return await _spawn_on(s, caller, name, config, host)
    record = await s.lifecycle.spawn(name, config)
    audited(s, caller, "spawn", record.name, {"config": config is not None})
    return _state(s, record.name)


async def _spawn_on(
    s: Services, caller: Caller, name: object, config: str | None, host: str
) -> dict[str, Any]:
    """Another host's core spawns it: the operator's spawn is asked and approved at once,
    and that core carries the approval out (core/approval_runs.py)."""
    governance = s.governance
    reason = f"spawned by the operator on host {host}"
    asked = await governance.request_spawn(caller.name, name, reason, config, host)
    done = asked
    if asked.state == "pending":  # else a policy rule decided it already
        done = await governance.approve(asked.id, caller.name, via=caller.via)
    return {"name": done.agent, "state": done.state, "host": host, "approval": done.id}


def _target(s: Services, caller: Caller, args: Args) -> str:
    name = args.text("name")
    args.finish()
    if caller.role == "manager" and name == MANAGER:
        raise Forbidden("the manager cannot do that to itself; ask the operator")
    s.registry.get(name)
    return name


async def start(s: Services, caller: Caller, args: Args) -> Any:
    name = _target(s, caller, args)
    await s.lifecycle.start(name)
    audited(s, caller, "start", name, {})
    return _state(s, name)


async def stop(s: Services, caller: Caller, args: Args) -> Any:
    name = _target(s, caller, args)
    await s.lifecycle.stop(name)
    audited(s, caller, "stop", name, {})
    return _state(s, name)


async def restart(s: Services, caller: Caller, args: Args) -> Any:
    name = _target(s, caller, args)
    await s.lifecycle.restart(name)
    audited(s, caller, "restart", name, {})
    return _state(s, name)


async def destroy(s: Services, caller: Caller, args: Args) -> Any:
    name = args.text("name")
    purge = args.flag("purge")
    args.finish()
    s.registry.get(name)
    await s.lifecycle.destroy(name, purge=purge)
    audited(s, caller, "destroy", name, {"purge": purge})
    return {"name": name, "destroyed": True, "purged": purge}


async def rebuild(s: Services, caller: Caller, args: Args) -> Any:
    args.finish()
    rebuilt = await s.lifecycle.rebuild()
    audited(s, caller, "rebuild", None, {"rebuilt": rebuilt, "rev": s.lifecycle.rev})
    return {"rebuilt": rebuilt, "rev": s.lifecycle.rev}


async def logs(s: Services, caller: Caller, args: Args) -> Any:
    name = args.text("name")
    lines = args.integer("lines", 200, 1, MAX_LOG_LINES)
    args.finish()
    s.registry.get(name)
    return s.lifecycle.logs(name, lines)


def _state(s: Services, name: str) -> dict[str, Any]:
    record = s.lifecycle.records.get(name)
    return {"name": name, **(record.to_wire() if record else {"state": "missing"})}
