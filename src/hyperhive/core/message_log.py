"""The message log as sqlite holds it: a message's shape, and the reads of the log
(one message, the newest few, a page of previews). The broker writes it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from hyperhive.core import previews
from hyperhive.core.db import Database
from hyperhive.errors import UnknownMessage

Kind = Literal["message", "event"]


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    sender: str
    recipient: str
    body: str
    kind: Kind
    payload: dict[str, Any] | None
    created_at: float
    key: str | None = None  # the sender's idempotency key (core/send_keys.py)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.recipient,
            "body": self.body,
            "kind": self.kind,
            "payload": self.payload,
            "created_at": self.created_at,
            "key": self.key,
        }


COLUMNS: Final = "id, sender, recipient, body, kind, payload, created_at, key"
INSERT: Final = (
    "INSERT INTO messages (sender, recipient, body, kind, payload, created_at, delivered_at,"
    " key) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)


def row_to_message(row: tuple[Any, ...]) -> Message:
    mid, sender, recipient, body, kind, payload, created, key = row
    decoded = json.loads(payload) if payload else None
    return Message(mid, sender, recipient, body, kind, decoded, created, key)


def get(conn: Database, mid: int) -> Message:
    """One whole message of the log, delivered or not."""
    row = conn.execute(f"SELECT {COLUMNS} FROM messages WHERE id = ?", (mid,)).fetchone()
    if row is None:
        raise UnknownMessage(f"no message with id {mid}")
    return row_to_message(row)


def history(conn: Database, agent: str | None, limit: int) -> list[Message]:
    """The newest ``limit`` messages (to or from ``agent``), oldest first."""
    if agent is None:
        rows = conn.execute(f"SELECT {COLUMNS} FROM messages ORDER BY id DESC LIMIT ?", (limit,))
    else:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM messages WHERE sender = ? OR recipient = ?"
            " ORDER BY id DESC LIMIT ?",
            (agent, agent, limit),
        )
    return [row_to_message(r) for r in rows][::-1]


def page(
    conn: Database,
    agent: str | None,
    limit: int,
    before: int | None,
    *,
    preview: int,
    budget: int,
) -> list[dict[str, Any]]:
    """Like :func:`history`, older than ``before``, as wire dicts with bodies cut to
    ``preview`` bytes and no more than ``budget`` bytes in all (see core/previews.py).

    Only a prefix of each body leaves sqlite, so a page of floods stays cheap to read.
    """
    where: list[str] = ["TRUE"]
    params: list[object] = []
    if agent is not None:
        where.append("(sender = ? OR recipient = ?)")
        params += [agent, agent]
    if before is not None:
        where.append("id < ?")
        params.append(before)
    rows = conn.execute(
        "SELECT id, sender, recipient, substr(body, 1, ?), kind, payload, created_at, key,"
        f" {conn.dialect.octets_of('body')} FROM messages WHERE {' AND '.join(where)}"
        " ORDER BY id DESC LIMIT ?",
        (preview, *params, limit),
    )
    cut = (
        previews.shortened(row_to_message(row[:8]).to_wire(), row[3], row[8], preview)
        for row in rows
    )
    try:
        return previews.within(cut, budget)
    finally:
        rows.close()  # the page may stop early; end the read now, not at GC
