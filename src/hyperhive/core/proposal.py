"""A proposed config commit, read out of the manager's repo and verified.

The proposed repo is the manager's to write, so it is read by
:class:`~hyperhive.core.object_store.ObjectStore` (every object re-hashed, no
symlink followed, everything bounded), never by git. What comes out is the
commit's tree as plain files, checked by :mod:`hyperhive.core.config_tree`,
and a SHA-256 over exactly those files: the pin an approval keeps, so that
what the operator was shown is what is applied, whatever SHA-1 allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hyperhive.core.agent_config import BadConfig
from hyperhive.core.config_tree import (
    MAX_FILE,
    MAX_FILES,
    REGULAR_MODES,
    TreeEntry,
    check_agent_toml,
    check_tree,
)
from hyperhive.core.object_store import (
    AmbiguousObject,
    Commit,
    Limits,
    MissingObject,
    ObjectStore,
    RepoLimit,
    WrongKind,
    walk,
)
from hyperhive.errors import ClientError

# Room for every file a config may have, and a few subtrees besides.
MAX_ENTRIES: Final = MAX_FILES * 2
MAX_DEPTH: Final = 16
LIMITS: Final = Limits(max_object=MAX_FILE, budget=MAX_FILES * MAX_FILE * 2)
GIT_MODES: Final = {"100644": "blob", "100755": "blob", "120000": "blob", "160000": "commit"}

Files = dict[str, tuple[str, bytes]]  # path -> (mode, content)


class UnknownCommit(ClientError):
    code = "unknown_commit"


@dataclass(frozen=True, slots=True)
class Proposal:
    commit: str
    tree: str  # the commit's tree, as the manager's repo names it
    files: Files

    @property
    def digest(self) -> str:
        return files_digest(self.files)


@dataclass(frozen=True, slots=True)
class Pin:
    """What an approval applies: a proposed commit, its tree, and a SHA-256 of its files."""

    commit: str
    tree: str
    digest: str


@dataclass(frozen=True, slots=True)
class Staged:
    pin: Pin
    diff: str  # from the applied config to the pinned tree, bounded
    files: Files

    @property
    def agent_toml(self) -> str:
        return self.files["agent.toml"][1].decode()  # check_agent_toml made sure it decodes


def files_digest(files: Mapping[str, tuple[str, bytes]]) -> str:
    """SHA-256 over every (path, mode, content), in path order, unambiguously framed."""
    digest = hashlib.sha256()
    for path in sorted(files):
        mode, content = files[path]
        for part in (path.encode(), mode.encode(), content):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def resolve_commit(git_dir: Path, trusted: Path, name: str, sha: str) -> str:
    """The full sha of commit ``sha`` (hex, maybe short) in ``name``'s proposed repo."""
    with ObjectStore(git_dir, limits=LIMITS, trusted=trusted) as store:
        return _commit(store, name, sha)[0]


def _commit(store: ObjectStore, name: str, sha: str) -> tuple[str, Commit]:
    where = f"in {name}'s proposed config repo"
    try:
        full = store.resolve(sha)
        return full, store.commit(full)
    except MissingObject:
        raise UnknownCommit(f"no commit {sha} {where}") from None
    except AmbiguousObject:
        raise UnknownCommit(f"{sha} is ambiguous {where}; give more digits") from None
    except WrongKind:
        kind = store.read(full).kind
        raise UnknownCommit(f"{sha} is a {kind} {where}, not a commit") from None


def read_proposal(git_dir: Path, trusted: Path, name: str, sha: str) -> Proposal:
    """Commit ``sha`` (hex, maybe short) of ``name``'s proposed repo, checked to be applicable.

    Synchronous (run it in a thread). A commit that cannot be applied is
    :class:`BadConfig`; one that is not there, :class:`UnknownCommit`; a repo
    that is broken or hostile, :class:`~hyperhive.core.object_store.BadRepo` —
    none of them quoting the repo.
    """
    with ObjectStore(git_dir, limits=LIMITS, trusted=trusted) as store:
        full, commit = _commit(store, name, sha)
        short = full[:12]
        try:
            listed = walk(store, commit.tree, max_entries=MAX_ENTRIES, max_depth=MAX_DEPTH)
        except RepoLimit as exc:
            raise BadConfig(f"commit {short}: {exc.message}") from None
        entries = []
        contents: dict[str, bytes] = {}
        for entry in listed:
            if entry.mode == "40000":
                continue  # a directory: its files are listed on their own
            try:
                data = store.read_kind(entry.sha, "blob") if entry.mode in REGULAR_MODES else b""
            except RepoLimit:
                raise BadConfig(
                    f"commit {short}: {entry.path!r} is larger than {MAX_FILE} bytes"
                    f" ({MAX_FILE // 1024} KiB), the limit"
                ) from None
            contents[entry.path] = data
            size = len(data) if entry.mode in REGULAR_MODES else None
            kind = GIT_MODES.get(entry.mode, "unknown")
            entries.append(TreeEntry(entry.mode, kind, entry.sha, size, entry.path))
    files = {e.path: (e.mode, contents[e.path]) for e in check_tree(short, entries)}
    check_agent_toml(short, files["agent.toml"][1])
    return Proposal(full, commit.tree, files)
