"""The host repository a workspace is cloned from, judged where it really is.

``workspace.repo`` comes from an agent.toml the manager wrote, so it is
checked the way ``sandbox.ro_binds`` are (:mod:`hyperhive.core.binds`): by
its real path, against the places no agent may see. A repository under
``/root`` would hand the agent a copy of the operator's private files, one
inside the hive's state dir another agent's work. It must also really be a
repository (a ``.git`` directory, or a bare one) with the base branch, read
from its ref files without following a symlink. Git is never run here: this
is the cheap check made when a request arrives and again before a clone.

Whatever touches the repository later runs as its owner (:func:`as_owner`),
so its config and hooks can do nothing its owner could not, and no file
the core writes there is root's.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hyperhive.core.git import SAFETY
from hyperhive.core.git_format import BadRepo
from hyperhive.core.git_refs import read_ref_at
from hyperhive.core.workspace_config import BadWorkspace, Workspace


@dataclass(frozen=True, slots=True)
class HostRepo:
    path: Path  # the real path of the repository (its work tree, or the bare repo)
    git_dir: Path
    uid: int  # who owns its git directory: git runs there as them
    gid: int
    base_commit: str  # what the base branch names now


def _where(repo: str) -> str:
    return f"agent.toml: workspace.repo ({repo})"


def check_host_repo(workspace: Workspace, forbidden: tuple[Path, ...]) -> HostRepo:
    """The repository ``workspace`` names, checked; :class:`BadWorkspace` if it may not be used."""
    repo = workspace.repo
    if repo is None:
        raise BadWorkspace("agent.toml names no workspace.repo")
    where = _where(repo)
    _refuse_forbidden(repo, Path(os.path.normpath(repo)), forbidden)
    try:
        real = Path(os.path.realpath(repo, strict=True))
    except OSError:
        raise BadWorkspace(f"{where} does not exist on this host") from None
    _refuse_forbidden(repo, real, forbidden)
    git_dir = _git_dir(where, real)
    info = os.lstat(git_dir)
    try:
        base = read_ref_at(git_dir, f"refs/heads/{workspace.base}")
    except BadRepo as exc:
        raise BadWorkspace(
            f"{where}: its branch {workspace.base} cannot be read ({exc.message})"
        ) from None
    if base is None:
        raise BadWorkspace(f"{where} has no branch {workspace.base} (workspace.base)")
    return HostRepo(real, git_dir, info.st_uid, info.st_gid, base)


def _git_dir(where: str, real: Path) -> Path:
    """``real/.git`` for a work tree, ``real`` itself for a bare repository."""
    dot_git = real / ".git"
    try:
        mode = os.lstat(dot_git).st_mode
    except FileNotFoundError:
        mode = None
    except OSError:
        raise BadWorkspace(f"{where} cannot be examined") from None
    if mode is not None:
        if not stat.S_ISDIR(mode):
            # A gitdir file: a linked worktree or a submodule, whose objects live elsewhere.
            raise BadWorkspace(f"{where}: its .git is not a directory; name the main repository")
        return dot_git
    if all(_is(real / part, directory) for part, directory in REQUIRED):
        return real
    raise BadWorkspace(f"{where} is not a git repository")


REQUIRED: Final = (("HEAD", False), ("objects", True), ("refs", True))


def _is(path: Path, directory: bool) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)


def _refuse_forbidden(repo: str, path: Path, forbidden: tuple[Path, ...]) -> None:
    for root in forbidden:
        if path == root or root in path.parents or path in root.parents:
            via = f" (it leads to {path})" if str(path) != repo else ""
            raise BadWorkspace(
                f"{_where(repo)} would give the agent a copy of {root}, which agents never see{via}"
            )


def as_owner(repo: HostRepo, command: str, git: str = "git") -> str:
    """The shell command git runs on the far side of a local fetch or push (``--upload-pack``,
    ``--receive-pack``): ``git <command>`` as the repository's owner, with git's programs off.

    git starts that side with a clean config environment, so the core's own ``-c`` safety
    settings are given again here. A core that is not root, or a repo root owns, stays as it is.
    """
    argv = [shutil.which(git) or git, *SAFETY, command]
    if os.geteuid() == 0 and repo.uid != 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise BadWorkspace("setpriv is not installed: cannot act on a repository as its owner")
        argv = [setpriv, f"--reuid={repo.uid}", f"--regid={repo.gid}", "--clear-groups", *argv]
    return shlex.join(argv)
