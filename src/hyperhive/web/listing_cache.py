"""The agents listing of a big hive, rendered at a bounded rate and never waited for twice.

At 200 agents one listing is ~10-20 ms of the core's loop (the rows, every agent's
/state, the JSON), and while every agent works that loop is busy with them: the listing
then waited behind the agents and they behind it. So for a hive of at least
:data:`MIN_AGENTS` agents a rendered listing is kept and served again:

- a change of state (an agent added, removed, started, stopped or failed, an approval
  asked or decided, a budget, a stall: :data:`INVALIDATING`) drops it, so the next
  listing is rendered for whoever asks; the dashboard shows such changes at once;
- counters that move with every message (inbox depth, turn totals, spend) may be up to
  :data:`FRESH_FOR` old, then the listing is served once more while a new one is rendered
  in the background, and one older than :data:`MAX_STALE` is never served;
- readers asking at once share one render.

A smaller hive's listing is cheap and always rendered for the request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

MIN_AGENTS: Final = 50
FRESH_FOR: Final = 0.25
MAX_STALE: Final = 0.5
# Event types after which a kept listing is not served; "message" is not among them.
INVALIDATING: Final = ("agent_", "approval_", "budget", "stall", "login", "host")


def invalidates(event_type: str) -> bool:
    return event_type.startswith(INVALIDATING)


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    agents: int  # how many rows: a small hive is not kept


Render = Callable[[], Awaitable[Rendered]]


class ListingCache:
    def __init__(self, render: Render, clock: Callable[[], float] = time.monotonic) -> None:
        self._render = render
        self._clock = clock
        self._kept: Rendered | None = None
        self._rendered_at = 0.0
        self._generation = 0  # bumped by every invalidation
        self._flight: asyncio.Task[Rendered] | None = None
        self._flight_generation = -1

    def invalidate(self) -> None:
        self._generation += 1
        self._kept = None

    async def get(self) -> bytes:
        kept = self._kept
        age = self._clock() - self._rendered_at
        if kept is not None and age <= MAX_STALE:
            if age > FRESH_FOR:
                self._start()  # for the next reader; this one gets what is kept
            return kept.body
        return (await asyncio.shield(self._start())).body

    def _start(self) -> asyncio.Task[Rendered]:
        """The render in flight if it began after the last invalidation, else a new one."""
        flight = self._flight
        if flight is not None and not flight.done() and self._flight_generation == self._generation:
            return flight
        self._flight_generation = self._generation
        flight = asyncio.create_task(self._run(self._generation), name="agents listing")
        # A background render's failure is the next reader's to see (it renders again).
        flight.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._flight = flight
        return flight

    async def _run(self, generation: int) -> Rendered:
        began = self._clock()
        rendered = await self._render()
        # Kept only if nothing changed while it was made, and the hive is big.
        if generation == self._generation and rendered.agents >= MIN_AGENTS:
            self._kept, self._rendered_at = rendered, began
        return rendered

    async def settled(self) -> None:
        """Wait for the render in flight, if one is (for tests and shutdown)."""
        if self._flight is not None:
            await asyncio.gather(self._flight, return_exceptions=True)

    def close(self) -> None:
        if self._flight is not None:
            self._flight.cancel()


class Listings:
    """One :class:`ListingCache` per way the listing is asked for (the host the dashboard
    is viewed on goes into its links), a few at most: the Host header is the client's."""

    MAX: Final = 8

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._caches: dict[tuple[str, str], ListingCache] = {}

    def of(self, key: tuple[str, str], render: Render) -> ListingCache:
        cache = self._caches.get(key)
        if cache is None:
            if len(self._caches) >= self.MAX:
                oldest = next(iter(self._caches))
                self._caches.pop(oldest).close()
            cache = self._caches[key] = ListingCache(render, self._clock)
        return cache

    def observe(self, event: dict[str, object]) -> None:
        """A bus observer: a change of state drops every kept listing."""
        if invalidates(str(event.get("type", ""))):
            for cache in self._caches.values():
                cache.invalidate()
