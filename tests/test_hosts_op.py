"""The ``hosts`` op (core/ops/hosts.py) and its CLI (``hive hosts``, cli/render_hosts.py)
on a real started hive, on each store, with the hosts table on that store and a clock
of the test's: up, down and unknown hosts, each with its agents; the agents op's host
state; the tables people read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hyperhive.cli import render, render_hosts
from hyperhive.cli.main import build_parser, run
from hyperhive.core.caller import Caller
from hyperhive.core.hive import Hive
from hyperhive.core.hosts.table import HostTable
from hyperhive.core.ops import agents as agents_ops
from hyperhive.core.ops import handler
from hyperhive.core.ops import hosts as hosts_ops
from hyperhive.core.ops.base import Services
from hyperhive.core.protocol import Args
from hyperhive.errors import Forbidden
from hyperhive.names import OPERATOR

pytestmark = pytest.mark.usefixtures("both_stores")

GIB = 1024**3
OPERATOR_CALLER = Caller(OPERATOR, "operator", via="cli")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def services(hive: Hive, hosts: HostTable | None) -> Services:
    """The running hive's own parts, with the hosts table the test writes."""
    return Services(
        config=hive.config,
        broker=hive.broker,
        registry=hive.registry,
        directory=hive.directory,
        bus=hive.bus,
        governance=hive.governance,
        containers=None,
        dashboard_link=lambda: None,
        started=hive.started,
        durability=hive.conn.durability(),
        hosts=hosts,
    )


async def three_hosts(hive: Hive) -> tuple[Services, Clock]:
    """This core's host (``local``) up, ``beta`` silent for 100 s, ``gamma`` never announced;
    one agent on each."""
    clock = Clock(1000.0)
    table = HostTable(hive.conn, clock)
    table.announce("local", "http://alpha.example:7000", 4)
    table.announce("beta", "http://beta.example:7000", 2)
    clock.now = 1100.0
    table.beat("local", 1, 0.5, 3 * GIB)
    await hive.add_agent("alice", None)
    hive.registry.add("bob", host="beta")
    hive.registry.add("carol", host="gamma")
    return services(hive, table), clock


def host_entry(name: str, state: str, agents: list[str], **rest: Any) -> dict[str, Any]:
    return {"name": name, "state": state, "agents": agents, **rest}


async def test_hosts_lists_each_host_up_down_or_unknown_with_the_agents_it_runs(
    hive: Hive,
) -> None:
    s, _ = await three_hosts(hive)
    answer = await hosts_ops.hosts(s, OPERATOR_CALLER, Args({}))
    assert answer == {
        "hosts": [
            host_entry(
                "beta", "down", ["bob"], url="http://beta.example:7000", started_at=1000.0,
                heartbeat_at=1000.0, load=0.0, cpus=2, mem_available=0, headroom=0.0,
                runs_agents=True,
            ),
            host_entry(
                "gamma", "unknown", ["carol"], url=None, started_at=None, heartbeat_at=None,
                load=None, cpus=None, mem_available=None, headroom=None, runs_agents=None,
            ),
            host_entry(
                "local", "up", ["alice"], url="http://alpha.example:7000", started_at=1000.0,
                heartbeat_at=1100.0, load=0.5, cpus=4, mem_available=3 * GIB,
                # (3 GiB - 512 MiB for alice) / (1 + 0.5 / 4)
                headroom=(3 * GIB - 512 * 1024**2) / 1.125, runs_agents=True,
            ),
        ],
        "this": "local",
    }  # fmt: skip


async def test_without_a_hosts_table_every_host_is_unknown(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    answer = await hosts_ops.hosts(services(hive, None), OPERATOR_CALLER, Args({}))
    assert [(h["name"], h["state"], h["agents"]) for h in answer["hosts"]] == [
        ("local", "unknown", ["alice"])
    ]
    rows = await agents_ops.agents(services(hive, None), OPERATOR_CALLER, Args({}))
    assert [(r["name"], r["host"], "host_state" in r) for r in rows] == [("alice", "local", False)]


def test_hosts_is_for_the_operator_and_the_manager_not_for_agents() -> None:
    assert handler("operator", "hosts") is hosts_ops.hosts
    assert handler("manager", "hosts") is hosts_ops.hosts
    with pytest.raises(Forbidden, match="op 'hosts' is not available on agent sockets"):
        handler("agent", "hosts")


async def test_hive_hosts_marks_this_host_and_says_which_are_down(hive: Hive) -> None:
    s, _ = await three_hosts(hive)
    answer = await hosts_ops.hosts(s, OPERATOR_CALLER, Args({}))
    assert render_hosts.hosts(answer, now=1102.0).splitlines() == [
        "HOST          STATE    AGENTS  LOAD    FREE     BEAT      URL",
        "beta          down     1       0.00/2  0 MiB    102s ago  http://beta.example:7000",
        "gamma         unknown  1       -       -        -         -",
        "local (this)  up       1       0.50/4  3.0 GiB  2s ago    http://alpha.example:7000",
    ]
    assert render_hosts.hosts({"hosts": [], "this": "local"}) == "no hosts"


async def test_a_core_without_containers_is_listed_as_one_no_spawn_goes_to(hive: Hive) -> None:
    clock = Clock(1000.0)
    table = HostTable(hive.conn, clock)
    table.announce("local", None, 4)
    table.announce("relay", None, 8, runs_agents=False)
    answer = await hosts_ops.hosts(services(hive, table), OPERATOR_CALLER, Args({}))
    assert [(h["name"], h["state"], h["runs_agents"]) for h in answer["hosts"]] == [
        ("local", "up", True),
        ("relay", "up", False),
    ]
    lines = render_hosts.hosts(answer, now=1000.0).splitlines()
    assert lines[1].split()[:2] == ["local", "(this)"] and lines[1].split()[2] == "up"
    assert lines[2].split()[:4] == ["relay", "up", "(no", "containers)"]


async def test_hive_agents_shows_a_host_column_with_its_state_once_there_are_two_hosts(
    hive: Hive,
) -> None:
    s, _ = await three_hosts(hive)
    rows = await agents_ops.agents(s, OPERATOR_CALLER, Args({}))
    assert [(r["name"], r["host"], r["host_state"]) for r in rows] == [
        ("alice", "local", "up"),
        ("bob", "beta", "down"),
        ("carol", "gamma", "unknown"),
    ]
    table = render.agents(rows).splitlines()
    assert table[0].split() == [
        "NAME", "ROLE", "HOST", "STATE", "PORT", "ALLOW_SEND", "PENDING", "SOCKET"
    ]  # fmt: skip
    start, end = table[0].index("HOST"), table[0].index("STATE")
    assert [line[:start] + "|" + line[start:end] for line in table[1:]] == [
        "alice  agent  |local            ",
        "bob    agent  |beta (down)      ",
        "carol  agent  |gamma (unknown)  ",
    ]


async def test_hive_agents_on_one_host_has_no_host_column(hive: Hive) -> None:
    await hive.add_agent("alice", None)
    clock = Clock(1000.0)
    table = HostTable(hive.conn, clock)
    table.announce("local", None, 1)
    rows = await agents_ops.agents(services(hive, table), OPERATOR_CALLER, Args({}))
    assert render.agents(rows).splitlines()[0].split() == [
        "NAME", "ROLE", "STATE", "PORT", "ALLOW_SEND", "PENDING", "SOCKET"
    ]  # fmt: skip


async def test_hive_hosts_json_on_the_real_socket_names_this_core_and_its_host(
    hive: Hive,
) -> None:
    """Through the CLI and the core's own op table: whether the host is "up" or "unknown"
    is the core's wiring of its heartbeat, so only names are asserted here."""
    await hive.add_agent("alice", None)
    args = build_parser().parse_args(["hosts", "--json", "--run-dir", str(hive.config.run_dir)])
    printed: list[str] = []
    assert await run(args, printed.append) == 0
    answer = json.loads("\n".join(printed))
    assert answer["this"] == "local"
    assert [(h["name"], h["agents"]) for h in answer["hosts"]] == [("local", ["alice"])]
