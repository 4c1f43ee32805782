"""Opening what a hostile owner controls: never through a symlink, only real files.

Every directory and file is opened relative to a directory already held,
lstat-checked first (so a FIFO or a device is never even opened) and
fstat-checked after (for whatever was swapped in between), with
``O_NOFOLLOW | O_NONBLOCK``; files are read whole only up to a size fstat
vouched for. Errors are :class:`~hyperhive.core.git_format.BadRepo` naming
the path relative to the repo and the errno, never a host path or content.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from hyperhive.core import git_format as fmt
from hyperhive.core.git_format import BadRepo, RepoLimit

FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_ENTRY_COST: Final = 64  # what listing one directory entry is charged to the budget


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "error")


def open_root(git_dir: Path | str, trusted: Path | None) -> int:
    """The ``.git`` directory itself: a symlink or a ``gitdir:`` file would lead elsewhere."""
    if trusted is not None:
        return open_below(trusted, Path(git_dir).relative_to(trusted))
    try:
        check_type(os.lstat(git_dir).st_mode, "the git directory", directory=True)
        return os.open(os.fspath(git_dir), FLAGS | os.O_DIRECTORY)
    except FileNotFoundError:
        raise BadRepo("the repository has no git directory") from None
    except OSError as exc:
        raise BadRepo(f"the git directory cannot be opened ({errno_name(exc)})") from None


def open_below(trusted: Path, rel: Path) -> int:
    """``trusted / rel``, each component of ``rel`` a real directory (never a symlink)."""
    try:
        fd = os.open(trusted, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise BadRepo(f"the repository cannot be opened ({errno_name(exc)})") from None
    walked = ""
    for part in rel.parts:
        walked = f"{walked}/{part}" if walked else part
        try:
            child = open_at(fd, part, walked, directory=True)
        finally:
            os.close(fd)
        if child is None:
            raise BadRepo(f"{walked} does not exist")
        fd = child
    return fd


def check_type(mode: int, rel: str, directory: bool) -> None:
    if stat.S_ISLNK(mode):
        raise BadRepo(f"{rel} is a symlink")
    if directory and not stat.S_ISDIR(mode):
        raise BadRepo(f"{rel} is not a directory")
    if not directory and not stat.S_ISREG(mode):
        raise BadRepo(f"{rel} is not a regular file")


def open_at(parent: int, name: str, rel: str, *, directory: bool = False) -> int | None:
    """``name`` in directory ``parent``, checked to be of the right type; None if absent.

    lstat first, so a FIFO or a device is never even opened; then the opened
    file is checked again, for whatever was swapped in between.
    """
    try:
        check_type(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode, rel, directory)
        fd = os.open(name, FLAGS | (os.O_DIRECTORY if directory else 0), dir_fd=parent)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadRepo(f"{rel} cannot be opened ({errno_name(exc)})") from None
    try:
        check_type(os.fstat(fd).st_mode, rel, directory)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lexists_at(parent: int, name: str, rel: str) -> bool:
    try:
        os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise BadRepo(f"{rel} cannot be examined ({errno_name(exc)})") from None
    return True


def entries(directory: int, rel: str, limit: int, budget: fmt.Budget) -> list[str]:
    names: list[str] = []
    try:
        with os.scandir(directory) as listing:
            for entry in listing:
                if len(names) >= limit:
                    raise RepoLimit(f"{rel} holds more than {limit} entries")
                budget.spend(DIR_ENTRY_COST)
                names.append(entry.name)
    except OSError as exc:
        raise BadRepo(f"{rel} cannot be listed ({errno_name(exc)})") from None
    return names


def read_all(fd: int, limit: int, rel: str, budget: fmt.Budget) -> bytes:
    """A whole regular file of at most ``limit`` bytes, as big as fstat said."""
    size = os.fstat(fd).st_size
    if size > limit:
        raise RepoLimit(f"{rel} is larger than {limit} bytes")
    budget.spend(size)
    chunks, got = [], 0
    try:
        while got <= size and (chunk := os.read(fd, size + 1 - got)):
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise BadRepo(f"{rel} cannot be read ({errno_name(exc)})") from None
    if got != size:
        raise BadRepo(f"{rel} changed while it was read")
    return b"".join(chunks)


@contextlib.contextmanager
def parent_of(root: int, parts: Sequence[str]) -> Iterator[int | None]:
    """The directory holding ``parts[-1]`` below ``root``, every step a real
    directory; None when one is missing. Only the steps it opened are closed."""
    opened: list[int] = []
    try:
        current = root
        for depth, part in enumerate(parts[:-1], start=1):
            fd = open_at(current, part, "/".join(parts[:depth]), directory=True)
            if fd is None:
                yield None
                return
            opened.append(fd)
            current = fd
        yield current
    finally:
        for fd in opened:
            os.close(fd)
