"""The verdicts on host rows (core/hosts/status.py): when a host is down, and which up
host a new agent would go to."""

from __future__ import annotations

from hyperhive.core.hosts.status import (
    AGENT_MEMORY,
    DOWN_AFTER,
    HostRow,
    headroom,
    is_down,
    pick_host,
    state_of,
)

GIB = 1024**3
INTERVAL = 5.0


def row(
    name: str,
    *,
    beat: float = 1000.0,
    agents: int = 0,
    cpus: int = 4,
    load: float = 0.0,
    mem: int = 8 * GIB,
) -> HostRow:
    return HostRow(name, f"http://{name}:7000", 900.0, beat, agents, cpus, load, mem)


def test_a_host_is_down_only_after_more_than_down_after_intervals_without_a_beat() -> None:
    limit = 1000.0 + DOWN_AFTER * INTERVAL
    assert not is_down(row("a"), limit, INTERVAL)
    assert is_down(row("a"), limit + 0.001, INTERVAL)
    assert state_of(row("a"), limit, INTERVAL) == "up"
    assert state_of(row("a"), limit + 0.001, INTERVAL) == "down"
    assert state_of(None, limit, INTERVAL) == "unknown"


def test_headroom_is_free_memory_less_a_share_per_agent_divided_by_load_per_cpu() -> None:
    assert headroom(row("a", mem=8 * GIB)) == 8 * GIB
    assert headroom(row("a", mem=8 * GIB, agents=2)) == 8 * GIB - 2 * AGENT_MEMORY
    # Every CPU busy halves it; more agents than memory leaves none, not less than none.
    assert headroom(row("a", mem=8 * GIB, load=4.0, cpus=4)) == 4 * GIB
    assert headroom(row("a", mem=AGENT_MEMORY, agents=3)) == 0


def test_pick_host_prefers_the_host_with_the_most_headroom() -> None:
    rows = [row("a", mem=4 * GIB), row("b", mem=16 * GIB, load=8.0, cpus=4), row("c", mem=8 * GIB)]
    # b: 16 GiB / (1 + 2) = 5.3 GiB, less than c's idle 8 GiB.
    assert pick_host(rows, 1001.0, INTERVAL) == "c"


def test_pick_host_skips_hosts_that_are_down_however_roomy() -> None:
    rows = [row("a", mem=64 * GIB, beat=900.0), row("b", mem=1 * GIB)]
    assert pick_host(rows, 1001.0, INTERVAL) == "b"


def test_pick_host_breaks_ties_by_fewer_agents_then_by_name() -> None:
    # Same headroom: c runs one agent on 512 MiB more than a and b, which run none.
    same = [
        row("c", mem=8 * GIB + AGENT_MEMORY, agents=1),
        row("b", mem=8 * GIB),
        row("a", mem=8 * GIB),
    ]
    assert headroom(same[0]) == headroom(same[1]) == headroom(same[2])
    assert pick_host(same, 1001.0, INTERVAL) == "a"
    assert pick_host(same[:1] + same[1:2], 1001.0, INTERVAL) == "b"


def test_pick_host_is_none_when_every_host_is_down_or_there_is_none() -> None:
    down = [row("a", beat=0.0), row("b", beat=10.0)]
    assert pick_host(down, 1000.0, INTERVAL) is None
    assert pick_host([], 1000.0, INTERVAL) is None


def test_pick_host_never_picks_a_host_that_runs_no_agents_however_roomy() -> None:
    relay = HostRow("relay", None, 900.0, 1000.0, 0, 64, 0.0, 512 * GIB, runs_agents=False)
    assert pick_host([relay, row("b", mem=1 * GIB)], 1001.0, INTERVAL) == "b"
    assert pick_host([relay], 1001.0, INTERVAL) is None
