"""Agents' containers under a real in-process core on the fake backend
(:mod:`hyperhive.backends.fake`): the lifecycle's decisions and the governance
around them, with nothing running inside the containers. A crash is the fake's
lever rather than a signal to a process. The one test that needs an agent to
answer a message runs it in real bubblewrap with the scripted (fake) engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hyperhive.backends.base import Backend
from hyperhive.backends.fake import FakeBackend
from hyperhive.backends.registry import choose
from hyperhive.client import RemoteError
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.core.supervision import Policy
from support.bus import BusWatcher
from support.fake_hive import fake, host, kill_container, make_hive, manager, told_manager
from support.wire import until_status

pytestmark = pytest.mark.usefixtures("both_stores")


def bwrap(config: Config) -> Backend:
    return choose(
        "bwrap", work_dir=config.state_dir / "backend", hide=(config.state_dir, config.run_dir)
    )


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Hive]:
    hive = make_hive(config)
    await hive.start(manager=True)
    try:
        yield hive
    finally:
        await hive.shutdown(grace=2)


async def test_boot_creates_the_manager_with_its_config_repos(swarm: Hive) -> None:
    record = swarm.lifecycle.records.get("hm1nd")
    assert record is not None and record.state == "running" and record.desired == "running"
    assert record.hive_rev == swarm.lifecycle.rev and record.config_sha
    state = swarm.config.state_dir
    assert (state / "proposed" / "hm1nd" / "config" / "agent.toml").is_file()
    assert (state / "applied" / "hm1nd" / "agent.toml").is_file()
    listed = await host(swarm, "agents")
    assert [(a["name"], a["container"]["state"]) for a in listed] == [("hm1nd", "running")]


async def test_an_operator_spawn_brings_up_an_agent_that_takes_messages(config: Config) -> None:
    # A real harness must take the message: this one runs in bubblewrap.
    swarm = make_hive(config, backend=bwrap(config))
    await swarm.start(manager=True)
    try:
        spawned = await host(swarm, "spawn", name="bob")
        assert spawned["state"] == "running"
        await host(swarm, "send", to="bob", body="hello bob")
        # The harness acks after its turn: then nothing is pending for bob.
        await until_status(swarm.config.host_socket, lambda s: "bob" not in s["pending"])
        assert (await host(swarm, "messages", agent="bob"))[0]["body"] == "hello bob"
    finally:
        await swarm.shutdown(grace=2)


async def test_a_container_that_dies_is_reported_and_restarted(swarm: Hive) -> None:
    await host(swarm, "spawn", name="bob")
    watcher = BusWatcher(swarm.bus)
    kill_container(swarm, "bob")
    crashed = await watcher.agent_state("bob", "restarting")
    assert "signal 9" in crashed["last_error"]
    event = await told_manager(watcher, "agent_state")
    assert event["body"] == "agent_state" and event["payload"]["agent"] == "bob"
    await watcher.agent_state("bob", "running")
    assert swarm.lifecycle.records.get("bob").restarts == 1  # type: ignore[union-attr]


async def test_a_container_that_keeps_dying_is_left_failed(config: Config) -> None:
    hive = make_hive(config, Policy(max_crashes=2, backoff_start=0.01))
    await hive.start(manager=False)
    try:
        await host(hive, "spawn", name="bob")
        watcher = BusWatcher(hive.bus)
        kill_container(hive, "bob")
        await watcher.agent_state("bob", "restarting")
        await watcher.agent_state("bob", "running")
        kill_container(hive, "bob")
        failed = await watcher.agent_state("bob", "failed")
        assert "giving up" in failed["last_error"]
    finally:
        await hive.shutdown(grace=2)


async def test_stop_start_restart_and_destroy(swarm: Hive) -> None:
    await host(swarm, "spawn", name="bob")
    assert (await host(swarm, "stop", name="bob"))["state"] == "stopped"
    assert (await swarm.lifecycle.backend.status("bob")).state != "running"
    assert (await host(swarm, "start", name="bob"))["state"] == "running"
    assert (await host(swarm, "restart", name="bob"))["state"] == "running"
    with pytest.raises(RemoteError, match="manager cannot do that to itself"):
        await manager(swarm, "kill", name="hm1nd")
    assert (await manager(swarm, "kill", name="bob"))["state"] == "stopped"
    with pytest.raises(RemoteError) as err:
        await manager(swarm, "destroy", name="bob")
    assert err.value.code == "forbidden"
    await host(swarm, "destroy", name="bob")
    assert "bob" not in swarm.registry
    assert swarm.lifecycle.records.get("bob") is None
    with pytest.raises(RemoteError, match="no participant named 'bob'"):
        await host(swarm, "send", to="bob", body="gone?")


async def test_spawn_requests_wait_for_the_operator(swarm: Hive) -> None:
    watcher = BusWatcher(swarm.bus)
    asked = await manager(swarm, "request_spawn", name="carol", reason="needs a tester")
    assert asked["state"] == "pending" and "carol" not in swarm.registry
    with pytest.raises(RemoteError) as err:
        await manager(swarm, "approve", id=asked["id"])
    assert err.value.code == "forbidden"  # the manager cannot approve its own request
    decided = await host(swarm, "approve", id=asked["id"])
    assert decided["state"] == "applied"
    assert swarm.lifecycle.records.get("carol").state == "running"  # type: ignore[union-attr]
    event = await told_manager(watcher, "approval_decided")
    assert event["body"] == "approval_decided" and event["payload"]["state"] == "applied"
    with pytest.raises(RemoteError) as again:
        await host(swarm, "approve", id=asked["id"])
    assert again.value.code == "already_decided"


async def git(cwd: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", "-c", "safe.directory=*", *args,  # the repo may be the manager uid's
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def test_apply_commit_applies_exactly_the_requested_sha(swarm: Hive) -> None:
    await host(swarm, "spawn", name="bob")
    repo = swarm.config.state_dir / "proposed" / "bob" / "config"
    toml = repo / "agent.toml"
    toml.write_text('role = "reviewer"\n' + toml.read_text())
    await git(repo, "commit", "-qam", "make bob a reviewer")
    wanted = await git(repo, "rev-parse", "HEAD")
    asked = await manager(swarm, "request_apply_commit", name="bob", sha=wanted[:10], reason="x")
    toml.write_text('model = "later-change"\n' + toml.read_text())
    await git(repo, "commit", "-qam", "a later commit that was never requested")
    shown = await host(swarm, "approval", id=asked["id"])
    assert '+role = "reviewer"' in shown["diff"] and "later-change" not in shown["diff"]
    watcher = BusWatcher(swarm.bus)
    decided = await host(swarm, "approve", id=asked["id"])
    assert decided["state"] == "applied", decided
    applied = swarm.config.state_dir / "applied" / "bob" / "agent.toml"
    assert 'role = "reviewer"' in applied.read_text() and "later-change" not in applied.read_text()
    message = await git(swarm.config.state_dir / "applied" / "bob", "log", "-1", "--format=%B")
    assert f"approval #{asked['id']}" in message and wanted in message
    await watcher.agent_state("bob", "running")
    event = await told_manager(watcher, "approval_decided")
    assert event["payload"]["id"] == asked["id"] and event["payload"]["state"] == "applied"


async def test_a_denied_request_changes_nothing_and_the_manager_is_told(swarm: Hive) -> None:
    await host(swarm, "spawn", name="bob")
    before = await swarm.lifecycle.repos.applied_sha("bob")
    repo = swarm.config.state_dir / "proposed" / "bob" / "config"
    (repo / "agent.toml").write_text('allow_send = ["*"]\n')
    await git(repo, "commit", "-qam", "let bob message everyone")
    sha = await git(repo, "rev-parse", "HEAD")
    asked = await manager(swarm, "request_apply_commit", name="bob", sha=sha, reason="wider")
    with pytest.raises(RemoteError, match="reason"):
        await host(swarm, "deny", id=asked["id"], reason="")
    watcher = BusWatcher(swarm.bus)
    denied = await host(swarm, "deny", id=asked["id"], reason="too wide")
    assert denied["state"] == "denied" and denied["decision_reason"] == "too wide"
    assert await swarm.lifecycle.repos.applied_sha("bob") == before
    assert swarm.registry.get("bob").allow_send == ("hm1nd", "operator")
    event = await told_manager(watcher, "approval_decided")
    assert (
        event["payload"]["state"] == "denied" and event["payload"]["decision_reason"] == "too wide"
    )


@pytest.mark.parametrize(
    ("options", "multi", "answer", "expected"),
    [
        (["red", "blue"], False, "blue", "blue"),
        (["a", "b", "c"], True, ["c", "a"], ["a", "c"]),
        (None, False, "ship it", "ship it"),
    ],
)
async def test_ask_operator_round_trips_to_an_operator_answered_event(
    swarm: Hive, options: list[str] | None, multi: bool, answer: Any, expected: Any
) -> None:
    extra: dict[str, Any] = {"options": options} if options else {}
    asked = await manager(swarm, "ask_operator", question="which?", multi=multi, **extra)
    listed = await host(swarm, "questions")
    assert [q["id"] for q in listed["pending"]] == [asked["id"]]
    with pytest.raises(RemoteError) as err:
        await host(swarm, "answer", id=asked["id"], answer=12)
    assert err.value.code == "bad_answer"
    watcher = BusWatcher(swarm.bus)
    await host(swarm, "answer", id=asked["id"], answer=answer)
    event = await told_manager(watcher, "operator_answered")
    assert event["body"] == "operator_answered"
    assert event["payload"]["answer"] == expected and event["payload"]["question"] == "which?"


async def test_a_core_restart_keeps_approvals_questions_and_running_agents(config: Config) -> None:
    # One fake for both cores: it stands for the host, whose containers outlive a core.
    containers = FakeBackend()
    first = make_hive(config, backend=containers)
    await first.start(manager=True)
    await host(first, "spawn", name="bob")
    asked = await manager(first, "request_spawn", name="carol", reason="later")
    question = await manager(first, "ask_operator", question="still there?")
    await first.shutdown(grace=2)

    second = make_hive(config, backend=containers)
    await second.start(manager=True)
    try:
        assert second.lifecycle.records.get("bob").state == "running"  # type: ignore[union-attr]
        assert (await second.lifecycle.backend.status("bob")).state == "running"
        approvals = await host(second, "approvals")
        assert [a["id"] for a in approvals["pending"]] == [asked["id"]]
        questions = await host(second, "questions")
        assert [q["id"] for q in questions["pending"]] == [question["id"]]
    finally:
        await second.shutdown(grace=2)


async def test_rebuild_updates_only_stale_containers(swarm: Hive) -> None:
    await host(swarm, "spawn", name="bob")
    assert (await host(swarm, "rebuild"))["rebuilt"] == []
    swarm.lifecycle.rev = "0.0.0+newer"
    rebuilt = await host(swarm, "rebuild")
    assert sorted(rebuilt["rebuilt"]) == ["bob", "hm1nd"]
    assert swarm.lifecycle.records.get("bob").hive_rev == "0.0.0+newer"  # type: ignore[union-attr]


async def test_a_start_the_backend_refuses_leaves_the_agent_failed_with_its_message(
    swarm: Hive,
) -> None:
    await host(swarm, "spawn", name="bob")
    await host(swarm, "stop", name="bob")
    fake(swarm).fail_next("start", "cannot start h-bob: bwrap: No such file or directory")
    with pytest.raises(RemoteError, match="cannot start h-bob") as err:
        await host(swarm, "start", name="bob")
    assert err.value.code == "backend"
    record = swarm.lifecycle.records.get("bob")
    assert record is not None and (record.state, record.desired) == ("failed", "running")
    assert record.last_error == "cannot start h-bob: bwrap: No such file or directory"


async def test_an_agent_the_backend_cannot_watch_is_failed_and_the_manager_told(
    swarm: Hive,
) -> None:
    watcher = BusWatcher(swarm.bus)
    fake(swarm).fail_next("wait", "cannot tell whether h-bob is running")
    await host(swarm, "spawn", name="bob")
    failed = await watcher.agent_state("bob", "failed")
    assert failed["last_error"] == "cannot tell whether h-bob is running"
    event = await told_manager(watcher, "agent_state")
    assert event["payload"] == {
        "agent": "bob",
        "state": "failed",
        "detail": "cannot tell whether h-bob is running",
    }


async def test_a_crash_restart_waits_for_the_backoff_and_runs_the_applied_spec(
    config: Config,
) -> None:
    hive = make_hive(config, Policy(backoff_start=0.01))
    await hive.start(manager=False)
    try:
        await host(hive, "spawn", name="bob")
        watcher = BusWatcher(hive.bus)
        kill_container(hive, "bob")
        restarting = await watcher.agent_state("bob", "restarting")
        assert restarting["last_error"] == "killed by signal 9" and restarting["restarts"] == 1
        await watcher.agent_state("bob", "running")
        starts = [c.spec for c in fake(hive).calls if c.op == "start"]
        assert len(starts) == 2 and starts[0] == starts[1]
        assert (await hive.lifecycle.backend.status("bob")).state == "running"
    finally:
        await hive.shutdown(grace=2)


async def test_rebuild_restarts_a_running_container_on_its_updated_spec(swarm: Hive) -> None:
    await host(swarm, "spawn", name="bob")
    swarm.lifecycle.rev = "0.0.0+newer"
    before = len(fake(swarm).calls)
    await host(swarm, "rebuild")
    steps = ("update", "stop", "start")
    bob = [c for c in fake(swarm).calls[before:] if c.name == "bob" and c.op in steps]
    assert [c.op for c in bob] == list(steps)
    assert bob[2].spec == bob[0].spec  # restarted on the spec it was just updated to
    assert (await swarm.lifecycle.backend.status("bob")).state == "running"


async def test_destroy_removes_the_container_from_the_backend(swarm: Hive) -> None:
    await host(swarm, "spawn", name="bob")
    await host(swarm, "destroy", name="bob")
    assert fake(swarm).ops[-2:] == [("stop", "bob"), ("destroy", "bob")]
    assert (await swarm.lifecycle.backend.status("bob")).state == "missing"
