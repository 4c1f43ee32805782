"""The git runner: isolated from the caller's environment, bounded in time and output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hyperhive.core.git import ConfigRepoError, Git, alternates_value


@pytest.fixture
async def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    await Git().run("init", "--quiet", str(path))
    return path


async def test_a_failing_command_carries_gits_own_words(repo: Path) -> None:
    with pytest.raises(ConfigRepoError) as raised:
        await Git().run("rev-parse", "--verify", "nope", git_dir=repo / ".git")
    assert raised.value.message.startswith("git rev-parse failed (exit 128): fatal:")
    assert "Needed a single revision" in raised.value.stderr


async def test_an_unchecked_failure_is_returned_not_raised(repo: Path) -> None:
    result = await Git().run("rev-parse", "--verify", "nope", git_dir=repo / ".git", check=False)
    assert result.returncode == 128


async def test_the_daemons_git_environment_and_user_config_do_not_leak_in(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = evil\n[alias]\n\tcommit = status\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "evil")
    git = Git()
    (repo / "f").write_text("x")
    await git.run("add", "f", git_dir=repo / ".git", work_tree=repo)
    await git.run("commit", "-q", "-m", "m", git_dir=repo / ".git", work_tree=repo)
    log = await git.run("log", "--format=%an <%ae>|%cn <%ce>", git_dir=repo / ".git")
    assert log.stdout.decode().strip() == (
        "hive-c0re <hive-c0re@localhost>|hive-c0re <hive-c0re@localhost>"
    )


async def test_a_git_that_hangs_is_killed_at_its_deadline(repo: Path) -> None:
    fifo = repo / "pipe"
    os.mkfifo(fifo)  # nobody ever writes: reading it blocks forever
    with pytest.raises(ConfigRepoError, match=r"git hash-object took longer than 0\.3s"):
        await Git(timeout=0.3).run("hash-object", str(fifo), git_dir=repo / ".git")


async def test_output_past_the_cap_is_refused_or_cut(repo: Path) -> None:
    git = Git()
    blob = await git.run(
        "hash-object", "-w", "--stdin", git_dir=repo / ".git", stdin=b"y" * 300_000
    )
    sha = blob.stdout.decode().strip()
    with pytest.raises(ConfigRepoError, match="printed more than 1000 bytes"):
        await git.run("cat-file", "blob", sha, git_dir=repo / ".git", max_stdout=1000)
    cut = await git.run(
        "cat-file", "blob", sha, git_dir=repo / ".git", max_stdout=1000, truncate=True
    )
    assert (cut.stdout, cut.truncated) == (b"y" * 1000, True)
    whole = await git.run("cat-file", "blob", sha, git_dir=repo / ".git")
    assert (len(whole.stdout), whole.truncated) == (300_000, False)


async def test_a_missing_git_is_a_clear_error() -> None:
    with pytest.raises(ConfigRepoError, match="'no-such-git' is not installed"):
        await Git(executable="no-such-git").run("version")


def test_an_alternates_path_with_a_colon_is_quoted() -> None:
    assert alternates_value(Path("/srv/objects")) == "/srv/objects"
    assert alternates_value(Path('/a:b/"x"')) == '"/a:b/\\"x\\""'
