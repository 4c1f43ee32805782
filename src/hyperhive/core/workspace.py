"""Agents' workspaces: a clone of a host repository on branch ``hive/<name>``, made by the core.

Per agent with ``[workspace] repo`` (DESIGN §10):

- ``<state>/workspaces/<n>.git`` (0700): the core's bare mirror. The base
  branch is fetched into it from the host repository, git's far side running
  as that repository's owner (:func:`~hyperhive.core.workspace_repo.as_owner`);
  the agent's commits are copied into it, verified, by
  :mod:`hyperhive.core.workspace_export`. Git runs only here and in a clone
  the core is still making.
- ``<state>/agents/<n>/work`` (the agent's ``/work``): a repository of its own
  whose objects came through a fetch from the mirror (never hard links), on
  branch ``hive/<n>`` from the base, with no remote and the agent's identity.
  Once the agent has it, it is hostile input and is only read, through
  :class:`~hyperhive.core.object_store.ObjectStore` below ``<state>/agents/<n>``
  (the agent cannot replace that directory).
- ``<state>/workspaces/<n>.json`` (0600): what was cloned from where.

``hive work`` shows the branch from the mirror; ``hive work --fetch`` pushes
it from the mirror into the host repository as ``hive/<n>``, the receiving
side running as the repository's owner, so nothing root-owned lands there
and only that one ref moves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from hyperhive.config import Config
from hyperhive.core.binds import forbidden_roots
from hyperhive.core.containers import agent_paths
from hyperhive.core.git import ConfigRepoError, Git
from hyperhive.core.git_format import BadRepo
from hyperhive.core.git_refs import read_ref_at
from hyperhive.core.object_store import Limits, ObjectStore
from hyperhive.core.workspace_config import BadWorkspace, Workspace
from hyperhive.core.workspace_export import Bounds, Mirror, export
from hyperhive.core.workspace_repo import HostRepo, as_owner, check_host_repo
from hyperhive.core.workspace_view import branch_view
from hyperhive.errors import ClientError, HiveError
from hyperhive.names import validate_agent_name

log = logging.getLogger(__name__)
SLOW: Final = 600.0  # cloning and pushing move whole repositories
# An agent's clone holds the whole project: room for a big one, and still a bound.
LIMITS: Final = Limits(
    max_object=32 << 20,
    max_delta=64 << 20,
    max_loose_file=48 << 20,
    max_packs=256,
    max_idx_file=64 << 20,
    budget=1 << 30,
    cache=32 << 20,
)


class NoWorkspace(ClientError):
    code = "no_workspace"


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    repo: str  # the host repository's real path when it was cloned
    base: str
    base_commit: str
    branch: str
    created_at: float

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


def branch_of(name: str) -> str:
    return f"hive/{name}"


def identity(name: str) -> tuple[str, str]:
    return f"h-{name}", f"h-{name}@hyperhive"


class Workspaces:
    def __init__(self, config: Config, *, bounds: Bounds | None = None) -> None:
        self._config = config
        self._dir = config.state_dir / "workspaces"
        self._git = Git()
        self._slow = Git(timeout=SLOW)
        self._bounds = bounds or Bounds()
        self._locks: dict[str, asyncio.Lock] = {}
        self._cache: dict[str, tuple[tuple[str, str], dict[str, Any]]] = {}
        # Records as read or written: only this core writes them, and listing 200 agents
        # should not read 200 files.
        self._records: dict[str, Record | None] = {}

    # -- paths and records ------------------------------------------------------

    def mirror_dir(self, name: str) -> Path:
        return self._dir / f"{validate_agent_name(name)}.git"

    def record_path(self, name: str) -> Path:
        return self._dir / f"{validate_agent_name(name)}.json"

    def record(self, name: str) -> Record | None:
        if name in self._records:
            return self._records[name]
        found = self._read_record(name)
        self._records[name] = found
        return found

    def _read_record(self, name: str) -> Record | None:
        try:
            data = json.loads(self.record_path(name).read_text(encoding="utf-8"))
            return Record(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.error("the workspace record of %s is unreadable: %s", name, exc)
            return None

    def _forbidden(self) -> tuple[Path, ...]:
        return forbidden_roots(self._config.state_dir, self._config.run_dir)

    def _work(self, name: str) -> Path:
        return agent_paths(self._config, name).work

    # -- making one -------------------------------------------------------------

    def needs_clone(self, name: str, workspace: Workspace) -> bool:
        """Whether ``name`` should get a clone for ``workspace`` now; refuses (BadWorkspace)
        a repository that may not be used or a /work that holds a repository of its own."""
        if workspace.repo is None:
            return False
        check_host_repo(workspace, self._forbidden())
        has_clone = os.path.lexists(self._work(name) / ".git")
        record = self.record(name)
        if record is not None and has_clone:
            if (record.repo, record.base) != (os.path.realpath(workspace.repo), workspace.base):
                log.info("%s keeps its workspace from %s (%s)", name, record.repo, record.base)
            return False
        if has_clone:
            raise BadWorkspace(
                f"agent.toml: workspace: {name}'s /work already holds a git repository"
                " the core did not make; move it away first"
            )
        return True

    async def clone(self, name: str, workspace: Workspace) -> Record:
        """Mirror the base branch and make ``name``'s clone on ``hive/<name>``.

        The agent must not be running: its /work is taken over by the core
        while git writes there. Nothing is left behind when it fails.
        """
        async with self._lock(name):
            host = await asyncio.to_thread(check_host_repo, workspace, self._forbidden())
            await asyncio.to_thread(self._drop, name)
            try:
                return await self._clone(name, host, workspace.base)
            except BaseException:
                await asyncio.to_thread(self._drop, name)
                raise

    async def _clone(self, name: str, host: HostRepo, base: str) -> Record:
        mirror, work = self.mirror_dir(name), self._work(name)
        branch = branch_of(name)
        await asyncio.to_thread(self._dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        git = self._slow
        try:
            await git.run("init", "--quiet", "--bare", f"--initial-branch={base}", str(mirror))
            await git.run(
                "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                f"--upload-pack={as_owner(host, 'upload-pack')}",
                "--", str(host.path), f"+refs/heads/{base}:refs/heads/{base}",
                git_dir=mirror, env=_fsck_env(),
            )  # fmt: skip
            found = await git.run(
                "rev-parse", "--verify", f"refs/heads/{base}^{{commit}}", git_dir=mirror
            )
            base_commit = found.stdout.decode().strip()
            await asyncio.to_thread(_take_over, work)
            try:
                await self._fill(name, mirror, work, base, base_commit)
            except BaseException:
                await asyncio.to_thread(shutil.rmtree, work / ".git", True)  # ours, half made
                raise
        except ConfigRepoError as exc:
            log.error("cloning %s for %s failed: %s", host.path, name, exc.message)
            raise BadWorkspace(
                f"could not clone {host.path} ({base}) into {name}'s /work: {exc.message}"
            ) from None
        record = Record(name, str(host.path), base, base_commit, branch, time.time())
        await asyncio.to_thread(_write_record, self.record_path(name), record)
        self._records[name] = record
        log.info("%s: workspace %s from %s %s (%s)", name, branch, host.path, base, base_commit)
        return record

    async def _fill(self, name: str, mirror: Path, work: Path, base: str, commit: str) -> None:
        """A repository in ``work`` whose objects come through a fetch from ``mirror`` (a copy,
        never hard links the agent could rewrite), on its branch, with no remote at all."""
        git, branch, theirs = self._slow, branch_of(name), work / ".git"
        await git.run("init", "--quiet", f"--initial-branch={branch}", str(work))
        await git.run(
            "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
            "--", str(mirror), f"+refs/heads/{base}:refs/heads/{base}", git_dir=theirs,
        )  # fmt: skip
        await git.run("checkout", "--quiet", "-b", branch, commit, git_dir=theirs, work_tree=work)
        who, email = identity(name)
        await git.run("config", "user.name", who, git_dir=theirs)
        await git.run("config", "user.email", email, git_dir=theirs)

    # -- showing and fetching ---------------------------------------------------

    async def view(self, name: str) -> dict[str, Any]:
        """The branch, the base, the commits ahead of it, the diffstat and the diff."""
        record = self._need(name)
        async with self._lock(name):
            return await self._view(record)

    async def _view(self, record: Record) -> dict[str, Any]:
        name = record.name
        root = agent_paths(self._config, name).root
        git_dir = root / "work" / ".git"
        wire = record.to_wire()
        tip = await asyncio.to_thread(read_ref_at, git_dir, f"refs/heads/{record.branch}", root)
        if tip is None:
            return {**wire, "tip": None, "ahead": 0, "commits": [], "stat": None,
                    "diffstat": "", "diff": "", "diff_truncated": False}  # fmt: skip
        key = (tip, record.base_commit)
        cached = self._cache.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        mirror = Mirror(self._git, self.mirror_dir(name))
        store = await asyncio.to_thread(ObjectStore, git_dir, limits=LIMITS, trusted=root)
        try:
            exported = await export(
                store, mirror, tip, record.base_commit, record.branch, self._bounds
            )
        finally:
            store.close()
        await self._git.run(
            "update-ref", f"refs/heads/{record.branch}", tip, git_dir=mirror.git_dir
        )
        shown = await branch_view(self._git, mirror.git_dir, record.base_commit, tip)
        view = {**wire, **shown}
        if exported.objects:
            log.info(
                "%s: %d commits, %d objects copied into the mirror",
                name,
                exported.commits,
                exported.objects,
            )
        self._cache[name] = (key, view)
        return view

    async def fetch(self, name: str) -> dict[str, Any]:
        """Bring ``hive/<name>`` into the host repository from the mirror; only that ref moves."""
        record = self._need(name)
        async with self._lock(name):
            view = await self._view(record)
            tip = view["tip"]
            if tip is None:
                raise NoWorkspace(f"{name}'s clone has no branch {record.branch} to fetch")
            host = await asyncio.to_thread(
                check_host_repo, Workspace(record.repo, record.base), self._forbidden()
            )
            ref = f"refs/heads/{record.branch}"
            before = await asyncio.to_thread(read_ref_at, host.git_dir, ref)
            try:
                await self._slow.run(
                    "push", "--quiet", "--no-verify",
                    f"--receive-pack={as_owner(host, 'receive-pack')}",
                    "--", str(host.path), f"+{tip}:{ref}", git_dir=self.mirror_dir(name),
                )  # fmt: skip
            except ConfigRepoError as exc:
                raise HiveError(
                    f"could not update {record.branch} in {host.path}: {exc.message}"
                ) from None
        return {"name": name, "repo": str(host.path), "branch": record.branch,
                "tip": tip, "previous": before, "ahead": view["ahead"]}  # fmt: skip

    # -- removing ---------------------------------------------------------------

    async def remove(self, name: str) -> None:
        """Forget ``name``'s workspace: its record and its mirror (its /work goes with its dirs)."""
        async with self._lock(name):
            await asyncio.to_thread(self._drop, name)

    def _drop(self, name: str) -> None:
        self._cache.pop(name, None)
        self._records.pop(name, None)
        self.record_path(name).unlink(missing_ok=True)
        shutil.rmtree(self.mirror_dir(name), ignore_errors=True)

    def _need(self, name: str) -> Record:
        record = self.record(validate_agent_name(name))
        if record is None:
            raise NoWorkspace(
                f"agent {name!r} has no workspace ([workspace] repo in its agent.toml)"
            )
        return record

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())


def _fsck_env() -> dict[str, str]:
    """Check every object the host repository sends, as for any remote."""
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "fetch.fsckObjects",
            "GIT_CONFIG_VALUE_0": "true"}  # fmt: skip


def _take_over(work: Path) -> None:
    """Make ``work`` the core's (0700) while git writes there: nothing else may add to it.
    The backend gives the whole tree to the agent's uid when it starts (its top is not theirs)."""
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(work)
    if info.st_uid != os.geteuid():
        os.chown(work, os.geteuid(), os.getegid(), follow_symlinks=False)
    os.chmod(work, 0o700)
    if os.path.lexists(work / ".git"):
        raise BadWorkspace("the agent's /work already holds a .git")


def _write_record(path: Path, record: Record) -> None:
    """Atomically, 0600: a half-written record must never pass for a workspace."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(record.to_wire(), out)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


__all__ = ["BadRepo", "NoWorkspace", "Record", "Workspaces"]
