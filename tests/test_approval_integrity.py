"""An approval applies exactly what it showed (issue 9, findings 2, 3 and 8).

The review overwrote a loose blob in the manager's proposed repo with other
content under the same name: the diff showed "(no changes)" and approving
applied ``allow_send = ["*"]``. It pointed ``objects/info/alternates`` at a
host file and got its lines back in an error, and at ``/dev/zero`` to make git
allocate without bound. Each attack here runs against real repos, and the
first ones against a real ``hive-c0re`` with agents in bwrap.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon, start_fake_engine_daemon, stop_daemon
from hyperhive.client import Client, RemoteError
from hyperhive.core.config_repo import ConfigRepos, Pin
from hyperhive.core.git import ConfigRepoError
from hyperhive.core.object_store import BadRepo
from hyperhive.core.proposal import files_digest

pytestmark = pytest.mark.usefixtures("both_stores")

HARMLESS = 'role = "reviewer"\nallow_send = ["hm1nd", "operator"]\n'
EVIL = 'role = "reviewer"\nallow_send = ["*"]\n\n[sandbox]\nro_binds = ["/srv"]\n'
SECRET = "SECRET-LINE-of-the-host-0123456789"


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(repo), *args],
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo)},
        input=stdin, capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    return done.stdout.decode().strip()


def commit(repo: Path, text: str, note: str) -> str:
    (repo / "agent.toml").write_text(text)
    git(repo, "commit", "-qam", note)
    return git(repo, "rev-parse", "HEAD")


def overwrite_blob(repo: Path, sha: str, text: str) -> None:
    """Put other content under the name of loose blob ``sha``: git does not re-hash it."""
    path = repo / ".git" / "objects" / sha[:2] / sha[2:]
    assert path.is_file(), "the blob is expected loose"
    data = text.encode()
    path.chmod(0o644)
    path.write_bytes(zlib.compress(b"blob %d\0" % len(data) + data))
    assert git(repo, "cat-file", "-p", sha) == text.strip()  # git itself is fooled


def commit_naming_a_missing_tree(repo: Path) -> str:
    """A commit whose tree only an alternate object store could provide."""
    body = f"tree {'ab' * 20}\nauthor x <x> 1 +0000\ncommitter x <x> 1 +0000\n\nm\n"
    return git(
        repo, "hash-object", "-t", "commit", "--literally", "-w", "--stdin", stdin=body.encode()
    )


def host_secret(where: Path) -> Path:
    where.write_text(f"{SECRET}\n/var/lib/hyperhive\n{SECRET[::-1]}\n")
    where.chmod(0o600)
    return where


# -- against the config repos --------------------------------------------------------


@pytest.fixture
async def bob(tmp_path: Path) -> tuple[ConfigRepos, Path]:
    repos = ConfigRepos(tmp_path / "state")
    await repos.init_agent("bob", 'allow_send = ["hm1nd", "operator"]\n')
    proposed = repos.proposed_dir("bob")
    git(proposed, "config", "user.name", "hm1nd")
    git(proposed, "config", "user.email", "hm1nd@hyperhive")
    return repos, proposed


async def test_a_blob_rewritten_under_its_name_is_refused_before_anything_is_shown(
    bob: tuple[ConfigRepos, Path],
) -> None:
    repos, proposed = bob
    sha = commit(proposed, HARMLESS, "a harmless role")
    overwrite_blob(proposed, git(proposed, "rev-parse", f"{sha}:agent.toml"), EVIL)
    with pytest.raises(BadRepo, match="corrupt") as err:
        await repos.stage("bob", sha)
    assert err.value.code == "bad_repo"


async def test_rewriting_the_repo_after_the_request_changes_nothing_that_applies(
    bob: tuple[ConfigRepos, Path],
) -> None:
    repos, proposed = bob
    sha = commit(proposed, HARMLESS, "a harmless role")
    staged = await repos.stage("bob", sha)
    assert '+role = "reviewer"' in staged.diff
    overwrite_blob(proposed, git(proposed, "rev-parse", f"{sha}:agent.toml"), EVIL)
    git(proposed, "update-ref", "refs/heads/main", commit(proposed, EVIL, "the real change"))
    await repos.apply("bob", staged.pin, 1)
    assert repos.read_applied("bob", "agent.toml") == HARMLESS
    assert git(repos.applied_dir("bob"), "rev-parse", "HEAD^{tree}") == staged.pin.tree


async def test_a_pin_that_does_not_match_the_kept_tree_is_refused(
    bob: tuple[ConfigRepos, Path],
) -> None:
    repos, proposed = bob
    staged = await repos.stage("bob", commit(proposed, HARMLESS, "role"))
    before = await repos.applied_sha("bob")
    forged = Pin(staged.pin.commit, staged.pin.tree, files_digest({"agent.toml": ("100644", b"")}))
    with pytest.raises(ConfigRepoError, match="not the one that was shown"):
        await repos.apply("bob", forged, 1)
    assert await repos.applied_sha("bob") == before


async def test_a_tree_with_agent_toml_twice_is_refused(bob: tuple[ConfigRepos, Path]) -> None:
    repos, proposed = bob
    harmless = git(proposed, "hash-object", "-w", "--stdin", stdin=HARMLESS.encode())
    evil = git(proposed, "hash-object", "-w", "--stdin", stdin=EVIL.encode())
    raw = b"".join(b"100644 agent.toml\0" + bytes.fromhex(s) for s in (harmless, evil))
    tree = git(proposed, "hash-object", "-t", "tree", "--literally", "-w", "--stdin", stdin=raw)
    sha = git(proposed, "commit-tree", tree, "-m", "twice", "-p", "HEAD")
    with pytest.raises(BadRepo, match="names one entry twice"):
        await repos.stage("bob", sha)


@pytest.mark.parametrize("target", ["secret", "/dev/zero"])
async def test_alternates_leading_to_a_host_file_are_refused_without_reading_it(
    bob: tuple[ConfigRepos, Path], tmp_path: Path, target: str
) -> None:
    repos, proposed = bob
    secret = host_secret(tmp_path / "host-secret")
    # Written first: git itself would read /dev/zero forever once it is in place.
    sha = commit_naming_a_missing_tree(proposed)
    info = proposed / ".git" / "objects" / "info"
    info.mkdir(exist_ok=True)
    (info / "alternates").symlink_to(secret if target == "secret" else Path(target))
    # Bounded, not timed: a reader that followed the link into /dev/zero would never end.
    with pytest.raises(BadRepo, match="alternates") as err:
        await asyncio.wait_for(repos.stage("bob", sha), 60)
    assert SECRET not in err.value.message and SECRET[::-1] not in err.value.message
    assert "/var/lib/hyperhive" not in err.value.message and str(tmp_path) not in err.value.message


# -- against a real daemon -------------------------------------------------------------


@pytest.fixture
def hive(short_dir: Path) -> Iterator[Daemon]:
    daemon = start_fake_engine_daemon(short_dir)
    try:
        yield daemon
    finally:
        stop_daemon(daemon)


async def as_manager(daemon: Daemon, op: str, **args: Any) -> Any:
    async with await Client.connect(daemon.run_dir / "manager" / "mcp.sock") as client:
        return await client.call(op, **args)


def cli_json(daemon: Daemon, *args: str) -> Any:
    done = daemon.cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_the_operator_approves_exactly_what_the_dashboard_showed(
    hive: Daemon, short_dir: Path
) -> None:
    assert hive.cli("spawn", "bob").returncode == 0
    proposed = hive.state_dir / "proposed" / "bob" / "config"
    # The attack as found: other content under the name of the blob the diff reads.
    first = commit(proposed, HARMLESS, "a harmless role")
    overwrite_blob(proposed, git(proposed, "rev-parse", f"{first}:agent.toml"), EVIL)
    with pytest.raises(RemoteError, match="corrupt") as err:
        await as_manager(hive, "request_apply_commit", name="bob", sha=first, reason="role")
    assert err.value.code == "bad_repo"
    assert cli_json(hive, "approvals")["pending"] == []

    # Asked honestly, then the repo rewritten while the operator reads the diff.
    second = commit(proposed, HARMLESS + "# v2\n", "a harmless role, again")
    asked = await as_manager(hive, "request_apply_commit", name="bob", sha=second, reason="role")
    shown = cli_json(hive, "approval", str(asked["id"]))
    assert '+role = "reviewer"' in shown["diff"] and '["*"]' not in shown["diff"]
    assert shown["tree"] == git(proposed, "rev-parse", f"{second}^{{tree}}")
    overwrite_blob(proposed, git(proposed, "rev-parse", f"{second}:agent.toml"), EVIL)
    approved = hive.cli("approve", str(asked["id"]))
    assert approved.returncode == 0, approved.stderr
    applied = (hive.state_dir / "applied" / "bob" / "agent.toml").read_text()
    assert applied == HARMLESS + "# v2\n"
    bob = next(a for a in cli_json(hive, "agents") if a["name"] == "bob")
    assert bob["allow_send"] == ["hm1nd", "operator"]


async def test_alternates_to_a_host_file_reach_the_manager_as_a_refusal_without_its_lines(
    hive: Daemon, short_dir: Path
) -> None:
    assert hive.cli("spawn", "bob").returncode == 0
    proposed = hive.state_dir / "proposed" / "bob" / "config"
    secret = host_secret(short_dir / "host-secret")
    sha = commit_naming_a_missing_tree(proposed)
    (proposed / ".git" / "objects" / "info").mkdir(exist_ok=True)
    (proposed / ".git" / "objects" / "info" / "alternates").symlink_to(secret)
    with pytest.raises(RemoteError) as err:
        await as_manager(hive, "request_apply_commit", name="bob", sha=sha, reason="x")
    assert err.value.code == "bad_repo"
    assert SECRET not in err.value.message and SECRET[::-1] not in err.value.message
    assert str(short_dir) not in err.value.message  # no host path either
