"""``hosts``: the cores sharing the store, whether each is up, and the agents each runs.

An agent's host with no row (it never announced, or the operator removed it) is listed
too, ``unknown``: its agents are somewhere, and nobody vouches for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hyperhive.core.hosts.status import HEARTBEAT_SECONDS, HostRow, headroom, state_of
from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args
from hyperhive.core.registry import AgentRecord


async def hosts(s: Services, caller: Caller, args: Args) -> Any:
    args.finish()
    table = s.hosts
    if table is None:  # not composed: no host has a row, each is unknown
        return listing([], s.registry.all(), s.registry.host, 0.0, HEARTBEAT_SECONDS)
    return listing(table.all(), s.registry.all(), s.registry.host, table.now(), table.interval)


def listing(
    rows: Iterable[HostRow],
    agents: Iterable[AgentRecord],
    this: str,
    now: float,
    interval: float,
) -> dict[str, Any]:
    """The ``hosts`` answer from the table's rows and the registry's agents, by host name."""
    on: dict[str, list[str]] = {}
    for a in sorted(agents, key=lambda a: a.name):
        on.setdefault(a.host, []).append(a.name)
    known = {r.name: r for r in rows}
    names = sorted(known.keys() | on.keys())
    entries = [_entry(known.get(n), n, on.get(n, []), now, interval) for n in names]
    return {"hosts": entries, "this": this}


def _entry(
    row: HostRow | None, name: str, agents: list[str], now: float, interval: float
) -> dict[str, Any]:
    base: dict[str, Any] = {"name": name, "state": state_of(row, now, interval), "agents": agents}
    if row is None:
        none = (
            "url", "started_at", "heartbeat_at", "load", "cpus", "mem_available", "headroom",
            "runs_agents",
        )  # fmt: skip
        return {**base, **dict.fromkeys(none)}
    return {
        **base,
        "url": row.url,
        "started_at": row.started_at,
        "heartbeat_at": row.heartbeat_at,
        "load": row.load,
        "cpus": row.cpus,
        "mem_available": row.mem_available,
        "headroom": headroom(row),
        "runs_agents": row.runs_agents,  # False: no backend, never a spawn's host
    }
