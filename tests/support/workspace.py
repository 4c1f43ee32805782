"""Host repositories for the workspace tests, and commits made in a clone as its agent would.

The tests run as root; a clone belongs to its agent's uid once it has started, so git is run
there with ``safe.directory=*`` (as the test's own tool, never the core's). No global or
system config is read, and every commit has a fixed author date.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "LC_ALL": "C",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_DATE": "2024-05-01T12:00:00Z",
    "GIT_COMMITTER_DATE": "2024-05-01T12:00:00Z",
}
OPERATOR = {"GIT_AUTHOR_NAME": "op", "GIT_AUTHOR_EMAIL": "op@example.invalid",
            "GIT_COMMITTER_NAME": "op", "GIT_COMMITTER_EMAIL": "op@example.invalid"}  # fmt: skip


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "safe.directory=*", *args], cwd=cwd, env={**ENV, **(env or {})},
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"git {args}: {done.stderr.decode()}"
    return done.stdout.decode().strip()


def make_host_repo(path: Path) -> Path:
    """A work tree with ``main`` (two commits), ``other`` (one more) and some config."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "--initial-branch=main")
    (path / "README.md").write_text("the project\n")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("print('hello')\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first", env=OPERATOR)
    (path / "src" / "app.py").write_text("print('hello, world')\n")
    git(path, "commit", "-q", "-am", "second", env=OPERATOR)
    git(path, "checkout", "-q", "-b", "other")
    (path / "other.txt").write_text("elsewhere\n")
    git(path, "add", "other.txt")
    git(path, "commit", "-q", "-m", "on other", env=OPERATOR)
    git(path, "checkout", "-q", "main")
    git(path, "config", "hyperhive.test", "kept as it is")
    return path


def snapshot(repo: Path) -> dict[str, bytes]:
    """What fetching a hive branch must leave alone: HEAD, config, every other ref."""
    git_dir = repo / ".git"
    kept: dict[str, bytes] = {}
    for rel in ("HEAD", "config", "packed-refs", "index"):
        if (git_dir / rel).exists():
            kept[rel] = (git_dir / rel).read_bytes()
    for ref in sorted((git_dir / "refs").rglob("*")):
        rel = str(ref.relative_to(git_dir))
        if ref.is_file() and not rel.startswith("refs/heads/hive/"):
            kept[rel] = ref.read_bytes()
    return kept


def agent_commit(work: Path, files: dict[str, str], message: str) -> str:
    """Commit ``files`` in the clone at ``work`` with its own identity, as its agent would."""
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    return git(work, "rev-parse", "HEAD")


def workspace_toml(repo: Path, base: str = "main") -> str:
    return f'allow_send = ["hm1nd"]\n\n[workspace]\nrepo = "{repo}"\nbase = "{base}"\n'
