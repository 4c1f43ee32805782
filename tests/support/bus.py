"""Waiting on the core's event bus (in-process hives): bounded, no polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hyperhive.core.bus import EventBus

WAIT = 30.0


class BusWatcher:
    """Subscribes at once, so nothing published after construction is missed."""

    def __init__(self, bus: EventBus) -> None:
        self._subscription = bus.subscribe()
        self._events = self._subscription.__aiter__()
        self.seen: list[dict[str, Any]] = []

    async def next(
        self, check: Callable[[dict[str, Any]], bool], wait: float = WAIT
    ) -> dict[str, Any]:
        async with asyncio.timeout(wait):
            async for event in self._events:
                self.seen.append(event)
                if check(event):
                    return event
        raise AssertionError("the bus closed before the expected event")

    async def agent_state(self, agent: str, state: str, wait: float = WAIT) -> dict[str, Any]:
        return await self.next(
            lambda e: (
                e.get("type") == "agent_state"
                and e.get("agent") == agent
                and e.get("state") == state
            ),
            wait,
        )
