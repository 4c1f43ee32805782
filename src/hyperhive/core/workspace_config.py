"""``agent.toml``'s ``[workspace]``: a host git repository the agent works on.

``repo`` is a repository on the host and ``base`` the branch the agent's own
branch (``hive/<name>``) starts from. The core, never the agent, clones it
into the agent's ``/work``; the agent gets no access to ``repo`` itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final

from hyperhive.errors import BadConfig

KEYS: Final = ("repo", "base")
DEFAULT_BASE: Final = "main"
MAX_PATH: Final = 1024
PATH_RE: Final = re.compile(r"/[A-Za-z0-9._+@/-]*")
# A branch name git accepts and no option or revision expression can hide in.
BRANCH_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}")


class BadWorkspace(BadConfig):
    pass


@dataclass(frozen=True, slots=True)
class Workspace:
    repo: str | None = None
    base: str = DEFAULT_BASE


def parse_workspace(table: dict[str, object]) -> Workspace:
    """The ``[workspace]`` table (unknown keys already refused)."""
    repo, base = table.get("repo"), table.get("base", DEFAULT_BASE)
    if repo is not None:
        if not isinstance(repo, str) or len(repo) > MAX_PATH or not PATH_RE.fullmatch(repo):
            raise BadWorkspace(
                "agent.toml: workspace.repo must be an absolute path of letters, digits "
                f"and . _ + @ - / (got {repo!r:.60})"
            )
        if ".." in PurePosixPath(repo).parts:
            raise BadWorkspace("agent.toml: workspace.repo must not contain '..'")
    if not isinstance(base, str) or not BRANCH_RE.fullmatch(base) or _bad_branch(base):
        raise BadWorkspace(
            f"agent.toml: workspace.base must be a branch name such as main (got {base!r:.60})"
        )
    return Workspace(repo, base)


def _bad_branch(name: str) -> bool:
    return ".." in name or "//" in name or name.endswith(("/", ".", ".lock")) or "/." in name
