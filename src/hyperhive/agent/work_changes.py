"""What a turn changed in the agent's workspace, for its page.

Before and after each turn the harness takes a snapshot of ``/work`` (every
file's size and mtime, ``.git`` left out) and publishes the difference as a
``files_changed`` event. Bounded: a snapshot looks at so many entries at most
and says when it stopped, and an event names so many paths at most.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

KIND: Final = "files_changed"
MAX_ENTRIES: Final = 20_000
MAX_SHOWN: Final = 50
SKIPPED: Final = frozenset({".git"})


@dataclass(frozen=True, slots=True)
class Snapshot:
    files: dict[str, tuple[int, int]]  # relative path -> (size, mtime_ns)
    complete: bool  # False: the walk stopped at MAX_ENTRIES


def mounts_below(root: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> frozenset[str]:
    """Mount points strictly inside ``root``: not the agent's files (a sandbox may
    bind things there), so the walk leaves them out."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return frozenset()
    base = os.path.realpath(root).rstrip("/") + "/"
    points = (line.split()[4] for line in lines if len(line.split()) > 4)
    return frozenset(p for p in points if p.startswith(base))


def snapshot(root: Path, limit: int = MAX_ENTRIES) -> Snapshot:
    """Every regular file under ``root`` (symlinks not followed, mounts inside it
    skipped), up to ``limit`` entries."""
    files: dict[str, tuple[int, int]] = {}
    seen = 0
    mounted = mounts_below(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIPPED and os.path.join(os.path.realpath(dirpath), d) not in mounted
        )
        for name in sorted(filenames):
            seen += 1
            if seen > limit:
                return Snapshot(files, complete=False)
            path = os.path.join(dirpath, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if os.path.isfile(path) and not os.path.islink(path):
                files[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns)
    return Snapshot(files, complete=True)


def changes(before: Snapshot, after: Snapshot) -> dict[str, Any] | None:
    """The ``files_changed`` event data, or None when nothing changed."""
    added = sorted(after.files.keys() - before.files.keys())
    removed = sorted(before.files.keys() - after.files.keys())
    modified = sorted(
        p for p in after.files.keys() & before.files.keys() if after.files[p] != before.files[p]
    )
    if not (added or removed or modified):
        return None
    return {
        "added": added[:MAX_SHOWN],
        "modified": modified[:MAX_SHOWN],
        "removed": removed[:MAX_SHOWN],
        "counts": {"added": len(added), "modified": len(modified), "removed": len(removed)},
        "complete": before.complete and after.complete,
    }
