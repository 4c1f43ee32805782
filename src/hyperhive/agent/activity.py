"""The harness's word to the core on its turns, for stall detection (core/stall_watch.py):
``activity`` with the turn's id and ``start``, ``end``, or ``event`` while the engine talks,
at most once every :data:`EVENT_EVERY` seconds.

Fire and forget: the turn only queues a report; a task of its own sends them over one
connection, and a report that cannot be sent is dropped (the core is away: it sees no
stall it could not have told anyone about). Nothing here ever fails or slows a turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Final

from hyperhive.client import Client, RemoteError
from hyperhive.errors import HiveError

log = logging.getLogger(__name__)
EVENT_EVERY: Final = 3.0
# Reports waiting to be sent at most; beyond, the oldest go (the newest say the most).
BACKLOG: Final = 16


class ActivityReport:
    def __init__(
        self,
        socket: Path,
        *,
        every: float = EVENT_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._socket = socket
        self._every = every
        self._clock = clock
        self._queue: deque[tuple[int, str]] = deque(maxlen=BACKLOG)
        self._ready = asyncio.Event()
        self._last = float("-inf")  # when the last report was queued
        self._client: Client | None = None

    def start(self, turn: int) -> None:
        self._put(turn, "start")

    def event(self, turn: int) -> None:
        """An engine event: reported if none was for a while."""
        if self._clock() - self._last >= self._every:
            self._put(turn, "event")

    def end(self, turn: int) -> None:
        self._put(turn, "end")

    def _put(self, turn: int, phase: str) -> None:
        self._last = self._clock()
        self._queue.append((turn, phase))
        self._ready.set()

    async def run(self) -> None:
        """Send the reports as they come, until cancelled."""
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._queue:
                    await self._send(*self._queue.popleft())
        finally:
            if self._client is not None:
                await self._client.close()

    async def _send(self, turn: int, phase: str) -> None:
        # A kept connection may have idled out: one more try on a fresh one. A report
        # counted twice is harmless (the core takes a repeated one as one).
        for _ in range(2):
            try:
                if self._client is None:
                    self._client = await Client.connect(self._socket)
                await self._client.call("activity", turn=turn, phase=phase)
                return
            except RemoteError as exc:  # the core answered: it will not take it again either
                log.debug("the core refused a turn's activity report: %s", exc)
                return
            except (HiveError, OSError) as exc:
                log.debug("cannot report a turn's activity to the core: %s", exc)
                if self._client is not None:
                    await self._client.close()
                    self._client = None
