"""A verifying reader for an untrusted git object store; git never runs on it.

The manager agent can write anything into its proposed config repo: another
object's content under an object's name, symlinks to host files, FIFOs,
zlib bombs, deltas that copy out of bounds, alternates that point at the
host. So this reader:

- opens every directory and file relative to a directory it already holds,
  with ``O_NOFOLLOW`` (no symlink is followed anywhere on a path), and reads
  only regular files, sized by ``fstat`` first;
- refuses a repository that tells git to look elsewhere or rewrite history;
- re-hashes every object it returns, loose or packed, after resolving deltas;
- bounds all of it: inflated size per object, file sizes, packs, directory
  entries, delta depth, and a budget of bytes read plus bytes inflated.

Packs are read by core/pack_reader.py, under the same rules; the limits are
core/repo_limits.py's.

Synchronous and not thread-safe: open one store per operation (the budget is
the store's) and close it, e.g. ``with ObjectStore(git_dir) as store:``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import TracebackType
from typing import Final, NamedTuple

from hyperhive.core import git_format as fmt
from hyperhive.core.git_format import (
    AmbiguousObject,
    BadRepo,
    Commit,
    CorruptObject,
    GitObject,
    Kind,
    MissingObject,
    RepoLimit,
    TreeEntry,
    WrongKind,
    parse_commit,
    parse_tree,
)
from hyperhive.core.nofollow import (
    entries,
    lexists_at,
    open_at,
    open_root,
    parent_of,
    read_all,
)
from hyperhive.core.pack_reader import Packs
from hyperhive.core.repo_limits import Limits

__all__ = [
    "AmbiguousObject",
    "BadRepo",
    "Commit",
    "CorruptObject",
    "GitObject",
    "Limits",
    "MissingObject",
    "ObjectStore",
    "RepoLimit",
    "TreeEntry",
    "WalkEntry",
    "WrongKind",
    "parse_commit",
    "parse_tree",
    "walk",
]

PREFIX_RE: Final = re.compile(r"[0-9a-f]{4,40}")
LOOSE_RE: Final = re.compile(r"[0-9a-f]{38}")
# Each of these makes git read objects from elsewhere or see another history.
REFUSED: Final = (
    ("objects", "info", "alternates"),
    ("objects", "info", "http-alternates"),
    ("info", "grafts"),
    ("shallow",),
    ("commondir",),
)


class WalkEntry(NamedTuple):
    path: str
    mode: str
    sha: str


class ObjectStore:
    """The objects of the ``.git`` directory ``git_dir``, checked as they are read."""

    def __init__(
        self, git_dir: Path | str, *, limits: Limits | None = None, trusted: Path | None = None
    ) -> None:
        """``trusted``: a directory above ``git_dir`` that the repo's owner cannot
        replace; every component below it is opened without following symlinks."""
        self.limits = limits or Limits()
        self._budget = fmt.Budget(self.limits.budget)
        self._fds: list[int] = []
        try:
            self._git = self._keep(open_root(git_dir, trusted))
            objects = open_at(self._git, "objects", "objects", directory=True)
            if objects is None:
                raise BadRepo("the repository has no objects directory")
            self._objects = self._keep(objects)
            self._packs = Packs(
                objects, self.limits, self._budget, keep=self._keep, read_loose=self._read_loose
            )
            _check_layout(self._git, self.limits, self._budget)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def resolve(self, prefix: str) -> str:
        """The full name of the one object whose name starts with ``prefix``."""
        if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
            raise BadRepo("an object name prefix is 4 to 40 lowercase hex digits")
        found = set(self._loose_matching(prefix))
        for pack in self._packs.packs():
            if len(found) > 1:
                break
            found.update(pack.index.matching(prefix, 2))
        if not found:
            raise MissingObject(f"no object {prefix}")
        if len(found) > 1:
            raise AmbiguousObject(f"{prefix} names more than one object; give more digits")
        return found.pop()

    def read(self, sha: str) -> GitObject:
        """Object ``sha``, re-hashed: its content is exactly what its name promises."""
        fmt.check_sha(sha)
        obj = self._read_loose(sha)
        where = f"objects/{sha[:2]}/{sha[2:]}"
        if obj is None:
            found = self._packs.find(sha)
            if found is None:
                raise MissingObject(f"no object {sha}")
            obj = self._packs.unpack(found, sha)
            where = self._packs.packs()[found[0]].rel
        if fmt.object_sha(obj.kind, obj.data) != sha:
            raise CorruptObject(
                f"object {sha} is corrupt: its content does not hash to its name ({where})"
            )
        return obj

    def read_kind(self, sha: str, kind: Kind) -> bytes:
        obj = self.read(sha)
        if obj.kind != kind:
            raise WrongKind(f"object {sha} is a {obj.kind}, not a {kind}")
        return obj.data

    def commit(self, sha: str) -> Commit:
        data = self.read_kind(sha, "commit")
        with fmt.placed(f"commit {sha}"):
            return parse_commit(data)

    def tree(self, sha: str) -> list[TreeEntry]:
        data = self.read_kind(sha, "tree")
        with fmt.placed(f"tree {sha}"):
            return parse_tree(data)

    # -- loose objects -----------------------------------------------------------

    def _loose_matching(self, prefix: str) -> list[str]:
        fan, rest = prefix[:2], prefix[2:]
        directory = open_at(self._objects, fan, f"objects/{fan}", directory=True)
        if directory is None:
            return []
        try:
            if len(prefix) == 40:
                return [prefix] if lexists_at(directory, rest, f"objects/{fan}/{rest}") else []
            names = entries(directory, f"objects/{fan}", self.limits.max_dir_entries, self._budget)
        finally:
            os.close(directory)
        return [fan + name for name in names if LOOSE_RE.fullmatch(name) and name.startswith(rest)]

    def _read_loose(self, sha: str) -> GitObject | None:
        fan, rest = sha[:2], sha[2:]
        rel = f"objects/{fan}/{rest}"
        directory = open_at(self._objects, fan, f"objects/{fan}", directory=True)
        if directory is None:
            return None
        try:
            fd = open_at(directory, rest, rel)
        finally:
            os.close(directory)
        if fd is None:
            return None
        try:
            raw = read_all(fd, self.limits.max_loose_file, rel, self._budget)
        finally:
            os.close(fd)
        with fmt.placed(f"object {sha}", rel):
            data, after = fmt.inflate([raw], self.limits.max_object + fmt.MAX_HEADER)
            self._budget.spend(len(data))
            if after:
                raise CorruptObject("it has bytes after its zlib data")
            obj = fmt.parse_loose(data)
            if len(obj.data) > self.limits.max_object:
                raise RepoLimit(f"it is larger than {self.limits.max_object} bytes")
        return obj

    # -- packs -------------------------------------------------------------------

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd


def walk(store: ObjectStore, tree_sha: str, *, max_entries: int, max_depth: int) -> list[WalkEntry]:
    """Every entry under tree ``tree_sha`` (subtrees too, each before its contents).

    Paths are ``/``-joined strict UTF-8 names; more than ``max_entries``
    entries in all, or subtrees nested more than ``max_depth`` deep, are refused.
    """
    out: list[WalkEntry] = []
    stack = [(iter(store.tree(tree_sha)), "", tree_sha)]
    while stack:
        entries, prefix, parent = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        with fmt.placed(f"tree {parent}"):
            path = prefix + entry.name_str
        out.append(WalkEntry(path, entry.mode, entry.sha))
        if len(out) > max_entries:
            raise RepoLimit(f"tree {tree_sha} has more than {max_entries} entries")
        if entry.is_tree:
            if len(stack) >= max_depth:
                raise RepoLimit(f"tree {tree_sha} nests deeper than {max_depth} levels")
            stack.append((iter(store.tree(entry.sha)), path + "/", entry.sha))
    return out


def _check_layout(git: int, limits: Limits, budget: fmt.Budget) -> None:
    for parts in REFUSED:
        if _path_exists(git, parts):
            raise BadRepo(f"{'/'.join(parts)} exists: git would look beyond this repository")
    refs = open_at(git, "refs", "refs", directory=True)
    if refs is not None:
        try:
            replace = open_at(refs, "replace", "refs/replace", directory=True)
        finally:
            os.close(refs)
        if replace is not None:
            try:
                if entries(replace, "refs/replace", limits.max_dir_entries, budget):
                    raise BadRepo("refs/replace holds replacement refs, which rewrite history")
            finally:
                os.close(replace)
    packed = open_at(git, "packed-refs", "packed-refs")
    if packed is not None:
        try:
            data = read_all(packed, limits.max_packed_refs, "packed-refs", budget)
        finally:
            os.close(packed)
        if any(line.partition(b" ")[2].startswith(b"refs/replace/") for line in data.split(b"\n")):
            raise BadRepo("packed-refs holds replacement refs, which rewrite history")


def _path_exists(git: int, parts: tuple[str, ...]) -> bool:
    """Whether ``parts`` exists (lstat), through real directories only."""
    with parent_of(git, parts) as parent:
        return parent is not None and lexists_at(parent, parts[-1], "/".join(parts))
