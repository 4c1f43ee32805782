"""Small secrets kept in files of their own: the operator token, a harness's page key.

A secret file is a regular file of ours, mode 0600. Reading never follows a symlink (whoever
could plant one could point it at a file they read), refuses anything else, and tightens a
mode that lets others read. Creating one is atomic and never replaces a file that appeared
meanwhile, so two starts racing agree on one secret.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Final

from hyperhive.errors import ConfigError

MAX_SECRET_BYTES: Final = 4096
log = logging.getLogger(__name__)


def read_secret(path: Path) -> str | None:
    """The secret in ``path`` (blanks stripped), or None when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path} is a symlink: refusing a secret through it") from None
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} is not a regular file: refusing to read a secret from it")
        if info.st_uid != os.geteuid():
            raise ConfigError(f"{path} belongs to uid {info.st_uid}, not to us: refusing it")
        if info.st_mode & 0o077:
            os.fchmod(fd, 0o600)
            log.warning(
                "%s was readable by others (mode %03o); it is 0600 now. If anyone else may "
                "have read it, delete it and restart to get a new secret",
                path,
                stat.S_IMODE(info.st_mode),
            )
        data = os.read(fd, MAX_SECRET_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(f"{path} is over {MAX_SECRET_BYTES} bytes: not a secret file")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None


def create_secret(path: Path, value: str) -> bool:
    """Write ``value`` to a new ``path`` (0600); False if a file was already there."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A hard link, not a rename: it fails rather than replace a file that appeared.
    try:
        _through_temp(path, value, lambda temp: os.link(temp, path, follow_symlinks=False))
    except FileExistsError:
        return False
    return True


def replace_secret(path: Path, value: str) -> None:
    """Write ``value`` to ``path`` (0600) atomically: a reader sees the old file or the new.
    The rename replaces whatever is at ``path`` (a planted symlink too), never follows it."""
    _through_temp(path, value, lambda temp: os.replace(temp, path))


def _through_temp(path: Path, value: str, put: Callable[[Path], None]) -> None:
    """``value`` written and synced to a fresh temp file beside ``path``, then ``put`` in
    place; the temp file never outlives the call. FileExistsError from ``put`` passes."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    try:
        try:
            os.write(fd, (value + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        put(temp)
    except FileExistsError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync a directory; the file itself is synced
    finally:
        os.close(fd)
