"""Agent configs as git: the manager proposes commits, the core applies approved ones.

Two repos per agent (DESIGN §2): ``<state>/proposed/<n>/config`` is the
manager's working tree (``/agents/<n>/config`` in its container) and
``<state>/applied/<n>`` is the core's, the only one backends read.

The proposed repo is untrusted: the manager can write its ``.git/config``,
and git runs programs named there (``core.fsmonitor``, filters, ...). So git
never runs *in* it after creation. Its objects are read from the applied repo
with ``GIT_OBJECT_DIRECTORY`` (resolving a sha sees only the proposed objects
and only our refs) or ``GIT_ALTERNATE_OBJECT_DIRECTORIES`` (a diff against the
applied head), and an apply re-creates the approved files in the applied repo
with ``git fast-import`` from the blobs at exactly the approved commit.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Final

from hyperhive.core.agent_config import BadConfig, parse_agent_toml
from hyperhive.core.config_tree import (
    AGENT_TOML,
    MAX_FILE,
    check_agent_toml,
    check_path,
    check_tree,
    fast_import_stream,
    normalise_sha,
    parse_cat_file_batch,
    parse_ls_tree,
)
from hyperhive.core.git import ConfigRepoError, Git, alternates_value
from hyperhive.errors import AlreadyExists, ClientError, UnknownAgent
from hyperhive.names import validate_agent_name

BRANCH: Final = "main"
MAX_DIFF: Final = 4 * 1024 * 1024
# What the manager's commits are signed with inside its container, which has
# no git identity of its own.
MANAGER_IDENT: Final = ("hm1nd", "hm1nd@hyperhive")


class UnknownCommit(ClientError):
    code = "unknown_commit"


class ConfigRepos:
    def __init__(self, state_dir: Path, *, git: Git | None = None) -> None:
        self._state = state_dir
        self._git = git or Git()
        self._locks: dict[str, asyncio.Lock] = {}

    def proposed_dir(self, name: str) -> Path:
        return self._state / "proposed" / validate_agent_name(name) / "config"

    def applied_dir(self, name: str) -> Path:
        return self._state / "applied" / validate_agent_name(name)

    async def init_agent(self, name: str, agent_toml: str) -> str:
        """Create both repos with one identical first commit; return its sha."""
        applied, proposed = self.applied_dir(name), self.proposed_dir(name)
        if len(agent_toml.encode()) > MAX_FILE:
            raise BadConfig(f"{AGENT_TOML} is over {MAX_FILE // 1024} KiB")
        parse_agent_toml(agent_toml)
        async with self._lock(name):
            if applied.exists() or proposed.parent.exists():
                raise AlreadyExists(f"config repos for agent {name!r} already exist")
            try:
                return await self._create(name, applied, proposed, agent_toml)
            except BaseException:
                await asyncio.to_thread(self._delete, name)
                raise

    async def resolve(self, name: str, sha: object) -> str:
        """The full sha of commit ``sha`` (4+ hex digits) in ``name``'s proposed repo."""
        short = normalise_sha(sha)
        git_dir = self._git_dir(name)
        env = {"GIT_OBJECT_DIRECTORY": str(self._proposed_objects(name, short))}
        result = await self._git.run(
            "cat-file", "--batch-check", git_dir=git_dir, env=env,
            stdin=short.encode() + b"\n",
        )  # fmt: skip
        fields = result.stdout.decode().split()
        where = f"in {name}'s proposed config repo"
        if fields[1:2] == ["ambiguous"]:
            raise UnknownCommit(f"{short} is ambiguous {where}; give more digits")
        if fields[1:2] == ["missing"] or len(fields) != 3:
            raise UnknownCommit(f"no commit {short} {where}")
        if fields[1] != "commit":
            raise UnknownCommit(f"{short} is a {fields[1]} {where}, not a commit")
        return fields[0]

    async def check(self, name: str, sha: object) -> str:
        """Resolve ``sha`` and check its tree could be applied; return the full sha."""
        full = await self.resolve(name, sha)
        await self._files_at(name, full)
        return full

    async def diff(self, name: str, sha: object) -> str:
        """Unified diff from the applied config to the tree of proposed commit ``sha``."""
        full = await self.resolve(name, sha)
        env = {"GIT_ALTERNATE_OBJECT_DIRECTORIES": alternates_value(self._objects_of(name))}
        result = await self._git.run(
            "diff", "--no-color", "--no-ext-diff", "--no-textconv", "HEAD", full, "--",
            git_dir=self._git_dir(name), env=env, max_stdout=MAX_DIFF, truncate=True,
        )  # fmt: skip
        text = result.stdout.decode(errors="replace")
        if result.truncated:
            text += f"\n[diff cut at {MAX_DIFF // (1024 * 1024)} MiB]\n"
        return text

    async def apply(self, name: str, sha: object, approval_id: int) -> str:
        """Make the applied config the tree at ``sha``, exactly; return the new applied sha.

        A tree that may not be applied is :class:`BadConfig` and changes nothing.
        """
        async with self._lock(name):
            full = await self.resolve(name, sha)
            files = await self._files_at(name, full)
            parent = await self.applied_sha(name)
            message = f"apply {full[:12]} (approval #{approval_id})\n\nproposed commit {full}\n"
            stream = fast_import_stream(f"refs/heads/{BRANCH}", parent, message, files)
            git_dir, work = self._git_dir(name), self.applied_dir(name)
            await self._git.run(
                "fast-import", "--quiet", "--date-format=now", git_dir=git_dir, stdin=stream
            )
            # fast-import moved the branch; bring the index and files along.
            await self._git.run("reset", "--quiet", "--hard", git_dir=git_dir, work_tree=work)
            return await self.applied_sha(name)

    async def applied_sha(self, name: str) -> str:
        result = await self._git.run(
            "rev-parse", "--verify", "HEAD^{commit}", git_dir=self._git_dir(name)
        )
        return result.stdout.decode().strip()

    def read_applied(self, name: str, path: str) -> str | None:
        """A file of the applied config, or None if the agent or the file has none."""
        target = self.applied_dir(name) / check_path(path)
        if target.is_symlink() or not target.is_file():
            return None
        try:
            return target.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigRepoError(f"applied {path} of {name} is not UTF-8 text") from None

    async def remove(self, name: str) -> None:
        """Delete both repos of ``name`` (gone already is fine)."""
        validate_agent_name(name)
        async with self._lock(name):
            await asyncio.to_thread(self._delete, name)

    # -- internals --------------------------------------------------------------

    async def _create(self, name: str, applied: Path, proposed: Path, agent_toml: str) -> str:
        git = self._git
        await asyncio.to_thread(applied.mkdir, parents=True)
        await git.run("init", "--quiet", f"--initial-branch={BRANCH}", str(applied))
        await asyncio.to_thread((applied / AGENT_TOML).write_text, agent_toml, encoding="utf-8")
        git_dir = self._git_dir(name)
        await git.run("add", "--", AGENT_TOML, git_dir=git_dir, work_tree=applied)
        await git.run("commit", "--quiet", "-m", f"init {name}", git_dir=git_dir, work_tree=applied)
        await asyncio.to_thread(proposed.parent.mkdir, parents=True)
        # A copy, never hard links: the manager must not be able to rewrite
        # object files the applied repo shares.
        await git.run("clone", "--quiet", "--no-hardlinks", str(applied), str(proposed))
        theirs = proposed / ".git"
        await git.run("remote", "remove", "origin", git_dir=theirs)
        await git.run("config", "user.name", MANAGER_IDENT[0], git_dir=theirs)
        await git.run("config", "user.email", MANAGER_IDENT[1], git_dir=theirs)
        return await self.applied_sha(name)

    async def _files_at(self, name: str, full: str) -> dict[str, tuple[str, bytes]]:
        """The checked files of commit ``full``: path → (mode, content)."""
        short = full[:12]
        git_dir = self._git_dir(name)
        env = {"GIT_OBJECT_DIRECTORY": str(self._proposed_objects(name, short))}
        listing = await self._git.run(
            "ls-tree", "-r", "-z", "-l", "--full-tree", full, git_dir=git_dir, env=env
        )
        entries = check_tree(short, parse_ls_tree(listing.stdout))
        wanted = "".join(f"{e.sha}\n" for e in entries).encode()
        blobs = await self._git.run("cat-file", "--batch", git_dir=git_dir, env=env, stdin=wanted)
        contents = parse_cat_file_batch(blobs.stdout)
        files = {e.path: (e.mode, contents[e.sha]) for e in entries}
        check_agent_toml(short, files[AGENT_TOML][1])
        return files

    def _git_dir(self, name: str) -> Path:
        git_dir = self.applied_dir(name) / ".git"
        if not git_dir.is_dir():
            raise UnknownAgent(f"agent {name!r} has no config repo")
        return git_dir

    def _proposed_objects(self, name: str, short: str) -> Path:
        objects = self._objects_of(name)
        if not objects.is_dir():
            raise UnknownCommit(f"no commit {short}: {name}'s proposed config repo is missing")
        return objects

    def _objects_of(self, name: str) -> Path:
        """The proposed object store, refusing a ``.git`` that leads elsewhere on the host."""
        proposed = self.proposed_dir(name)
        objects = (proposed / ".git" / "objects").resolve()
        if not objects.is_relative_to(proposed.resolve()):
            raise ConfigRepoError(f"{name}'s proposed .git points outside its config directory")
        return objects

    def _delete(self, name: str) -> None:
        shutil.rmtree(self.applied_dir(name), ignore_errors=True)
        shutil.rmtree(self.proposed_dir(name).parent, ignore_errors=True)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())
