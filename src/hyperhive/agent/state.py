"""The agent's badge (idle / thinking / backoff / offline) as a pure function of facts.

Facts arrive as plain method calls (core connected or not, engine logged in or not, a
turn running or not, the harness holding off after trouble upstream or not); the badge
and the time it took that value are derived, so the web page and history agree on what
the agent is doing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from hyperhive.agent.control import Badge


@dataclass(frozen=True, slots=True)
class Badged:
    state: Badge
    since: float
    reason: str | None


class Keep(enum.Enum):
    """For a fact whose None means something (no backoff): leave it as it is."""

    KEEP = 0


KEEP: Final = Keep.KEEP


class AgentState:
    def __init__(self, now: float) -> None:
        self.core_connected = False
        self.logged_in = True
        self.turn_running = False
        # Why the harness waits before taking its next message (agent/failures.py), or None.
        self.backoff: str | None = None
        self._current = Badged("offline", now, "core")

    @property
    def current(self) -> Badged:
        return self._current

    def _derive(self) -> tuple[Badge, str | None]:
        # A running turn wins: the engine is busy even if the core blinked.
        if self.turn_running:
            return "thinking", None
        if not self.logged_in:
            return "offline", "login"
        if not self.core_connected:
            return "offline", "core"
        if self.backoff is not None:
            return "backoff", self.backoff
        return "idle", None

    def update(
        self,
        now: float,
        *,
        core_connected: bool | None = None,
        logged_in: bool | None = None,
        turn_running: bool | None = None,
        backoff: str | Keep | None = KEEP,
    ) -> Badged | None:
        """Apply new facts; returns the new badge if it changed, else None.

        ``backoff`` is a reason (holding off), ``None`` (not holding off) or left out.
        """
        if core_connected is not None:
            self.core_connected = core_connected
        if logged_in is not None:
            self.logged_in = logged_in
        if turn_running is not None:
            self.turn_running = turn_running
        if backoff is not KEEP:
            self.backoff = backoff
        state, reason = self._derive()
        if (state, reason) == (self._current.state, self._current.reason):
            return None
        self._current = Badged(state, now, reason)
        return self._current
