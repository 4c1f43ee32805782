"""The agent's badge (idle / thinking / offline) as a pure function of facts.

Facts arrive as plain method calls (core connected or not, engine logged in
or not, a turn running or not); the badge and the time it took that value
are derived, so the web page and history agree on what the agent is doing.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperhive.agent.control import Badge


@dataclass(frozen=True, slots=True)
class Badged:
    state: Badge
    since: float
    reason: str | None


class AgentState:
    def __init__(self, now: float) -> None:
        self.core_connected = False
        self.logged_in = True
        self.turn_running = False
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
        return "idle", None

    def update(
        self,
        now: float,
        *,
        core_connected: bool | None = None,
        logged_in: bool | None = None,
        turn_running: bool | None = None,
    ) -> Badged | None:
        """Apply new facts; returns the new badge if it changed, else None."""
        if core_connected is not None:
            self.core_connected = core_connected
        if logged_in is not None:
            self.logged_in = logged_in
        if turn_running is not None:
            self.turn_running = turn_running
        state, reason = self._derive()
        if (state, reason) == (self._current.state, self._current.reason):
            return None
        self._current = Badged(state, now, reason)
        return self._current
