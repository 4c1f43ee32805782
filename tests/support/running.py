"""A harness running in the test's loop, and a reader over its history."""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

from hyperhive.agent.control import AgentEvent
from hyperhive.agent.engine import Engine
from hyperhive.agent.failures import Backoff
from hyperhive.agent.harness import Harness
from hyperhive.agent.history import History
from hyperhive.agent.login import Credentials
from hyperhive.agent.settings import AgentSettings

E = TypeVar("E", bound=Engine)


class RunningAgent(Generic[E]):
    def __init__(
        self,
        settings: AgentSettings,
        engine: E,
        env: dict[str, str],
        wait: float,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        credentials = Credentials(settings.claude_dir, env)
        self.engine = engine
        self.history = History(settings.history_db, secrets=credentials.secrets)
        self.harness = Harness(settings, engine, self.history, credentials, backoff=backoff)
        self._wait = wait
        # Only this run's events: a restarted agent shares the history.db.
        self._events = self.history.subscribe(self.history.last_id())
        self.task = asyncio.create_task(self.harness.run())

    async def next_kind(self, kind: str, **match: Any) -> AgentEvent:
        """The next event of ``kind`` whose data has ``match``; bounded."""
        async with asyncio.timeout(self._wait):
            async for event in self._events:
                if event.kind == kind and all(event.data.get(k) == v for k, v in match.items()):
                    return event
        raise AssertionError(f"history ended before a {kind} event")

    async def stop(self) -> None:
        self.harness.stop()
        await asyncio.wait_for(self.task, self._wait)
        await self._events.aclose()  # type: ignore[attr-defined]
        self.history.close()
