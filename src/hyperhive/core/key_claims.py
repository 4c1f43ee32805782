"""A keyed send's key in the store: claimed by the insert itself, looked up only when held.

A send with a key is stored by one statement that inserts the message unless the key is
held already (``ON CONFLICT … DO NOTHING`` on the ``messages_key`` index): on PostgreSQL
a keyed send costs the round trip an unkeyed one does, not a look-up before it. Only a
send whose key is held, or that is refused, looks the holder up, and
:func:`~hyperhive.core.send_keys.replayed` says whether it is a retry to answer with the
message the key names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from hyperhive.core.db import Database, returned_id
from hyperhive.core.message_log import INSERT
from hyperhive.core.send_keys import Keyed, replayed
from hyperhive.errors import BadRequest

# Both stores infer the partial unique index from the same target and WHERE.
CLAIM: Final = INSERT.replace(
    " RETURNING id", " ON CONFLICT (sender, key) WHERE key IS NOT NULL DO NOTHING RETURNING id"
)
assert CLAIM != INSERT, "message_log.INSERT no longer ends in RETURNING id"


class KeyClaims:
    def __init__(
        self,
        conn: Database,
        clock: Callable[[], float],
        window: float,
        refuse: Callable[[str], None],
    ) -> None:
        """``refuse(reason)``: counts a refused send (a key sent again with another
        message is ``key_conflict``)."""
        self._conn = conn
        self._clock = clock
        self._window = window
        self._refuse = refuse

    def claim(self, row: Sequence[Any]) -> int | None:
        """Store ``row`` (message_log.INSERT's values, a key among them); its id, or None
        when the key names a message of its sender's already (nothing stored)."""
        found = self._conn.execute(CLAIM, row).fetchone()
        return None if found is None else int(found[0])

    def reclaim(self, row: Sequence[Any], sender: str, key: str) -> int:
        """Store ``row``, the key passing to it from a message older than the window
        (:meth:`retried` said so): one commit, and the unique index refuses two holders."""
        with self._conn.transaction():
            self._conn.execute(
                "UPDATE messages SET key = NULL WHERE sender = ? AND key = ?", (sender, key)
            )
            return returned_id(self._conn.execute(INSERT, row))

    def retried(self, sender: str, key: str, to: object, body: object) -> int | None:
        """The id of the message this send retries (answer with it, store nothing), or None:
        the key names none, or one older than the window. The key naming a live message
        with another recipient or body is refused (``key_conflict``)."""
        found = self._conn.execute(
            "SELECT id, recipient, body, created_at FROM messages WHERE sender = ? AND key = ?",
            (sender, key),
        ).fetchone()
        held = None if found is None else Keyed(*found)
        try:
            live = replayed(held, to, body, self._clock(), self._window)
        except BadRequest:
            self._refuse("key_conflict")
            raise
        return held.id if live and held is not None else None
