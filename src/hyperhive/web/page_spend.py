"""An agent's spend on its page at the front door, answered by the core itself.

``/agents/<name>/api/spend`` (today's figures, its budget and state, and the hive's),
``…/api/spend/events`` (its ``usage`` and ``budget`` bus events as SSE), and the posts
``…/api/budget`` and ``…/api/resume`` are routes of the dashboard app, listed before the
front door's relay: they never reach the harness, which must not be able to show (or
fake) its own spend. They sit behind the same token gate and sessions as the page, and the
posts behind its CSRF token, as every dashboard action (:func:`.dashboard_actions.run`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hyperhive.core.bus import EventBus, Subscription
from hyperhive.core.operator_desk import OperatorDesk
from hyperhive.errors import HiveError, UnknownAgent
from hyperhive.web import dashboard_actions as posts
from hyperhive.web.answers import NO_STORE, answer, refused, view
from hyperhive.web.dashboard_spend import usage_view
from hyperhive.web.dashboard_state import dashboard_of
from hyperhive.web.spend import concerns, spend_event
from hyperhive.web.sse import PING, PING_FRAME, RETRY_MS, StreamHub, next_or_ping

STREAMS_PER_AGENT: Final = 8  # open pages of one agent's spend; each holds a bus queue
BUS_DEPTH: Final = 1024  # a stream this far behind the bus is cut; the page reconnects
BACKLOG: Final = 256  # frames waiting for one browser before it is hung up on
_END: Final = object()
ZERO: Final = {
    "requests": 0,
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "tokens": 0,
    "cost_usd": 0.0,
}


@dataclass
class SpendStreams:
    """The open spend streams of one app, bounded per agent; all end with the app."""

    cap: int = STREAMS_PER_AGENT
    closed: bool = False
    _open: dict[str, int] = field(default_factory=dict)
    _subscriptions: set[Subscription] = field(default_factory=set)

    def take(self, agent: str, bus: EventBus) -> Subscription | None:
        if self.closed or self._open.get(agent, 0) >= self.cap:
            return None
        self._open[agent] = self._open.get(agent, 0) + 1
        subscription = bus.subscribe(BUS_DEPTH)
        self._subscriptions.add(subscription)
        return subscription

    def give_back(self, agent: str, subscription: Subscription) -> None:
        subscription.close()
        self._subscriptions.discard(subscription)
        left = self._open.get(agent, 0) - 1
        if left > 0:
            self._open[agent] = left
        else:
            self._open.pop(agent, None)

    def close(self) -> None:
        self.closed = True
        for subscription in list(self._subscriptions):
            subscription.close()


def attach(app: Starlette, hub: StreamHub) -> SpendStreams:
    """Give the dashboard ``app`` its spend streams; they end when ``hub`` closes."""
    streams = SpendStreams()
    hub.on_close(streams.close)
    app.state.spend_streams = streams
    return streams


def _streams(request: Request) -> SpendStreams:
    found = getattr(request.app.state, "spend_streams", None)
    if not isinstance(found, SpendStreams):
        raise TypeError("no spend streams on this app")  # a wiring bug
    return found


async def _known(desk: OperatorDesk, name: str) -> None:
    """Raises :class:`UnknownAgent` unless ``name`` is a registered agent."""
    await desk.call("agents", name=name)


async def page_view(desk: OperatorDesk, name: str) -> dict[str, Any]:
    """``name``'s spend today, its budget and state, and the hive's."""
    shown = await usage_view(desk, name)
    mine = next((r for r in shown["agents"] if r["agent"] == name), None)
    if mine is None:  # nothing recorded for it yet today
        mine = {"agent": name, "today": dict(ZERO), "budget": {}, "state": "ok"}
        mine["fraction"] = None
    return {"now": shown["now"], **mine, "hive": shown["hive"]}


async def spend(request: Request) -> Response:
    desk, name = dashboard_of(request).desk, request.path_params["name"]
    try:
        return view(await page_view(desk, name))  # UnknownAgent for no such agent
    except UnknownAgent as exc:
        return answer(False, exc.message, 404, exc.code)
    except HiveError as exc:
        return refused(exc)


async def events(request: Request) -> Response:
    state, name = dashboard_of(request), request.path_params["name"]
    try:
        await _known(state.desk, name)
    except UnknownAgent as exc:
        return answer(False, exc.message, 404, exc.code)
    except HiveError as exc:
        return refused(exc)
    streams = _streams(request)
    subscription = streams.take(name, state.desk.bus)
    if subscription is None:
        return answer(False, f"too many open spend streams of {name}'s page", 503)
    frames = _frames(subscription, name, state.heartbeat, streams)
    headers = {**NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(frames, media_type="text/event-stream", headers=headers)


async def _frames(
    subscription: Subscription, name: str, heartbeat: float, streams: SpendStreams
) -> AsyncIterator[str]:
    """``hello`` (the page fetches its figures then), then one ``spend`` frame per event
    of the agent's, until the browser goes away, the bus cuts us off or the app stops."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    # A pump owns the subscription, so a heartbeat never cancels its iterator mid-step.
    pump = asyncio.create_task(_pump(subscription, name, queue))
    try:
        yield f"retry: {RETRY_MS}\n\n"
        yield "event: hello\ndata: {}\n\n"
        while True:
            item = await next_or_ping(queue, heartbeat)
            if item is PING:
                yield PING_FRAME
            elif isinstance(item, str):
                yield item
            else:
                return
    finally:
        pump.cancel()
        streams.give_back(name, subscription)


async def _pump(subscription: Subscription, name: str, queue: asyncio.Queue[object]) -> None:
    try:
        async for event in subscription:
            if not concerns(event, name):
                continue
            if queue.qsize() >= BACKLOG:
                return  # a browser this slow starts over: it reconnects and refetches
            data = json.dumps(spend_event(event), separators=(",", ":"))
            queue.put_nowait(f"event: spend\ndata: {data}\n\n")
    finally:
        queue.put_nowait(_END)


# Listed before the front door's relay, which would otherwise take these paths.
ROUTES: Final = (
    Route("/agents/{name}/api/spend", spend, methods=["GET"]),
    Route("/agents/{name}/api/spend/events", events, methods=["GET"]),
    Route("/agents/{name}/api/budget", posts.agent_budget, methods=["POST"]),
    Route("/agents/{name}/api/resume", posts.agent_resume, methods=["POST"]),
)
