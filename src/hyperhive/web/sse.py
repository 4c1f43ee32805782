"""Server-sent events for the agent page: backfill + live tail, heartbeats, clean endings.

Frames: each :class:`AgentEvent` is a default ``message`` event whose ``id:`` is the event
id (so the browser resends it as ``Last-Event-ID``) and whose data is ``to_wire()`` JSON;
the agent status travels as ``event: status`` (no ``id:``, which leaves the browser's last
id untouched) at connect and after every ``state`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from hyperhive.agent.control import AgentControl, AgentEvent, Status

HEARTBEAT_S = 15.0
RETRY_MS = 2000  # a restarted harness is back within seconds; reconnect quickly
_END = object()

logger = logging.getLogger(__name__)


class StreamHub:
    """The open streams of one app, so a server shutdown can end them all at once.

    uvicorn waits for open responses before it stops, and an SSE response never ends on
    its own: without this a shutdown would hang until the browser went away.
    """

    def __init__(self) -> None:
        self.closed = False
        self._queues: set[asyncio.Queue[object]] = set()
        self._on_close: list[Callable[[], None]] = []

    def close(self) -> None:
        self.closed = True
        for queue in self._queues:
            queue.put_nowait(_END)
        for callback in self._on_close:
            callback()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Also call ``callback`` when the hub closes: streams that are not this hub's own
        (the front door's relays of agent pages) end with the server too."""
        self._on_close.append(callback)

    def _attach(self, queue: asyncio.Queue[object]) -> None:
        self._queues.add(queue)

    def _detach(self, queue: asyncio.Queue[object]) -> None:
        self._queues.discard(queue)


def status_wire(status: Status) -> dict[str, Any]:
    # ``now`` lets a browser with a skewed clock still count the badge age right.
    return {**status.to_wire(), "now": time.time()}


PING: Final = object()
PING_FRAME: Final = ": ping\n\n"


async def next_or_ping(queue: asyncio.Queue[object], heartbeat: float) -> object:
    """The next queued item, or :data:`PING` after ``heartbeat`` quiet seconds, so
    proxies see traffic and a vanished client is noticed on the next write."""
    try:
        return await asyncio.wait_for(queue.get(), heartbeat)
    except TimeoutError:
        return PING


def event_frame(event: AgentEvent) -> str:
    return f"id: {event.id}\ndata: {json.dumps(event.to_wire(), separators=(',', ':'))}\n\n"


def status_frame(status: Status) -> str:
    return f"event: status\ndata: {json.dumps(status_wire(status), separators=(',', ':'))}\n\n"


async def event_stream(
    control: AgentControl, after: int, hub: StreamHub, heartbeat: float = HEARTBEAT_S
) -> AsyncIterator[str]:
    """Frames for one client until it disconnects (we get cancelled) or the hub closes."""
    if hub.closed:
        return
    queue: asyncio.Queue[object] = asyncio.Queue()
    hub._attach(queue)
    # A pump task owns the subscription so that waiting for the next event can be raced
    # against heartbeats without ever cancelling the control's iterator mid-step.
    pump = asyncio.create_task(_pump(control.subscribe(after), queue))
    try:
        yield f"retry: {RETRY_MS}\n\n"
        yield status_frame(control.status())
        while True:
            item = await next_or_ping(queue, heartbeat)
            if item is PING:
                yield PING_FRAME
                continue
            if not isinstance(item, AgentEvent):
                return
            yield event_frame(item)
            if item.kind == "state":
                yield status_frame(control.status())
    finally:
        hub._detach(queue)
        pump.cancel()


async def _pump(events: AsyncIterator[AgentEvent], queue: asyncio.Queue[object]) -> None:
    try:
        async for event in events:
            queue.put_nowait(event)
    except Exception:
        logger.exception("the agent's event subscription failed; ending the stream")
    finally:
        queue.put_nowait(_END)
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(RuntimeError):
                await aclose()
