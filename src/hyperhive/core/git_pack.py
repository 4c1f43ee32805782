"""Git's pack formats: pack entry headers, the pack header and the ``.idx`` index,
parsed strictly and without I/O (core/object_store.py does the reading).

Like core/git_format.py, every parser here accepts only what git itself writes and
raises :class:`~hyperhive.core.git_format.BadRepo` on anything else.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from dataclasses import dataclass
from typing import Final

from hyperhive.core.git_format import MAX_VARINT, RAW_SHA, CorruptObject, Kind

PACK_KINDS: Final[dict[int, Kind]] = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
OFS_DELTA: Final = 6
REF_DELTA: Final = 7
MAX_OFS: Final = 9
IDX_MAGIC: Final = b"\377tOc"
FANOUT: Final = 256 * 4
TRAILER: Final = 2 * RAW_SHA
PACK_HEADER: Final = 12


def parse_entry_header(head: bytes) -> tuple[int, int, int]:
    """A pack entry's ``(type, size, header length)`` from its first bytes."""
    if not head:
        raise CorruptObject("its pack entry is truncated")
    byte = head[0]
    kind, size, shift, at = (byte >> 4) & 7, byte & 0x0F, 4, 1
    while byte & 0x80:
        if at >= min(len(head), MAX_VARINT):
            raise CorruptObject("its pack entry header is truncated or too long")
        byte = head[at]
        size |= (byte & 0x7F) << shift
        shift += 7
        at += 1
    return kind, size, at


def parse_ofs(head: bytes, at: int) -> tuple[int, int]:
    """An OFS_DELTA's distance back to its base: big-endian groups, each but the last +1."""
    if at >= len(head):
        raise CorruptObject("its delta base offset is truncated")
    start, byte = at, head[at]
    value, at = byte & 0x7F, at + 1
    while byte & 0x80:
        if at >= len(head) or at - start >= MAX_OFS:
            raise CorruptObject("its delta base offset is truncated or too long")
        byte = head[at]
        value = ((value + 1) << 7) | (byte & 0x7F)
        at += 1
    return value, at


def parse_pack_header(head: bytes) -> int:
    """The object count of a pack (versions 2 and 3)."""
    if len(head) < PACK_HEADER or head[:4] != b"PACK":
        raise CorruptObject("it does not start like a pack")
    version, count = struct.unpack(">II", head[4:PACK_HEADER])
    if version not in (2, 3):
        raise CorruptObject("its pack version is not 2 or 3")
    return int(count)


@dataclass(frozen=True, slots=True)
class PackIndex:
    """A checked pack ``.idx`` (version 1 or 2), held in memory.

    Offsets are only checked against the pack when used (by the store, which
    knows the pack's size); names are known to be sorted, unique and in their
    fan-out bucket, so a binary search finds every object the index lists.
    """

    data: bytes
    version: int
    count: int
    fanout: tuple[int, ...]

    @property
    def pack_checksum(self) -> bytes:
        return self.data[-TRAILER:-RAW_SHA]

    def name(self, i: int) -> bytes:
        start = 8 + FANOUT + RAW_SHA * i if self.version == 2 else FANOUT + 24 * i + 4
        return self.data[start : start + RAW_SHA]

    def offset(self, i: int) -> int:
        if self.version == 1:
            return int.from_bytes(self.data[FANOUT + 24 * i : FANOUT + 24 * i + 4], "big")
        small = 8 + FANOUT + 24 * self.count  # past the names and the CRCs
        (value,) = struct.unpack_from(">I", self.data, small + 4 * i)
        if not value & 0x80000000:
            return int(value)
        large = small + 4 * self.count + 8 * (value & 0x7FFFFFFF)
        if large + 8 > len(self.data) - TRAILER:
            raise CorruptObject("its index names a large offset it does not hold")
        return int(struct.unpack_from(">Q", self.data, large)[0])

    def find(self, raw_sha: bytes) -> int | None:
        """The position of object ``raw_sha`` in this index, if listed."""
        at = self._lower_bound(raw_sha)
        return at if at < self.count and self.name(at) == raw_sha else None

    def matching(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` names (hex) starting with ``prefix`` (4 to 40 hex digits)."""
        at = self._lower_bound(bytes.fromhex(prefix.ljust(40, "0")))
        found: list[str] = []
        while at < self.count and len(found) < limit:
            name = self.name(at).hex()
            if not name.startswith(prefix):
                break
            found.append(name)
            at += 1
        return found

    def _lower_bound(self, raw_sha: bytes) -> int:
        first = raw_sha[0]
        lo, hi = (self.fanout[first - 1] if first else 0), self.fanout[first]
        while lo < hi:
            mid = (lo + hi) // 2
            if self.name(mid) < raw_sha:
                lo = mid + 1
            else:
                hi = mid
        return lo


def parse_idx(data: bytes) -> PackIndex:
    """Check a whole ``.idx`` file: checksum, layout, sizes, sort order, fan-out."""
    if len(data) < FANOUT + TRAILER:
        raise CorruptObject("it is too short for a pack index")
    if hashlib.sha1(data[:-RAW_SHA], usedforsecurity=False).digest() != data[-RAW_SHA:]:
        raise CorruptObject("its checksum does not match")
    version, table = 1, 0
    if data[:4] == IDX_MAGIC:
        if data[4:8] != b"\0\0\0\2":
            raise CorruptObject("its index version is not 1 or 2")
        version, table = 2, 8
    fanout = struct.unpack_from(">256I", data, table)
    if any(a > b for a, b in itertools.pairwise(fanout)):
        raise CorruptObject("its fan-out table is not sorted")
    count = fanout[255]
    if version == 1:
        large = 0
        extra = len(data) - (FANOUT + 24 * count + TRAILER)
    else:
        extra = len(data) - (8 + FANOUT + 28 * count + TRAILER)
        large = extra // 8
    if extra < 0 or extra % 8 or large > count or (version == 1 and extra):
        raise CorruptObject("its size does not match its object count")
    index = PackIndex(data, version, count, fanout)
    _check_names(index)
    if version == 2:
        small = 8 + FANOUT + 24 * count
        wide = sum(v >> 31 for (v,) in struct.iter_unpack(">I", data[small : small + 4 * count]))
        if wide != large:
            raise CorruptObject("its large-offset table does not match its offsets")
    return index


def _check_names(index: PackIndex) -> None:
    previous = b""
    for at in range(index.count):
        name = index.name(at)
        if at and name <= previous:
            raise CorruptObject("its object names are not sorted and unique")
        previous = name
    for first, end in enumerate(index.fanout):
        if (end and index.name(end - 1)[0] > first) or (
            end < index.count and index.name(end)[0] <= first
        ):
            raise CorruptObject("its fan-out table does not match its names")
