"""Which TCP port each agent's page gets: the core assigns them, so no two collide.

An agent prefers the port hashed from its name (``port_for``: the manager 8000, others
8100-8999), so a bookmark survives; when another agent holds that one, it takes the next
free port of the agents' range, wrapping around. Pure functions of the ports taken.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from hyperhive.agent.settings import AGENT_PORTS, port_for
from hyperhive.errors import QuotaExceeded


def free_port(name: str, taken: Collection[int]) -> int | None:
    """The port ``name`` gets when ``taken`` are held by others; None when none is left."""
    preferred = port_for(name)
    if preferred not in taken:
        return preferred
    # The manager's 8000 is outside the range: when it is taken, start at the range's start.
    start = preferred - AGENT_PORTS.start if preferred in AGENT_PORTS else 0
    size = len(AGENT_PORTS)
    for step in range(size):
        port = AGENT_PORTS.start + (start + step) % size
        if port not in taken:
            return port
    return None


def choose_port(name: str, taken: Collection[int]) -> int:
    """:func:`free_port`, where a full range is the caller's clear error."""
    port = free_port(name, taken)
    if port is None:
        first, last = AGENT_PORTS.start, AGENT_PORTS.stop - 1
        raise QuotaExceeded(
            f"no page port left for agent {name!r}: all {len(AGENT_PORTS)} ports of"
            f" {first}-{last} are assigned; destroy an agent first"
        )
    return port


def backfill(ports: Mapping[str, int | None]) -> dict[str, int]:
    """Ports for the agents that have none (``None``), given in name order around the ports
    already held, so the same database always gets the same answer. Agents past a full
    range stay without one (no TCP page) rather than keep the hive from starting."""
    taken = {p for p in ports.values() if p is not None}
    assigned: dict[str, int] = {}
    for name in sorted(n for n, p in ports.items() if p is None):
        port = free_port(name, taken)
        if port is None:
            break
        taken.add(port)
        assigned[name] = port
    return assigned
