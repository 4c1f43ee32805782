"""Where a secret could be seen from inside an agent's container, as the key-hygiene tests
look for it: every process of the container (its environ and argv, from /proc) and every
file under the given roots that the agent's uid could open (owner and mode as that uid
sees them, every directory on the way searchable)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from support.procs import parent, processes, sandboxes


def container_pids(marker: Path) -> list[int]:
    """The bwrap process whose argv names ``marker`` (an agent's own dir), and every
    process below it."""
    roots = {pid for pid, _ in sandboxes(marker)}
    children: dict[int, list[int]] = {}
    for pid, _ in processes():
        up = parent(pid)
        if up is not None:
            children.setdefault(up, []).append(pid)
    found: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(found)


def process_texts(pids: Iterable[int]) -> dict[int, bytes]:
    """Each live process's environ and cmdline, together (a process that ended is left out)."""
    texts: dict[int, bytes] = {}
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        texts[pid] = environ + b"\0" + cmdline
    return texts


def _may(info: os.stat_result, uid: int, want: int) -> bool:
    """Whether ``uid`` (whose only group is ``uid``) has ``want`` (4 r, 1 x) on it."""
    mode = info.st_mode
    if info.st_uid == uid:
        return bool(mode & (want << 6))
    if info.st_gid == uid:
        return bool(mode & (want << 3))
    return bool(mode & want)


def readable_files(roots: Iterable[Path], uid: int) -> Iterator[Path]:
    """Regular files under ``roots`` that ``uid`` could open for reading were it given
    each root itself (as its container is its own dirs): no symlink is followed, and a
    directory below a root that it cannot search hides what is in it from it."""
    for root in roots:
        yield from _walk(root, uid, True)


def _walk(directory: Path, uid: int, reachable: bool) -> Iterator[Path]:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone since the listing (the CLI renames its temp files into place)
        path = Path(entry.path)
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(path, uid, reachable and _may(info, uid, 1) and _may(info, uid, 4))
        elif stat.S_ISREG(info.st_mode) and reachable and _may(info, uid, 4):
            yield path


def holding(paths: Iterable[Path], secret: str) -> list[Path]:
    """Those of ``paths`` whose bytes contain ``secret``."""
    needle = secret.encode()
    found = []
    for path in paths:
        try:
            if needle in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found
