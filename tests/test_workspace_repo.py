"""The small parts of workspaces: reading a branch without git, judging a host repository,
and the pack the core writes into its mirror (checked by the real ``git unpack-objects``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hyperhive.core.binds import forbidden_roots
from hyperhive.core.git_format import BadRepo, object_sha
from hyperhive.core.git_refs import parse_loose_ref, parse_packed_refs
from hyperhive.core.workspace_config import BadWorkspace, Workspace
from hyperhive.core.workspace_export import PackWriter
from hyperhive.core.workspace_repo import check_host_repo
from support.workspace import git, make_host_repo

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "89abcdef0123456789abcdef0123456789abcdef"


def test_a_loose_ref_is_an_object_name_and_nothing_else() -> None:
    assert parse_loose_ref(f"{SHA}\n".encode(), "refs/heads/x") == SHA
    for bad in (b"ref: refs/heads/main\n", SHA.upper().encode(), f"{SHA}\n\n".encode(), b""):
        with pytest.raises(BadRepo):
            parse_loose_ref(bad, "refs/heads/x")


def test_packed_refs_give_the_one_line_of_the_ref_and_refuse_odd_lines() -> None:
    good = (
        f"# pack-refs with: peeled fully-peeled sorted \n{OTHER} refs/heads/main\n"
        f"{SHA} refs/heads/hive/bob\n{OTHER} refs/tags/v1\n^{SHA}\n"
    ).encode()
    assert parse_packed_refs(good, "refs/heads/hive/bob") == SHA
    assert parse_packed_refs(good, "refs/heads/hive/eve") is None
    for bad in (
        f"{SHA} refs/heads/a\n{OTHER} refs/heads/a\n",  # named twice
        f"^{SHA}\n",  # a peel with no ref before it
        f"{SHA}  refs/heads/a\n",
        "# a comment\n",
        f"{SHA} HEAD\n",
    ):
        with pytest.raises(BadRepo):
            parse_packed_refs(bad.encode(), "refs/heads/a")


@pytest.fixture
def forbidden(short_dir: Path) -> tuple[Path, ...]:
    return forbidden_roots(short_dir / "state", short_dir / "run")


def test_a_host_repository_is_judged_by_its_real_path(
    short_dir: Path, forbidden: tuple[Path, ...]
) -> None:
    host = make_host_repo(short_dir / "host")
    found = check_host_repo(Workspace(str(host), "main"), forbidden)
    assert found.git_dir == host / ".git"
    assert found.base_commit == git(host, "rev-parse", "main")
    inside = short_dir / "state" / "agents" / "eve" / "work"
    make_host_repo(inside)
    (short_dir / "link").symlink_to(inside)
    plain = short_dir / "plain"
    plain.mkdir()
    cases = {
        "/root/project": "would give the agent a copy of /root",
        "/proc/self/cwd": "would give the agent a copy of /proc",
        str(inside): "which agents never see",
        str(short_dir / "link"): f"(it leads to {inside})",
        str(short_dir / "missing"): "does not exist on this host",
        str(plain): "is not a git repository",
    }
    for repo, words in cases.items():
        with pytest.raises(BadWorkspace) as refused:
            check_host_repo(Workspace(repo, "main"), forbidden)
        assert refused.value.code == "bad_config"
        assert words in refused.value.message, repo
    with pytest.raises(BadWorkspace, match="has no branch trunk"):
        check_host_repo(Workspace(str(host), "trunk"), forbidden)


def test_a_linked_worktree_or_a_bare_repository(
    short_dir: Path, forbidden: tuple[Path, ...]
) -> None:
    host = make_host_repo(short_dir / "host")
    git(host, "worktree", "add", "-q", str(short_dir / "linked"), "other")
    with pytest.raises(BadWorkspace, match=r"its \.git is not a directory"):
        check_host_repo(Workspace(str(short_dir / "linked"), "other"), forbidden)
    bare = short_dir / "bare.git"
    git(short_dir, "clone", "-q", "--bare", str(host), str(bare))
    assert check_host_repo(Workspace(str(bare), "other"), forbidden).git_dir == bare


def test_the_pack_written_for_the_mirror_is_one_git_accepts_whole(short_dir: Path) -> None:
    repo = short_dir / "repo.git"
    git(short_dir, "init", "-q", "--bare", str(repo))
    blobs = [b"", b"small\n", os.urandom(70_000)]  # sizes of one, two and three header bytes
    pack = PackWriter()
    for data in blobs:
        pack.add("blob", data)
    done = subprocess.run(
        ["git", f"--git-dir={repo}", "unpack-objects", "--strict"], input=pack.pack(),
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for data in blobs:
        sha = object_sha("blob", data)
        shown = subprocess.run(
            ["git", f"--git-dir={repo}", "cat-file", "blob", sha], capture_output=True,
            timeout=60, check=True,
        )  # fmt: skip
        assert shown.stdout == data
