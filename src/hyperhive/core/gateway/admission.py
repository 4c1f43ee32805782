"""Who may send a request upstream now: a hive-wide cap, an optional cap per agent, a
fair turn across agents, and a shared hold-off after the upstream says "too many".

:class:`AdmissionCore` is plain code without I/O or clocks: it is fed ``want``,
``cancel``, ``done``, ``throttled`` and ``succeeded`` events and answers :meth:`grant`
(who goes next) and :attr:`hold_until` (when the hold-off ends). :class:`Admission` is
the thin asyncio wrapper the server uses: ``async with admission.slot(agent): ...``.

Fairness: agents with waiters take turns (round robin), each agent's own requests in
the order they came, so one agent with many requests queued cannot starve the rest.
The hold-off is shared because a 429/529 is about the hive's credential or the
upstream as a whole, not one agent: every request waits it out before going again.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Final

BACKOFF_FIRST: Final = 1.0
BACKOFF_CAP: Final = 60.0
# A retry-after beyond this is taken as this: longer holds than the retry window
# (Config.gateway_retry_for, 600 s by default) only hand the error back anyway.
RETRY_AFTER_CAP: Final = 600.0


def parse_retry_after(value: str | None, wall_now: float) -> float | None:
    """Seconds to wait from a ``retry-after`` header (delta-seconds or an HTTP date),
    capped at :data:`RETRY_AFTER_CAP`; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - wall_now
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


class AdmissionCore:
    """The decisions, fed by events. Tickets name waiting requests."""

    def __init__(self, cap: int, per_agent: int | None = None) -> None:
        if cap < 1 or (per_agent is not None and per_agent < 1):
            raise ValueError("admission caps must be positive")
        self.cap = cap
        self.per_agent = per_agent
        self.running: dict[str, int] = {}
        self.hold_until = 0.0
        self._waiting: dict[str, deque[int]] = {}
        self._turns: deque[str] = deque()  # agents with waiters, next in line first
        self._ticket_agent: dict[int, str] = {}
        self._ids = itertools.count(1)
        self._throttles = 0  # 429/529 answers since the last success

    @property
    def in_flight(self) -> int:
        return sum(self.running.values())

    def set_caps(self, cap: int, per_agent: int | None) -> None:
        """New caps (a settings reload) for the grants to come; granted requests keep
        their slots, so a lower cap takes hold as they finish."""
        if cap < 1 or (per_agent is not None and per_agent < 1):
            raise ValueError("admission caps must be positive")
        self.cap, self.per_agent = cap, per_agent

    @property
    def waiting(self) -> int:
        return len(self._ticket_agent)

    def want(self, agent: str) -> int:
        """``agent`` wants to send: its ticket, granted later by :meth:`grant`."""
        ticket = next(self._ids)
        self._ticket_agent[ticket] = agent
        queue = self._waiting.get(agent)
        if queue is None:
            queue = self._waiting[agent] = deque()
            self._turns.append(agent)
        queue.append(ticket)
        return ticket

    def take(self, agent: str, now: float) -> bool:
        """A slot for ``agent`` now, without a ticket, when nobody waits and the caps
        allow (what :meth:`want` then :meth:`grant` would answer, for less); False: it
        must :meth:`want` one."""
        if self.waiting or now < self.hold_until or self.in_flight >= self.cap:
            return False
        if self._at_own_cap(agent):
            return False
        self.running[agent] = self.running.get(agent, 0) + 1
        return True

    def _at_own_cap(self, agent: str) -> bool:
        return self.per_agent is not None and self.running.get(agent, 0) >= self.per_agent

    def cancel(self, ticket: int) -> None:
        """A waiter gave up (its client went away) before it was granted."""
        agent = self._ticket_agent.pop(ticket, None)
        if agent is None:
            return
        queue = self._waiting[agent]
        queue.remove(ticket)
        if not queue:
            del self._waiting[agent]
            self._turns.remove(agent)

    def done(self, agent: str) -> None:
        """A granted request of ``agent``'s finished (its last byte, or it failed)."""
        left = self.running.get(agent, 0) - 1
        if left > 0:
            self.running[agent] = left
        else:
            self.running.pop(agent, None)

    def throttled(self, now: float, retry_after: float | None) -> float:
        """The upstream answered 429/529: hold everyone off for ``retry_after`` seconds,
        else exponentially longer from 1 s up to 60 s. Returns the hold's length."""
        if retry_after is None:
            delay = min(BACKOFF_FIRST * 2.0**self._throttles, BACKOFF_CAP)
        else:
            delay = retry_after
        self._throttles += 1
        self.hold_until = max(self.hold_until, now + delay)
        return self.hold_until - now

    def succeeded(self) -> None:
        """An answer that was not 429/529: the next hold-off starts from 1 s again."""
        self._throttles = 0

    def grant(self, now: float) -> list[int]:
        """The tickets that may go now (each counted as running), in order."""
        granted: list[int] = []
        if now < self.hold_until:
            return granted
        skipped = 0  # agents passed over in a row because they are at their own cap
        while self._turns and self.in_flight < self.cap and skipped < len(self._turns):
            agent = self._turns[0]
            if self._at_own_cap(agent):
                self._turns.rotate(-1)
                skipped += 1
                continue
            skipped = 0
            queue = self._waiting[agent]
            ticket = queue.popleft()
            del self._ticket_agent[ticket]
            self.running[agent] = self.running.get(agent, 0) + 1
            granted.append(ticket)
            self._turns.popleft()
            if queue:
                self._turns.append(agent)  # to the back of the line
            else:
                del self._waiting[agent]
        return granted


class Admission:
    """:class:`AdmissionCore` on the event loop: waiters sleep on futures, and a timer
    wakes the queue when a hold-off ends."""

    def __init__(
        self,
        cap: int,
        per_agent: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.core = AdmissionCore(cap, per_agent)
        self._clock = clock
        self._wall = wall
        self._futures: dict[int, tuple[str, asyncio.Future[None]]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def slot(self, agent: str) -> AbstractAsyncContextManager[None]:
        """Held while one request of ``agent``'s is upstream (a stream: to its last byte)."""
        return _Slot(self, agent)

    async def _enter(self, agent: str) -> None:
        if self.core.take(agent, self._clock()):
            return  # the common case: no ticket, no future
        ticket = self.core.want(agent)
        future = asyncio.get_running_loop().create_future()
        self._futures[ticket] = (agent, future)
        self._pump()
        try:
            await future
        except asyncio.CancelledError:
            if self._futures.pop(ticket, None) is not None:
                self.core.cancel(ticket)  # still waiting
            elif not future.cancelled():
                self.core.done(agent)  # granted just as it was cancelled
            # else: granted after it was cancelled, and _pump gave the slot back
            self._pump()
            raise

    def _exit(self, agent: str) -> None:
        self.core.done(agent)
        self._pump()

    def throttled(self, retry_after: str | None) -> float:
        """A 429/529 with this ``retry-after`` header: the hold's length in seconds."""
        now = self._clock()
        hold = self.core.throttled(now, parse_retry_after(retry_after, self._wall()))
        self._pump()
        return hold

    def succeeded(self) -> None:
        self.core.succeeded()

    def set_caps(self, cap: int, per_agent: int | None) -> None:
        self.core.set_caps(cap, per_agent)
        self._pump()  # a higher cap lets waiters go now

    def _pump(self) -> None:
        now = self._clock()
        granted = self.core.grant(now)
        while granted:
            for ticket in granted:
                agent, future = self._futures.pop(ticket)
                if future.done():  # its waiter was cancelled a moment ago: give it back
                    self.core.done(agent)
                else:
                    future.set_result(None)
            granted = self.core.grant(now)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.core.waiting and now < self.core.hold_until:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.core.hold_until - now, self._pump)


class _Slot:
    """``async with admission.slot(agent)``: a class, as a generator-based context
    manager cost a good part of admission's time on every request's way upstream."""

    __slots__ = ("_admission", "_agent")

    def __init__(self, admission: Admission, agent: str) -> None:
        self._admission = admission
        self._agent = agent

    async def __aenter__(self) -> None:
        await self._admission._enter(self._agent)

    async def __aexit__(self, *exc: object) -> None:
        self._admission._exit(self._agent)
