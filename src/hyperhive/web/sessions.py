"""Browser sessions of one web UI: random ids, kept in memory, bounded and expiring.

A browser that logged in with the token (or a page key) holds only a session id, so a
cookie that leaks is worth one session, never the token. The store keeps at most
``capacity`` sessions (the least recently used goes first) and forgets one after ``idle``
seconds unused or ``lifetime`` seconds in all. Ids are kept hashed: a dump of the store
opens nothing. A restart of the process logs everybody out, by design.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

CAPACITY: Final = 256
IDLE_S: Final = 12 * 3600.0
LIFETIME_S: Final = 7 * 86400.0
MAX_ID_CHARS: Final = 128


def _boottime() -> float:
    # Counts time asleep too: a laptop suspended for a week must not wake up logged in.
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(slots=True)
class _Session:
    created: float
    seen: float


class SessionStore:
    def __init__(
        self,
        *,
        capacity: int = CAPACITY,
        idle: float = IDLE_S,
        lifetime: float = LIFETIME_S,
        clock: Callable[[], float] = _boottime,
    ) -> None:
        if capacity < 1:
            raise ValueError("a session store holds at least one session")
        self._capacity = capacity
        self._idle = idle
        self._lifetime = lifetime
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> str:
        """A new session id; the least recently used session goes if the store is full."""
        now = self._clock()
        self._drop_expired(now)
        while len(self._sessions) >= self._capacity:
            self._sessions.popitem(last=False)
        session_id = secrets.token_urlsafe(32)
        self._sessions[_key(session_id)] = _Session(now, now)
        return session_id

    def valid(self, session_id: str) -> bool:
        """Whether ``session_id`` is a live session; using it keeps it alive (idle-wise)."""
        if not session_id or len(session_id) > MAX_ID_CHARS:
            return False
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return False
        now = self._clock()
        if self._expired(session, now):
            del self._sessions[key]
            return False
        session.seen = now
        self._sessions.move_to_end(key)
        return True

    def _expired(self, session: _Session, now: float) -> bool:
        return now - session.seen > self._idle or now - session.created > self._lifetime

    def _drop_expired(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
