"""The inbox task: the agent's link to the core.

It holds a connection to the core, leases the next message (long-poll), queues it as
work, waits for its turn to finish and settles the lease by whose fault a failure was
(agent/failures.py): ack a handled message; ``fail`` one whose turn errored (the core
counts attempts and dead-letters it after a few); ``nack`` one that met trouble not of
its making (no login, the API down, the engine not starting) and wait, disconnected,
for a login or out a backoff before taking work again. If the socket goes away the
agent shows ``offline`` and reconnects with backoff, and the core re-queues the open
lease, counting nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from hyperhive.agent import tool_requests
from hyperhive.agent.core_login import watch_logins
from hyperhive.agent.failures import Backoff, Failed, Retry
from hyperhive.agent.history import History
from hyperhive.agent.login import Credentials
from hyperhive.agent.presence import Presence
from hyperhive.agent.prompts import wake_prompt
from hyperhive.agent.settings import AgentSettings
from hyperhive.agent.turns import Turns, Work
from hyperhive.client import Client
from hyperhive.errors import HiveError

log = logging.getLogger(__name__)
RECV_WAIT: Final = 30.0
BACKOFF_START: Final = 0.1
BACKOFF_MAX: Final = 5.0
# Waiting for a login, the credentials are looked at again at least this often, so a
# key that appears by other means than the page (a file, a mount) is noticed.
LOGIN_RECHECK_MAX: Final = 30.0
BADGE_REASON: Final = 200


class CoreLink:
    def __init__(
        self,
        settings: AgentSettings,
        history: History,
        credentials: Credentials,
        presence: Presence,
        turns: Turns,
        *,
        backoff: Backoff,
        stopping: asyncio.Event,
    ) -> None:
        self.settings = settings
        self._history = history
        self.credentials = credentials
        self._presence = presence
        self._turns = turns
        self._backoff = backoff
        self._stopping = stopping
        self._troubles = 0  # failures in a row that were not the message's fault

    async def run(self) -> None:
        # Behind the gateway, the core says whether we are logged in, and when that changes.
        watch = None
        if self.settings.api_socket is not None:
            watch = asyncio.create_task(watch_logins(self.settings.socket, self._presence))
        try:
            await self._serve()
        finally:
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)

    async def _serve(self) -> None:
        backoff = BACKOFF_START
        while not self._stopping.is_set():
            try:
                client = await Client.connect(self.settings.socket)
            except HiveError:
                self._presence.set(core_connected=False)
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            self._presence.set(core_connected=True)
            answered = asyncio.Event()
            held: tuple[int, Retry] | None = None
            try:
                held = await self._lease_loop(client, answered)
            except (HiveError, OSError) as exc:
                log.warning("lost the core socket: %s", exc)
            finally:
                await client.close()
            if held is not None:
                # Not the core's trouble: wait without a connection for the core to keep
                # (it would idle out), the badge saying why; then take work again.
                await self._hold_off(*held)
                backoff = BACKOFF_START
                continue
            self._presence.set(core_connected=False)
            # A core that accepts and then refuses (busy, shutting down) must
            # not be hammered: only a connection that served a recv resets.
            if answered.is_set():
                backoff = BACKOFF_START
            else:
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _lease_loop(self, client: Client, answered: asyncio.Event) -> tuple[int, Retry]:
        """Lease, run, settle, until a message is given back for trouble not its own:
        then its id and why, for :meth:`_hold_off`."""
        while True:
            got = await client.call("recv", wait=RECV_WAIT, lease=True)
            answered.set()
            if got is None:
                continue
            message = got["message"]
            self._note_decision(message)
            work = Work(wake_prompt(self.settings.name, message), "message", message)
            self._turns.queue.put_nowait(work)
            await work.done.wait()
            # Settled only after the turn: a crash mid-turn leaves the lease open, so
            # the core hands the message out again (and counts no attempt).
            outcome, lease, mid = work.outcome, got["lease"], int(message["id"])
            if isinstance(outcome, Retry):
                await client.call("nack", lease=lease)
                return mid, outcome
            self._troubles = 0
            if isinstance(outcome, Failed):
                await self._fail(client, lease, mid, outcome)
            else:
                await client.call("ack", lease=lease)

    async def _fail(self, client: Client, lease: object, mid: int, failed: Failed) -> None:
        done = await client.call("fail", lease=lease, reason=failed.reason)
        if done["dead"]:
            text = (
                f"message #{mid} failed {done['attempts']} times; it is a dead letter now "
                "(the operator can retry or drop it)"
            )
            self._history.publish("notice", {"level": "error", "text": text})
        else:
            text = f"message #{mid} failed (try {done['attempts']}); it goes back to the queue"
            self._history.publish("notice", {"level": "warning", "text": text})

    async def _hold_off(self, mid: int, retry: Retry) -> None:
        """After a message went back for ``retry``: wait for a login, or out a backoff."""
        self._troubles += 1
        delay = self._backoff.delay(self._troubles)
        if retry.cause == "login":
            text = f"message #{mid} is back in the queue until a login: {retry.reason}"
            self._history.publish("notice", {"level": "warning", "text": text})
            await self._until_logged_in(delay)
            return
        text = f"{retry.reason} — message #{mid} is back in the queue; next try in {delay:g} s"
        self._history.publish("notice", {"level": "warning", "text": text})
        self._presence.set(backoff=f"{retry.cause}: {retry.reason}"[:BADGE_REASON])
        try:
            await self._pause(delay)
        finally:
            self._presence.set(backoff=None)

    async def _until_logged_in(self, recheck: float) -> None:
        """Until a login is saved (on the page, in the core), or credentials appear by
        other means."""
        behind_gateway = self.settings.api_socket is not None
        mark = self.credentials.mark()
        while not self._presence.state.logged_in and not self._stopping.is_set():
            self._presence.login.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(recheck, LOGIN_RECHECK_MAX)):
                    await self._presence.login.wait()  # set by the watch behind the gateway
            recheck *= 2
            if behind_gateway:
                continue
            if self.credentials.mark() != mark and self.credentials.available():
                self._turns.restart_engine = True
                self._presence.set(logged_in=True)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    def _note_decision(self, message: dict[str, Any]) -> None:
        data = tool_requests.from_decision(self.settings.name, message)
        if data is not None:
            self._history.publish(tool_requests.KIND, data)
