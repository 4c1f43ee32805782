"""The host an approval is carried out on, on each real store: a spawn's placement is in
the row its request inserts (never written after it), each approval says its host, and a
core without containers is never a spawn's host (core/spawn_placement.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperhive.core.approval_queue import ApprovalQueue
from hyperhive.core.db import open_store
from hyperhive.core.hive import Hive
from hyperhive.core.hosts.table import HostTable
from hyperhive.core.proposal import Pin, Staged
from hyperhive.core.spawn_placement import HostRunsNoAgents, UnknownHost
from hyperhive.names import MANAGER, OPERATOR

pytestmark = pytest.mark.usefixtures("both_stores")

GIB = 1024**3
STAGED = Staged(Pin("4b825dc642cb6eb9a060e54bf8d69288fbee4904", "cafe" * 10, "5a" * 32), "", {})


def beta_up(hive: Hive, *, runs_agents: bool = True) -> None:
    """Another core, ``beta``, sharing this hive's store and beating now."""
    table = HostTable(hive.conn)
    table.announce("beta", "http://beta:7000", 4, runs_agents)
    table.beat("beta", 0, 0.0, 8 * GIB)


def test_the_queue_stores_the_host_in_the_row_it_inserts(store_target: str | Path) -> None:
    db = open_store(store_target)
    try:
        queue = ApprovalQueue(db)
        spawn = queue.request_spawn("carol", OPERATOR, "r", None, "beta")
        change = queue.request_apply_commit("dora", OPERATOR, "r", STAGED, "alpha")
        unplaced = queue.request_spawn("erin", OPERATOR, "r", None)
        assert (spawn.host, change.host, unplaced.host) == ("beta", "alpha", None)
        assert spawn.to_wire()["host"] == "beta" and unplaced.to_wire()["host"] is None
        rows = db.execute("SELECT agent, host FROM approvals ORDER BY id").fetchall()
        assert [tuple(r) for r in rows] == [("carol", "beta"), ("dora", "alpha"), ("erin", None)]
    finally:
        db.close()


async def test_a_spawn_on_a_named_host_says_that_host_wherever_it_is_listed(hive: Hive) -> None:
    beta_up(hive)
    asked = await hive.governance.request_spawn(OPERATOR, "carol", "r", None, "beta")
    assert asked.host == "beta"
    assert hive.governance.queue.get(asked.id).host == "beta"
    [pending] = hive.governance.approvals(10)["pending"]
    assert (pending["agent"], pending["host"]) == ("carol", "beta")
    assert hive.governance.runs.placement.waiting_here() == []  # beta's to carry out


async def test_a_spawn_with_no_host_named_goes_to_the_roomiest_host_that_runs_agents(
    hive: Hive,
) -> None:
    # This core has no backend: beta is the only place an agent can go.
    beta_up(hive)
    asked = await hive.governance.request_spawn(MANAGER, "carol", "r", None)
    assert asked.host == "beta"


async def test_no_spawn_goes_to_a_core_without_containers(hive: Hive) -> None:
    here = hive.registry.host
    beta_up(hive, runs_agents=False)
    for named in ("beta", here):
        with pytest.raises(HostRunsNoAgents, match=f"host '{named}' runs no agents"):
            await hive.governance.request_spawn(OPERATOR, "carol", "r", None, named)
    with pytest.raises(UnknownHost, match="no host named 'gamma'"):
        await hive.governance.request_spawn(OPERATOR, "carol", "r", None, "gamma")
    assert hive.governance.queue.pending() == []
    # Neither is picked either: no host is recorded, as with a single core.
    asked = await hive.governance.request_spawn(OPERATOR, "carol", "r", None)
    assert asked.host is None


async def test_a_tool_use_is_on_the_host_of_the_agent_that_asks(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    answer = hive.governance.tool_use("alice", "Bash", {"command": "ls"})
    assert answer.approval is not None and answer.approval.host == hive.registry.host
