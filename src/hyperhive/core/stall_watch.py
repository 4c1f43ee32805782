"""Stall detection, the service: feeds a :class:`~hyperhive.core.stall.StallTracker` and
publishes what it decides as ``stall`` and ``stall_cleared`` bus events.

Turns come from the harness's ``activity`` reports (core/ops/stall.py); approvals,
questions and leases are read from their owners every tick, and a decision, an answer or
an agent that stopped is noticed from the bus at once. The thresholds are read at every
check (``settings.current().stall``), so a reload applies at the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hyperhive.core.approval_queue import ApprovalQueue
from hyperhive.core.approvals import Approval
from hyperhive.core.broker import Broker
from hyperhive.core.bus import Event, EventBus
from hyperhive.core.questions import Question, QuestionBook
from hyperhive.core.stall import StallChange, StallTracker, Waiting, What, tick_seconds
from hyperhive.errors import DatabaseError
from hyperhive.settings import LiveSettings

log = logging.getLogger(__name__)
Phase = Literal["start", "event", "end"]
PHASES: tuple[Phase, ...] = ("start", "event", "end")
_KIND = {"spawn": "Spawn", "apply_commit": "ApplyCommit", "tool_use": "ToolUse"}


class StallSources(Protocol):
    """What waits besides turns, read at every tick."""

    def approvals(self) -> Iterable[Approval]: ...
    def questions(self) -> Iterable[Question]: ...
    def leases(self) -> Iterable[tuple[str, int, float]]: ...  # recipient, message id, since


def approval_waiting(a: Approval) -> Waiting:
    label = f"{_KIND.get(a.kind, a.kind)} approval #{a.id} for {a.agent} (asked by {a.requester})"
    return Waiting("approval", a.agent, a.id, a.created_at, label)


def question_waiting(q: Question) -> Waiting:
    return Waiting("question", q.asker, q.id, q.created_at, f"question #{q.id} from {q.asker}")


def lease_waiting(recipient: str, mid: int, since: float) -> Waiting:
    return Waiting("lease", recipient, mid, since, f"message #{mid} leased by {recipient}")


class StallWatch:
    def __init__(
        self,
        bus: EventBus,
        settings: LiveSettings,
        sources: StallSources,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._sources = sources
        self._clock = clock
        self._tracker = StallTracker()
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unobserve: Callable[[], None] | None = None

    def start(self) -> None:
        self._unobserve = self._bus.observe(self._observe)
        self._task = asyncio.create_task(self._run(), name="stall-watch")

    async def close(self) -> None:
        if self._unobserve is not None:
            self._unobserve()
            self._unobserve = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- fed ------------------------------------------------------------------------

    def activity(self, agent: str, turn: int, phase: Phase) -> bool:
        """A harness's report on its turn; True when it ended the turn that was running."""
        now = self._clock()
        ended = False
        if phase == "start":
            self._tracker.turn_started(agent, turn, now)
        elif phase == "event":
            self._tracker.activity(agent, turn, now)
        else:
            ended = self._tracker.turn_ended(agent, turn)
        self._poke.set()  # a stall this ends is cleared now, not at the next tick
        return ended

    def _observe(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "approval_decided":
            self._tracker.settled("approval", int(event["approval"]["id"]))
        elif kind == "question_answered":
            self._tracker.settled("question", int(event["question"]["id"]))
        elif kind == "agent_removed" or (kind == "agent_state" and event.get("state") != "running"):
            self._tracker.agent_gone(str(event.get("agent")))
        else:
            return
        self._poke.set()

    # -- read -----------------------------------------------------------------------

    def stalls(self) -> list[dict[str, Any]]:
        """The current stalls, as their ``stall`` events would say it now."""
        now = self._clock()
        return [StallChange("stall", w, now).to_event() for w in self._tracker.stalled()]

    # -- running --------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._refresh()
            self._check()
            deadline = loop.time() + tick_seconds(self._settings.current().stall)
            while (left := deadline - loop.time()) > 0:
                self._poke.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._poke.wait()
                self._check()

    def _refresh(self) -> None:
        try:
            pools: dict[What, list[Waiting]] = {
                "approval": [approval_waiting(a) for a in self._sources.approvals()],
                "question": [question_waiting(q) for q in self._sources.questions()],
                "lease": [lease_waiting(*held) for held in self._sources.leases()],
            }
        except DatabaseError as exc:  # the store is busy or closing: the next tick looks again
            log.warning("stall watch: cannot read what waits: %s", exc)
            return
        for what, items in pools.items():
            self._tracker.waiting(what, items)

    def _check(self) -> None:
        for change in self._tracker.check(self._clock(), self._settings.current().stall):
            self._bus.publish(change.to_event())


@dataclass(frozen=True, slots=True)
class HiveSources:
    """The running hive's approvals, questions and leases."""

    queue: ApprovalQueue
    book: QuestionBook
    broker: Broker

    def approvals(self) -> Iterable[Approval]:
        return self.queue.pending()

    def questions(self) -> Iterable[Question]:
        return self.book.pending()

    def leases(self) -> Iterable[tuple[str, int, float]]:
        return self.broker.leases()
