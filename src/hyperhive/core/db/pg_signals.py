"""Signals between the cores sharing a PostgreSQL store: ``NOTIFY`` out, ``LISTEN`` in.

A signal is sent on the store's own connection right after the commit it is
about, and received on a connection of its own. Two ways one can go missing,
and what catches each: the listener was disconnected (every (re)connection
resyncs first), or a core died between its commit and its ``NOTIFY`` (the
bounded re-check: every ``recheck`` seconds, however busy the channel, the
handlers resync from the store). So a lost signal delays a wake by at most
``recheck`` seconds; bench/broker.py measures the re-check's cost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

import psycopg

from hyperhive.core.db.base import Database
from hyperhive.core.db.signals import CHANNELS, MAX_PAYLOAD, Handler
from hyperhive.errors import DatabaseError

log = logging.getLogger(__name__)

RECHECK_SECONDS: Final = 5.0
CONNECT_TIMEOUT: Final = 5  # seconds: libpq's connect_timeout is whole seconds
MAX_BACKOFF: Final = 5.0


class PostgresSignals:
    def __init__(self, url: str, store: Database, *, recheck: float = RECHECK_SECONDS) -> None:
        self._url = url
        self._store = store
        self._recheck = recheck
        self._handlers: dict[str, list[Handler]] = {channel: [] for channel in CHANNELS}
        self._resyncs: list[Callable[[], object]] = []
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._notify_failing = False
        # What the metrics and the benchmark read.
        self.received = 0
        self.resynced = 0
        self.reconnects = 0

    @property
    def listening(self) -> bool:
        """Whether a connection listens now (else signals are missed: resyncs catch up)."""
        return self._listening.is_set()

    def notify(self, channel: str, payload: str) -> None:
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"signal payload of {len(payload)} chars on {channel}")
        try:
            self._store.execute("SELECT pg_notify(?, ?)", (channel, payload))
        except DatabaseError as exc:
            # The change is committed; the other cores' re-check finds it.
            if not self._notify_failing:
                log.warning("signal on %s not sent (%s); other hosts re-check", channel, exc)
            self._notify_failing = True
            return
        self._notify_failing = False

    def listen(self, channel: str, handler: Handler) -> None:
        self._handlers[channel].append(handler)

    def on_resync(self, handler: Callable[[], object]) -> None:
        self._resyncs.append(handler)

    async def start(self) -> None:
        """Listen; back once the first connection listens (or failed: it retries)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pg-signals")
            listening = asyncio.create_task(self._listening.wait())
            await asyncio.wait(
                {listening, self._task},
                timeout=CONNECT_TIMEOUT + 1,
                return_when=asyncio.FIRST_COMPLETED,
            )
            listening.cancel()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen_once()
            except psycopg.Error as exc:
                if self._listening.is_set():  # it was up: this is a new outage
                    backoff = 0.1
                self._listening.clear()
                self.reconnects += 1
                log.warning("signals: %s; listening again in %.1f s", _first_line(exc), backoff)
            # Our own store may still answer: what was missed is looked for meanwhile.
            self._resync()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _listen_once(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
        ) as conn:
            for channel in CHANNELS:
                await conn.execute(f"LISTEN {channel}")
            self._listening.set()
            while True:
                self._resync()  # whatever was committed while nobody listened
                async for note in conn.notifies(timeout=self._recheck):
                    self.received += 1
                    self._dispatch(note.channel, note.payload)

    def _dispatch(self, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:  # top level of the listener: one bad signal must not end it
                log.exception("signal handler for %s failed on %r", channel, payload[:80])

    def _resync(self) -> None:
        self.resynced += 1
        for handler in self._resyncs:
            try:
                handler()
            except Exception:  # top level of the listener, as in _dispatch
                log.exception("resync handler failed")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
