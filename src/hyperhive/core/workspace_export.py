"""Copying an agent's new commits out of its clone into the core's mirror, verified.

The agent's clone is hostile input (its config, hooks, alternates and
objects are the agent's to write), so git never runs in it. Its objects are
read by :class:`~hyperhive.core.object_store.ObjectStore`, each re-hashed;
only what the core's mirror lacks is taken: the commits reachable from the
branch tip that the mirror does not have, then the trees and blobs they name
that it does not have, level by level. They travel into the mirror as one
pack of whole objects that ``git unpack-objects --strict`` checks once more
(fsck, and every link present). Commits, objects and bytes are bounded, and
so is what the store may read; past a bound the export stops with a
:class:`~hyperhive.core.git_format.RepoLimit` that says which.

Which objects the mirror has is asked of git in the mirror (the core's own
repo) in batches: a few git calls per export, not one per object.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hyperhive.core.git import ConfigRepoError, Git
from hyperhive.core.git_format import (
    BadRepo,
    Commit,
    Kind,
    MissingObject,
    RepoLimit,
    parse_commit,
    placed,
)
from hyperhive.core.object_store import ObjectStore

PACK_TYPES: Final[dict[Kind, int]] = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
BLOB_MODES: Final = frozenset({"100644", "100755", "120000"})
GITLINK: Final = "160000"  # a submodule's commit, which lives in another repository
LOOKAHEAD: Final = 64  # commits read ahead of each question to the mirror


@dataclass(frozen=True, slots=True)
class Bounds:
    commits: int = 1000
    objects: int = 50_000
    bytes: int = 64 << 20  # inflated, all objects together


@dataclass(frozen=True, slots=True)
class Exported:
    commits: int
    objects: int
    bytes: int


class PackWriter:
    """A version 2 pack of whole (undeltified) objects, compressed as they are added."""

    def __init__(self) -> None:
        self._entries: list[bytes] = []
        self.raw_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, kind: Kind, data: bytes) -> None:
        size = len(data)
        head = bytearray()
        byte = (PACK_TYPES[kind] << 4) | (size & 0x0F)
        size >>= 4
        while size:
            head.append(byte | 0x80)
            byte, size = size & 0x7F, size >> 7
        head.append(byte)
        self._entries.append(bytes(head) + zlib.compress(data, 1))
        self.raw_bytes += len(data)

    def pack(self) -> bytes:
        body = b"PACK" + struct.pack(">II", 2, len(self._entries)) + b"".join(self._entries)
        return body + hashlib.sha1(body, usedforsecurity=False).digest()


class Mirror:
    """The core's bare mirror of a workspace: git may run here, and only here."""

    def __init__(self, git: Git, git_dir: Path) -> None:
        self.git = git
        self.git_dir = git_dir

    async def kinds(self, shas: list[str]) -> dict[str, str]:
        """The kind of each of ``shas`` the mirror has (those it lacks are left out)."""
        if not shas:
            return {}
        asked = "".join(f"{sha}\n" for sha in shas).encode()
        found = await self.git.run("cat-file", "--batch-check", git_dir=self.git_dir, stdin=asked)
        kinds: dict[str, str] = {}
        for line in found.stdout.decode("ascii", "replace").splitlines():
            fields = line.split()
            if len(fields) == 3:
                kinds[fields[0]] = fields[1]
        return kinds

    async def take(self, pack: bytes) -> None:
        try:
            await self.git.run("unpack-objects", "-q", "--strict", git_dir=self.git_dir, stdin=pack)
        except ConfigRepoError as exc:
            raise BadRepo(f"the branch holds objects git's checks refuse ({exc.message})") from None


async def export(
    store: ObjectStore, mirror: Mirror, tip: str, base: str, branch: str, bounds: Bounds
) -> Exported:
    """Put into ``mirror`` every object reachable from ``tip`` that it lacks (``base`` it has)."""
    commits = await _new_commits(store, mirror, tip, base, branch, bounds)
    pack = PackWriter()
    for _, data in commits.values():
        _add(pack, "commit", data, branch, bounds)
    wanted = list(dict.fromkeys((parsed.tree, "tree") for parsed, _ in commits.values()))
    seen: set[str] = set()
    while wanted:
        kinds = await mirror.kinds([sha for sha, _ in wanted])
        missing = []
        for sha, kind in wanted:
            if sha in kinds and kinds[sha] != kind:
                raise BadRepo(f"{branch} names a {kind} {sha[:12]} that is a {kinds[sha]}")
            if sha not in kinds:
                missing.append((sha, kind))
        children = await asyncio.to_thread(_read_level, store, missing, pack, seen, branch, bounds)
        wanted = [child for child in dict.fromkeys(children) if child[0] not in seen]
    if pack:
        await mirror.take(pack.pack())
    return Exported(len(commits), len(pack), pack.raw_bytes)


async def _new_commits(
    store: ObjectStore, mirror: Mirror, tip: str, base: str, branch: str, bounds: Bounds
) -> dict[str, tuple[Commit, bytes]]:
    """The commits (parsed, raw) reachable from ``tip`` without passing one the mirror has."""
    new: dict[str, tuple[Commit, bytes]] = {}
    known = {base}
    frontier = [tip]
    while frontier:
        batch = await asyncio.to_thread(_read_ahead, store, frontier, new, known, branch)
        kinds = await mirror.kinds(list(batch))
        for sha, kind in kinds.items():
            if kind != "commit":
                raise BadRepo(f"{branch} names a commit {sha[:12]} that is a {kind}")
            known.add(sha)
        following: list[str] = []
        stack = list(reversed(frontier))
        while stack:
            sha = stack.pop()
            if sha in new or sha in known:
                continue
            if sha not in batch:
                following.append(sha)
                continue
            parsed, _ = new[sha] = batch[sha]
            if len(new) > bounds.commits:
                raise RepoLimit(
                    f"{branch} has more than {bounds.commits} commits the core has not seen"
                )
            stack.extend(reversed(parsed.parents))
        frontier = list(dict.fromkeys(following))
    return new


def _read_ahead(
    store: ObjectStore,
    frontier: list[str],
    new: dict[str, tuple[Commit, bytes]],
    known: set[str],
    branch: str,
) -> dict[str, tuple[Commit, bytes]]:
    """Commits from ``frontier`` back, breadth first: all of it and up to LOOKAHEAD more."""
    batch: dict[str, tuple[Commit, bytes]] = {}
    queue = deque(frontier)
    limit = len(frontier) + LOOKAHEAD
    while queue and len(batch) < limit:
        sha = queue.popleft()
        if sha in batch or sha in new or sha in known:
            continue
        try:
            data = store.read_kind(sha, "commit")
        except MissingObject:
            raise BadRepo(
                f"{branch}: commit {sha[:12]} is missing from the clone (is it shallow?)"
            ) from None
        with placed(f"commit {sha}"):
            parsed = parse_commit(data)
        batch[sha] = (parsed, data)
        queue.extend(parsed.parents)
    return batch


def _read_level(
    store: ObjectStore,
    missing: list[tuple[str, str]],
    pack: PackWriter,
    seen: set[str],
    branch: str,
    bounds: Bounds,
) -> list[tuple[str, str]]:
    """Read ``missing`` into ``pack``; the entries of the trees among them."""
    children: list[tuple[str, str]] = []
    for sha, kind in missing:
        if sha in seen:
            continue
        seen.add(sha)
        try:
            data = store.read_kind(sha, "tree" if kind == "tree" else "blob")
        except MissingObject:
            raise BadRepo(f"{branch}: {kind} {sha[:12]} is missing from the clone") from None
        _add(pack, "tree" if kind == "tree" else "blob", data, branch, bounds)
        if kind == "tree":
            for entry in store.tree(sha):
                if entry.is_tree:
                    children.append((entry.sha, "tree"))
                elif entry.mode in BLOB_MODES:
                    children.append((entry.sha, "blob"))
                # a gitlink (GITLINK) names a commit of another repository: nothing to copy
    return children


def _add(pack: PackWriter, kind: Kind, data: bytes, branch: str, bounds: Bounds) -> None:
    pack.add(kind, data)
    if len(pack) > bounds.objects:
        raise RepoLimit(f"{branch} adds more than {bounds.objects} objects")
    if pack.raw_bytes > bounds.bytes:
        raise RepoLimit(f"{branch} adds more than {bounds.bytes >> 20} MiB of objects")
