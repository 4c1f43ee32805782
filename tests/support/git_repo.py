"""Real git repositories for the object store's tests, made by the real git CLI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from hyperhive.core.object_store import BadRepo, Limits, ObjectStore

MiB = 1 << 20
EMPTY_BLOB = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
IDENT = {"NAME": "t", "EMAIL": "t@example.invalid", "DATE": "2024-01-01T00:00:00Z"}


@dataclass
class Repo:
    work: Path
    env: dict[str, str]

    @property
    def git_dir(self) -> Path:
        return self.work / ".git"

    def git(self, *args: str, stdin: bytes | None = None) -> bytes:
        done = subprocess.run(
            ["git", *args], cwd=self.work, env=self.env, input=stdin,
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    def rev(self, name: str = "HEAD") -> str:
        return self.git("rev-parse", name).decode().strip()

    def commit(self, files: dict[str, str], message: str) -> str:
        for path, content in files.items():
            (self.work / path).parent.mkdir(parents=True, exist_ok=True)
            (self.work / path).write_text(content)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.rev()

    def objects(self) -> dict[str, tuple[str, bytes]]:
        """Every object as ``git cat-file`` shows it: sha → (kind, content)."""
        raw = self.git("cat-file", "--batch-all-objects", "--batch")
        found, at = {}, 0
        while at < len(raw):
            end = raw.index(b"\n", at)
            sha, kind, size = raw[at:end].decode().split()
            found[sha] = (kind, raw[end + 1 : end + 1 + int(size)])
            at = end + 2 + int(size)
        return found

    def loose(self, sha: str) -> Path:
        return self.git_dir / "objects" / sha[:2] / sha[2:]

    def packs(self) -> list[Path]:
        return sorted((self.git_dir / "objects" / "pack").glob("*.pack"))

    def packed(self, *idx: Path) -> list[list[str]]:
        """``git verify-pack -v`` rows: sha kind size size-in-pack offset [depth base]."""
        idx = idx or tuple(p.with_suffix(".idx") for p in self.packs())
        rows = self.git("verify-pack", "-v", *map(str, idx)).decode().splitlines()
        return [row.split() for row in rows if len(row.split()) in (5, 7)]

    def write_object(self, kind: str, data: bytes) -> str:
        out = self.git("hash-object", "--literally", "-w", "-t", kind, "--stdin", stdin=data)
        return out.decode().strip()

    def pack_only(self, *shas: str) -> None:
        self.git("pack-objects", "-q", ".git/objects/pack/pack", stdin="\n".join(shas).encode())
        self.git("prune-packed")


def new_repo(where: Path) -> Repo:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(where), "LC_ALL": "C",
           "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip
    env |= {f"GIT_{who}_{k}": v for who in ("AUTHOR", "COMMITTER") for k, v in IDENT.items()}
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(where)], env=env, check=True, timeout=60)
    repo = Repo(where, env)
    # One thread: a threaded repack splits its window and builds other deltas
    # from run to run; tests that look for deltas must find the same ones.
    repo.git("config", "pack.threads", "1")
    return repo


def history(repo: Repo, versions: int) -> list[str]:
    """Commits of a config where each version edits one more line and adds one: deltas."""

    def toml(v: int) -> str:
        return "".join(
            f'setting_{n} = "{f"edited in v{v}" if n <= v else "original"}"\n'
            for n in range(1, 120 + v)
        )

    return [
        repo.commit({"agent.toml": toml(v), "notes/readme.md": f"v{v}\n"}, f"v{v}")
        for v in range(1, versions + 1)
    ]


def matches_git(repo: Repo, limits: Limits | None = None) -> int:
    expected = repo.objects()
    with ObjectStore(repo.git_dir, limits=limits) as store:
        for sha, (kind, data) in expected.items():
            obj = store.read(sha)
            assert (obj.kind, obj.data) == (kind, data), sha
    return len(expected)


def refusal(git_dir: Path, read: Callable[[ObjectStore], object], **limits: int) -> BadRepo:
    """The BadRepo raised opening ``git_dir`` or by ``read``; its text never names the host."""
    with pytest.raises(BadRepo) as raised, ObjectStore(git_dir, limits=Limits(**limits)) as s:
        read(s)
    assert str(git_dir.parent) not in raised.value.message
    return raised.value


def overwrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)  # git writes objects read-only; their owner can still replace them
    path.write_bytes(data)
