"""Git's object, delta and pack-index formats, parsed strictly and without I/O.

Everything here reads bytes that a possibly hostile agent wrote, so each
parser accepts only the canonical form git itself writes and raises
:class:`BadRepo` on anything else. Messages carry our own limits and names
the caller gave, never a value read from the bytes: whatever a message says
may travel back to the agent that wrote the repository.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Literal

from hyperhive.errors import ClientError

Kind = Literal["commit", "tree", "blob", "tag"]
KINDS: Final[dict[bytes, Kind]] = {
    b"commit": "commit",
    b"tree": "tree",
    b"blob": "blob",
    b"tag": "tag",
}
PACK_KINDS: Final[dict[int, Kind]] = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
OFS_DELTA: Final = 6
REF_DELTA: Final = 7
DIR_MODE: Final = "40000"
TREE_MODES: Final = frozenset({b"100644", b"100755", b"120000", b"40000", b"160000"})
RAW_SHA: Final = 20
HEX_RE: Final = re.compile(r"[0-9a-f]{40}")
HEX_BYTES_RE: Final = re.compile(rb"[0-9a-f]{40}")
# "commit 18446744073709551615\0" is 28 bytes; nothing git writes is longer.
MAX_HEADER: Final = 32
SIZE_RE: Final = re.compile(rb"0|[1-9][0-9]{0,18}")
# Seven bits a byte: ten bytes already hold more than any size we accept.
MAX_VARINT: Final = 10
MAX_OFS: Final = 9
IDX_MAGIC: Final = b"\377tOc"
FANOUT: Final = 256 * 4
TRAILER: Final = 2 * RAW_SHA
PACK_HEADER: Final = 12


class BadRepo(ClientError):
    """The untrusted repository is malformed, points elsewhere, or is over a limit."""

    code = "bad_repo"


class MissingObject(BadRepo):
    """No object has the name (or prefix) asked for."""


class AmbiguousObject(BadRepo):
    """More than one object starts with the prefix asked for."""


class CorruptObject(BadRepo):
    """An object's bytes are not what its name or its format promise."""


class RepoLimit(BadRepo):
    """Reading the repository would take more memory, time or files than allowed."""


class WrongKind(BadRepo):
    """The object exists but is not the kind asked for (a blob where a tree was named)."""


class Budget:
    """Bytes a reader may still read or inflate; past it, everything is refused."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def spend(self, amount: int) -> None:
        self.left -= amount
        if self.left < 0:
            raise RepoLimit(f"reading this repository needs more than {self.total} bytes")


@contextmanager
def placed(subject: str, rel: str | None = None) -> Iterator[None]:
    """Say which object or file a format error is about (a parser cannot know)."""
    where = f" ({rel})" if rel else ""
    try:
        yield
    except CorruptObject as exc:
        raise CorruptObject(f"{subject} is corrupt{where}: {exc.message}") from None
    except RepoLimit as exc:
        raise RepoLimit(f"{subject} is refused{where}: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class GitObject:
    kind: Kind
    data: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    tree: str
    parents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TreeEntry:
    mode: str
    name: bytes
    sha: str

    @property
    def is_tree(self) -> bool:
        return self.mode == DIR_MODE

    @property
    def name_str(self) -> str:
        """The name as text; a name that is not strict UTF-8 is refused."""
        try:
            return self.name.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptObject("a tree entry's name is not UTF-8") from None


def object_sha(kind: Kind, data: bytes) -> str:
    """The name git gives an object: SHA-1 of ``"<kind> <size>\\0"`` and the data."""
    digest = hashlib.sha1(f"{kind} {len(data)}\0".encode(), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


def check_sha(sha: object) -> str:
    if not isinstance(sha, str) or not HEX_RE.fullmatch(sha):
        raise BadRepo("an object name is 40 lowercase hex digits")
    return sha


def inflate(chunks: Iterable[bytes], limit: int) -> tuple[bytes, bytes]:
    """Inflate one zlib stream fed from ``chunks``: ``(data, bytes after the stream)``.

    Never produces more than ``limit + 1`` bytes, however far the stream
    would inflate: that one extra byte is how a bomb is told from a fit.
    """
    stream = zlib.decompressobj()
    out = bytearray()
    for chunk in chunks:
        pending = chunk
        while pending:
            try:
                out += stream.decompress(pending, limit + 1 - len(out))
            except zlib.error:
                raise CorruptObject("its zlib data is invalid") from None
            if len(out) > limit:
                raise RepoLimit(f"it inflates to more than {limit} bytes")
            if stream.eof:
                return bytes(out), stream.unused_data
            pending = stream.unconsumed_tail
    raise CorruptObject("its zlib data ends early")


def parse_loose(raw: bytes) -> GitObject:
    """An inflated loose object: ``"<kind> <size>\\0"`` then exactly ``size`` bytes."""
    nul = raw.find(b"\0", 0, MAX_HEADER)
    if nul < 0:
        raise CorruptObject("it has no object header")
    kind_name, _, size = raw[:nul].partition(b" ")
    kind = KINDS.get(kind_name)
    if kind is None or not SIZE_RE.fullmatch(size):
        raise CorruptObject("its object header is not valid")
    if int(size) != len(raw) - nul - 1:
        raise CorruptObject("its size does not match its header")
    return GitObject(kind, raw[nul + 1 :])


def parse_commit(data: bytes) -> Commit:
    """The tree and parents of a commit, from git's canonical header layout.

    ``tree`` first, then any ``parent`` lines, then ``author`` and
    ``committer``; a second ``tree`` or a late ``parent`` is refused because
    readers disagree on which one counts.
    """
    end = data.find(b"\n\n")
    header = data[: end + 1] if end >= 0 else data
    if not header.endswith(b"\n"):
        raise CorruptObject("its commit header is not terminated")
    if b"\0" in header:
        raise CorruptObject("its commit header holds a NUL byte")
    lines = header[:-1].split(b"\n")
    if not lines[0].startswith(b"tree "):
        raise CorruptObject("a commit must start with its tree")
    tree = _hex_field(lines[0], b"tree ")
    at = 1
    parents = []
    while at < len(lines) and lines[at].startswith(b"parent "):
        parents.append(_hex_field(lines[at], b"parent "))
        at += 1
    rest = lines[at:]
    if len(rest) < 2 or not rest[0].startswith(b"author "):
        raise CorruptObject("a commit needs an author line after its parents")
    if not rest[1].startswith(b"committer "):
        raise CorruptObject("a commit needs a committer line after its author")
    if any(line.startswith((b"tree ", b"parent ")) for line in rest):
        raise CorruptObject("a commit names its tree or parents out of place")
    return Commit(tree, tuple(parents))


def _hex_field(line: bytes, label: bytes) -> str:
    value = line[len(label) :]
    if not HEX_BYTES_RE.fullmatch(value):
        raise CorruptObject(f"a commit's {label.decode().strip()} is not 40 lowercase hex digits")
    return value.decode("ascii")


def parse_tree(data: bytes) -> list[TreeEntry]:
    """The entries of a tree, refusing anything git would not write.

    Canonical modes only; names non-empty, without ``/`` or NUL, not ``.`` or
    ``..``; no name twice; entries in git's order (bytes, a subtree compared
    as if its name ended in ``/``). Two entries with one name would let two
    readers of the same tree see different files.
    """
    entries: list[TreeEntry] = []
    seen: set[bytes] = set()
    previous = b""
    at = 0
    while at < len(data):
        space = data.find(b" ", at, at + 7)
        nul = data.find(b"\0", space + 1) if space >= 0 else -1
        if nul < 0 or nul + 1 + RAW_SHA > len(data):
            raise CorruptObject("a tree entry is truncated")
        mode, name = data[at:space], data[space + 1 : nul]
        if mode not in TREE_MODES:
            raise CorruptObject("a tree entry has a mode git does not write")
        if not name or b"/" in name or name in (b".", b".."):
            raise CorruptObject("a tree entry has an empty or unsafe name")
        key = name + b"/" if mode == b"40000" else name
        if name in seen:
            raise CorruptObject("a tree names one entry twice")
        if key <= previous and entries:
            raise CorruptObject("a tree's entries are not in git's order")
        seen.add(name)
        previous = key
        sha = data[nul + 1 : nul + 1 + RAW_SHA].hex()
        entries.append(TreeEntry(mode.decode("ascii"), name, sha))
        at = nul + 1 + RAW_SHA
    return entries


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """A delta header size: seven bits a byte, least significant first."""
    value = shift = 0
    for count in range(MAX_VARINT):
        if at + count >= len(data):
            break
        byte = data[at + count]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at + count + 1
    raise CorruptObject("its delta header is truncated or too long")


def delta_sizes(delta: bytes) -> tuple[int, int, int]:
    """``(base size, result size, where the instructions start)`` of a delta."""
    base_size, at = _varint(delta, 0)
    result_size, at = _varint(delta, at)
    return base_size, result_size, at


def apply_delta(base: bytes, delta: bytes, *, max_result: int) -> bytes:
    """Rebuild an object from its base and a git delta, checking every instruction.

    Copies must lie inside the base, inserts inside the delta, and the result
    must be exactly the size the delta declares (at most ``max_result``).
    """
    base_size, result_size, at = delta_sizes(delta)
    if base_size != len(base):
        raise CorruptObject("its delta is for a base of another size")
    if result_size > max_result:
        raise RepoLimit(f"its delta result is larger than {max_result} bytes")
    source = memoryview(base)
    out = bytearray()
    while at < len(delta):
        op = delta[at]
        at += 1
        if op & 0x80:
            offset, size, at = _copy_args(delta, at, op)
            if offset + size > len(base):
                raise CorruptObject("its delta copies from outside its base")
            chunk = source[offset : offset + size]
        elif op:
            if at + op > len(delta):
                raise CorruptObject("its delta inserts past its own end")
            chunk = memoryview(delta)[at : at + op]
            at += op
        else:
            raise CorruptObject("its delta holds the reserved instruction 0")
        if len(out) + len(chunk) > result_size:
            raise CorruptObject("its delta writes past its declared size")
        out += chunk
    if len(out) != result_size:
        raise CorruptObject("its delta result is shorter than declared")
    return bytes(out)


def _copy_args(delta: bytes, at: int, op: int) -> tuple[int, int, int]:
    """Offset and size of a copy instruction: only the bytes its flag bits name follow."""
    values = [0, 0]
    for bit in range(7):
        if op & (1 << bit):
            if at >= len(delta):
                raise CorruptObject("its delta copy instruction is truncated")
            which, shift = (0, bit) if bit < 4 else (1, bit - 4)
            values[which] |= delta[at] << (8 * shift)
            at += 1
    return values[0], values[1] or 0x10000, at


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
