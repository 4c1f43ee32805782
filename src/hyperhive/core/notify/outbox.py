"""The durable outbox (``notify_outbox``): one row per sink and notification, written
before anything is sent, so a restart or a receiver that is down loses none.

A row is ``pending`` until it is ``delivered``, ``dropped`` (after ``max_tries``, or its
sink was removed; ``last_error`` says why) or ``folded`` into a digest row. At most
:data:`MAX_PENDING` rows wait per sink: beyond that the waiting rows are folded into one
digest, so a receiver down for days costs one row, not thousands. Finished rows are kept
as history for :data:`KEEP_SECONDS`, and at most :data:`KEEP_ROWS` of them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal

from hyperhive.core.db import Database, returned_id
from hyperhive.core.notify.digest import Due, Folded, digest_of
from hyperhive.core.notify.events import Notification
from hyperhive.settings import NotifySettings

MAX_PENDING: Final = 200
KEEP_SECONDS: Final = 7 * 86400.0
KEEP_ROWS: Final = 5000
ERROR_MAX: Final = 500
Outcome = Literal["retry", "dropped"]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    sink: str
    kind: str
    payload: str
    created: float
    tries: int
    next_at: float
    state: str
    last_error: str | None
    done_at: float | None
    folded_into: int | None

    def notification(self) -> Notification:
        return Notification.from_wire(json.loads(self.payload))

    def to_wire(self) -> dict[str, Any]:
        """For the operator: what, where, how it went; the payload's title, not its data."""
        return {
            "id": self.id,
            "sink": self.sink,
            "kind": self.kind,
            "title": self.notification().title,
            "state": self.state,
            "tries": self.tries,
            "last_error": self.last_error,
            "created": self.created,
            "done_at": self.done_at,
            "folded_into": self.folded_into,
        }


def backoff(tries: int, settings: NotifySettings) -> float:
    """Seconds before the next try, after ``tries`` failed ones: doubling, capped."""
    return float(min(settings.backoff_max, settings.backoff_first * 2 ** max(tries - 1, 0)))


_COLUMNS = (
    "id, sink, kind, payload, created, tries, next_at, state, last_error, done_at, folded_into"
)


class Outbox:
    def __init__(self, conn: Database) -> None:
        self._conn = conn

    def enqueue(self, sink: str, note: Notification, now: float) -> int:
        payload = json.dumps(note.to_wire(), ensure_ascii=False)
        cur = self._conn.execute(
            "INSERT INTO notify_outbox (sink, kind, payload, created, next_at) VALUES (?,?,?,?,?)"
            " RETURNING id",
            (sink, note.kind, payload, now, now),
        )
        return returned_id(cur)

    def get(self, row_id: int) -> OutboxRow | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM notify_outbox WHERE id = ?", (row_id,)
        ).fetchone()
        return None if row is None else OutboxRow(*row)

    def due(self, sink: str, now: float, limit: int = MAX_PENDING) -> list[Due]:
        rows = self._conn.execute(
            "SELECT id, kind FROM notify_outbox WHERE state = 'pending' AND sink = ?"
            " AND next_at <= ? ORDER BY id LIMIT ?",
            (sink, now, limit),
        ).fetchall()
        return [Due(i, k) for i, k in rows]

    def pending_ids(self, sink: str, limit: int) -> list[int]:
        rows = self._conn.execute(
            "SELECT id FROM notify_outbox WHERE state = 'pending' AND sink = ? ORDER BY id LIMIT ?",
            (sink, limit),
        ).fetchall()
        return [i for (i,) in rows]

    def pending_count(self, sink: str) -> int:
        found: int = self._conn.execute(
            "SELECT COUNT(*) FROM notify_outbox WHERE state = 'pending' AND sink = ?", (sink,)
        ).fetchone()[0]
        return found

    def pending_by_sink(self) -> dict[str, int]:
        rows = self._conn.execute(
            "SELECT sink, COUNT(*) FROM notify_outbox WHERE state = 'pending' GROUP BY sink"
        ).fetchall()
        return {s: n for s, n in rows}

    def next_due(self, sinks: Collection[str]) -> float | None:
        """The earliest retry time among ``sinks``' pending rows."""
        if not sinks:
            return None
        marks = ",".join("?" * len(sinks))
        found: float | None = self._conn.execute(
            f"SELECT MIN(next_at) FROM notify_outbox WHERE state = 'pending' AND sink IN ({marks})",
            tuple(sinks),
        ).fetchone()[0]
        return found

    def delivered(self, row_id: int, now: float) -> None:
        self._conn.execute(
            "UPDATE notify_outbox SET state = 'delivered', tries = tries + 1, done_at = ?"
            " WHERE id = ? AND state = 'pending'",
            (now, row_id),
        )

    def failed(self, row_id: int, error: str, now: float, settings: NotifySettings) -> Outcome:
        """A failed try: retried after the backoff, or dropped after ``max_tries``."""
        row = self.get(row_id)
        if row is None or row.state != "pending":
            return "dropped"
        tries, error = row.tries + 1, error[:ERROR_MAX]
        if tries >= settings.max_tries:
            self._conn.execute(
                "UPDATE notify_outbox SET state = 'dropped', tries = ?, last_error = ?,"
                " done_at = ? WHERE id = ?",
                (tries, f"gave up after {tries} tries: {error}", now, row_id),
            )
            return "dropped"
        self._conn.execute(
            "UPDATE notify_outbox SET tries = ?, last_error = ?, next_at = ? WHERE id = ?",
            (tries, error, now + backoff(tries, settings), row_id),
        )
        return "retry"

    def drop_unknown_sinks(self, sinks: Collection[str], now: float) -> int:
        """Drop, with a record, the pending rows of sinks no longer configured."""
        # An empty "NOT IN ()" is sqlite's only: without sinks, compare with a name none has.
        marks = ",".join("?" * len(sinks)) if sinks else "''"
        cur = self._conn.execute(
            "UPDATE notify_outbox SET state = 'dropped', done_at = ?,"
            " last_error = 'its sink is no longer configured'"
            f" WHERE state = 'pending' AND sink NOT IN ({marks})",
            (now, *sinks),
        )
        return cur.rowcount

    def fold(self, sink: str, ids: Sequence[int], now: float) -> int | None:
        """Replace pending rows ``ids`` of ``sink`` by one digest row; its id, or None if
        none of them was still pending."""
        marks = ",".join("?" * len(ids))
        field = partial(self._conn.dialect.json_field, "payload")
        with self._conn.transaction():
            rows = self._conn.execute(
                f"SELECT kind, {field('title')}, {field('link')},"
                f" CASE kind WHEN 'digest' THEN {field('data')} END"
                f" FROM notify_outbox WHERE state = 'pending' AND sink = ? AND id IN ({marks})"
                " ORDER BY id",
                (sink, *ids),
            ).fetchall()
            if not rows:
                return None
            items = [Folded(k, t, ln, None if d is None else json.loads(d)) for k, t, ln, d in rows]
            digest = self.enqueue(sink, digest_of(items), now)
            self._conn.execute(
                "UPDATE notify_outbox SET state = 'folded', folded_into = ?, done_at = ?"
                f" WHERE state = 'pending' AND sink = ? AND id IN ({marks})",
                (digest, now, sink, *ids),
            )
        return digest

    def prune(self, now: float) -> None:
        """Bound the history: finished rows older than KEEP_SECONDS or past KEEP_ROWS go."""
        self._conn.execute(
            "DELETE FROM notify_outbox WHERE state != 'pending' AND done_at < ?",
            (now - KEEP_SECONDS,),
        )
        self._conn.execute(
            "DELETE FROM notify_outbox WHERE state != 'pending' AND id NOT IN"
            " (SELECT id FROM notify_outbox WHERE state != 'pending' ORDER BY id DESC LIMIT ?)",
            (KEEP_ROWS,),
        )

    def recent(self, limit: int, sink: str | None = None) -> list[OutboxRow]:
        where, args = ("WHERE sink = ?", (sink,)) if sink is not None else ("", ())
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM notify_outbox {where} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [OutboxRow(*r) for r in rows]
