"""The dashboard's live feed: the core's event bus as server-sent events, resumable.

One bus subscription serves every open dashboard. Each event becomes one SSE frame whose
``id:`` is ``<epoch>:<seq>``; the last :data:`RING` frames are kept, so a browser that
reconnects with ``Last-Event-ID`` gets exactly what it missed. The epoch changes whenever
the numbering cannot be trusted to continue (a new feed, a subscription cut off for
lagging), and then the first frame, ``event: hello`` with ``resumed: false``, tells the page
to fetch everything again instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Final

from hyperhive.core import previews
from hyperhive.core.bus import EventBus, Subscription
from hyperhive.web.spend import SPEND_EVENTS, spend_event
from hyperhive.web.sse import HEARTBEAT_S, PING, PING_FRAME, RETRY_MS, StreamHub, next_or_ping

RING: Final = 2048
# A client this far behind is dropped; its browser reconnects and resumes from the ring.
CLIENT_BACKLOG: Final = 1024
BATCH: Final = 256  # frames joined into one write at most
_END: Final = object()

logger = logging.getLogger(__name__)


class BusFeed(StreamHub):
    """Fans one bus subscription out to SSE clients; :meth:`close` ends them all."""

    def __init__(self, bus: EventBus, ring: int = RING) -> None:
        super().__init__()
        self._bus = bus
        self._ring: deque[tuple[int, str]] = deque(maxlen=ring)
        self._clients: set[asyncio.Queue[object]] = set()
        self._subscription: Subscription | None = None
        self._pump: asyncio.Task[None] | None = None
        self.epoch = secrets.token_hex(4)
        self.last_seq = 0

    def close(self) -> None:
        super().close()
        for queue in self._clients:
            queue.put_nowait(_END)
        self._clients.clear()
        if self._subscription is not None:
            self._bus.unsubscribe(self._subscription)
        if self._pump is not None:
            self._pump.cancel()

    def _start(self) -> None:
        # Started by the first client rather than at construction: the app is built outside
        # the event loop, and a dashboard nobody watches need not hold a subscription.
        if self._pump is not None and not self._pump.done():
            return
        self._subscription = self._bus.subscribe()  # synchronous: nothing published is missed
        self._pump = asyncio.create_task(self._run(self._subscription))

    async def _run(self, subscription: Subscription) -> None:
        async for event in subscription:
            seq = int(event.get("seq", 0))
            # ``ts`` lets the page order core events among messages; the bus dict is shared
            # with other subscribers, so it is copied, never stamped in place. Bodies are
            # previews, as in /api/messages: the ring must not hold 2048 bodies of 256 KiB.
            shown = {**event, "ts": time.time()}
            if event.get("type") in SPEND_EVENTS:
                # The metering's events, reduced to what the page shows (web/spend.py).
                shown = {**spend_event(event), "ts": shown["ts"]}
            elif event.get("type") == "message":
                shown["message"] = previews.preview(event["message"])
            data = json.dumps(shown, separators=(",", ":"), default=str)
            frame = f"id: {self.epoch}:{seq}\ndata: {data}\n\n"
            self._ring.append((seq, frame))
            self.last_seq = seq
            for queue in list(self._clients):
                if queue.qsize() >= CLIENT_BACKLOG:
                    self._drop(queue)
                else:
                    queue.put_nowait((seq, frame))
        if subscription.lagged and not self.closed:
            logger.warning("the dashboard fell behind the event bus; pages will refetch")
        # Either the bus closed (the core is stopping) or we were cut off: in both cases
        # the numbering is broken, so every page must start over on its next connect.
        self.epoch = secrets.token_hex(4)
        self._ring.clear()
        for queue in list(self._clients):
            self._drop(queue)

    def _drop(self, queue: asyncio.Queue[object]) -> None:
        self._clients.discard(queue)
        queue.put_nowait(_END)

    def _resume_point(self, last_event_id: str | None) -> int | None:
        """The seq to replay after, or None when the page must refetch everything."""
        if not last_event_id:
            return None
        epoch, _, seq = last_event_id.partition(":")
        if epoch != self.epoch or not seq.isdigit() or len(seq) > 18:
            return None
        after = int(seq)
        oldest = self._ring[0][0] if self._ring else self.last_seq + 1
        if after > self.last_seq or after < oldest - 1:
            return None
        return after

    async def stream(
        self, last_event_id: str | None, heartbeat: float = HEARTBEAT_S
    ) -> AsyncIterator[str]:
        """Frames for one client until it goes away (we get cancelled) or the feed closes."""
        if self.closed:
            return
        self._start()
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._clients.add(queue)  # before reading the ring, so there is no gap
        after = self._resume_point(last_event_id)
        replay = [(s, f) for s, f in self._ring if after is not None and s > after]
        seen = replay[-1][0] if replay else (after if after is not None else self.last_seq)
        try:
            yield f"retry: {RETRY_MS}\n\n"
            hello = {"epoch": self.epoch, "seq": seen, "resumed": after is not None}
            yield f"event: hello\ndata: {json.dumps(hello)}\n\n"
            for _, frame in replay:
                yield frame
            while True:
                item = await next_or_ping(queue, heartbeat)
                if item is PING:
                    yield PING_FRAME
                    continue
                # A burst (200 agents' turns at once) goes out as one write per client,
                # not one per event: the writes, not the events, are what cost the loop.
                frames, ended = [], False
                while isinstance(item, tuple):
                    seq, frame = item
                    if seq > seen:
                        seen = seq
                        frames.append(frame)
                    if queue.empty() or len(frames) >= BATCH:
                        break
                    item = queue.get_nowait()
                else:
                    ended = True
                if frames:
                    yield "".join(frames)
                if ended:
                    return
        finally:
            self._clients.discard(queue)
