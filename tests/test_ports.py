"""Agents' page ports: assigned by the core without collisions, stored in the registry,
kept across restarts, freed on destroy (core/ports.py, core/registry.py)."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from hyperhive.agent.settings import AGENT_PORTS, MANAGER_PORT, port_for
from hyperhive.backends.base import ContainerSpec
from hyperhive.cli import render
from hyperhive.client import RemoteError
from hyperhive.config import Config
from hyperhive.core.agent_config import parse_agent_toml
from hyperhive.core.containers import build_spec
from hyperhive.core.db import Database, open_store
from hyperhive.core.db.sqlite_schema import MIGRATIONS
from hyperhive.core.hive import Hive
from hyperhive.core.ports import backfill, choose_port, free_port
from hyperhive.core.registry import Registry
from hyperhive.errors import QuotaExceeded
from support.fake_hive import fake, host, make_hive

LAST: int = AGENT_PORTS.stop - 1


def sharing_a_port(count: int) -> list[str]:
    """``count`` valid agent names that all hash to one port, found by brute force."""
    buckets: dict[int, list[str]] = {}
    for i in itertools.count():
        name = f"p{i}"
        bucket = buckets.setdefault(port_for(name), [])
        bucket.append(name)
        if len(bucket) == count:
            return sorted(bucket)
    raise AssertionError("unreachable")


def after(port: int) -> int:
    """The port after ``port`` in the agents' range, wrapping around."""
    return AGENT_PORTS.start if port == LAST else port + 1


def port_of(hive: Hive, name: str) -> int | None:
    return hive.registry.get(name).port


# -- the pure choice -------------------------------------------------------------------


ALICE = port_for("alice")


@pytest.mark.parametrize(
    ("name", "taken", "expected"),
    [
        ("alice", set(), ALICE),
        ("alice", {ALICE + 1, 8000}, ALICE),
        ("alice", {ALICE}, after(ALICE)),
        ("alice", {ALICE, after(ALICE)}, after(after(ALICE))),
        # Past the end of the range it wraps to its start.
        ("alice", set(range(ALICE, AGENT_PORTS.stop)), AGENT_PORTS.start),
        ("alice", set(range(ALICE, AGENT_PORTS.stop)) | {AGENT_PORTS.start}, 8101),
        ("hm1nd", set(AGENT_PORTS), MANAGER_PORT),
        ("hm1nd", {MANAGER_PORT}, AGENT_PORTS.start),
        ("hm1nd", {MANAGER_PORT, AGENT_PORTS.start}, AGENT_PORTS.start + 1),
    ],
)
def test_an_agent_gets_its_hashed_port_else_the_next_free_one(
    name: str, taken: set[int], expected: int
) -> None:
    assert free_port(name, taken) == expected
    assert choose_port(name, taken) == expected


def test_two_names_that_hash_alike_get_distinct_ports() -> None:
    first, second = sharing_a_port(2)
    port = choose_port(first, set())
    assert port == port_for(second)
    assert choose_port(second, {port}) == after(port)


def test_a_full_range_is_a_clear_error() -> None:
    assert free_port("alice", set(AGENT_PORTS)) is None
    with pytest.raises(QuotaExceeded, match=r"no page port left for agent 'alice'.*8100-8999"):
        choose_port("alice", set(AGENT_PORTS) | {MANAGER_PORT})
    with pytest.raises(QuotaExceeded, match="no page port left for agent 'hm1nd'"):
        choose_port("hm1nd", set(AGENT_PORTS) | {MANAGER_PORT})


def test_backfill_assigns_in_name_order_around_the_ports_held() -> None:
    first, second = sharing_a_port(2)
    held = {"zed": port_for(first)}
    # ``first`` comes before ``second`` by name, whatever order the mapping gives them in.
    assigned = backfill({second: None, "zed": held["zed"], first: None, "hm1nd": None})
    assert assigned == {
        "hm1nd": MANAGER_PORT,
        first: after(port_for(first)),
        second: after(after(port_for(first))),
    }


def test_backfill_leaves_without_a_port_the_agents_past_a_full_range() -> None:
    ports: dict[str, int | None] = {f"x{p}": p for p in AGENT_PORTS}
    assert backfill({**ports, "late": None, "hm1nd": None}) == {"hm1nd": MANAGER_PORT}


# -- the registry and a real core ------------------------------------------------------


async def test_colliding_agents_keep_their_distinct_ports_across_a_core_restart(
    config: Config,
) -> None:
    first, second = sharing_a_port(2)
    hive = Hive(config)
    await hive.start()
    try:
        # Registered against name order: the one that came first keeps the hashed port.
        await hive.add_agent(second, None)
        await hive.add_agent(first, None)
        ports = {first: port_of(hive, first), second: port_of(hive, second)}
    finally:
        await hive.shutdown(grace=2)
    assert ports == {second: port_for(second), first: after(port_for(second))}
    again = Hive(config)
    await again.start()
    try:
        assert {n: port_of(again, n) for n in ports} == ports
        listed = await host(again, "agents")
        assert {a["name"]: a["port"] for a in listed} == ports
    finally:
        await again.shutdown(grace=2)


async def test_a_full_range_refuses_an_agent_and_registers_nothing(hive: Hive) -> None:
    names = [f"f{i}" for i in range(len(AGENT_PORTS))]
    for name in names:
        hive.registry.add(name)
    assert {port_of(hive, n) for n in names} == set(AGENT_PORTS)
    with pytest.raises(RemoteError, match="no page port left for agent 'late'") as refused:
        await host(hive, "agent_add", name="late")
    assert refused.value.code == "quota"
    assert "late" not in hive.registry
    assert not hive.config.agent_socket("late", manager=False).exists()
    rows = hive.conn.execute("SELECT count(*) FROM agents WHERE name = 'late'").fetchone()
    assert rows == (0,)
    # The manager's port is its own, outside the agents' range.
    assert (await host(hive, "agent_add", name="hm1nd"))["port"] == MANAGER_PORT
    # Removing one frees its port: the only one left, so the next agent gets it.
    freed = port_of(hive, names[0])
    await hive.remove_agent(names[0])
    assert (await host(hive, "agent_add", name="late"))["port"] == freed


def v5_database(path: Path, agents: list[str]) -> None:
    """A database as schema version 5 left it: agents without ports, and other rows."""
    raw = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:5]:
        raw.executescript(step)
    raw.execute("PRAGMA user_version = 5")
    for i, name in enumerate(agents):
        role = "manager" if name == "hm1nd" else "agent"
        raw.execute(
            "INSERT INTO agents (name, role, allow_send, created_at) VALUES (?, ?, ?, ?)",
            (name, role, '["hm1nd", "operator"]', 100.0 + i),
        )
    raw.execute(
        "INSERT INTO messages (sender, recipient, body, kind, created_at, key)"
        " VALUES ('operator', 'hm1nd', 'hello', 'message', 1.0, 'k1')"
    )
    raw.execute(
        "INSERT INTO approvals (kind, agent, requester, reason, state, created_at)"
        " VALUES ('spawn', 'carol', 'hm1nd', 'pending one', 'pending', 30.0)"
    )
    raw.execute(
        "INSERT INTO containers (name, backend, desired, state, updated_at)"
        " VALUES ('hm1nd', 'fake', 'running', 'stopped', 5.0)"
    )
    raw.execute("INSERT INTO counters (name, value) VALUES ('not_allowed', 3)")
    raw.close()


Dump = dict[str, list[tuple[object, ...]]]


def everything_but_ports(conn: Database | sqlite3.Connection) -> Dump:
    tables = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    ]
    shown = {
        t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
        for t in tables
        if t != "agents"
    }
    shown["agents"] = conn.execute(
        "SELECT name, role, allow_send, created_at FROM agents ORDER BY name"
    ).fetchall()
    return shown


def same_rows(after: Dump, before: Dump) -> bool:
    """Every table that was there holds the same rows, in the columns it had: later
    migrations add tables, and columns at the end (NULL or their default)."""
    return all(
        [row[: len(old[0])] for row in after[t]] == old if old else after[t] == []
        for t, old in before.items()
    )


def test_the_migration_gives_old_agents_ports_in_name_order_and_changes_nothing_else(
    tmp_path: Path,
) -> None:
    first, second = sharing_a_port(2)
    path = tmp_path / "hive.db"
    # Inserted against name order: the ports follow the names, not the rows.
    v5_database(path, [second, "hm1nd", first])
    raw = sqlite3.connect(path)
    before = everything_but_ports(raw)
    raw.close()
    conn = open_store(path)
    registry = Registry(conn)
    expected = {"hm1nd": MANAGER_PORT, first: port_for(first), second: after(port_for(first))}
    assert {a.name: a.port for a in registry.all()} == expected
    # Tables later migrations add are new; every table that was there is unchanged.
    assert same_rows(everything_but_ports(conn), before)
    stored = dict(conn.execute("SELECT name, port FROM agents").fetchall())
    assert stored == expected
    conn.close()
    # Idempotent: a second start reads the same ports and writes nothing.
    again = open_store(path)
    changes = again.execute("SELECT total_changes()").fetchone()
    assert {a.name: a.port for a in Registry(again).all()} == expected
    assert again.execute("SELECT total_changes()").fetchone() == changes
    assert same_rows(everything_but_ports(again), before)
    again.close()


# -- what the container, the CLI and the op are told -----------------------------------


def spec_for(config: Config, port: int | None) -> ContainerSpec:
    agent = parse_agent_toml("")
    return build_spec(config, "alice", agent, config.state_dir, "sha", {}, port=port)


def test_the_spec_tells_the_harness_its_assigned_port(config: Config) -> None:
    assert spec_for(config, 8123).env["HYPERHIVE_AGENT_PORT"] == "8123"
    assert "HYPERHIVE_AGENT_PORT" not in spec_for(config, None).env


async def test_destroying_an_agent_frees_its_port_and_containers_get_their_own(
    config: Config,
) -> None:
    first, second, third = sharing_a_port(3)
    hive = make_hive(config)
    await hive.start(manager=True)
    try:
        await host(hive, "spawn", name=first)
        await host(hive, "spawn", name=second)
        hashed = port_for(first)
        assert (port_of(hive, first), port_of(hive, second)) == (hashed, after(hashed))
        # Every spec the backend got carries the port the registry assigned.
        for name in ("hm1nd", first, second):
            specs = [c.spec for c in fake(hive).calls if c.name == name and c.spec is not None]
            assert specs and {s.env["HYPERHIVE_AGENT_PORT"] for s in specs} == {
                str(port_of(hive, name))
            }
        await host(hive, "destroy", name=first)
        await host(hive, "spawn", name=third)
        assert port_of(hive, third) == hashed
        listed = {a["name"]: a["port"] for a in await host(hive, "agents")}
        assert listed == {"hm1nd": MANAGER_PORT, second: after(hashed), third: hashed}
    finally:
        await hive.shutdown(grace=2)


async def test_a_spawn_into_a_full_range_is_refused_before_anything_is_made(
    config: Config,
) -> None:
    hive = make_hive(config)
    await hive.start(manager=True)
    try:
        for i in range(len(AGENT_PORTS)):
            hive.registry.add(f"f{i}")
        with pytest.raises(RemoteError, match="no page port left for agent 'late'"):
            await host(hive, "spawn", name="late")
        assert "late" not in hive.registry and hive.lifecycle.records.get("late") is None
        state = config.state_dir
        assert not (state / "applied" / "late").exists()
        assert not (state / "proposed" / "late").exists()
        assert [c for c in fake(hive).calls if c.name == "late"] == []
    finally:
        await hive.shutdown(grace=2)


def test_hive_agents_shows_each_agents_port() -> None:
    row = {"name": "alice", "role": "agent", "container": None, "allow_send": ["hm1nd"]}
    rows = [{**row, "port": 8123, "pending": 0, "socket": "/run/a.sock"}]
    table = render.agents([*rows, {**rows[0], "name": "bob", "port": None}]).splitlines()
    assert table[0].split()[3] == "PORT"
    assert table[1].split()[:4] == ["alice", "agent", "external", "8123"]
    assert table[2].split()[:4] == ["bob", "agent", "external", "-"]
    assert "port       8123" in render.agent(rows[0]).splitlines()
