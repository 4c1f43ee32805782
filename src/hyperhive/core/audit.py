"""The audit log: who did what, appended to a hash chain in the store (``audit_log``).

Every entry names an ``actor`` (an agent, ``operator``, ``core``, ``policy:<rule>``),
``via`` what it acted (``dashboard``, ``cli``, ``agent``, ``manager``, ``policy``,
``core``), the ``action`` and the agent it concerns; the chain itself is
:mod:`hyperhive.core.audit_chain`. An append is one INSERT; the small head file
``<state>/audit.head`` (0600, atomic rename, not synced) is rewritten at most every
:data:`HEAD_DELAY` seconds (at once after a quiet spell) and at close, since a rename
costs a millisecond or more and 200 agents stopping at once are 200 entries. So a crash
may leave the head behind by the entries of its last instant, never ahead; the next
open catches it up.

The head is what proves the log's end: at open, a head that names an entry the table no
longer has (or has with another hash) is believed over the table, so the next entry
leaves a gap that every later verify reports: the evidence of a removal is not erased by
writing on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from hyperhive.core.audit_chain import (
    GENESIS,
    AuditEntry,
    ChainWalker,
    Head,
    VerifyResult,
    seal,
)
from hyperhive.core.db import Database
from hyperhive.errors import DatabaseError

__all__ = ["AuditEntry", "AuditLog", "VerifyResult"]

log = logging.getLogger(__name__)
COLUMNS: Final = "id, at, actor, via, action, agent, detail, prev, hash"
MAX_ENTRIES: Final = 1000
VERIFY_BATCH: Final = 2000
MAX_HEAD: Final = 4096
HEAD_DELAY: Final = 0.05  # seconds an appended entry may wait for the head file


class AuditLog:
    def __init__(
        self, conn: Database, head_path: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self._conn = conn
        self._head_path = head_path
        self._clock = clock
        self._writing: asyncio.TimerHandle | None = None
        self._written_at = -HEAD_DELAY  # monotonic; the first entry writes at once
        self._head = self._resume()

    @property
    def head(self) -> Head:
        """The chain's end as this core knows it."""
        return self._head

    def _resume(self) -> Head:
        row = self._conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
        last = row.fetchone()
        count = self._conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        stored = Head(count, last[0], last[1]) if last else Head(0, 0, GENESIS)
        kept, missing = read_head(self._head_path)
        if kept is None:
            if count:
                # Written on from here: the loss is itself an entry of the chain.
                why = "missing" if missing else "unreadable"
                log.error("%s is %s; the audit log goes on from its end", self._head_path, why)
                self._head = stored
                self.append("core", "core", "audit_head_lost", None, {"entries": count})
                return self._head
            return stored
        found = self._conn.execute(
            "SELECT hash FROM audit_log WHERE id = ?", (kept.last_id,)
        ).fetchone()
        moved = kept.last_id and (found is None or found[0] != kept.last_hash)
        if kept.last_id > stored.last_id or moved:
            log.error(
                "the audit log does not end where %s says (#%d): entries were removed or "
                "rewritten; `hive audit verify` names the first",
                self._head_path,
                kept.last_id,
            )
            return kept
        if kept.last_id < stored.last_id:
            # Behind by the entries of a crash's last instant: caught up now, so that a
            # verify's rollback check compares against this end, not the lagging one.
            self._head = stored
            self._write_head()
        return stored

    def append(
        self, actor: str, via: str, action: str, agent: str | None, detail: dict[str, Any]
    ) -> AuditEntry | None:
        """Record one entry; None (and an error in the log) if the store refused it."""
        head = self._head
        at = self._clock()
        entry = seal(head.last_hash, head.last_id + 1, at, actor, via, action, agent, detail)
        try:
            self._conn.execute(
                f"INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.id, entry.at, entry.actor, entry.via, entry.action, entry.agent,
                 entry.detail, entry.prev, entry.hash),
            )  # fmt: skip
        except DatabaseError as exc:
            log.error("audit entry %s by %s not stored: %s", action, actor, exc)
            return None
        self._head = Head(head.count + 1, entry.id, entry.hash)
        self._head_moved()
        return entry

    def _head_moved(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to write later on: now
            self._write_head()
            return
        if self._writing is not None:
            return
        # The first entry after a quiet spell is written at once; the rest of a burst
        # waits for one write at its end.
        since = time.monotonic() - self._written_at
        if since >= HEAD_DELAY:
            self._write_head()
        else:
            self._writing = loop.call_later(HEAD_DELAY - since, self._write_head)

    def _write_head(self) -> None:
        self._writing = None
        self._written_at = time.monotonic()
        try:
            write_head(self._head_path, self._head)
        except OSError as exc:
            log.error("cannot write %s: %s", self._head_path, exc.strerror)

    def flush(self) -> None:
        """Write the head file now if an entry waits for it (at close)."""
        if self._writing is not None:
            self._writing.cancel()
            self._write_head()

    def entries(
        self, since: float | None = None, agent: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries at or after ``since`` (about ``agent``), oldest first."""
        rows = self._conn.execute(
            f"SELECT {COLUMNS} FROM audit_log WHERE (? IS NULL OR at >= ?) "
            "AND (? IS NULL OR agent = ?) ORDER BY id DESC LIMIT ?",
            (since, since, agent, agent, max(1, min(limit, MAX_ENTRIES))),
        )
        return [AuditEntry(*row) for row in reversed(rows.fetchall())]

    async def verify(self) -> VerifyResult:
        """Walk the whole chain (in batches, letting the loop run between them) against
        the head this core keeps, and check the head file says the same."""
        self.flush()  # the file may only lag for an instant, never at a verify
        head = self._head
        walker = ChainWalker(head)
        after = 0
        while True:
            rows = self._conn.execute(
                f"SELECT {COLUMNS} FROM audit_log WHERE id > ? ORDER BY id LIMIT ?",
                (after, VERIFY_BATCH),
            ).fetchall()
            if not rows or not all(walker.feed(AuditEntry(*row)) for row in rows):
                break
            after = rows[-1][0]
            await asyncio.sleep(0)
        result = walker.finish()
        if not result.ok:
            return result
        kept, _ = read_head(self._head_path)
        if head.count and kept is not None and kept.last_id < head.last_id:
            return VerifyResult(False, result.count, None, f"{self._head_path} was rolled back")
        return result


def read_head(path: Path) -> tuple[Head | None, bool]:
    """The head in ``path``, and whether it is missing (rather than unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, True
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            log.error("cannot read %s: %s", path, exc.strerror)
        return None, False
    try:
        data = os.read(fd, MAX_HEAD)
    finally:
        os.close(fd)
    return Head.from_text(data.decode(errors="replace")), False


def write_head(path: Path, head: Head) -> None:
    """Replace ``path`` with ``head`` atomically (a reader sees the old or the new), 0600."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, (head.to_text() + "\n").encode())
        finally:
            os.close(fd)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
