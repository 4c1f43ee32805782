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

Synchronous and not thread-safe: open one store per operation (the budget is
the store's) and close it, e.g. ``with ObjectStore(git_dir) as store:``.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
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
    errno_name,
    lexists_at,
    open_at,
    open_root,
    parent_of,
    read_all,
)

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
PACK_RE: Final = re.compile(r"pack-[0-9a-f]{40}\.idx")
CHUNK: Final = 64 * 1024
ENTRY_HEAD: Final = 32  # type+size (10 bytes at most) and a base (20 bytes at most)
# Each of these makes git read objects from elsewhere or see another history.
REFUSED: Final = (
    ("objects", "info", "alternates"),
    ("objects", "info", "http-alternates"),
    ("info", "grafts"),
    ("shallow",),
    ("commondir",),
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_object: int = 1 << 20  # inflated size of any object, delta base or result
    max_delta: int = 2 << 20  # inflated size of one delta
    max_loose_file: int = 2 << 20
    max_delta_depth: int = 64
    max_packs: int = 64
    max_idx_file: int = 4 << 20  # about 150,000 objects
    max_packed_refs: int = 1 << 20
    max_dir_entries: int = 65536
    budget: int = 64 << 20  # bytes read plus bytes inflated, for the store's life
    cache: int = 8 << 20  # resolved pack objects kept as delta bases


class WalkEntry(NamedTuple):
    path: str
    mode: str
    sha: str


@dataclass(frozen=True, slots=True)
class _Pack:
    rel: str  # "objects/pack/pack-<hex>.pack"
    fd: int
    size: int
    index: fmt.PackIndex


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
        self._packs: list[_Pack] | None = None
        self._cache: OrderedDict[tuple[int, int], GitObject] = OrderedDict()
        self._cached = 0
        try:
            self._git = self._keep(open_root(git_dir, trusted))
            objects = open_at(self._git, "objects", "objects", directory=True)
            if objects is None:
                raise BadRepo("the repository has no objects directory")
            self._objects = self._keep(objects)
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
        for pack in self._load_packs():
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
            found = self._find_packed(sha)
            if found is None:
                raise MissingObject(f"no object {sha}")
            obj = self._unpack(found, sha)
            where = self._load_packs()[found[0]].rel
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

    def _load_packs(self) -> list[_Pack]:
        if self._packs is not None:
            return self._packs
        packs: list[_Pack] = []
        directory = open_at(self._objects, "pack", "objects/pack", directory=True)
        if directory is not None:
            try:
                names = entries(
                    directory, "objects/pack", self.limits.max_dir_entries, self._budget
                )
                indexes = sorted(name for name in names if name.endswith(".idx"))
                if not all(PACK_RE.fullmatch(name) for name in indexes):
                    raise BadRepo("objects/pack holds an index not named pack-<40 hex>.idx")
                if len(indexes) > self.limits.max_packs:
                    raise RepoLimit(f"objects/pack holds more than {self.limits.max_packs} packs")
                packs = [self._open_pack(directory, name[: -len(".idx")]) for name in indexes]
            finally:
                os.close(directory)
        self._packs = packs
        return packs

    def _open_pack(self, directory: int, base: str) -> _Pack:
        rel = f"objects/pack/{base}"
        fd = open_at(directory, f"{base}.idx", f"{rel}.idx")
        if fd is None:
            raise BadRepo(f"{rel}.idx vanished while it was read")
        try:
            data = read_all(fd, self.limits.max_idx_file, f"{rel}.idx", self._budget)
        finally:
            os.close(fd)
        with fmt.placed(f"{rel}.idx"):
            index = fmt.parse_idx(data)
        fd = open_at(directory, f"{base}.pack", f"{rel}.pack")
        if fd is None:
            raise BadRepo(f"{rel}.idx has no {base}.pack")
        pack = _Pack(f"{rel}.pack", self._keep(fd), os.fstat(fd).st_size, index)
        if pack.size < fmt.PACK_HEADER + fmt.RAW_SHA:
            raise CorruptObject(f"{pack.rel} is corrupt: it is too short for a pack")
        with fmt.placed(pack.rel):
            count = fmt.parse_pack_header(self._pread(pack, fmt.PACK_HEADER, 0))
        if count != index.count or self._pread(pack, fmt.RAW_SHA, pack.size - fmt.RAW_SHA) != (
            index.pack_checksum
        ):
            raise CorruptObject(f"{pack.rel} is corrupt: it does not match its index")
        return pack

    def _find_packed(self, sha: str) -> tuple[int, int] | None:
        raw = bytes.fromhex(sha)
        for number, pack in enumerate(self._load_packs()):
            at = pack.index.find(raw)
            if at is not None:
                return number, pack.index.offset(at)
        return None

    def _unpack(self, where: tuple[int, int], sha: str) -> GitObject:
        """The object at ``where`` (pack number, offset), its delta chain applied."""
        packs = self._load_packs()
        deltas: list[tuple[tuple[int, int], bytes]] = []
        while (base := self._recall(where)) is None:
            pack = packs[where[0]]
            kind, size, start, ref = self._entry(pack, where[1], sha)
            if ref is None:
                data = self._inflate_at(pack, start, size, sha)
                base = GitObject(fmt.PACK_KINDS[kind], data)
                self._remember(where, base)
                break
            if len(deltas) >= self.limits.max_delta_depth:
                raise RepoLimit(
                    f"object {sha} has a delta chain longer than {self.limits.max_delta_depth}"
                )
            deltas.append((where, self._inflate_at(pack, start, size, sha)))
            if isinstance(ref, int):
                where = (where[0], ref)
                continue
            base = self._read_loose(ref)
            if base is not None:
                break
            found = self._find_packed(ref)
            if found is None:
                raise CorruptObject(f"object {sha} is corrupt: its delta base {ref} is missing")
            where = found
        for place, delta in reversed(deltas):
            with fmt.placed(f"object {sha}", packs[place[0]].rel):
                data = fmt.apply_delta(base.data, delta, max_result=self.limits.max_object)
            self._budget.spend(len(data))
            base = GitObject(base.kind, data)
            self._remember(place, base)
        return base

    def _entry(self, pack: _Pack, offset: int, sha: str) -> tuple[int, int, int, int | str | None]:
        """``(type, size, where its zlib data starts, base)`` of the entry at ``offset``.

        The base is an offset (OFS_DELTA), an object name (REF_DELTA) or None.
        """
        end = pack.size - fmt.RAW_SHA
        with fmt.placed(f"object {sha}", pack.rel):
            if not fmt.PACK_HEADER <= offset < end:
                raise CorruptObject("its index points outside the pack")
            head = self._pread(pack, min(ENTRY_HEAD, end - offset), offset)
            kind, size, at = fmt.parse_entry_header(head)
            limit = self.limits.max_object
            ref: int | str | None = None
            if kind == fmt.OFS_DELTA:
                distance, at = fmt.parse_ofs(head, at)
                ref, limit = offset - distance, self.limits.max_delta
                if not fmt.PACK_HEADER <= ref < offset:
                    raise CorruptObject("its delta base offset is outside the pack")
            elif kind == fmt.REF_DELTA:
                if len(head) < at + fmt.RAW_SHA:
                    raise CorruptObject("its delta base name is truncated")
                ref, limit = head[at : at + fmt.RAW_SHA].hex(), self.limits.max_delta
                at += fmt.RAW_SHA
            elif kind not in fmt.PACK_KINDS:
                raise CorruptObject("its pack entry type is not valid")
            if size > limit:
                raise RepoLimit(f"it is larger than {limit} bytes")
        return kind, size, offset + at, ref

    def _inflate_at(self, pack: _Pack, start: int, size: int, sha: str) -> bytes:
        end = pack.size - fmt.RAW_SHA

        def chunks() -> Iterator[bytes]:
            at, want = start, size + size // 64 + 64  # deflate rarely grows data more
            while at < end:
                chunk = self._pread(pack, min(want, end - at), at)
                at += len(chunk)
                want = CHUNK
                yield chunk

        with fmt.placed(f"object {sha}", pack.rel):
            data, _ = fmt.inflate(chunks(), size)
            self._budget.spend(len(data))
            if len(data) != size:
                raise CorruptObject("it inflates to another size than its entry says")
        return data

    def _pread(self, pack: _Pack, size: int, offset: int) -> bytes:
        self._budget.spend(size)
        try:
            data = os.pread(pack.fd, size, offset)
        except OSError as exc:
            raise BadRepo(f"{pack.rel} cannot be read ({errno_name(exc)})") from None
        if len(data) != size:
            raise CorruptObject(f"{pack.rel} is corrupt: it shrank while it was read")
        return data

    def _recall(self, where: tuple[int, int]) -> GitObject | None:
        obj = self._cache.get(where)
        if obj is not None:
            self._cache.move_to_end(where)
        return obj

    def _remember(self, where: tuple[int, int], obj: GitObject) -> None:
        old = self._cache.pop(where, None)
        self._cached -= len(old.data) if old else 0
        if len(obj.data) > self.limits.cache:
            return
        self._cache[where] = obj
        self._cached += len(obj.data)
        while self._cached > self.limits.cache:
            _, evicted = self._cache.popitem(last=False)
            self._cached -= len(evicted.data)

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
