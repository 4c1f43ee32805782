"""What an agent keeps in its ``/state`` (DESIGN §2), named once for both of its readers.

The harness writes these files; the core's dashboard reads them on the host, where they
are untrusted (the agent could have put a symlink or a FIFO there). So the readers here
never follow a symlink, read only regular files, and read a bounded amount.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

HISTORY_DB: Final = "history.db"  # every event of the agent (hyperhive.agent.history)
MODEL_FILE: Final = "hyperhive-model"  # the operator's /model choice
SESSION_FILE: Final = "session-id"  # the engine's session, resumed after a restart
MAX_MODEL_BYTES: Final = 256


def history_db(state_dir: Path) -> Path:
    return state_dir / HISTORY_DB


def model_file(state_dir: Path) -> Path:
    return state_dir / MODEL_FILE


def session_file(state_dir: Path) -> Path:
    return state_dir / SESSION_FILE


def read_model(path: Path) -> str | None:
    """The model named in ``path``; None if there is none (or it is not a regular file).

    Raises ``OSError`` when the file is there but cannot be read (a symlink among them).
    """
    try:
        # O_NONBLOCK: a FIFO put in its place must not hang the reader.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = fh.read(MAX_MODEL_BYTES).decode("utf-8", "replace").strip()
    return text or None


def saved_model(state_dir: Path) -> str | None:
    """The agent's persisted ``/model`` choice, read from the host; None if unreadable."""
    try:
        return read_model(model_file(state_dir))
    except OSError:
        return None
