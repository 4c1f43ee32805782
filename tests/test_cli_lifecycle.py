"""The operator's lifecycle and governance commands on the real ``hive`` CLI,
against a real ``hive-c0re`` on the fake backend (nothing runs in the
containers: these commands need no agent to answer). Surviving ``kill -9`` of
the core is about real sandboxes outliving it, so that test runs agents in
bubblewrap with the scripted engine."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon, start_fake_engine_daemon, stop_daemon
from hyperhive.client import Client
from support.procs import sandboxed_harnesses, sandboxes

pytestmark = pytest.mark.usefixtures("both_stores")


spawn_daemon = start_fake_engine_daemon


@pytest.fixture
def hive(short_dir: Path) -> Iterator[Daemon]:
    daemon = spawn_daemon(short_dir, "fake")
    try:
        yield daemon
    finally:
        stop_daemon(daemon)


def agents(daemon: Daemon) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in json.loads(daemon.cli("agents", "--json").stdout)}


async def manager_call(daemon: Daemon, op: str, **args: Any) -> Any:
    async with await Client.connect(daemon.run_dir / "manager" / "mcp.sock") as client:
        return await client.call(op, **args)


def test_spawn_stop_start_logs_rebuild_and_destroy(hive: Daemon, short_dir: Path) -> None:
    config = short_dir / "bob.toml"
    config.write_text('role = "tester"\nallow_send = ["hm1nd"]\n')
    spawned = hive.cli("spawn", "bob", "--config", str(config))
    assert spawned.returncode == 0 and "bob: running" in spawned.stdout, spawned.stderr
    assert agents(hive)["bob"]["allow_send"] == ["hm1nd"]
    assert "STATE" in hive.cli("agents").stdout and "running" in hive.cli("agents").stdout

    assert "bob: stopped" in hive.cli("stop", "bob").stdout
    assert agents(hive)["bob"]["container"]["state"] == "stopped"
    assert "bob: running" in hive.cli("start", "bob").stdout
    assert "bob: running" in hive.cli("restart", "bob").stdout
    logs = hive.cli("logs", "bob", "--lines", "5")
    assert logs.returncode == 0 and "bob ready" in logs.stdout
    assert "nothing was stale" in hive.cli("rebuild").stdout

    refused = hive.cli("destroy", "bob")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert "bob" in agents(hive)
    assert hive.cli("destroy", "bob", "--yes").returncode == 0
    assert "bob" not in agents(hive)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("spawn", "Bad_Name"), "invalid agent name"),
        (("spawn", "hm1nd"), "already exists"),
        (("start", "ghost"), "no agent named 'ghost'"),
        (("approve", "999"), "999"),
        (("deny", "1", "--reason", "x"), "1"),
        (("answer", "5", "yes"), "5"),
        (("logs", "ghost"), "ghost"),
    ],
)
def test_lifecycle_commands_fail_clearly(hive: Daemon, args: tuple[str, ...], error: str) -> None:
    result = hive.cli(*args)
    assert result.returncode == 1 and error in result.stderr, result.stderr


def test_a_bad_config_file_is_refused_before_anything_is_created(
    hive: Daemon, short_dir: Path
) -> None:
    config = short_dir / "bad.toml"
    config.write_text("rol = 'typo'\n")
    result = hive.cli("spawn", "bob", "--config", str(config))
    assert result.returncode == 1 and "unknown key 'rol'" in result.stderr
    assert "bob" not in agents(hive)
    assert not (hive.state_dir / "proposed" / "bob").exists()


def test_questions_are_answered_from_the_cli(hive: Daemon) -> None:
    asked = asyncio.run(
        manager_call(hive, "ask_operator", question="colour?", options=["red", "blue"], multi=True)
    )
    listed = hive.cli("questions")
    assert f"#{asked['id']} hm1nd: colour? (choose any) [red | blue]" in listed.stdout
    answered = hive.cli("answer", str(asked["id"]), "blue", "red")
    assert answered.returncode == 0, answered.stderr
    # hm1nd's own harness takes its inbox; the log shows what reached it.
    log = json.loads(hive.cli("messages", "--agent", "hm1nd", "--json").stdout)
    events = [m for m in log if m["body"] == "operator_answered"]
    assert [e["payload"]["answer"] for e in events] == [["red", "blue"]]
    assert events[0]["from"] == "c0re" and events[0]["to"] == "hm1nd"


def test_kill_9_of_the_core_keeps_agents_approvals_questions_and_messages(
    short_dir: Path,
) -> None:
    first = spawn_daemon(short_dir)
    assert first.cli("spawn", "bob").returncode == 0
    pending = asyncio.run(manager_call(first, "request_spawn", name="carol", reason="later"))
    question = asyncio.run(manager_call(first, "ask_operator", question="still here?"))
    assert first.cli("send", "--to", "bob", "survive this").returncode == 0
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)

    second = spawn_daemon(short_dir)
    try:
        listed = agents(second)
        assert listed["bob"]["container"]["state"] == "running"
        assert listed["hm1nd"]["container"]["state"] == "running"
        approvals = json.loads(second.cli("approvals", "--json").stdout)
        assert [a["id"] for a in approvals["pending"]] == [pending["id"]]
        questions = json.loads(second.cli("questions", "--json").stdout)
        assert [q["id"] for q in questions["pending"]] == [question["id"]]
        log = json.loads(second.cli("messages", "--agent", "bob", "--json").stdout)
        assert [m["body"] for m in log] == ["survive this"]
        # The first core's sandboxes outlived it (their init is orphaned, not
        # killed by --die-with-parent); the second core reaped them before
        # starting each agent again, so no agent runs twice.
        assert orphaned_sandboxes(short_dir) == []
        # "running" is the core's word once bwrap is started; its init forks a moment
        # later. Count once both harnesses run inside (each implies its init).
        assert wait_for_harnesses(short_dir, {"bob", "hm1nd"})
        assert len(sandboxes(short_dir)) == 4  # bob and hm1nd: bwrap and its init each
    finally:
        assert stop_daemon(second) == 0
    assert sandboxes(short_dir) == []


def wait_for_harnesses(marker: Path, names: set[str], timeout: float = 30.0) -> bool:
    """Whether every named agent's harness runs in a sandbox naming ``marker`` (bounded)."""
    deadline = time.monotonic() + timeout
    while not names <= sandboxed_harnesses(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # /proc has no event for "a process appeared"
    return True


def orphaned_sandboxes(marker: Path) -> list[int]:
    return [pid for pid, ppid in sandboxes(marker) if ppid == 1]
