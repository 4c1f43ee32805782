"""Agents with a workspace, on a real ``hive-c0re`` with the bubblewrap backend (the agents
run the scripted engine): the core clones the host repository into the agent's /work on
``hive/<name>``, ``hive work`` shows the agent's commits, ``hive work --fetch`` brings them
back into the host repository and nothing else there moves."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon, start_fake_engine_daemon, stop_daemon
from hyperhive.client import Client
from hyperhive.errors import HiveError
from support.workspace import agent_commit, git, make_host_repo, snapshot, workspace_toml

spawn_daemon = start_fake_engine_daemon


@pytest.fixture
def hive(short_dir: Path) -> Iterator[Daemon]:
    daemon = spawn_daemon(short_dir)
    try:
        yield daemon
    finally:
        stop_daemon(daemon)


@pytest.fixture
def host(short_dir: Path) -> Path:
    return make_host_repo(short_dir / "host")


def spawn_with_workspace(daemon: Daemon, short_dir: Path, repo: Path, name: str = "bob") -> None:
    config = short_dir / f"{name}.toml"
    config.write_text(workspace_toml(repo))
    done = daemon.cli("spawn", name, "--config", str(config))
    assert done.returncode == 0 and f"{name}: running" in done.stdout, done.stderr


def work_of(daemon: Daemon, name: str = "bob") -> Path:
    return daemon.state_dir / "agents" / name / "work"


def work_json(daemon: Daemon, *extra: str) -> dict[str, Any]:
    done = daemon.cli("work", "bob", "--json", *extra)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


async def manager_call(daemon: Daemon, op: str, **args: Any) -> Any:
    async with await Client.connect(daemon.run_dir / "manager" / "mcp.sock") as client:
        return await client.call(op, **args)


def test_a_spawned_agent_gets_a_clone_of_its_own_on_hive_branch_from_main(
    hive: Daemon, host: Path, short_dir: Path
) -> None:
    spawn_with_workspace(hive, short_dir, host)
    work = work_of(hive)
    assert git(work, "rev-parse", "--abbrev-ref", "HEAD") == "hive/bob"
    assert git(work, "rev-parse", "HEAD") == git(host, "rev-parse", "main")
    assert (work / "src" / "app.py").read_text() == "print('hello, world')\n"
    assert git(work, "remote") == ""  # nothing points back at the host repo
    assert git(work, "branch", "--list", "other") == ""  # only the base came along
    assert git(work, "config", "user.name") == "h-bob"
    assert git(work, "config", "user.email") == "h-bob@hyperhive"
    # A copy, never hard links: the agent cannot rewrite objects anyone else holds.
    objects = [p for p in (work / ".git" / "objects").rglob("*") if p.is_file()]
    assert objects and all(os.lstat(p).st_nlink == 1 for p in objects)
    # Its agent's, whole (the backend hands the tree over when it starts).
    owner = os.lstat(work).st_uid
    assert owner != 0 and owner == os.lstat(hive.state_dir / "agents" / "bob" / "state").st_uid
    # (Only the clone: on a host whose hyperhive lives under /work, bwrap mounts it back
    # inside the workspace and its mount points are root's.)
    cloned = [*(work / ".git").rglob("*"), *(work / f for f in git(work, "ls-files").split())]
    assert all(os.lstat(p).st_uid == owner for p in cloned)
    record_path = hive.state_dir / "workspaces" / "bob.json"
    assert stat.S_IMODE(os.lstat(record_path).st_mode) == 0o600
    record = json.loads(record_path.read_text())
    assert record["repo"] == str(host) and record["base"] == "main"
    assert record["base_commit"] == git(host, "rev-parse", "main")
    assert record["branch"] == "hive/bob"
    mirror = hive.state_dir / "workspaces" / "bob.git"
    assert stat.S_IMODE(os.lstat(mirror).st_mode) == 0o700 and os.lstat(mirror).st_uid == 0
    shown = hive.cli("work", "bob")
    assert shown.returncode == 0, shown.stderr
    assert "bob: hive/bob from main" in shown.stdout and "0 commit(s) ahead" in shown.stdout


def test_commits_show_in_hive_work_and_fetch_brings_only_that_branch_into_the_host_repo(
    hive: Daemon, host: Path, short_dir: Path
) -> None:
    spawn_with_workspace(hive, short_dir, host)
    work = work_of(hive)
    first = agent_commit(work, {"src/app.py": "print('hello, hive')\n"}, "greet the hive")
    tip = agent_commit(work, {"docs/notes.md": "# notes\n"}, "add notes")

    shown = hive.cli("work", "bob")
    assert shown.returncode == 0, shown.stderr
    assert "2 commit(s) ahead of main" in shown.stdout
    assert f"{tip[:12]}  2024-05-01T12:00:00+00:00  h-bob <h-bob@hyperhive>  add notes" in (
        shown.stdout
    )
    assert "greet the hive" in shown.stdout
    assert "2 files changed, 2 insertions(+), 1 deletion(-)" in shown.stdout
    assert "-print('hello, world')\n+print('hello, hive')\n" in shown.stdout
    view = work_json(hive)
    assert [c["sha"] for c in view["commits"]] == [tip, first]
    assert view["stat"] == {"files": 2, "insertions": 2, "deletions": 1}
    assert view["ahead"] == 2 and view["tip"] == tip and view["diff_truncated"] is False

    before = snapshot(host)
    fetched = hive.cli("work", "bob", "--fetch")
    assert fetched.returncode == 0, fetched.stderr
    assert f"hive/bob → {tip[:12]} (new)" in fetched.stdout
    assert git(host, "rev-parse", "refs/heads/hive/bob") == tip
    assert git(host, "log", "--format=%s", "-1", "hive/bob") == "add notes"
    assert snapshot(host) == before  # HEAD, config, main, other, the index: byte for byte
    assert git(host, "status", "--porcelain") == ""

    later = agent_commit(work, {"docs/notes.md": "# notes\nmore\n"}, "more notes")
    again = work_json(hive, "--fetch")
    assert again["tip"] == later and again["previous"] == tip
    assert git(host, "rev-parse", "refs/heads/hive/bob") == later


@pytest.mark.parametrize(
    ("repo", "words"),
    [
        ("/root/project", "would give the agent a copy of /root"),
        ("{state}/agents/hm1nd/work", "which agents never see"),
        ("{base}/plain", "is not a git repository"),
        ("{base}/nowhere", "does not exist on this host"),
    ],
)
def test_a_workspace_repo_that_may_not_be_used_is_refused_when_it_is_requested(
    hive: Daemon, short_dir: Path, repo: str, words: str
) -> None:
    (short_dir / "plain").mkdir()
    path = Path(repo.format(state=hive.state_dir, base=short_dir))
    toml = workspace_toml(path)
    with pytest.raises(HiveError) as refused:
        asyncio.run(manager_call(hive, "request_spawn", name="eve", reason="r", config=toml))
    assert refused.value.code == "bad_config" and words in refused.value.message
    approvals = json.loads(hive.cli("approvals", "--json").stdout)
    assert approvals["pending"] == []
    (short_dir / "eve.toml").write_text(toml)
    spawned = hive.cli("spawn", "eve", "--config", str(short_dir / "eve.toml"))
    assert spawned.returncode == 1 and words in spawned.stderr
    assert not (hive.state_dir / "agents" / "eve").exists()
    assert not (hive.state_dir / "workspaces" / "eve.json").exists()


def test_an_applied_config_that_adds_a_workspace_clones_it_and_a_bad_one_is_refused(
    hive: Daemon, host: Path
) -> None:
    assert hive.cli("spawn", "bob").returncode == 0
    proposed = hive.state_dir / "proposed" / "bob" / "config"

    def propose(toml: str, note: str) -> str:
        (proposed / "agent.toml").write_text(toml)
        git(proposed, "commit", "-qam", note)
        return git(proposed, "rev-parse", "HEAD")

    bad = propose(workspace_toml(Path("/root/secrets")), "a workspace from /root")
    with pytest.raises(HiveError) as refused:
        asyncio.run(manager_call(hive, "request_apply_commit", name="bob", sha=bad, reason="r"))
    assert refused.value.code == "bad_config" and "/root" in refused.value.message

    good = propose(workspace_toml(host), "a workspace")
    asked = asyncio.run(
        manager_call(hive, "request_apply_commit", name="bob", sha=good, reason="r")
    )
    approved = hive.cli("approve", str(asked["id"]))
    assert approved.returncode == 0 and "applied" in approved.stdout, approved.stdout
    work = work_of(hive)
    assert git(work, "rev-parse", "--abbrev-ref", "HEAD") == "hive/bob"
    assert git(work, "rev-parse", "HEAD") == git(host, "rev-parse", "main")
    agents = {a["name"]: a for a in json.loads(hive.cli("agents", "--json").stdout)}
    assert agents["bob"]["container"]["state"] == "running"
    assert os.lstat(work / ".git").st_uid == os.lstat(work).st_uid != 0


def test_the_workspace_survives_a_restart_and_destroy_purge_removes_it_all(
    short_dir: Path, host: Path
) -> None:
    first = spawn_daemon(short_dir)
    try:
        spawn_with_workspace(first, short_dir, host)
        tip = agent_commit(work_of(first), {"kept.txt": "kept\n"}, "before the restart")
    finally:
        assert stop_daemon(first) == 0
    second = spawn_daemon(short_dir)
    try:
        view = work_json(second)
        assert view["tip"] == tip and view["ahead"] == 1
        assert git(work_of(second), "rev-parse", "HEAD") == tip
        done = second.cli("destroy", "bob", "--yes", "--purge")
        assert done.returncode == 0, done.stderr
        assert not work_of(second).exists()
        assert not (second.state_dir / "workspaces" / "bob.json").exists()
        assert not (second.state_dir / "workspaces" / "bob.git").exists()
        gone = second.cli("work", "bob")
        assert gone.returncode == 1 and "has no workspace" in gone.stderr
    finally:
        stop_daemon(second)
