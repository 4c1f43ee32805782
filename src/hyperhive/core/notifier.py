"""The core telling what happened: events on the bus for every watcher, and core events
in an agent's inbox (``kind: event``) for the agent they concern."""

from __future__ import annotations

from collections.abc import Container
from typing import Any, Protocol

from hyperhive.core.bus import EventBus


class EventPoster(Protocol):
    """Stores a core event in an agent's inbox (the broker)."""

    def post_event(self, to: str, name: str, payload: dict[str, Any], /) -> object: ...


class Notifier:
    def __init__(self, bus: EventBus, inbox: EventPoster, agents: Container[str]) -> None:
        self._bus = bus
        self._inbox = inbox
        self._agents = agents  # who exists now: an event for a gone agent is dropped

    def publish(self, event: dict[str, Any]) -> None:
        self._bus.publish(event)

    def tell(self, agent: str, name: str, payload: dict[str, Any]) -> bool:
        """Post core event ``name`` to ``agent``'s inbox; False if there is no such agent."""
        if agent not in self._agents:
            return False
        self._inbox.post_event(agent, name, payload)
        return True
