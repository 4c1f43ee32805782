"""Reading one branch of a repository someone else writes, without git.

An agent's clone is the agent's: its ref files may be symlinks, FIFOs,
symbolic refs, huge, or half-written. A branch is read the way git stores
it, a loose file ``refs/heads/<branch>`` or else a line of ``packed-refs``,
every component opened below a directory already held and never through a
symlink (:mod:`hyperhive.core.nofollow`). Only a plain object name is
accepted; a symbolic ref, an odd line or a strange file is refused as
:class:`~hyperhive.core.git_format.BadRepo`, whose words never quote the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from hyperhive.core import git_format as fmt
from hyperhive.core.git_format import BadRepo
from hyperhive.core.nofollow import open_at, open_root, parent_of, read_all

MAX_LOOSE_REF: Final = 4096
MAX_PACKED_REFS: Final = 16 << 20
PACKED_HEADER: Final = b"# pack-refs with:"


def parse_loose_ref(data: bytes, ref: str) -> str:
    """The object a loose ref file names: 40 hex digits and a newline, nothing else."""
    line = data[:-1] if data.endswith(b"\n") else data
    if line.startswith(b"ref:"):
        raise BadRepo(f"{ref} is a symbolic ref; a branch must name a commit")
    if not fmt.HEX_BYTES_RE.fullmatch(line):
        raise BadRepo(f"{ref} does not hold an object name")
    return line.decode("ascii")


def parse_packed_refs(data: bytes, ref: str) -> str | None:
    """The object ``packed-refs`` gives ``ref``, or None; a line git would not write is refused."""
    wanted = ref.encode()
    found: str | None = None
    last_was_ref = False
    for number, line in enumerate(data.split(b"\n")):
        if not line:
            last_was_ref = False
            continue
        if number == 0 and line.startswith(PACKED_HEADER):
            continue
        if line.startswith(b"^"):
            # The peeled value of the tag on the line before: only after a ref.
            if not last_was_ref or not fmt.HEX_BYTES_RE.fullmatch(line[1:]):
                raise BadRepo("packed-refs holds a line git does not write")
            last_was_ref = False
            continue
        sha, space, name = line.partition(b" ")
        if not space or not fmt.HEX_BYTES_RE.fullmatch(sha) or not name.startswith(b"refs/"):
            raise BadRepo("packed-refs holds a line git does not write")
        if name == wanted:
            if found is not None:
                raise BadRepo(f"packed-refs names {ref} twice")
            found = sha.decode("ascii")
        last_was_ref = True
    return found


def read_ref(git: int, ref: str, budget: fmt.Budget | None = None) -> str | None:
    """The object ``ref`` (``refs/heads/...``) names in the ``.git`` directory ``git``; None if
    there is no such ref. A loose ref wins over ``packed-refs``, as in git."""
    parts = ref.split("/")
    if len(parts) < 3 or parts[0] != "refs" or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a ref name: {ref!r}")
    spend = budget or fmt.Budget(MAX_LOOSE_REF + MAX_PACKED_REFS)
    loose = _read_loose(git, parts, spend)
    if loose is not None:
        return parse_loose_ref(loose, ref)
    packed = open_at(git, "packed-refs", "packed-refs")
    if packed is None:
        return None
    try:
        data = read_all(packed, MAX_PACKED_REFS, "packed-refs", spend)
    finally:
        os.close(packed)
    return parse_packed_refs(data, ref)


def read_ref_at(git_dir: Path, ref: str, trusted: Path | None = None) -> str | None:
    """:func:`read_ref` on the ``.git`` directory at ``git_dir`` (see
    :func:`~hyperhive.core.nofollow.open_root` for ``trusted``)."""
    fd = open_root(git_dir, trusted)
    try:
        return read_ref(fd, ref)
    finally:
        os.close(fd)


def _read_loose(git: int, parts: list[str], budget: fmt.Budget) -> bytes | None:
    name = "/".join(parts)
    with parent_of(git, parts) as parent:
        fd = open_at(parent, parts[-1], name) if parent is not None else None
        if fd is None:
            return None
        try:
            return read_all(fd, MAX_LOOSE_REF, name, budget)
        finally:
            os.close(fd)
