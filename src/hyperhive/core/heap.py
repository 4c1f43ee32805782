"""Keeping the cyclic garbage collector off the core's answers.

The core's heap is mostly long-lived: agents, their sockets, parsed configs, caches. A
full collection walks all of it — 10 to 130 ms at 200 agents, measured — at a moment
nobody chooses, and every socket and the dashboard wait for it. So when the set of agents
changes (an agent added, removed, or its container changing state) and then holds still
for :data:`SETTLE_AFTER_S`, the core collects once and freezes the survivors: later
collections walk only what is newer. Each settle unfreezes first, so garbage that the
frozen objects became meanwhile is still found; nothing leaks.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Final

from hyperhive.core.bus import Event, EventBus

SETTLE_AFTER_S: Final = 2.0
# Bus events after which the long-lived heap has grown or shrunk.
CHANGES: Final = frozenset({"agent_added", "agent_removed", "agent_state"})


def settle() -> None:
    """Collect everything, then keep what survived out of later collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class HeapSettler:
    def __init__(self, bus: EventBus, delay: float = SETTLE_AFTER_S) -> None:
        self._bus = bus
        self._delay = delay
        self._stop: Callable[[], None] | None = None
        self._pending: asyncio.TimerHandle | None = None
        self.settled = 0  # how many times
        self.quiet = asyncio.Event()  # set at each settle, for whoever waits for one

    @property
    def scheduled(self) -> bool:
        """Whether a settle waits for the agents to hold still."""
        return self._pending is not None

    def start(self) -> None:
        settle()
        self._stop = self._bus.observe(self.note)

    async def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        if self._stop is not None:
            self._stop()
            self._stop = None
        gc.unfreeze()  # a later hive in this process starts from a plain heap

    def note(self, event: Event) -> None:
        """One event off the bus: an agent change (re)starts the wait for quiet."""
        if event.get("type") not in CHANGES:
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = asyncio.get_running_loop().call_later(self._delay, self._settle)

    def _settle(self) -> None:
        self._pending = None
        settle()
        self.settled += 1
        self.quiet.set()
