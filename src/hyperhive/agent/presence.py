"""What the agent shows: its badge (agent/state.py), published to the history on every
change, and an event set whenever a login is known to work (a waiting inbox wakes on it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hyperhive.agent.history import History
from hyperhive.agent.state import KEEP, AgentState, Keep


class Presence:
    def __init__(self, history: History, clock: Callable[[], float]) -> None:
        self._history = history
        self._clock = clock
        self.state = AgentState(clock())
        self.login = asyncio.Event()  # set whenever a login is saved

    def set(
        self,
        *,
        core_connected: bool | None = None,
        logged_in: bool | None = None,
        turn_running: bool | None = None,
        backoff: str | Keep | None = KEEP,
    ) -> None:
        if logged_in:
            self.login.set()
        changed = self.state.update(
            self._clock(),
            core_connected=core_connected,
            logged_in=logged_in,
            turn_running=turn_running,
            backoff=backoff,
        )
        if changed is not None:
            self._history.publish(
                "state",
                {"state": changed.state, "since": changed.since, "reason": changed.reason},
            )
