"""Approvals across two hosts: two real ``hive-c0re`` processes on the fake backend sharing
one real PostgreSQL database, hm1nd on alpha, its agent bob on beta.

hm1nd proposes bob's config in its proposed repo on alpha; whichever core the operator
approves on, alpha reads the pinned tree and beta applies it to bob's container and
finishes the approval, once (core/approval_runs.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon, stop_daemon
from hyperhive.client import Client
from support.postgres import postgres_url
from support.two_hosts import start_host as start_on_database

__all__ = ["postgres_url"]  # the fixture

WAIT = 15.0  # seconds: a bound for steps that take a fraction of one
HARMLESS = 'role = "reviewer"\nallow_send = ["hm1nd", "operator"]\n'


def start_host(base: Path, name: str, url: str, *extra: str) -> Daemon:
    os.environ["HYPERHIVE_ENGINE"] = "fake"  # forwarded into every container
    try:
        return start_on_database(base, name, url, "--backend", "fake", *extra)
    finally:
        del os.environ["HYPERHIVE_ENGINE"]


@pytest.fixture
def hosts(short_dir: Path, postgres_url: str) -> Iterator[tuple[Daemon, Daemon]]:
    alpha = start_host(short_dir, "alpha", postgres_url)
    beta = start_host(short_dir, "beta", postgres_url, "--no-manager")
    try:
        spawned = beta.cli("spawn", "bob")
        assert spawned.returncode == 0, spawned.stderr
        yield alpha, beta
    finally:
        stop_daemon(beta)
        stop_daemon(alpha)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(repo), *args],
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo)},
        capture_output=True, check=False, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


async def call(socket: Path, op: str, **args: Any) -> Any:
    async with await Client.connect(socket) as client:
        return await client.call(op, **args)


def operator(host: Daemon) -> Path:
    return host.run_dir / "host.sock"


def manager(host: Daemon) -> Path:
    return host.run_dir / "manager" / "mcp.sock"


async def proposals_of(alpha: Daemon, name: str) -> Path:
    """``name``'s proposed repo on alpha, made once alpha heard of it (a signal away)."""
    proposed = alpha.state_dir / "proposed" / name / "config"
    async with asyncio.timeout(WAIT):
        while not made(proposed):
            await call(operator(alpha), "agents")  # a round trip, not a sleep
    return proposed


def made(proposed: Path) -> bool:
    """The clone is done: its first commit checked out, and (its last step) no remote."""
    if not (proposed / ".git" / "HEAD").is_file():
        return False
    listed = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(proposed), "ls-files", "agent.toml"],
        capture_output=True, check=False, timeout=30,
    )  # fmt: skip
    return listed.stdout.strip() == b"agent.toml" and git(proposed, "remote") == ""


async def propose(alpha: Daemon, text: str) -> tuple[int, str, str]:
    """hm1nd commits ``text`` as bob's agent.toml and asks for it; (approval id, commit,
    its tree)."""
    proposed = await proposals_of(alpha, "bob")
    (proposed / "agent.toml").write_text(text)
    git(proposed, "commit", "-qam", "bob reviews")
    sha = git(proposed, "rev-parse", "HEAD")
    asked = await call(manager(alpha), "request_apply_commit", name="bob", sha=sha, reason="r")
    return int(asked["id"]), sha, git(proposed, "rev-parse", "HEAD^{tree}")


async def told_hm1nd(alpha: Daemon, approval_id: int) -> dict[str, Any]:
    """The ``approval_decided`` hm1nd's inbox gets for ``approval_id`` (it waits for it)."""
    async with await Client.connect(manager(alpha)) as hm1nd, asyncio.timeout(WAIT):
        while True:
            got = await hm1nd.call("recv", wait=WAIT)
            message = got["message"] if got else {}
            payload = message.get("payload") or {}
            if message.get("body") == "approval_decided" and payload.get("id") == approval_id:
                return dict(payload)


def approve(core: Daemon, approval_id: int) -> None:
    done = core.cli("approve", str(approval_id))
    assert done.returncode == 0, done.stderr


def cli_json(core: Daemon, *args: str) -> Any:
    done = core.cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def audited(core: Daemon, action: str) -> list[dict[str, Any]]:
    return audited_about(core, "bob", action)


def audited_about(core: Daemon, agent: str, action: str) -> list[dict[str, Any]]:
    entries = cli_json(core, "audit", "--agent", agent, "--limit", "500")["entries"]
    return [e for e in entries if e["action"] == action]


def assert_applied_on_beta(beta: Daemon, sha: str, tree: str, approval_id: int) -> None:
    applied = beta.state_dir / "applied" / "bob"
    assert (applied / "agent.toml").read_text() == HARMLESS
    assert git(applied, "rev-parse", "HEAD^{tree}") == tree
    assert f"proposed commit {sha}" in git(applied, "log", "-1", "--format=%B")
    bob = next(a for a in cli_json(beta, "agents") if a["name"] == "bob")
    assert bob["container"]["state"] == "running"
    assert bob["container"]["config_sha"] == git(applied, "rev-parse", "HEAD")
    logs = beta.cli("logs", "bob", "--lines", "50").stdout
    assert logs.count("bob ready") == 2  # started at spawn, restarted on the new config
    assert cli_json(beta, "approval", str(approval_id))["state"] == "applied"
    assert [e["detail"]["id"] for e in audited(beta, "approval_applied")] == [approval_id]


def test_approved_on_alpha_where_hm1nd_runs_the_change_is_applied_by_bobs_host_beta(
    hosts: tuple[Daemon, Daemon],
) -> None:
    alpha, beta = hosts
    approval_id, sha, tree = asyncio.run(propose(alpha, HARMLESS))
    approve(alpha, approval_id)
    told = asyncio.run(told_hm1nd(alpha, approval_id))
    assert told["state"] == "applied"
    assert_applied_on_beta(beta, sha, tree, approval_id)
    assert cli_json(alpha, "approval", str(approval_id))["state"] == "applied"
    # alpha's copy, which the next proposal is diffed against, moves with it.
    asyncio.run(mirror_at(alpha, tree))


async def mirror_at(alpha: Daemon, tree: str) -> None:
    mirror = alpha.state_dir / "applied" / "bob"
    async with asyncio.timeout(WAIT):
        while git(mirror, "rev-parse", "HEAD^{tree}") != tree:
            await call(operator(alpha), "agents")  # a round trip, not a sleep


def test_approved_on_beta_the_change_is_read_on_alpha_and_applied_on_beta(
    hosts: tuple[Daemon, Daemon],
) -> None:
    alpha, beta = hosts
    approval_id, sha, tree = asyncio.run(propose(alpha, HARMLESS))
    approve(beta, approval_id)
    told = asyncio.run(told_hm1nd(alpha, approval_id))
    assert told["state"] == "applied"
    assert_applied_on_beta(beta, sha, tree, approval_id)


def test_a_config_beta_refuses_fails_once_and_changes_nothing_there(
    short_dir: Path, hosts: tuple[Daemon, Daemon], postgres_url: str
) -> None:
    alpha, beta = hosts
    applied = beta.state_dir / "applied" / "bob"
    before = git(applied, "rev-parse", "HEAD")
    # Nothing of alpha's, so alpha lets it through; beta's own state, which beta refuses.
    binding = HARMLESS + f'\n[sandbox]\nro_binds = ["{beta.state_dir}"]\n'
    approval_id, _, _ = asyncio.run(propose(alpha, binding))
    approve(alpha, approval_id)
    told = asyncio.run(told_hm1nd(alpha, approval_id))
    assert told["state"] == "failed" and told["error"]
    assert git(applied, "rev-parse", "HEAD") == before
    # A restarted beta resyncs before it serves: the failed approval stays failed once.
    stop_daemon(beta)
    again = start_host(short_dir, "beta", postgres_url, "--no-manager")
    try:
        shown = cli_json(again, "approval", str(approval_id))
        assert shown["state"] == "failed"
        assert len(audited(again, "approval_failed")) == 1
        assert audited(again, "approval_applied") == []
        log = cli_json(alpha, "messages", "--agent", "hm1nd")
        decided = [m for m in log if m["body"] == "approval_decided"]
        assert [m["payload"]["state"] for m in decided] == ["failed"]
    finally:
        stop_daemon(again)


REFUSED = (
    ("start", "bob"), ("stop", "bob"), ("restart", "bob"), ("logs", "bob"),
    ("destroy", "bob", "--yes"), ("destroy", "bob", "--yes", "--purge"),
)  # fmt: skip


def test_a_core_refuses_the_lifecycle_of_an_agent_another_host_runs_and_changes_nothing(
    hosts: tuple[Daemon, Daemon],
) -> None:
    alpha, beta = hosts
    before = next(a for a in cli_json(beta, "agents") if a["name"] == "bob")["container"]
    for command in REFUSED:
        refused = alpha.cli(*command)
        assert refused.returncode == 1, command
        assert "bob runs on host beta; use that host's core" in refused.stderr, refused.stderr
    after = next(a for a in cli_json(beta, "agents") if a["name"] == "bob")["container"]
    assert after == before and after["state"] == "running"
    assert "bob" in {a["name"] for a in cli_json(alpha, "agents")}
    assert (beta.state_dir / "applied" / "bob" / "agent.toml").is_file()
    assert beta.cli("logs", "bob").stdout.count("bob ready") == 1  # never restarted


async def running_on(core: Daemon, name: str) -> dict[str, Any]:
    """``name``'s row on ``core`` once its container runs there (bounded)."""
    async with asyncio.timeout(WAIT):
        while True:
            rows = await call(operator(core), "agents")
            row = next((r for r in rows if r["name"] == name), None)
            if row is not None and (row.get("container") or {}).get("state") == "running":
                return dict(row)


def test_the_operator_spawns_on_another_host_and_that_hosts_core_runs_it(
    hosts: tuple[Daemon, Daemon],
) -> None:
    alpha, beta = hosts
    spawned = alpha.cli("spawn", "carol", "--host", "beta")
    assert spawned.returncode == 0 and "carol: approved" in spawned.stdout, spawned.stderr
    carol = asyncio.run(running_on(beta, "carol"))
    assert carol["host"] == "beta"
    assert (beta.state_dir / "applied" / "carol" / "agent.toml").is_file()
    [approval] = [a for a in cli_json(beta, "approvals")["decided"] if a["agent"] == "carol"]
    assert approval["state"] == "applied" and approval["kind"] == "spawn"
    assert [e["detail"]["id"] for e in audited_about(beta, "carol", "approval_applied")] == [
        approval["id"]
    ]
    refused = alpha.cli("stop", "carol")
    assert "carol runs on host beta" in refused.stderr


def test_hm1nd_asks_to_spawn_on_a_named_host_and_that_host_spawns_it_on_approval(
    hosts: tuple[Daemon, Daemon],
) -> None:
    alpha, beta = hosts
    config = 'role = "scout"\nallow_send = ["hm1nd"]\n'
    asked = asyncio.run(
        call(manager(alpha), "request_spawn", name="dora", reason="r", config=config, host="beta")
    )
    assert asked["state"] == "pending" and asked["host"] == "beta"
    approve(alpha, int(asked["id"]))
    told = asyncio.run(told_hm1nd(alpha, int(asked["id"])))
    assert told["state"] == "applied"
    dora = asyncio.run(running_on(beta, "dora"))
    assert dora["host"] == "beta" and dora["allow_send"] == ["hm1nd"]
    assert (beta.state_dir / "applied" / "dora" / "agent.toml").read_text() == config
    # hm1nd's proposals for dora, on alpha, start from the config she was spawned with.
    proposed = asyncio.run(proposals_of(alpha, "dora"))
    assert (proposed / "agent.toml").read_text() == config


def test_a_spawn_on_a_host_that_does_not_share_the_store_is_refused(
    hosts: tuple[Daemon, Daemon],
) -> None:
    alpha, _ = hosts
    refused = alpha.cli("spawn", "erin", "--host", "gamma")
    assert refused.returncode == 1 and "no host named 'gamma'" in refused.stderr
    assert "erin" not in {a["name"] for a in cli_json(alpha, "agents")}


def test_a_spawn_on_a_host_whose_core_runs_no_containers_is_refused(
    short_dir: Path, hosts: tuple[Daemon, Daemon], postgres_url: str
) -> None:
    alpha, _ = hosts
    relay = start_on_database(short_dir, "relay", postgres_url, "--no-manager")
    try:
        listed = {h["name"]: h for h in cli_json(alpha, "hosts")["hosts"]}
        assert listed["relay"]["state"] == "up" and listed["relay"]["runs_agents"] is False
        refused = alpha.cli("spawn", "erin", "--host", "relay")
        assert refused.returncode == 1, refused.stdout
        assert "host 'relay' runs no agents" in refused.stderr, refused.stderr
        assert not [a for a in cli_json(alpha, "approvals")["pending"] if a["agent"] == "erin"]
    finally:
        stop_daemon(relay)


async def gone_from(alpha: Daemon, name: str) -> None:
    applied, proposed = alpha.state_dir / "applied" / name, alpha.state_dir / "proposed" / name
    async with asyncio.timeout(WAIT):
        while applied.exists() or proposed.exists():
            await call(operator(alpha), "agents")  # a round trip, not a sleep


def test_bob_destroyed_on_beta_takes_hm1nds_proposals_for_him_on_alpha_with_him(
    hosts: tuple[Daemon, Daemon],
) -> None:
    alpha, beta = hosts
    asyncio.run(proposals_of(alpha, "bob"))
    destroyed = beta.cli("destroy", "bob", "--yes")
    assert destroyed.returncode == 0, destroyed.stderr
    asyncio.run(gone_from(alpha, "bob"))
    assert "bob" not in {a["name"] for a in cli_json(alpha, "agents")}
    # Not purged: beta keeps the repos bob's container ran with.
    assert (beta.state_dir / "applied" / "bob" / "agent.toml").is_file()
