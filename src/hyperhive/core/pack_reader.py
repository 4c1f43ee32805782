"""The packs of an untrusted object store: each opened once, on first use, and checked
against its index; objects unpacked with their delta chains applied, within limits.

Part of core/object_store.py's reader, which owns the descriptors (``keep``) and reads
loose objects (``read_loose``, for a REF_DELTA whose base is loose): the same rules hold
(no symlink followed, every read sized and spent from the store's budget).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from hyperhive.core import git_delta, git_pack
from hyperhive.core import git_format as fmt
from hyperhive.core.git_format import BadRepo, CorruptObject, GitObject, RepoLimit
from hyperhive.core.nofollow import entries, errno_name, open_at, read_all
from hyperhive.core.repo_limits import Limits

PACK_RE: Final = re.compile(r"pack-[0-9a-f]{40}\.idx")
CHUNK: Final = 64 * 1024
ENTRY_HEAD: Final = 32  # type+size (10 bytes at most) and a base (20 bytes at most)


@dataclass(frozen=True, slots=True)
class Pack:
    rel: str  # "objects/pack/pack-<hex>.pack"
    fd: int
    size: int
    index: git_pack.PackIndex


class Packs:
    """The packs under ``objects/pack`` of the directory ``objects`` (a held descriptor)."""

    def __init__(
        self,
        objects: int,
        limits: Limits,
        budget: fmt.Budget,
        *,
        keep: Callable[[int], int],
        read_loose: Callable[[str], GitObject | None],
    ) -> None:
        self._objects = objects
        self.limits = limits
        self._budget = budget
        self._keep = keep
        self._read_loose = read_loose
        self._packs: list[Pack] | None = None
        self._cache: OrderedDict[tuple[int, int], GitObject] = OrderedDict()
        self._cached = 0

    def packs(self) -> list[Pack]:
        """Every pack, opened and checked against its index on the first call."""
        if self._packs is not None:
            return self._packs
        packs: list[Pack] = []
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

    def _open_pack(self, directory: int, base: str) -> Pack:
        rel = f"objects/pack/{base}"
        fd = open_at(directory, f"{base}.idx", f"{rel}.idx")
        if fd is None:
            raise BadRepo(f"{rel}.idx vanished while it was read")
        try:
            data = read_all(fd, self.limits.max_idx_file, f"{rel}.idx", self._budget)
        finally:
            os.close(fd)
        with fmt.placed(f"{rel}.idx"):
            index = git_pack.parse_idx(data)
        fd = open_at(directory, f"{base}.pack", f"{rel}.pack")
        if fd is None:
            raise BadRepo(f"{rel}.idx has no {base}.pack")
        pack = Pack(f"{rel}.pack", self._keep(fd), os.fstat(fd).st_size, index)
        if pack.size < git_pack.PACK_HEADER + fmt.RAW_SHA:
            raise CorruptObject(f"{pack.rel} is corrupt: it is too short for a pack")
        with fmt.placed(pack.rel):
            count = git_pack.parse_pack_header(self._pread(pack, git_pack.PACK_HEADER, 0))
        if count != index.count or self._pread(pack, fmt.RAW_SHA, pack.size - fmt.RAW_SHA) != (
            index.pack_checksum
        ):
            raise CorruptObject(f"{pack.rel} is corrupt: it does not match its index")
        return pack

    def find(self, sha: str) -> tuple[int, int] | None:
        raw = bytes.fromhex(sha)
        for number, pack in enumerate(self.packs()):
            at = pack.index.find(raw)
            if at is not None:
                return number, pack.index.offset(at)
        return None

    def unpack(self, where: tuple[int, int], sha: str) -> GitObject:
        """The object at ``where`` (pack number, offset), its delta chain applied."""
        packs = self.packs()
        deltas: list[tuple[tuple[int, int], bytes]] = []
        while (base := self._recall(where)) is None:
            pack = packs[where[0]]
            kind, size, start, ref = self._entry(pack, where[1], sha)
            if ref is None:
                data = self._inflate_at(pack, start, size, sha)
                base = GitObject(git_pack.PACK_KINDS[kind], data)
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
            found = self.find(ref)
            if found is None:
                raise CorruptObject(f"object {sha} is corrupt: its delta base {ref} is missing")
            where = found
        for place, delta in reversed(deltas):
            with fmt.placed(f"object {sha}", packs[place[0]].rel):
                data = git_delta.apply_delta(base.data, delta, max_result=self.limits.max_object)
            self._budget.spend(len(data))
            base = GitObject(base.kind, data)
            self._remember(place, base)
        return base

    def _entry(self, pack: Pack, offset: int, sha: str) -> tuple[int, int, int, int | str | None]:
        """``(type, size, where its zlib data starts, base)`` of the entry at ``offset``.

        The base is an offset (OFS_DELTA), an object name (REF_DELTA) or None.
        """
        end = pack.size - fmt.RAW_SHA
        with fmt.placed(f"object {sha}", pack.rel):
            if not git_pack.PACK_HEADER <= offset < end:
                raise CorruptObject("its index points outside the pack")
            head = self._pread(pack, min(ENTRY_HEAD, end - offset), offset)
            kind, size, at = git_pack.parse_entry_header(head)
            limit = self.limits.max_object
            ref: int | str | None = None
            if kind == git_pack.OFS_DELTA:
                distance, at = git_pack.parse_ofs(head, at)
                ref, limit = offset - distance, self.limits.max_delta
                if not git_pack.PACK_HEADER <= ref < offset:
                    raise CorruptObject("its delta base offset is outside the pack")
            elif kind == git_pack.REF_DELTA:
                if len(head) < at + fmt.RAW_SHA:
                    raise CorruptObject("its delta base name is truncated")
                ref, limit = head[at : at + fmt.RAW_SHA].hex(), self.limits.max_delta
                at += fmt.RAW_SHA
            elif kind not in git_pack.PACK_KINDS:
                raise CorruptObject("its pack entry type is not valid")
            if size > limit:
                raise RepoLimit(f"it is larger than {limit} bytes")
        return kind, size, offset + at, ref

    def _inflate_at(self, pack: Pack, start: int, size: int, sha: str) -> bytes:
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

    def _pread(self, pack: Pack, size: int, offset: int) -> bytes:
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
