"""Git's object formats (loose objects, commits, trees), parsed strictly and without I/O;
deltas are core/git_delta.py's, packs and their indexes core/git_pack.py's.

Everything here reads bytes that a possibly hostile agent wrote, so each
parser accepts only the canonical form git itself writes and raises
:class:`BadRepo` on anything else. Messages carry our own limits and names
the caller gave, never a value read from the bytes: whatever a message says
may travel back to the agent that wrote the repository.
"""

from __future__ import annotations

import hashlib
import re
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
