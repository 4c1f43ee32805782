"""A page's listening unix socket (the harness's ``web.sock``): 0600 from birth, a stale
one replaced, and unlinked at stop only if it is still the one we made."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

BACKLOG: Final = 128


@dataclass(frozen=True, slots=True)
class UnixListener:
    sock: socket.socket
    path: Path
    inode: int

    def close(self) -> None:
        """Close the socket and unlink its path, unless something else took its place."""
        self.sock.close()
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self.inode:
                os.unlink(self.path)


def bind_unix(path: Path) -> UnixListener:
    """A listening unix socket at ``path``; ``OSError`` when it cannot be had."""
    with contextlib.suppress(FileNotFoundError):
        # A socket left by a harness that died, or whatever else sits there: the
        # directory is this agent's own, so nothing in it is anyone else's to keep.
        if stat.S_ISDIR(os.lstat(path).st_mode):
            raise OSError(errno.EISDIR, f"{path} is a directory")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    # The mode comes from the umask at bind(); a chmod afterwards would leave a window.
    old = os.umask(0o177)
    try:
        sock.bind(os.fspath(path))
        sock.listen(BACKLOG)
        inode = os.lstat(path).st_ino
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old)
    return UnixListener(sock, path, inode)
