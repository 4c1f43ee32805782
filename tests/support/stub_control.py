"""An in-memory :class:`AgentControl` for web tests, and a real server to put it behind.

The stub records every call, lets a test publish events and change state, and implements
``subscribe`` with the real contract (backfill after a position, then live, no gap, no
duplicate) over asyncio queues. Agent pages always want their page key: :data:`PAGE_KEY`
opens those built with :data:`PAGE_CHECK`, :func:`page_client` is a client logged in with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
from starlette.applications import Starlette

from hyperhive.agent.control import AgentEvent, Badge, CommandResult, Status
from hyperhive.tokens import KeyCheck
from hyperhive.web import WebServer

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
SETUP_URL = "https://claude.ai/oauth/authorize?code=true&client_id=stub"
PAGE_KEY = "stub-page-key-0123456789abcdef"
PAGE_CHECK = KeyCheck.of(PAGE_KEY)


@dataclass
class Call:
    name: str
    arg: str | None = None


class StubControl:
    def __init__(self, name: str = "alice", *, needs_login: bool = False) -> None:
        self.events: list[AgentEvent] = []
        self.calls: list[Call] = []
        self.subscribers = 0
        self.unsubscribed = asyncio.Event()  # set whenever the last subscriber leaves
        self._queues: set[asyncio.Queue[AgentEvent]] = set()
        self._status = Status(
            name=name,
            state="offline" if needs_login else "idle",
            since=time.time(),
            reason="login" if needs_login else None,
            model="claude-sonnet-4-5",
            session_id=None,
            queued=0,
            needs_login=needs_login,
        )

    # ---- test side ----
    def publish(self, kind: str, **data: Any) -> AgentEvent:
        event = AgentEvent(len(self.events) + 1, time.time(), kind, data)
        self.events.append(event)
        for queue in self._queues:
            queue.put_nowait(event)
        return event

    def set_state(self, state: Badge, reason: str | None = None) -> AgentEvent:
        since = time.time()
        self._status = replace(self._status, state=state, since=since, reason=reason)
        return self.publish("state", state=state, since=since, reason=reason)

    def set_needs_login(self, needs_login: bool) -> None:
        self._status = replace(self._status, needs_login=needs_login)
        self.set_state("offline" if needs_login else "idle", "login" if needs_login else None)

    def called(self, name: str) -> list[str | None]:
        return [call.arg for call in self.calls if call.name == name]

    # ---- AgentControl ----
    def status(self) -> Status:
        return self._status

    def history(self, after: int | None, limit: int) -> list[AgentEvent]:
        if after is None:
            return self.events[-limit:] if limit > 0 else []
        return [event for event in self.events if event.id > after][:limit]

    async def subscribe(self, after: int | None) -> AsyncIterator[AgentEvent]:
        queue: asyncio.Queue[AgentEvent] = asyncio.Queue()
        # Attaching the queue and taking the backfill in one synchronous step is what
        # makes "no gap, no duplicate" hold: nothing can be published in between.
        self._queues.add(queue)
        self.subscribers += 1
        self.unsubscribed.clear()
        backfill = [event for event in self.events if after is None or event.id > after]
        last = after or 0
        try:
            for event in backfill:
                last = event.id
                yield event
            while True:
                event = await queue.get()
                if event.id > last:
                    last = event.id
                    yield event
        finally:
            self._queues.discard(queue)
            self.subscribers -= 1
            if self.subscribers == 0:
                self.unsubscribed.set()

    async def prompt(self, text: str) -> CommandResult:
        self.calls.append(Call("prompt", text))
        if not text.startswith("/"):
            self.publish("operator_prompt", text=text)
            return CommandResult(True, "queued")
        name, _, arg = text[1:].strip().partition(" ")
        if name == "model" and arg:
            message = f"model set to {arg}"
            self._status = replace(self._status, model=arg)
        elif name in ("help", "clear", "cancel", "compact", "model"):
            message = f"ran /{name}"
        else:
            self.publish("command", name=name, arg=arg or None, ok=False, message="unknown")
            return CommandResult(False, f"unknown command /{name}; try /help")
        self.publish("command", name=name, arg=arg or None, ok=True, message=message)
        return CommandResult(True, message)

    async def cancel(self) -> CommandResult:
        self.calls.append(Call("cancel"))
        if self._status.state != "thinking":
            return CommandResult(False, "no turn is running")
        self.set_state("idle")
        return CommandResult(True, "turn cancelled")

    async def save_api_key(self, key: str) -> CommandResult:
        self.calls.append(Call("save_api_key", key))
        self.set_needs_login(False)
        return CommandResult(True, "API key saved")

    async def start_setup_token(self) -> CommandResult:
        self.calls.append(Call("start_setup_token"))
        return CommandResult(True, f"open {SETUP_URL} and paste the code")

    async def finish_setup_token(self, code: str) -> CommandResult:
        self.calls.append(Call("finish_setup_token", code))
        self.set_needs_login(False)
        return CommandResult(True, "token saved")


@contextlib.asynccontextmanager
async def serving(app: Starlette, host: str = "127.0.0.1") -> AsyncIterator[WebServer]:
    """Run ``app`` under a real uvicorn on an ephemeral port for the body of the block."""
    server = WebServer.for_app(app, host, 0)
    task = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        server.should_exit = True
        await asyncio.wait_for(task, STOP_TIMEOUT)
        raise AssertionError("uvicorn did not start")
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, STOP_TIMEOUT)


@contextlib.asynccontextmanager
async def page_client(
    server: WebServer, key: str = PAGE_KEY, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the page on ``server``, logged in with ``key`` as a browser would be."""
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0, **options) as client:
        login = await client.get("/", params={"token": key})
        assert login.status_code == 303, login.text
        yield client
