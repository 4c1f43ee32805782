"""Whether a host is up, and which up host has the most room for one more agent.

Pure: every answer is computed from rows and a time given, so the op, the dashboard and
a placement decision read the same verdict from the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

HEARTBEAT_SECONDS: Final = 5.0
# Beats a host may miss before it is down: one late beat (a busy loop, a slow store) is
# not an outage.
DOWN_AFTER: Final = 3
# Memory set aside per agent a host already runs. MemAvailable is a snapshot: an agent
# idle now (or started a moment ago) takes its working set back when it works, and a
# burst of placements would otherwise all land on the host that looked emptiest.
AGENT_MEMORY: Final = 512 * 1024 * 1024

State = Literal["up", "down", "unknown"]


@dataclass(frozen=True, slots=True)
class HostRow:
    name: str
    url: str | None  # its front door (Config.front_door): where its agents' pages are
    started_at: float
    heartbeat_at: float
    agents: int  # the agents it ran at its last beat
    cpus: int
    load: float  # the 1-minute load average at its last beat
    mem_available: int  # bytes, MemAvailable at its last beat
    # False: a core without a container backend (``--no-containers``), never a spawn's place.
    runs_agents: bool = True


def is_down(row: HostRow, now: float, interval: float = HEARTBEAT_SECONDS) -> bool:
    """No beat for more than ``DOWN_AFTER`` intervals."""
    return now - row.heartbeat_at > DOWN_AFTER * interval


def state_of(row: HostRow | None, now: float, interval: float = HEARTBEAT_SECONDS) -> State:
    """``unknown``: no row (an agent's host that never announced, or was removed)."""
    if row is None:
        return "unknown"
    return "down" if is_down(row, now, interval) else "up"


def states(
    rows: Iterable[HostRow], now: float, interval: float = HEARTBEAT_SECONDS
) -> dict[str, State]:
    return {r.name: state_of(r, now, interval) for r in rows}


def headroom(row: HostRow) -> float:
    """Bytes a new agent could count on:

        max(0, mem_available - agents * AGENT_MEMORY) / (1 + load / cpus)

    Memory decides (an agent that does not fit is killed; one that waits for a CPU is
    only slow), so load divides rather than subtracts: an idle host keeps all of it, a
    host whose every CPU is busy (load == cpus) half, twice over-committed a third.
    """
    free = max(0, row.mem_available - row.agents * AGENT_MEMORY)
    return free / (1 + max(0.0, row.load) / max(1, row.cpus))


def pick_host(
    rows: Iterable[HostRow], now: float, interval: float = HEARTBEAT_SECONDS
) -> str | None:
    """The up host that runs agents with the most headroom; ties: fewer agents, then the
    name. None: no such host."""
    up = [r for r in rows if r.runs_agents and not is_down(r, now, interval)]
    if not up:
        return None
    return min(up, key=lambda r: (-headroom(r), r.agents, r.name)).name
