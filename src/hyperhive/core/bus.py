"""The in-memory event bus: every stored message and core event, fanned out.

Subscribers (the dashboard's SSE flow, ``hive tail``) each get a bounded
queue. One that falls too far behind is cut off rather than allowed to make
the daemon hold an unbounded backlog; it sees the stream end with ``lagged``.

A subscriber that waits for one kind of event says which (``wants``): the bus
tests each event against it and queues only those. Every harness holds one
such wait (its login watch), and 200 of them woken for each of a busy hive's
events were most of the core's loop in a burst.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

Event = dict[str, Any]
Wants = Callable[[Event], bool]
DEFAULT_DEPTH: Final = 4096


class Subscription:
    def __init__(self, bus: EventBus, depth: int, wants: Wants | None = None) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(depth)
        self._wants = wants
        self.lagged = False

    def offer(self, event: Event) -> None:
        if self._wants is not None and not self._wants(event):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True
            self._bus.unsubscribe(self)
            # Make room for the end marker so the reader wakes and stops.
            self._queue.get_nowait()
            self._queue.put_nowait(None)

    def close(self) -> None:
        self._bus.unsubscribe(self)
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (event := await self._queue.get()) is not None:
            yield event


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._observers: list[Callable[[Event], None]] = []
        self._seq = itertools.count(1)

    def observe(self, observer: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``observer`` with every event as it is published (the core's own, cheap
        bookkeeping: no queue, and not counted among :attr:`subscribers`); the answer
        stops it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def publish(self, event: Event) -> Event:
        """Stamp ``event`` with a bus sequence number and hand it to every subscriber."""
        event["seq"] = next(self._seq)
        for observer in self._observers:
            observer(event)
        for sub in list(self._subscribers):
            sub.offer(event)
        return event

    def subscribe(self, depth: int = DEFAULT_DEPTH, wants: Wants | None = None) -> Subscription:
        """A queue of every event from now on, or of those ``wants`` says yes to."""
        sub = Subscription(self, depth, wants)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def close(self) -> None:
        for sub in list(self._subscribers):
            sub.close()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
