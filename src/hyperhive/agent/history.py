"""The agent's history: every event, durable in ``/state/history.db``, and live.

Publishing stores the event first (its row id becomes its monotonic id), then
hands it to every live subscriber. A subscriber that connects with a last seen
id gets the stored backlog and then the live stream, with no gap and no
duplicate, because it starts listening before it reads the backlog.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, Final

from hyperhive.agent.control import AgentEvent

BACKFILL_DEFAULT: Final = 500
SUBSCRIBER_DEPTH: Final = 2048
REDACTED: Final = "[redacted]"

# hyperhive.agent.history_stats sums this table from the host: change the two together.
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


class History:
    def __init__(
        self,
        path: Path,
        *,
        secrets: Callable[[], Iterable[str]] = tuple,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._secrets = secrets
        self._clock = clock
        self._subscribers: set[asyncio.Queue[AgentEvent | None]] = set()

    def publish(self, kind: str, data: dict[str, Any] | None = None) -> AgentEvent:
        text = self._redact(json.dumps(data or {}, default=str))
        ts = self._clock()
        cur = self._conn.execute(
            "INSERT INTO events (ts, kind, data) VALUES (?, ?, ?)", (ts, kind, text)
        )
        assert cur.lastrowid is not None
        event = AgentEvent(cur.lastrowid, ts, kind, json.loads(text))
        for queue in list(self._subscribers):
            if queue.full():
                # A reader this far behind reconnects and backfills from its last id.
                self._subscribers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)
        return event

    def _redact(self, text: str) -> str:
        # Secrets must never reach history or SSE, whatever an engine echoes.
        for secret in self._secrets():
            if len(secret) >= 8 and secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def events(self, after: int | None, limit: int = BACKFILL_DEFAULT) -> list[AgentEvent]:
        if after is None:
            rows = self._conn.execute(
                "SELECT id, ts, kind, data FROM events ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()[::-1]
        else:
            rows = self._conn.execute(
                "SELECT id, ts, kind, data FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [AgentEvent(i, ts, kind, json.loads(data)) for i, ts, kind, data in rows]

    def last_id(self) -> int:
        row = self._conn.execute("SELECT max(id) FROM events").fetchone()
        return int(row[0] or 0)

    async def subscribe(self, after: int | None) -> AsyncIterator[AgentEvent]:
        queue: asyncio.Queue[AgentEvent | None] = asyncio.Queue(SUBSCRIBER_DEPTH)
        self._subscribers.add(queue)
        try:
            seen = after or 0
            for past in self.events(after):
                seen = past.id
                yield past
            while (live := await queue.get()) is not None:
                if live.id > seen:
                    seen = live.id
                    yield live
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        self._subscribers.clear()
        self._conn.close()
