"""Config repos with real git: the manager proposes commits, the core applies exactly one."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hyperhive.core.agent_config import BadConfig
from hyperhive.core.config_repo import ConfigRepos, Pin, UnknownCommit
from hyperhive.core.object_store import BadRepo
from hyperhive.errors import AlreadyExists, BadName, BadRequest, UnknownAgent

TOML = 'role = "tester"\nallow_send = ["hm1nd", "operator"]\n'


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    """git as the manager runs it in its container: no global config, only the repo's."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(repo.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        env=env,
        input=stdin,
        capture_output=True,
        check=True,
        timeout=30,
    )
    return done.stdout.decode().strip()


def commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def applied_files(repos: ConfigRepos, name: str) -> dict[str, str]:
    root = repos.applied_dir(name)
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


async def stage_and_apply(repos: ConfigRepos, name: str, sha: str, approval: int) -> str:
    """What an approval does: stage the request, then apply exactly its pin."""
    staged = await repos.stage(name, sha)
    return await repos.apply(name, staged.pin, approval)


@pytest.fixture
def repos(tmp_path: Path) -> ConfigRepos:
    return ConfigRepos(tmp_path / "state")


@pytest.fixture
async def alice(repos: ConfigRepos) -> Path:
    await repos.init_agent("alice", TOML)
    return repos.proposed_dir("alice")


async def test_init_creates_both_repos_on_one_identical_first_commit(
    repos: ConfigRepos, tmp_path: Path
) -> None:
    sha = await repos.init_agent("alice", TOML)
    proposed = repos.proposed_dir("alice")
    assert proposed == tmp_path / "state" / "proposed" / "alice" / "config"
    assert repos.applied_dir("alice") == tmp_path / "state" / "applied" / "alice"
    assert git(proposed, "rev-parse", "HEAD") == sha
    assert await repos.applied_sha("alice") == sha
    assert (proposed / "agent.toml").read_text() == TOML
    assert repos.read_applied("alice", "agent.toml") == TOML
    assert (
        git(proposed, "log", "--format=%an <%ae> %s")
        == "hive-c0re <hive-c0re@localhost> init alice"
    )
    assert git(proposed, "remote") == ""  # no path of the host leaks into the container


async def test_init_refuses_an_agent_that_already_has_repos(
    repos: ConfigRepos, alice: Path
) -> None:
    before = await repos.applied_sha("alice")
    with pytest.raises(AlreadyExists, match="config repos for agent 'alice' already exist"):
        await repos.init_agent("alice", "")
    assert await repos.applied_sha("alice") == before


async def test_init_checks_the_name_and_the_config_before_touching_disk(
    repos: ConfigRepos, tmp_path: Path
) -> None:
    with pytest.raises(BadName):
        await repos.init_agent("../etc", TOML)
    with pytest.raises(BadConfig, match="unknown key 'rol'"):
        await repos.init_agent("bob", 'rol = "x"')
    assert not (tmp_path / "state").exists()


async def test_the_manager_can_commit_in_its_repo_without_any_git_identity(alice: Path) -> None:
    commit(alice, {"agent.toml": TOML + 'model = "opus"\n'})
    assert git(alice, "log", "-1", "--format=%an") == "hm1nd"


async def test_resolve_turns_a_short_sha_into_the_full_one(repos: ConfigRepos, alice: Path) -> None:
    full = commit(alice, {"agent.toml": 'model = "opus"\n'})
    assert await repos.resolve("alice", full[:7]) == full
    assert await repos.resolve("alice", full.upper()) == full


async def test_an_unknown_sha_is_an_unknown_commit(repos: ConfigRepos, alice: Path) -> None:
    with pytest.raises(UnknownCommit, match="no commit deadbeef in alice's proposed config repo"):
        await repos.resolve("alice", "deadbeef")


async def test_a_sha_that_is_not_a_commit_is_refused(repos: ConfigRepos, alice: Path) -> None:
    blob = git(alice, "rev-parse", "HEAD:agent.toml")
    with pytest.raises(UnknownCommit, match=f"{blob} is a blob .*, not a commit"):
        await repos.resolve("alice", blob)


@pytest.mark.parametrize("sha", ["HEAD", "main", "abc", "--all", "HEAD~1", ""])
async def test_only_hex_digits_name_a_commit(repos: ConfigRepos, alice: Path, sha: str) -> None:
    with pytest.raises(BadRequest, match="a commit sha must be 4 to 64 hex digits"):
        await repos.resolve("alice", sha)


async def test_an_ambiguous_short_sha_asks_for_more_digits(repos: ConfigRepos, alice: Path) -> None:
    full = commit(alice, {"agent.toml": 'model = "opus"\n'})
    # Store a blob whose id shares exactly the first 4 digits with the commit.
    for i in range(1_000_000):
        content = f"collide {i}\n".encode()
        digest = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        if digest[:4] == full[:4] and digest[4] != full[4]:
            break
    assert git(alice, "hash-object", "-w", "--stdin", stdin=content) == digest
    with pytest.raises(UnknownCommit, match=f"{full[:4]} is ambiguous .*give more digits"):
        await repos.resolve("alice", full[:4])
    assert await repos.resolve("alice", full[:5]) == full


async def test_a_commit_only_the_applied_repo_has_cannot_be_requested(
    repos: ConfigRepos, alice: Path
) -> None:
    applied = await stage_and_apply(repos, "alice", commit(alice, {"agent.toml": ""}), 1)
    with pytest.raises(UnknownCommit, match=f"no commit {applied}"):
        await repos.resolve("alice", applied)


async def test_the_diff_shows_what_applying_the_commit_would_change(
    repos: ConfigRepos, alice: Path
) -> None:
    sha = commit(alice, {"agent.toml": TOML.replace("tester", "reviewer"), "agent.nix": "{ }\n"})
    staged = await repos.stage("alice", sha[:8])
    assert '-role = "tester"' in staged.diff
    assert '+role = "reviewer"' in staged.diff
    assert "+++ b/agent.nix" in staged.diff
    assert staged.pin.tree == git(alice, "rev-parse", f"{sha}^{{tree}}")
    await repos.apply("alice", staged.pin, 3)
    assert (await repos.stage("alice", sha)).diff == ""  # applied: nothing left to change


async def test_apply_takes_exactly_the_requested_commit(repos: ConfigRepos, alice: Path) -> None:
    wanted = commit(alice, {"agent.toml": 'model = "wanted"\n', "notes.md": "v1\n"})
    commit(alice, {"agent.toml": 'model = "later"\n'})
    (alice / "agent.toml").write_text('model = "uncommitted"\n')
    (alice / "scratch.txt").write_text("untracked\n")
    applied = await stage_and_apply(repos, "alice", wanted[:10], 7)
    assert applied_files(repos, "alice") == {"agent.toml": 'model = "wanted"\n', "notes.md": "v1\n"}
    applied_dir = repos.applied_dir("alice")
    assert git(applied_dir, "rev-parse", "HEAD^{tree}") == git(
        alice, "rev-parse", f"{wanted}^{{tree}}"
    )
    assert await repos.applied_sha("alice") == applied


async def test_the_applied_commit_names_the_approval_and_the_proposed_commit(
    repos: ConfigRepos, alice: Path
) -> None:
    first = await repos.applied_sha("alice")
    sha = commit(alice, {"agent.toml": 'model = "x"\n'})
    staged = await repos.stage("alice", sha)
    applied = await repos.apply("alice", staged.pin, 42)
    log = git(repos.applied_dir("alice"), "log", "-1", "--format=%P%n%an <%ae>%n%B")
    assert log.splitlines() == [
        first,
        "hive-c0re <hive-c0re@localhost>",
        f"apply {sha[:12]} (approval #42)",
        "",
        f"proposed commit {sha}",
        f"tree {staged.pin.tree}",
        f"sha256 {staged.pin.digest}",
    ]
    assert applied != sha


async def test_files_dropped_in_the_commit_are_dropped_and_modes_are_kept(
    repos: ConfigRepos, alice: Path
) -> None:
    await stage_and_apply(
        repos, "alice", commit(alice, {"old.txt": "x\n", "bin/run.sh": "echo\n"}), 1
    )
    (alice / "bin" / "run.sh").chmod(0o755)
    git(alice, "rm", "-q", "old.txt")
    git(alice, "commit", "-q", "-am", "drop old, exec run")
    await stage_and_apply(repos, "alice", git(alice, "rev-parse", "HEAD"), 2)
    assert set(applied_files(repos, "alice")) == {"agent.toml", "bin/run.sh"}
    assert os.access(repos.applied_dir("alice") / "bin" / "run.sh", os.X_OK)
    assert git(repos.applied_dir("alice"), "status", "--porcelain") == ""


def make_symlink(repo: Path) -> None:
    (repo / "link").symlink_to("/etc/passwd")


def make_submodule(repo: Path) -> None:
    nested = repo / "vendor"
    git(repo, "init", "-q", str(nested))
    git(nested, "config", "user.name", "x")
    git(nested, "config", "user.email", "x@example.com")
    commit(nested, {"lib.txt": "lib\n"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: make_symlink(r), "'link' is a symlink; only regular files"),
        (lambda r: make_submodule(r), "'vendor' is a submodule"),
        (lambda r: (r / "big.bin").write_bytes(b"x" * (256 * 1024 + 1)), "larger than 262144"),
        (lambda r: (r / "agent.toml").unlink(), "has no agent.toml at its top level"),
        (lambda r: (r / "agent.toml").write_text("model = \n"), "agent.toml is not valid TOML"),
        (lambda r: (r / "agent.toml").write_text("rol = 1\n"), "unknown key 'rol'"),
        (lambda r: (r / "agent.toml").write_bytes(b"role = '\xff'\n"), "is not UTF-8"),
        (
            lambda r: (r / ".gitattributes").write_text("* text\n"),
            "'.gitattributes' is not allowed",
        ),
        (lambda r: (r / "a b.txt").write_text("x"), "file names may use only letters"),
        (
            lambda r: [(r / f"f{i}").write_text("x") for i in range(64)],
            "has 65 files; the limit is 64",
        ),
    ],
)
async def test_a_tree_that_may_not_be_applied_is_refused_and_nothing_changes(
    repos: ConfigRepos, alice: Path, change: Callable[[Path], object], message: str
) -> None:
    before = await repos.applied_sha("alice")
    files = applied_files(repos, "alice")
    change(alice)
    git(alice, "add", "-A")
    git(alice, "commit", "-q", "-m", "bad")
    sha = git(alice, "rev-parse", "HEAD")
    with pytest.raises(BadConfig, match=message) as raised:
        await repos.stage("alice", sha)
    assert raised.value.message.startswith(f"commit {sha[:12]}")
    assert await repos.applied_sha("alice") == before
    assert applied_files(repos, "alice") == files


async def test_staging_accepts_a_good_commit_without_applying_it(
    repos: ConfigRepos, alice: Path
) -> None:
    before = await repos.applied_sha("alice")
    sha = commit(alice, {"agent.toml": 'model = "y"\n'})
    assert (await repos.stage("alice", sha[:6])).pin.commit == sha
    assert await repos.applied_sha("alice") == before
    assert repos.read_applied("alice", "agent.toml") == TOML


async def test_git_config_the_manager_writes_never_runs_in_the_core(
    repos: ConfigRepos, alice: Path, tmp_path: Path
) -> None:
    sha = commit(alice, {"agent.toml": 'model = "z"\n'})
    marker = tmp_path / "pwned"
    hook = f"#!/bin/sh\ntouch {marker}\n"
    for hooks in (alice / ".git" / "hooks", repos.applied_dir("alice") / ".git" / "hooks"):
        for name in ("post-commit", "pre-commit", "reference-transaction", "post-checkout"):
            (hooks / name).write_text(hook)
            (hooks / name).chmod(0o755)
    git(alice, "config", "core.fsmonitor", str(alice / ".git" / "hooks" / "post-commit"))
    git(alice, "config", "diff.external", str(alice / ".git" / "hooks" / "post-commit"))
    await stage_and_apply(repos, "alice", sha, 1)
    assert not marker.exists()


async def test_a_proposed_git_dir_leading_elsewhere_is_refused(
    repos: ConfigRepos, alice: Path, tmp_path: Path
) -> None:
    await repos.init_agent("bob", TOML)
    sha = git(repos.proposed_dir("bob"), "rev-parse", "HEAD")
    (alice / ".git").rename(tmp_path / "old-git")
    (alice / ".git").symlink_to(repos.applied_dir("bob") / ".git")
    with pytest.raises(BadRepo, match="is a symlink"):
        await repos.stage("alice", sha)
    # Nor may the directory above it lead elsewhere.
    (alice / ".git").unlink()
    (tmp_path / "old-git").rename(alice / ".git")
    (alice.parent).rename(tmp_path / "old-alice")
    alice.parent.symlink_to(repos.proposed_dir("bob").parent)
    with pytest.raises(BadRepo, match="alice is a symlink"):
        await repos.stage("alice", sha)


async def test_concurrent_applies_of_one_agent_both_land_one_after_the_other(
    repos: ConfigRepos, alice: Path
) -> None:
    a = commit(alice, {"agent.toml": 'model = "a"\n'})
    b = commit(alice, {"agent.toml": 'model = "b"\n'})
    first, second = await repos.stage("alice", a), await repos.stage("alice", b)
    await asyncio.gather(repos.apply("alice", first.pin, 1), repos.apply("alice", second.pin, 2))
    subjects = git(repos.applied_dir("alice"), "log", "--format=%s").splitlines()
    assert len(subjects) == 3
    assert set(subjects) == {
        "init alice",
        f"apply {a[:12]} (approval #1)",
        f"apply {b[:12]} (approval #2)",
    }


async def test_read_applied_gives_none_for_what_is_not_there(
    repos: ConfigRepos, alice: Path
) -> None:
    assert repos.read_applied("alice", "agent.nix") is None
    assert repos.read_applied("nobody", "agent.toml") is None
    with pytest.raises(BadConfig):
        repos.read_applied("alice", "../proposed/alice/config/agent.toml")


async def test_remove_deletes_both_repos_and_may_be_repeated(
    repos: ConfigRepos, alice: Path
) -> None:
    await repos.remove("alice")
    assert not alice.parent.exists()
    assert not repos.applied_dir("alice").exists()
    await repos.remove("alice")
    with pytest.raises(UnknownAgent, match="agent 'alice' has no config repo"):
        await repos.applied_sha("alice")
    assert await repos.init_agent("alice", TOML)  # the name is free again


async def test_an_agent_without_repos_is_unknown(repos: ConfigRepos) -> None:
    with pytest.raises(UnknownAgent):
        await repos.resolve("ghost", "abcd")
    with pytest.raises(UnknownAgent):
        await repos.apply("ghost", Pin("abcd" * 10, "abcd" * 10, "00" * 32), 1)


async def test_a_huge_diff_is_cut_with_a_note(repos: ConfigRepos, alice: Path) -> None:
    files = {f"part{i}.txt": f"line {i} of text\n" * 12_000 for i in range(8)}
    sha = commit(alice, {"agent.toml": "", **files})
    diff = (await repos.stage("alice", sha)).diff
    assert diff.endswith("\n[diff cut at 1024 KiB]\n")
    assert len(diff) < 1024 * 1024 + 100
