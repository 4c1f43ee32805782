"""Giving an agent's bind directories to the unprivileged uid it runs as.

The core (root) creates the agent's state, credentials and socket directories;
an agent running as its own uid must own them. A directory already owned is
left alone but for its top level (where the core may have put a socket or a
file since); one that is not (a new agent, or a hive from before agents ran
unprivileged) is given over whole. Symlinks are never followed, and a regular
file with other hard links is skipped: such a link could only have been made to
a file the agent does not own, and chowning it would hand that file over.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

# A hostile agent may fill its state with files; the walk that migrates an
# old layout is bounded, and stops with a warning rather than stall a start.
MAX_ENTRIES: Final = 200_000


def claim(path: Path, uid: int, *, mode: int = 0o700) -> None:
    """Make ``path`` (created if missing) ``uid``'s, with what it holds."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    top = os.lstat(path)
    if not stat.S_ISDIR(top.st_mode):
        raise NotADirectoryError(f"{path} is not a directory")
    whole = top.st_uid != uid
    _give(path, top, uid)
    os.chmod(path, mode)
    if whole:
        _give_tree(path, uid)
    else:
        _give_entries(path, uid)


def _give(path: Path | str, info: os.stat_result, uid: int) -> None:
    if info.st_uid == uid and info.st_gid == uid:
        return
    if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
        log.warning("not taking over %s: it has other hard links", path)
        return
    os.chown(path, uid, uid, follow_symlinks=False)


def _give_entries(path: Path, uid: int) -> None:
    with os.scandir(path) as entries:
        for count, entry in enumerate(entries):
            if count >= MAX_ENTRIES:
                log.warning("%s has over %d entries; the rest keep their owner", path, MAX_ENTRIES)
                return
            _give(entry.path, entry.stat(follow_symlinks=False), uid)


def _give_tree(root: Path, uid: int) -> None:
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):  # never follows symlinked dirs
        for name in (*dirnames, *filenames):
            seen += 1
            if seen > MAX_ENTRIES:
                log.warning("%s has over %d entries; the rest keep their owner", root, MAX_ENTRIES)
                return
            full = os.path.join(dirpath, name)
            _give(full, os.lstat(full), uid)
