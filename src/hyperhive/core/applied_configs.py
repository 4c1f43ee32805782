"""Configs approved for another host's agent, kept in the shared store until it applies them.

The proposed config repos live on hm1nd's host; an agent's container and its applied repo
live on the agent's host. So on approval hm1nd's host reads the pinned tree from its
proposals (core/approval_runs.py) and records its files here, and the agent's host writes
them into its applied repo, where git must arrive at the very tree that was pinned
(:meth:`~hyperhive.core.config_repo.ConfigRepos.import_pinned`) before it is applied.

A row is never changed: whether it still waits is the approval's state (``approved``).
Files are JSON, contents base64 (a config may hold any bytes), the whole bounded by
:data:`MAX_ENCODED`.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hyperhive.core.db import Database
from hyperhive.core.proposal import Files, Pin
from hyperhive.errors import HiveError, TooLarge

# Encoded text per row. Agent configs are a few KiB; the proposal limits would allow 64
# files of 256 KiB, which no row of the shared store (read on every resync's apply) should
# carry: a tree over this is refused, and the approval fails, before it is recorded.
MAX_ENCODED: Final = 2 * 1024 * 1024

_COLUMNS: Final = "approval_id, agent, sha, tree, digest, files, created_at"


class BadRecordedConfig(HiveError):
    """A row whose files cannot be read back: the approval fails, nothing is applied."""

    code = "bad_recorded_config"


@dataclass(frozen=True, slots=True)
class RecordedConfig:
    approval_id: int
    agent: str
    pin: Pin
    files: Files
    created_at: float


def encode_files(files: Files) -> str:
    """``files`` as text for the store; over :data:`MAX_ENCODED` is :class:`TooLarge`."""
    wire = {
        path: [mode, base64.b64encode(data).decode("ascii")] for path, (mode, data) in files.items()
    }
    text = json.dumps(wire, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_ENCODED:
        raise TooLarge(
            f"the config is {len(text) // 1024} KiB encoded, over the {MAX_ENCODED // 1024} KiB"
            " another host's agent can be sent"
        )
    return text


def decode_files(text: str) -> Files:
    if len(text) > MAX_ENCODED:
        raise BadRecordedConfig(f"a recorded config is over {MAX_ENCODED // 1024} KiB")
    try:
        wire = json.loads(text)
        files: Files = {}
        for path, (mode, data) in wire.items():
            if not isinstance(path, str) or not isinstance(mode, str):
                raise BadRecordedConfig("a recorded config names a path or mode that is not text")
            files[path] = (mode, base64.b64decode(data, validate=True))
    except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
        raise BadRecordedConfig(f"a recorded config cannot be read: {exc}") from None
    return files


def _row(found: Any) -> RecordedConfig:
    approval_id, agent, sha, tree, digest, files, created = found
    pin = Pin(sha, tree, digest)
    return RecordedConfig(int(approval_id), agent, pin, decode_files(files), float(created))


class AppliedConfigs:
    def __init__(self, conn: Database, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._clock = clock

    def record(self, approval_id: int, agent: str, pin: Pin, files: Files) -> None:
        """Keep ``files`` for approval ``approval_id``; once only (a second pass is a no-op)."""
        row = (approval_id, agent, pin.commit, pin.tree, pin.digest, encode_files(files))
        self._conn.execute(
            f"INSERT INTO applied_configs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (approval_id) DO NOTHING",
            (*row, self._clock()),
        )

    def get(self, approval_id: int) -> RecordedConfig | None:
        found = self._conn.execute(
            f"SELECT {_COLUMNS} FROM applied_configs WHERE approval_id = ?", (approval_id,)
        ).fetchone()
        return None if found is None else _row(found)

    def waiting(self) -> list[tuple[int, str]]:
        """(approval, agent) of every recorded config whose approval is still only approved:
        not applied, not failed. Ids only, so a resync reads no files it will not apply."""
        rows = self._conn.execute(
            "SELECT c.approval_id, c.agent FROM applied_configs c"
            " JOIN approvals a ON a.id = c.approval_id WHERE a.state = 'approved'"
            " ORDER BY c.approval_id"
        ).fetchall()
        return [(int(i), str(agent)) for i, agent in rows]

    def unrecorded(self) -> list[int]:
        """Approved config changes nobody has read from the proposals yet (decided on a host
        that is not hm1nd's, or hm1nd's core died before it could)."""
        rows = self._conn.execute(
            "SELECT a.id FROM approvals a LEFT JOIN applied_configs c ON c.approval_id = a.id"
            " WHERE a.state = 'approved' AND a.kind = 'apply_commit' AND c.approval_id IS NULL"
            " ORDER BY a.id"
        ).fetchall()
        return [int(i) for (i,) in rows]
