"""What the operator is shown of an agent's branch, computed by git in the core's mirror.

By the time this runs every object of the branch has been copied into the
mirror and checked (:mod:`hyperhive.core.workspace_export`); git runs there
with the core's hardened :class:`~hyperhive.core.git.Git` (no hooks, no
config but the mirror's own, no external diff or textconv, deadlines, output
caps). Commits are those on the branch and not on the base commit; the diff
is from where the branch left the base (``base...tip``). A diff past
:data:`MAX_DIFF` is cut, with a note.

The parsers are plain functions over git's output; what they return is
data the agent wrote (subjects, names, paths), shown by callers that escape it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from hyperhive.core.git import Git

MAX_DIFF: Final = 1 << 20
MAX_STAT: Final = 256 << 10
MAX_LISTED: Final = 200  # commits listed; ``ahead`` still counts them all
EMPTY_TREE: Final = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
FIELDS: Final = "%H%x1f%an%x1f%ae%x1f%aI%x1f%s"
DIFF_FLAGS: Final = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-renames")


@dataclass(frozen=True, slots=True)
class CommitLine:
    sha: str
    author: str
    email: str
    date: str
    subject: str


@dataclass(frozen=True, slots=True)
class Stat:
    files: int
    insertions: int
    deletions: int


def parse_log(out: bytes) -> list[CommitLine]:
    """``git log -z --format=FIELDS`` output, one record per commit."""
    lines = []
    for record in out.decode("utf-8", "replace").split("\0"):
        if not record.strip():
            continue
        fields = record.strip("\n").split("\x1f", 4)
        if len(fields) != 5:
            continue  # a subject git could not print whole: leave it out rather than guess
        lines.append(CommitLine(*fields))
    return lines


def parse_numstat(out: bytes) -> Stat:
    """``git diff --numstat -z --no-renames``: ``added<TAB>deleted<TAB>path`` NUL-ended."""
    files = insertions = deletions = 0
    for record in out.split(b"\0"):
        parts = record.split(b"\t", 2)
        if len(parts) != 3:
            continue
        files += 1
        # A binary file has "-" for both counts.
        insertions += int(parts[0]) if parts[0].isdigit() else 0
        deletions += int(parts[1]) if parts[1].isdigit() else 0
    return Stat(files, insertions, deletions)


async def branch_view(git: Git, mirror: Path, base: str, tip: str) -> dict[str, Any]:
    """Commits ahead of ``base``, the diffstat and the diff of ``tip``, all from ``mirror``."""
    span = f"{base}..{tip}"
    counted = await git.run("rev-list", "--count", span, "--", git_dir=mirror)
    log = await git.run(
        "log", "-z", "--no-mailmap", f"--format={FIELDS}", f"-n{MAX_LISTED}", span, "--",
        git_dir=mirror,
    )  # fmt: skip
    since = await _merge_base(git, mirror, base, tip)
    numstat = await git.run(
        "diff", *DIFF_FLAGS, "--numstat", "-z", since, tip, "--",
        git_dir=mirror, max_stdout=MAX_STAT, truncate=True,
    )  # fmt: skip
    stat_text = await git.run(
        "diff", *DIFF_FLAGS, "--stat=120", since, tip, "--",
        git_dir=mirror, max_stdout=MAX_STAT, truncate=True,
    )  # fmt: skip
    diff = await git.run(
        "diff", *DIFF_FLAGS, since, tip, "--", git_dir=mirror, max_stdout=MAX_DIFF, truncate=True
    )
    text = diff.stdout.decode("utf-8", "replace")
    if diff.truncated:
        text += f"\n[diff cut at {MAX_DIFF >> 10} KiB: hive work --fetch brings all of it]\n"
    return {
        "tip": tip,
        "ahead": int(counted.stdout.decode().strip() or 0),
        "commits": [asdict(c) for c in parse_log(log.stdout)],
        "stat": asdict(parse_numstat(numstat.stdout)),
        "diffstat": stat_text.stdout.decode("utf-8", "replace"),
        "diff": text,
        "diff_truncated": diff.truncated,
    }


async def _merge_base(git: Git, mirror: Path, base: str, tip: str) -> str:
    """Where ``tip`` left ``base``; the empty tree for a history of its own."""
    found = await git.run("merge-base", base, tip, git_dir=mirror, check=False)
    sha = found.stdout.decode().strip()
    return sha if found.returncode == 0 and sha else EMPTY_TREE
