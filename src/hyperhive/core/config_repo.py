"""Agent configs as git: the manager proposes commits, the core applies approved ones.

Two repos per agent (DESIGN §2): ``<state>/proposed/<n>/config`` is the
manager's working tree (``/agents/<n>/config`` in its container) and
``<state>/applied/<n>`` is the core's, the only one backends read.

The proposed repo is hostile input: git never runs in it after creation, and
its objects are read only by :mod:`hyperhive.core.proposal` (re-hashed,
bounded, no symlink followed). A request is *staged*: the verified files are
written into the applied repo under ``refs/hive/staged/<commit>`` by git
itself, which must arrive at the very tree the manager's repo names; the diff
shown to the operator is computed there, once. Applying takes that staged
tree, checked against the SHA-256 pin kept with the approval — never the
proposed repo again, never a later commit.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Final

from hyperhive.core.agent_config import (
    AgentConfig,
    BadConfig,
    default_agent_toml,
    parse_agent_toml,
)
from hyperhive.core.config_tree import (
    AGENT_TOML,
    MAX_FILE,
    check_path,
    check_tree,
    fast_import_stream,
    normalise_sha,
    parse_cat_file_batch,
    parse_ls_tree,
)
from hyperhive.core.git import ConfigRepoError, Git
from hyperhive.core.proposal import (
    Files,
    Pin,
    Staged,
    UnknownCommit,
    files_digest,
    read_proposal,
    resolve_commit,
)
from hyperhive.errors import AlreadyExists, UnknownAgent
from hyperhive.names import validate_agent_name
from hyperhive.ownership import claim

__all__ = ["ConfigRepos", "Pin", "Staged", "UnknownCommit"]

log = logging.getLogger(__name__)
BRANCH: Final = "main"
MAX_DIFF: Final = 1024 * 1024
# What the manager's commits are signed with inside its container, which has
# no git identity of its own.
MANAGER_IDENT: Final = ("hm1nd", "hm1nd@hyperhive")


class ConfigRepos:
    def __init__(
        self, state_dir: Path, *, git: Git | None = None, owner: int | None = None
    ) -> None:
        self._state = state_dir
        self._git = git or Git()
        self._owner = owner  # the manager's uid, when it runs as one
        self._locks: dict[str, asyncio.Lock] = {}
        self._parsed: dict[str, tuple[str, AgentConfig]] = {}  # name -> (applied sha, config)

    def proposed_dir(self, name: str) -> Path:
        return self._state / "proposed" / validate_agent_name(name) / "config"

    @property
    def applied_root(self) -> Path:
        """Where every agent's applied repo is, one directory each, named as the agent."""
        return self._state / "applied"

    def applied_dir(self, name: str) -> Path:
        return self.applied_root / validate_agent_name(name)

    async def init_agent(self, name: str, agent_toml: str) -> str:
        """Create both repos with one identical first commit; return its sha."""
        applied, proposed = self.applied_dir(name), self.proposed_dir(name)
        if len(agent_toml.encode()) > MAX_FILE:
            raise BadConfig(f"{AGENT_TOML} is over {MAX_FILE // 1024} KiB")
        parse_agent_toml(agent_toml)
        async with self._lock(name):
            if applied.exists() or proposed.parent.exists() or proposed.parent.is_symlink():
                raise AlreadyExists(f"config repos for agent {name!r} already exist")
            try:
                return await self._create(name, applied, proposed, agent_toml)
            except BaseException:
                await asyncio.to_thread(self._delete, name)
                raise

    async def resolve(self, name: str, sha: object) -> str:
        """The full sha of commit ``sha`` (4+ hex digits) in ``name``'s proposed repo."""
        short = normalise_sha(sha)
        self._git_dir(name)
        return await asyncio.to_thread(
            resolve_commit, self._proposed_git(name), self._trusted, name, short
        )

    async def stage(self, name: str, sha: object) -> Staged:
        """Verify commit ``sha`` and keep its tree in the applied repo, with its diff.

        A tree that may not be applied is :class:`BadConfig` and changes
        nothing that is applied.
        """
        short = normalise_sha(sha)
        git_dir = self._git_dir(name)
        async with self._lock(name):
            proposal = await asyncio.to_thread(
                read_proposal, self._proposed_git(name), self._trusted, name, short
            )
            ref = f"refs/hive/staged/{proposal.commit}"
            message = f"staged {proposal.commit}\n"
            try:
                parent = await self.applied_sha(name)
                stream = fast_import_stream(ref, parent, message, proposal.files)
                await self._git.run(
                    "fast-import", "--quiet", "--force", "--date-format=now",
                    git_dir=git_dir, stdin=stream,
                )  # fmt: skip
                tree = await self._tree_of(name, ref)
                diff = await self._diff(git_dir, ref)
            except ConfigRepoError as exc:
                # The core's own repo; its words are for the core's log, not the manager.
                log.error("staging %s for %s failed: %s", proposal.commit, name, exc.message)
                raise ConfigRepoError(
                    f"could not stage commit {short}; see the core's log"
                ) from None
        if tree != proposal.tree:
            raise BadConfig(
                f"commit {proposal.commit[:12]}: its tree is not in git's canonical form"
                " (re-created from its files it is another tree); refused"
            )
        return Staged(Pin(proposal.commit, tree, proposal.digest), diff, proposal.files)

    async def apply(
        self,
        name: str,
        pin: Pin,
        approval_id: int,
        check: Callable[[Files], None] | None = None,
    ) -> str:
        """Make the applied config exactly the pinned tree; return the new applied sha.

        ``check`` sees the files first and may refuse them (raise): then
        nothing changes.
        """
        async with self._lock(name):
            git_dir, work = self._git_dir(name), self.applied_dir(name)
            await self._pinned(name, pin, approval_id, check)
            parent = await self.applied_sha(name)
            message = (
                f"apply {pin.commit[:12]} (approval #{approval_id})\n\n"
                f"proposed commit {pin.commit}\ntree {pin.tree}\nsha256 {pin.digest}\n"
            )
            made = await self._git.run(
                "commit-tree", pin.tree, "-p", parent, git_dir=git_dir, stdin=message.encode()
            )
            commit = made.stdout.decode().strip()
            # Compare-and-set: an apply that raced us would make this fail, not vanish.
            await self._git.run(
                "update-ref", f"refs/heads/{BRANCH}", commit, parent, git_dir=git_dir
            )
            await self._git.run("reset", "--quiet", "--hard", git_dir=git_dir, work_tree=work)
            return commit

    async def pinned_files(
        self, name: str, pin: Pin, approval_id: int, check: Callable[[Files], object]
    ) -> Files:
        """The files of the pinned tree kept here, checked as :meth:`apply` checks them,
        for another host to apply (core/applied_configs.py)."""
        async with self._lock(name):
            return await self._pinned(name, pin, approval_id, check)

    async def import_pinned(self, name: str, pin: Pin, files: Files) -> None:
        """Keep ``files``, sent by hm1nd's host, as the staged tree of ``pin`` here, so that
        :meth:`apply` applies them; git must arrive at the very tree that was pinned."""
        git_dir = self._git_dir(name)
        if files_digest(files) != pin.digest:
            raise ConfigRepoError(f"the files sent for {pin.commit[:12]} are not the pinned ones")
        ref = f"refs/hive/staged/{pin.commit}"
        async with self._lock(name):
            parent = await self.applied_sha(name)
            stream = fast_import_stream(ref, parent, f"staged {pin.commit}\n", files)
            await self._git.run(
                "fast-import", "--quiet", "--force", "--date-format=now",
                git_dir=git_dir, stdin=stream,
            )  # fmt: skip
            tree = await self._tree_of(name, ref)
        if tree != pin.tree:
            raise BadConfig(
                f"commit {pin.commit[:12]}: its files make tree {tree[:12]} here, not the"
                f" pinned {pin.tree[:12]}; refused"
            )

    async def applied_sha(self, name: str) -> str:
        result = await self._git.run(
            "rev-parse", "--verify", "HEAD^{commit}", git_dir=self._git_dir(name)
        )
        return result.stdout.decode().strip()

    async def applied_tree(self, name: str) -> str:
        return await self._tree_of(name, "HEAD")

    def read_applied(self, name: str, path: str) -> str | None:
        """A file of the applied config, or None if the agent or the file has none."""
        target = self.applied_dir(name) / check_path(path)
        if target.is_symlink() or not target.is_file():
            return None
        try:
            return target.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigRepoError(f"applied {path} of {name} is not UTF-8 text") from None

    def applied_agent(self, name: str, sha: str | None) -> AgentConfig:
        """The applied ``agent.toml`` parsed (the default one if there is none), kept while
        the applied commit is ``sha``: a commit names its tree, so the file cannot differ.
        Listing every agent would otherwise read and parse every config each time."""
        cached = self._parsed.get(name)
        if sha and cached is not None and cached[0] == sha:
            return cached[1]
        text = self.read_applied(name, AGENT_TOML)
        agent = parse_agent_toml(text or default_agent_toml(name))
        if sha:
            self._parsed[name] = (sha, agent)
        return agent

    async def remove(self, name: str) -> None:
        """Delete both repos of ``name`` (gone already is fine)."""
        validate_agent_name(name)
        self._parsed.pop(name, None)
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
        # object files the applied repo shares. Its identity is set by the clone itself:
        # every git run is a fork of the core, and spawning 200 agents makes 200 of each.
        who, email = MANAGER_IDENT
        await git.run(
            "clone", "--quiet", "--no-hardlinks", "--config", f"user.name={who}",
            "--config", f"user.email={email}", str(applied), str(proposed),
        )  # fmt: skip
        await git.run("remote", "remove", "origin", git_dir=proposed / ".git")
        if self._owner is not None:
            await asyncio.to_thread(claim, proposed.parent, self._owner)
        return await self.applied_sha(name)

    async def _pinned(
        self, name: str, pin: Pin, approval_id: int, check: Callable[[Files], object] | None
    ) -> Files:
        files = await self._files_of(name, pin.tree)
        if files_digest(files) != pin.digest:
            raise ConfigRepoError(
                f"the tree kept for approval #{approval_id} is not the one that was shown;"
                " refusing to apply it"
            )
        if check is not None:
            check(files)
        return files

    async def _tree_of(self, name: str, rev: str) -> str:
        found = await self._git.run(
            "rev-parse", "--verify", f"{rev}^{{tree}}", git_dir=self._git_dir(name)
        )
        return found.stdout.decode().strip()

    async def _diff(self, git_dir: Path, ref: str) -> str:
        result = await self._git.run(
            "diff", "--no-color", "--no-ext-diff", "--no-textconv", "HEAD", ref, "--",
            git_dir=git_dir, max_stdout=MAX_DIFF, truncate=True,
        )  # fmt: skip
        text = result.stdout.decode(errors="replace")
        if result.truncated:
            text += f"\n[diff cut at {MAX_DIFF // 1024} KiB]\n"
        return text

    async def _files_of(self, name: str, tree: str) -> Files:
        """The files of ``tree`` in the applied repo (the core's own; git may read it)."""
        git_dir = self._git_dir(name)
        short = normalise_sha(tree)[:12]
        listing = await self._git.run(
            "ls-tree", "-r", "-z", "-l", "--full-tree", tree, git_dir=git_dir
        )
        entries = check_tree(short, parse_ls_tree(listing.stdout))
        wanted = "".join(f"{e.sha}\n" for e in entries).encode()
        blobs = await self._git.run("cat-file", "--batch", git_dir=git_dir, stdin=wanted)
        contents = parse_cat_file_batch(blobs.stdout)
        return {e.path: (e.mode, contents[e.sha]) for e in entries}

    @property
    def _trusted(self) -> Path:
        # <state> is the core's alone, so <state>/proposed is where it says;
        # everything below is the manager's and is walked without symlinks.
        return self._state / "proposed"

    def _proposed_git(self, name: str) -> Path:
        return self.proposed_dir(name) / ".git"

    def _git_dir(self, name: str) -> Path:
        git_dir = self.applied_dir(name) / ".git"
        if not git_dir.is_dir():
            raise UnknownAgent(f"agent {name!r} has no config repo")
        return git_dir

    def _delete(self, name: str) -> None:
        shutil.rmtree(self.applied_dir(name), ignore_errors=True)
        proposed = self.proposed_dir(name).parent
        if proposed.is_symlink():
            proposed.unlink()  # never follow the manager's link to delete elsewhere
        else:
            shutil.rmtree(proposed, ignore_errors=True)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())
