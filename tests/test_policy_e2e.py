"""Approval policies end to end, in a real in-process core on the fake backend: a rule in
the live settings decides a class of requests with no click, names itself as the decider,
in the audit log and to the manager, and leaves everything else to the operator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.settings import PolicyRule, Settings
from support.bus import BusWatcher
from support.fake_hive import host, make_hive, manager, told_manager

ROLE_ONLY = PolicyRule("role-only", "apply_commit", "approve", fields=frozenset({"role", "model"}))
NO_WIDE = PolicyRule("no-wide", "apply_commit", "deny", fields=frozenset({"allow_send"}))
SMALL = PolicyRule("small-hive", "spawn", "approve", max_agents=3)
LS = PolicyRule("ls-ok", "tool_use", "approve", tool="Bash", input=r'\{"command":"ls"\}')
NO_RM = PolicyRule("no-rm", "tool_use", "deny", tool="Bash", input=r".*rm -rf.*")


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Hive]:
    hive = make_hive(config)
    await hive.start(manager=True)
    try:
        await host(hive, "spawn", name="bob")  # the operator's own: no approval
        yield hive
    finally:
        await hive.shutdown(grace=2)


def rules(hive: Hive, *given: PolicyRule) -> None:
    hive.settings.replace(Settings(policies=given))


async def git(cwd: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", "-c", "safe.directory=*", *args,
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def propose(
    hive: Hive, name: str, change: str, swap: tuple[str, str] = ("", ""), **files: str
) -> str:
    """Prepend ``change`` to ``name``'s proposed agent.toml, make the ``swap`` in it, write
    ``files`` (``agent_nix``: agent.nix) and commit, as the manager would: the sha."""
    repo = hive.config.state_dir / "proposed" / name / "config"
    toml = repo / "agent.toml"
    toml.write_text(change + toml.read_text().replace(*swap))
    for path, text in files.items():
        (repo / path.replace("_", ".")).write_text(text)
    await git(repo, "add", "-A")
    await git(repo, "commit", "-qm", "a change")
    return await git(repo, "rev-parse", "HEAD")


async def call(socket: Path, op: str, **args: Any) -> Any:
    async with await Client.connect(socket) as client:
        return await client.call(op, **args)


async def request_commit(hive: Hive, sha: str) -> dict[str, Any]:
    asked: dict[str, Any] = await manager(
        hive, "request_apply_commit", name="bob", sha=sha, reason="tune bob"
    )
    return asked


async def test_a_role_only_commit_is_applied_by_rule_and_the_log_and_manager_name_it(
    swarm: Hive,
) -> None:
    rules(swarm, ROLE_ONLY)
    sha = await propose(swarm, "bob", 'role = "reviewer"\n')
    watcher = BusWatcher(swarm.bus)
    done = await request_commit(swarm, sha)
    assert (done["state"], done["decided_by"]) == ("applied", "policy:role-only")
    applied = swarm.config.state_dir / "applied" / "bob" / "agent.toml"
    assert 'role = "reviewer"' in applied.read_text()
    requested = await watcher.next(lambda e: e.get("type") == "approval_requested")
    assert requested["auto"] == "role-only"
    assert requested["diffstat"] == {
        "files": [{"path": "agent.toml", "added": 1, "removed": 0}],
        "added": 1,
        "removed": 0,
    }
    told = await told_manager(watcher, "approval_decided")
    assert told["payload"]["id"] == done["id"]
    assert (told["payload"]["state"], told["payload"]["decided_by"]) == (
        "applied",
        "policy:role-only",
    )
    log = [(e.actor, e.via, e.action) for e in swarm.audit.entries(agent="bob", limit=1000)]
    assert ("hm1nd", "manager", "approval_requested") in log
    assert ("policy:role-only", "policy", "approval_approved") in log
    assert ("core", "core", "approval_applied") in log
    outcome = [e for e in swarm.audit.entries(agent="bob") if e.action == "approval_applied"]
    assert outcome[-1].to_wire()["detail"]["sha"] == sha
    assert (await swarm.audit.verify()).ok


async def test_a_commit_that_also_changes_the_sandbox_waits_for_the_operator(
    swarm: Hive,
) -> None:
    rules(swarm, ROLE_ONLY)
    sha = await propose(swarm, "bob", 'role = "r"\n', ("network = true", "network = false"))
    watcher = BusWatcher(swarm.bus)
    asked = await request_commit(swarm, sha)
    assert (asked["state"], asked["decided_by"]) == ("pending", None)
    requested = await watcher.next(lambda e: e.get("type") == "approval_requested")
    assert "auto" not in requested and requested["diffstat"]["files"][0]["path"] == "agent.toml"
    decided = await host(swarm, "approve", id=asked["id"])
    assert (decided["state"], decided["decided_by"]) == ("applied", "operator")
    actors = [(e.actor, e.via) for e in swarm.audit.entries() if e.action == "approval_approved"]
    assert actors == [("operator", "cli")]


async def test_a_role_change_with_another_file_waits_for_the_operator(swarm: Hive) -> None:
    rules(swarm, ROLE_ONLY)
    sha = await propose(swarm, "bob", 'role = "r"\n', agent_nix="{ ... }: { }\n")
    asked = await request_commit(swarm, sha)
    assert asked["state"] == "pending"


async def test_a_deny_rule_refuses_at_once_and_the_manager_hears_why(swarm: Hive) -> None:
    rules(swarm, NO_WIDE, ROLE_ONLY)
    before = await swarm.lifecycle.repos.applied_sha("bob")
    sha = await propose(
        swarm, "bob", "", ('allow_send = ["hm1nd", "operator"]', 'allow_send = ["*"]')
    )
    watcher = BusWatcher(swarm.bus)
    denied = await request_commit(swarm, sha)
    assert (denied["state"], denied["decided_by"]) == ("denied", "policy:no-wide")
    assert "no-wide" in denied["decision_reason"]
    assert await swarm.lifecycle.repos.applied_sha("bob") == before
    told = await told_manager(watcher, "approval_decided")
    assert told["payload"]["decided_by"] == "policy:no-wide"
    last = swarm.audit.entries(agent="bob", limit=1)[0]
    assert (last.actor, last.via, last.action) == ("policy:no-wide", "policy", "approval_denied")


async def test_a_spawn_rule_approves_only_while_the_hive_is_small(swarm: Hive) -> None:
    rules(swarm, SMALL)  # hm1nd and bob exist: one more may come
    carol = await manager(swarm, "request_spawn", name="carol", reason="a tester")
    assert (carol["state"], carol["decided_by"]) == ("applied", "policy:small-hive")
    assert swarm.lifecycle.records.get("carol") is not None
    dave = await manager(swarm, "request_spawn", name="dave", reason="one more")
    assert (dave["state"], dave["decided_by"]) == ("pending", None)
    assert "dave" not in swarm.registry


async def test_a_tool_use_rule_answers_the_call_itself(swarm: Hive) -> None:
    rules(swarm, NO_RM, LS)
    socket = swarm.config.agent_socket("bob", manager=False)
    allowed = await call(socket, "tool_use", tool="Bash", input={"command": "ls"})
    assert allowed["decision"] == "allow" and "policy:ls-ok" in allowed["message"]
    refused = await call(socket, "tool_use", tool="Bash", input={"command": "rm -rf /"})
    assert refused["decision"] == "deny" and "no-rm" in refused["message"]
    other = await call(socket, "tool_use", tool="Bash", input={"command": "ls -l"})
    assert other["decision"] == "pending"
    decided = {a["id"]: a["decided_by"] for a in (await host(swarm, "approvals"))["decided"]}
    assert sorted(decided.values()) == ["policy:ls-ok", "policy:no-rm"]
    # The agent had its answer on the call; no wake-up for it in its inbox.
    assert await call(socket, "recv", wait=0) is None


async def test_a_reload_of_the_rules_takes_effect_for_the_next_request(swarm: Hive) -> None:
    sha = await propose(swarm, "bob", 'model = "opus"\n')
    first = await request_commit(swarm, sha)
    assert first["state"] == "pending"
    await host(swarm, "deny", id=first["id"], reason="not yet")
    rules(swarm, ROLE_ONLY)
    again = await request_commit(swarm, sha)
    assert again["decided_by"] == "policy:role-only"
