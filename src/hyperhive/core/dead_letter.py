"""Messages that fail for their own sake: attempts, then dead-letter (DESIGN §3).

A harness that could not handle a message because of the message itself (its turn
errored) finishes the lease with ``fail``; the core counts an attempt. Below the limit
the message goes back to its queue; at the limit it is *dead*: ``dead_at`` and
``dead_reason`` are set, it is never handed out again (not even after a restart), and
the operator decides: ``retry`` puts it back with its attempts reset, ``drop`` marks it
delivered for good. A dead letter stays undelivered until dropped, so it still counts
against its sender's undelivered quota: an agent sending poison cannot pile up dead
letters without bound.

A lease that ends otherwise (the harness went away, the lease ran out) is the core's
ordinary redelivery and counts nothing.

:func:`verdict` and :func:`check_reason` are the pure decisions; :class:`DeadLetters`
is their sqlite side, used by the broker, which owns the queues.
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal

from hyperhive.config import DEFAULT_MAX_ATTEMPTS
from hyperhive.core import previews
from hyperhive.core.db import Database
from hyperhive.errors import BadRequest, ClientError, UnknownMessage

MAX_REASON: Final = 2000  # characters; a harness cuts longer error texts itself
__all__ = ["DEFAULT_MAX_ATTEMPTS", "DeadLetters", "NotDeadLetter", "check_reason", "verdict"]
Verdict = Literal["again", "dead"]


class NotDeadLetter(ClientError):
    code = "not_dead"


def verdict(attempts: int, max_attempts: int) -> Verdict:
    """What a failure means after ``attempts`` failed tries in all (this one included)."""
    return "dead" if attempts >= max_attempts else "again"


def check_reason(reason: object) -> str:
    """The reason a harness gives for a failure: one non-empty text, bounded."""
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest("argument 'reason' must be a non-empty string")
    if len(reason) > MAX_REASON:
        raise BadRequest(f"'reason' has {len(reason)} characters; the limit is {MAX_REASON}")
    try:
        reason.encode()
    except UnicodeEncodeError:
        raise BadRequest("argument 'reason' is not valid Unicode text") from None
    return reason.strip()


class DeadLetters:
    """The dead-letter columns of ``messages`` (migration 5): reads and single-row writes."""

    def __init__(self, conn: Database, max_attempts: int) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._conn = conn
        self.max_attempts = max_attempts

    def record_failure(self, mid: int, reason: str, now: float) -> tuple[int, Verdict]:
        """Count one failed try of ``mid``; bury it if that was the last allowed.

        One UPDATE, so a crash leaves either the old count or the new count and state.
        """
        row = self._conn.execute("SELECT attempts FROM messages WHERE id = ?", (mid,)).fetchone()
        if row is None:
            raise UnknownMessage(f"no message with id {mid}")
        attempts = int(row[0]) + 1
        decided = verdict(attempts, self.max_attempts)
        dead_at, dead_reason = (now, reason) if decided == "dead" else (None, None)
        self._conn.execute(
            "UPDATE messages SET attempts = ?, dead_at = ?, dead_reason = ? WHERE id = ?",
            (attempts, dead_at, dead_reason, mid),
        )
        return attempts, decided

    def recipient_of(self, mid: int) -> str:
        """The recipient of the live dead letter ``mid``; an error for anything else."""
        row = self._conn.execute(
            "SELECT recipient, dead_at, delivered_at FROM messages WHERE id = ?", (mid,)
        ).fetchone()
        if row is None:
            raise UnknownMessage(f"no message with id {mid}")
        recipient, dead_at, delivered_at = row
        if dead_at is None or delivered_at is not None:
            raise NotDeadLetter(f"message #{mid} is not a dead letter")
        return str(recipient)

    def revive(self, mid: int) -> None:
        """Back to an ordinary undelivered message with a clean slate (the caller queues it)."""
        self._conn.execute(
            "UPDATE messages SET attempts = 0, dead_at = NULL, dead_reason = NULL WHERE id = ?",
            (mid,),
        )

    def note_dropped(self, mid: int, by: str) -> None:
        """Who dropped it, kept with its reason (the caller marks it delivered)."""
        self._conn.execute(
            "UPDATE messages SET dead_reason = dead_reason || ? WHERE id = ?",
            (f" (dropped by {by})", mid),
        )

    def listing(self, agent: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` live dead letters (to ``agent``), oldest first, as message
        wire dicts with ``attempts``, ``dead_at``, ``dead_reason`` and bodies cut to a
        preview, the whole list within a page's byte budget (core/previews.py)."""
        where = "dead_at IS NOT NULL AND delivered_at IS NULL"
        params: list[object] = []
        if agent is not None:
            where += " AND recipient = ?"
            params.append(agent)
        size = self._conn.dialect.octets_of("body")
        rows = self._conn.execute(
            "SELECT id, sender, recipient, substr(body, 1, ?), kind, payload, created_at,"
            f" attempts, dead_at, dead_reason, {size} FROM messages WHERE {where}"
            " ORDER BY id DESC LIMIT ?",
            (previews.PREVIEW_BYTES, *params, limit),
        )
        try:
            return previews.within(_wire(row) for row in rows)
        finally:
            rows.close()


def _wire(row: tuple[Any, ...]) -> dict[str, Any]:
    mid, sender, recipient, body, kind, payload, created, attempts, dead_at, reason, size = row
    wire = {
        "id": mid,
        "from": sender,
        "to": recipient,
        "body": body,
        "kind": kind,
        "payload": json.loads(payload) if payload else None,
        "created_at": created,
        "attempts": attempts,
        "dead_at": dead_at,
        "dead_reason": reason,
    }
    return previews.shortened(wire, body, size)
