"""A workspace's clone is the agent's to write, so it is hostile input to the core.

These tests drive the core's workspace service itself (no container: the clone is written
here the way an agent could write it) with real git, real repositories and real files: the
core must run none of the programs a clone can name, read nothing outside it, and refuse
what it cannot verify, with ``bad_repo``.
"""

from __future__ import annotations

import os
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from hyperhive.config import Config
from hyperhive.core.git_format import BadRepo, RepoLimit
from hyperhive.core.workspace import Workspaces
from hyperhive.core.workspace_config import Workspace
from hyperhive.core.workspace_export import Bounds
from support.workspace import agent_commit, git, make_host_repo, snapshot

EVIL: Final = '#!/bin/sh\ntouch {marker}/$(basename "$0")-{what}\ncat\n'


@dataclass
class Made:
    spaces: Workspaces
    host: Path
    work: Path
    markers: Path
    base: str


async def make(short_dir: Path, bounds: Bounds | None = None) -> Made:
    host = make_host_repo(short_dir / "host")
    config = Config(state_dir=short_dir / "state", run_dir=short_dir / "run")
    spaces = Workspaces(config, bounds=bounds)
    record = await spaces.clone("bob", Workspace(str(host), "main"))
    markers = short_dir / "markers"
    markers.mkdir()
    return Made(
        spaces, host, config.state_dir / "agents" / "bob" / "work", markers, record.base_commit
    )


@pytest.fixture
async def made(short_dir: Path) -> Made:
    return await make(short_dir)


def run(*argv: str, cwd: Path | None = None, stdin: bytes | None = None) -> int:
    """A tool of the test's own (git as whoever runs it, chown), bounded; its exit status."""
    done = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, timeout=60, check=False)
    return done.returncode


def first_line(path: Path) -> str:
    return path.read_text().splitlines()[0]


def evil_program(made: Made, what: str) -> Path:
    """A program that leaves a marker when anyone runs it (and passes its input through)."""
    path = made.markers.parent / f"evil-{what}"
    path.write_text(EVIL.format(marker=made.markers, what=what))
    path.chmod(0o755)
    return path


def arm(made: Made, git_dir: Path) -> None:
    """Every hook, and config naming programs git would run: fsmonitor, filters, diff drivers."""
    hooks = git_dir / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("post-checkout", "reference-transaction", "pre-commit", "post-commit",
                 "pre-push", "pre-receive", "update", "post-receive", "post-update",
                 "post-merge", "pre-auto-gc", "fsmonitor-watchman"):  # fmt: skip
        (hooks / hook).write_text(EVIL.format(marker=made.markers, what="hook"))
        (hooks / hook).chmod(0o755)
    program = evil_program(made, "config")
    with (git_dir / "config").open("a") as config:
        config.write(
            f"[core]\n\tfsmonitor = {program}\n\tpager = {program}\n\thooksPath = {hooks}\n"
            f"\tsshCommand = {program}\n"
            f'[filter "evil"]\n\tclean = {program}\n\tsmudge = {program}\n'
            f"\tprocess = {program}\n\trequired = true\n"
            f'[diff "evil"]\n\tcommand = {program}\n\ttextconv = {program}\n'
            f"[diff]\n\texternal = {program}\n"
            f"[uploadpack]\n\tpackObjectsHook = {program}\n"
        )


async def test_a_clone_armed_with_hooks_fsmonitor_and_filters_makes_the_core_run_nothing(
    made: Made,
) -> None:
    assert git(made.work, "rev-parse", "--abbrev-ref", "HEAD") == "hive/bob"
    assert git(made.work, "remote") == ""
    (made.work / ".gitattributes").write_text("* filter=evil diff=evil\n")
    (made.work / "link").symlink_to("/etc/shadow")
    tip = agent_commit(made.work, {"notes.md": "agent notes\n"}, "notes, a link and attributes")
    arm(made, made.work / ".git")
    arm(made, made.host / ".git")  # the host repo's own hooks must not run either
    before = snapshot(made.host)

    view = await made.spaces.view("bob")
    fetched = await made.spaces.fetch("bob")

    assert sorted(os.listdir(made.markers)) == []  # before the test's own git runs anywhere
    assert view["tip"] == tip and view["ahead"] == 1
    assert [c["subject"] for c in view["commits"]] == ["notes, a link and attributes"]
    assert view["commits"][0]["author"] == "h-bob"
    # The symlink is an entry whose content is its target's name; the target is never read.
    assert "diff --git a/link b/link\nnew file mode 120000\n" in view["diff"]
    assert "+/etc/shadow\n\\ No newline at end of file" in view["diff"]
    assert first_line(Path("/etc/shadow")) not in view["diff"]
    assert fetched["tip"] == tip
    assert (made.host / ".git" / "refs" / "heads" / "hive" / "bob").read_text() == f"{tip}\n"
    assert snapshot(made.host) == before
    # The control: the same clone does run them for whoever runs git in it.
    run("git", "-c", "safe.directory=*", "status", cwd=made.work)
    assert os.listdir(made.markers) != []


async def test_alternates_pointing_at_a_host_repository_are_refused(made: Made) -> None:
    alternates = made.work / ".git" / "objects" / "info" / "alternates"
    alternates.parent.mkdir(exist_ok=True)
    alternates.write_text(f"{made.host / '.git' / 'objects'}\n")
    agent_commit(made.work, {"x.txt": "x\n"}, "after alternates")
    with pytest.raises(BadRepo) as refused:
        await made.spaces.view("bob")
    assert refused.value.code == "bad_repo"
    assert "objects/info/alternates exists" in refused.value.message
    assert str(made.host) not in refused.value.message


async def test_a_loose_object_rewritten_under_its_name_is_refused(made: Made) -> None:
    agent_commit(made.work, {"secret.txt": "what was committed\n"}, "a file")
    blob = git(made.work, "rev-parse", "HEAD:secret.txt")
    path = made.work / ".git" / "objects" / blob[:2] / blob[2:]
    forged = b"something else entirely\n"
    path.chmod(0o644)
    path.write_bytes(zlib.compress(b"blob %d\0" % len(forged) + forged))
    with pytest.raises(BadRepo) as refused:
        await made.spaces.view("bob")
    assert "does not hash to its name" in refused.value.message
    # Nothing of that branch reached the mirror.
    mirror = made.spaces.mirror_dir("bob")
    assert run("git", f"--git-dir={mirror}", "cat-file", "-e", blob) != 0


@pytest.mark.parametrize("where", ["ref", "git_dir"])
async def test_a_branch_or_git_dir_that_is_a_symlink_is_refused(made: Made, where: str) -> None:
    git_dir = made.work / ".git"
    if where == "ref":
        ref = git_dir / "refs" / "heads" / "hive" / "bob"
        ref.unlink()
        ref.symlink_to(made.host / ".git" / "refs" / "heads" / "main")
    else:
        git_dir.rename(made.work / "elsewhere")
        git_dir.symlink_to(made.work / "elsewhere")
    with pytest.raises(BadRepo) as refused:
        await made.spaces.view("bob")
    assert "symlink" in refused.value.message


async def test_a_branch_kept_in_packed_refs_is_read_from_there(made: Made) -> None:
    tip = agent_commit(made.work, {"a.txt": "a\n"}, "packed")
    git(made.work, "pack-refs", "--all")
    assert not (made.work / ".git" / "refs" / "heads" / "hive" / "bob").exists()
    assert (await made.spaces.view("bob"))["tip"] == tip


async def test_a_long_history_and_a_rewound_branch_export_only_what_is_new(made: Made) -> None:
    base = made.base
    # 150 commits in one go (fast-import), as an agent could make them.
    stream = "".join(
        f"commit refs/heads/hive/bob\ncommitter h-bob <h-bob@hyperhive> 1714564800 +0000\n"
        f"data 4\nc{n:03d}\n{'from ' + base + chr(10) if n == 0 else ''}"
        f"M 644 inline n.txt\ndata {len(str(n)) + 1}\n{n}\n\n"
        for n in range(150)
    )
    fast_import = ("git", "-c", "safe.directory=*", "fast-import", "--quiet", "--force")
    assert run(*fast_import, cwd=made.work, stdin=stream.encode()) == 0
    view = await made.spaces.view("bob")
    assert view["ahead"] == 150 and len(view["commits"]) == 150
    assert view["commits"][0]["subject"] == "c149"
    # Rewound onto the base's parent, then one commit: the walk stops where the mirror knows.
    git(made.work, "reset", "-q", "--hard", f"{base}~1")
    tip = agent_commit(made.work, {"b.txt": "b\n"}, "from further back")
    view = await made.spaces.view("bob")
    assert view["tip"] == tip and view["ahead"] == 1
    # The diff starts where the branch left the base's history: one file added, nothing else.
    assert view["stat"] == {"files": 1, "insertions": 1, "deletions": 0}


async def test_an_export_past_its_bounds_is_refused_with_the_bound_named(
    short_dir: Path,
) -> None:
    made = await make(short_dir, Bounds(commits=3, objects=1000, bytes=1 << 20))
    for n in range(4):
        agent_commit(made.work, {"n.txt": f"{n}\n"}, f"c{n}")
    with pytest.raises(RepoLimit) as refused:
        await made.spaces.view("bob")
    assert "more than 3 commits" in refused.value.message
    git(made.work, "reset", "-q", "--hard", made.base)
    agent_commit(made.work, {"big.bin": "x" * (2 << 20)}, "big")
    with pytest.raises(RepoLimit) as refused:
        await made.spaces.view("bob")
    assert "MiB of objects" in refused.value.message


async def test_fetching_into_a_repo_owned_by_another_user_writes_only_files_of_theirs(
    made: Made, short_dir: Path
) -> None:
    owner = 54321
    os.chmod(short_dir, 0o755)  # they must reach their own repo
    assert run("chown", "-R", f"{owner}:{owner}", str(made.host)) == 0
    tip = agent_commit(made.work, {"theirs.txt": "t\n"}, "for the owner")
    before = snapshot(made.host)
    await made.spaces.fetch("bob")
    assert git(made.host, "rev-parse", "refs/heads/hive/bob") == tip
    assert snapshot(made.host) == before
    roots = [p for p in made.host.rglob("*") if os.lstat(p).st_uid != owner]
    assert roots == []
    # Cloning from it reads it as them too (git refuses a repo of another user to root).
    record = await made.spaces.clone("carol", Workspace(str(made.host), "hive/bob"))
    assert record.base_commit == tip
