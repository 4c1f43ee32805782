"""What may be applied from a proposed config commit, decided without I/O.

The manager owns the proposed repo, so its trees are untrusted input: only a
few small regular files with plain names, one of them a valid ``agent.toml``.
Symlinks, submodules and ``.gitattributes`` are refused because each would
let the applied directory differ from the bytes the operator approved (or
point outside it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from hyperhive.core.agent_config import BadConfig, parse_agent_toml
from hyperhive.errors import BadRequest

MAX_FILES: Final = 64
MAX_FILE: Final = 256 * 1024
MAX_PATH: Final = 255
AGENT_TOML: Final = "agent.toml"
REGULAR_MODES: Final = frozenset({"100644", "100755"})
PART_RE: Final = re.compile(r"[A-Za-z0-9._+@-]+")
SHA_RE: Final = re.compile(r"[0-9a-f]{4,64}")
# Files git itself would read from the tree when checking it out.
REFUSED_NAMES: Final = frozenset({".gitattributes", ".gitmodules"})


@dataclass(frozen=True, slots=True)
class TreeEntry:
    mode: str
    kind: str
    sha: str
    size: int | None
    path: str


def normalise_sha(sha: object) -> str:
    """A commit named by hex digits only: never a ref, an option or a revision expression."""
    if not isinstance(sha, str) or not SHA_RE.fullmatch(sha.lower()):
        raise BadRequest(f"a commit sha must be 4 to 64 hex digits (got {sha!r})")
    return sha.lower()


def check_path(path: str) -> str:
    """A relative path of plain names, without '.', '..' or anything git-special."""
    parts = path.split("/")
    if len(path) > MAX_PATH or not all(PART_RE.fullmatch(p) for p in parts):
        raise BadConfig(
            f"{path!r}: file names may use only letters, digits and . _ + @ -"
            f" (at most {MAX_PATH} characters in all)"
        )
    for part in parts:
        if part in (".", "..") or part.lower() == ".git" or part.lower() in REFUSED_NAMES:
            raise BadConfig(f"{path!r}: {part!r} is not allowed in a config tree")
    return path


def parse_ls_tree(raw: bytes) -> list[TreeEntry]:
    """Parse ``git ls-tree -r -z -l`` output."""
    entries = []
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, sha, size = meta.decode().split()
        entries.append(
            TreeEntry(
                mode,
                kind,
                sha,
                None if size == "-" else int(size),
                path.decode(errors="surrogateescape"),
            )
        )
    return entries


def check_tree(short: str, entries: Iterable[TreeEntry]) -> list[TreeEntry]:
    """The entries of commit ``short`` if they may be applied, else :class:`BadConfig`."""
    files = []
    for entry in entries:
        where = f"commit {short}: {entry.path!r}"
        if entry.mode == "120000":
            raise BadConfig(f"{where} is a symlink; only regular files can be applied")
        if entry.kind == "commit":
            raise BadConfig(f"{where} is a submodule; only regular files can be applied")
        if entry.kind != "blob" or entry.mode not in REGULAR_MODES or entry.size is None:
            raise BadConfig(f"{where} is not a regular file (mode {entry.mode})")
        try:
            check_path(entry.path)
        except BadConfig as exc:
            raise BadConfig(f"commit {short}: {exc.message}") from None
        if entry.size > MAX_FILE:
            raise BadConfig(
                f"{where} is {entry.size} bytes; the limit is {MAX_FILE} ({MAX_FILE // 1024} KiB)"
            )
        files.append(entry)
    if len(files) > MAX_FILES:
        raise BadConfig(f"commit {short} has {len(files)} files; the limit is {MAX_FILES}")
    if not any(e.path == AGENT_TOML for e in files):
        raise BadConfig(f"commit {short} has no {AGENT_TOML} at its top level")
    return files


def check_agent_toml(short: str, content: bytes) -> None:
    try:
        text = content.decode()
    except UnicodeDecodeError:
        raise BadConfig(f"commit {short}: {AGENT_TOML} is not UTF-8 text") from None
    try:
        parse_agent_toml(text)
    except BadConfig as exc:
        raise BadConfig(f"commit {short}: {exc.message}") from None


def parse_cat_file_batch(raw: bytes) -> dict[str, bytes]:
    """Parse ``git cat-file --batch`` output into ``{sha: content}``."""
    contents: dict[str, bytes] = {}
    at = 0
    while at < len(raw):
        end = raw.index(b"\n", at)
        sha, _kind, size = raw[at:end].decode().split()
        start = end + 1
        contents[sha] = raw[start : start + int(size)]
        at = start + int(size) + 1  # each object is followed by a newline
    return contents


def fast_import_stream(
    ref: str, parent: str, message: str, files: Mapping[str, tuple[str, bytes]]
) -> bytes:
    """A ``git fast-import`` stream committing exactly ``files`` (path → mode, content) on ``ref``.

    ``deleteall`` first, so the new tree is the given files and nothing that
    was applied before survives by accident.
    """
    encoded = message.encode()
    out = [
        f"commit {ref}\n".encode(),
        b"committer hive-c0re <hive-c0re@localhost> now\n",
        f"data {len(encoded)}\n".encode() + encoded + b"\n",
        f"from {parent}\n".encode(),
        b"deleteall\n",
    ]
    for path, (mode, content) in sorted(files.items()):
        out.append(f"M {mode} inline {check_path(path)}\n".encode())
        out.append(f"data {len(content)}\n".encode() + content + b"\n")
    out.append(b"\ndone\n")
    return b"".join(out)
