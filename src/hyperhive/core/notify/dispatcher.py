"""The notification service: bus events into the outbox, the outbox out to the sinks.

The bus observer only translates and inserts rows (durable before anything is sent)
and wakes the worker, so a publisher never waits on a receiver. The worker sends at
most one row per sink at a time and :data:`CONCURRENCY` in all; a slow receiver only
delays its own sink. Sinks and their limits are read from the live settings at each
decision, so a reload changes them without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Final

from hyperhive.core.bus import Event, EventBus
from hyperhive.core.db import Database
from hyperhive.core.notify.digest import Fold, Send, Wait, decide, recent
from hyperhive.core.notify.events import Notification, Translator
from hyperhive.core.notify.outbox import MAX_PENDING, Outbox
from hyperhive.core.notify.sinks import Delivery, DeliveryFailed, HttpTransport, Transport
from hyperhive.core.operator_token import DashboardLink
from hyperhive.errors import DatabaseError
from hyperhive.settings import LiveSettings, Sink

log = logging.getLogger(__name__)
CONCURRENCY: Final = 4
PRUNE_EVERY: Final = 3600.0
IDLE: Final = 3600.0  # the longest the worker sleeps with nothing due


def dashboard_base(
    settings: LiveSettings, link: Callable[[], DashboardLink | None]
) -> Callable[[], str]:
    """The dashboard's address as the operator reaches it: the configured one, else
    where the dashboard listens; never with the token."""

    def base() -> str:
        configured = settings.current().notify.dashboard_url
        if configured:
            return configured
        served = link()
        return served.base if served is not None else ""

    return base


def absolute(base: str, path: str) -> str:
    return base.rstrip("/") + path if base else path


def wants(sink: Sink, note: Notification) -> bool:
    return note.kind == "digest" or sink.events is None or note.kind in sink.events


class Notifications:
    def __init__(
        self,
        conn: Database,
        bus: EventBus,
        settings: LiveSettings,
        link_base: Callable[[], str],
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._outbox = Outbox(conn)
        self._bus = bus
        self._settings = settings
        self._link_base = link_base
        self._transport: Transport = transport if transport is not None else HttpTransport()
        self._clock = clock
        self._translator = Translator()
        self._wake = asyncio.Event()
        self._outcome = asyncio.Event()  # set and replaced at each try's outcome
        self._sent: dict[str, list[float]] = {}  # per sink: recent send times
        self._busy: dict[str, asyncio.Task[None]] = {}  # per sink: its send in flight
        self._in_flight: dict[str, int] = {}  # per sink: the row that send carries
        self._counts: dict[str, Counter[str]] = {}
        self._unobserve: Callable[[], None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._pruned = 0.0

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def start(self) -> None:
        self._unobserve = self._bus.observe(self._on_event)
        self._worker = asyncio.create_task(self._run(), name="notifications")

    async def close(self, grace: float = 5.0) -> None:
        """Stop taking events; give sends in flight ``grace`` seconds, then cancel them
        (their rows stay pending and go out after the next start)."""
        if self._unobserve is not None:
            self._unobserve()
            self._unobserve = None
        tasks = [t for t in (self._worker, *self._busy.values()) if t is not None]
        if self._worker is not None:
            self._worker.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._transport.close()

    def stats(self) -> dict[str, dict[str, int]]:
        """Per sink: delivered, failed (tries), dropped and folded since start; pending now."""
        pending = self._outbox.pending_by_sink()
        names = {s.name for s in self._settings.current().notify.sinks}
        found: dict[str, dict[str, int]] = {}
        for name in sorted(names | pending.keys() | self._counts.keys()):
            counts = self._counts.get(name, Counter())
            found[name] = {k: counts[k] for k in ("delivered", "failed", "dropped", "folded")}
            found[name]["pending"] = pending.get(name, 0)
        return found

    async def changed(self) -> None:
        """Return after the next try's outcome (delivered, failed, dropped) is recorded."""
        await self._outcome.wait()

    # -- into the outbox ------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        note = self._translator.translate(event)
        if note is None:
            return
        now = self._clock()
        try:
            for sink in self._settings.current().notify.sinks:
                if wants(sink, note):
                    self._outbox.enqueue(sink.name, note, now)
                    self._bound(sink.name, now)
        except DatabaseError as exc:
            # A full disk must not fail the approval or question that was published.
            log.warning("a %s notification was not stored: %s", note.kind, exc)
        self._wake.set()

    def _bound(self, sink: str, now: float) -> None:
        if self._outbox.pending_count(sink) <= MAX_PENDING:
            return
        ids = self._outbox.pending_ids(sink, MAX_PENDING * 2)
        in_flight = self._in_flight.get(sink)
        folded = [i for i in ids if i != in_flight]
        if self._outbox.fold(sink, folded, now) is not None:
            self._count(sink, "folded", len(folded))

    # -- out to the sinks ------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                delay = self._pump()
            except DatabaseError as exc:
                log.warning("notifications paused: the outbox cannot be read: %s", exc)
                delay = 5.0
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _pump(self) -> float:
        """Start what is due; answer how long until something may be due again."""
        now, notify = self._clock(), self._settings.current().notify
        sinks = {s.name: s for s in notify.sinks}
        dropped = self._outbox.drop_unknown_sinks(tuple(sinks), now)
        if dropped:
            log.info("dropped %d notification(s) of sinks no longer configured", dropped)
        if now - self._pruned > PRUNE_EVERY:
            self._outbox.prune(now)
            self._pruned = now
        wake = now + IDLE
        for name, sink in sinks.items():
            if name in self._busy:
                continue
            if len(self._busy) >= CONCURRENCY:
                break
            sent = self._sent[name] = recent(self._sent.get(name, []), now, notify.digest_window)
            action = decide(
                self._outbox.due(name, now), sent, now, notify.digest_after, notify.digest_window
            )
            if isinstance(action, Wait):
                wake = min(wake, action.until)
            elif isinstance(action, Fold):
                digest = self._outbox.fold(name, action.ids, now)
                self._count(name, "folded", len(action.ids))
                if digest is not None:
                    self._launch(sink, digest, now)
            elif isinstance(action, Send):
                self._launch(sink, action.id, now)
        waiting = [n for n in sinks if n not in self._busy]
        next_due = self._outbox.next_due(waiting)
        if next_due is not None:
            wake = min(wake, max(next_due, now))
        return max(wake - now, 0.0)

    def _launch(self, sink: Sink, row_id: int, now: float) -> None:
        self._sent.setdefault(sink.name, []).append(now)
        task = asyncio.create_task(self._deliver(sink, row_id), name=f"notify-{sink.name}")
        self._busy[sink.name], self._in_flight[sink.name] = task, row_id

    async def _deliver(self, sink: Sink, row_id: int) -> None:
        try:
            row = self._outbox.get(row_id)
            if row is None or row.state != "pending":
                return
            note = row.notification()
            delivery = Delivery(row_id, note, absolute(self._link_base(), note.link))
            try:
                await self._transport.send(sink, delivery)
            except DeliveryFailed as exc:
                self._failed(sink.name, row_id, exc.message)
            else:
                self._outbox.delivered(row_id, self._clock())
                self._count(sink.name, "delivered")
        except DatabaseError as exc:
            log.warning("notification %d to %s: the outbox failed: %s", row_id, sink.name, exc)
        finally:
            del self._busy[sink.name], self._in_flight[sink.name]
            self._wake.set()
            self._outcome.set()
            self._outcome = asyncio.Event()

    def _failed(self, sink: str, row_id: int, error: str) -> None:
        notify = self._settings.current().notify
        outcome = self._outbox.failed(row_id, error, self._clock(), notify)
        self._count(sink, "failed")
        if outcome == "dropped":
            self._count(sink, "dropped")
            log.warning("notification %d to %s dropped: %s", row_id, sink, error)
        else:
            log.info("notification %d to %s failed, will retry: %s", row_id, sink, error)

    def _count(self, sink: str, what: str, n: int = 1) -> None:
        self._counts.setdefault(sink, Counter())[what] += n
