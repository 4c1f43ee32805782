"""What a unified diff (``git diff``) touches, file by file: pure parsing of its text.

The diff an ApplyCommit shows is bounded and may be cut; a diff that does not read as
complete git output (:attr:`DiffStat.complete` False) must not be trusted to name every
file it changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

HEADER: Final = "diff --git "
# What git writes between a file's header and its first hunk.
EXTENDED: Final = (
    "index ", "--- ", "+++ ", "old mode ", "new mode ", "new file mode ", "deleted file mode ",
    "similarity index ", "dissimilarity index ", "rename from ", "rename to ", "copy from ",
    "copy to ", "Binary files ",
)  # fmt: skip


@dataclass(slots=True)
class FileStat:
    path: str
    added: int = 0
    removed: int = 0


@dataclass(slots=True)
class DiffStat:
    files: list[FileStat] = field(default_factory=list)
    complete: bool = True

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(f.path for f in self.files)

    def to_wire(self) -> dict[str, Any]:
        return {
            "files": [{"path": f.path, "added": f.added, "removed": f.removed} for f in self.files],
            "added": self.added,
            "removed": self.removed,
        }


def diffstat(diff: str) -> DiffStat:
    """Lines added and removed per file. Inside a hunk every line starts with one of
    `` +-\\``, so a line that does not is the next file's header or a cut."""
    stat = DiffStat()
    current: FileStat | None = None
    in_hunk = False
    for line in diff.split("\n"):
        if not line:
            continue
        if line.startswith(HEADER):
            current = FileStat(header_path(line[len(HEADER) :]))
            stat.files.append(current)
            in_hunk = False
        elif current is None:
            stat.complete = False  # text before the first header: not git's diff
        elif line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line.startswith("+"):
            current.added += 1
        elif in_hunk and line.startswith("-"):
            current.removed += 1
        elif in_hunk and not line.startswith((" ", "\\")):
            stat.complete = False  # "[diff cut at …]" or worse
            in_hunk = False
        elif not in_hunk and not line.startswith(EXTENDED):
            stat.complete = False
    return stat


def header_path(rest: str) -> str:
    """The path of ``a/P b/P``; for anything else (a rename, a quoted name) the header
    as it is, which is not any plain path and so never mistaken for one."""
    size = (len(rest) - 5) // 2
    path = rest[2 : 2 + size]
    if size > 0 and rest == f"a/{path} b/{path}":
        return path
    return rest
