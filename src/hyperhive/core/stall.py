"""Stall detection, the decision: what has waited past its threshold.

Plain code without I/O or clocks: :class:`StallTracker` is fed turns and their activity
(from the harness's ``activity`` reports), what waits for the operator or for an ack
(approvals, questions, leases, with the times they began), and ``now``; :meth:`check`
answers the stalls that began and the ones that ended since the last check, each
occurrence once. core/stall_watch.py does the feeding and publishes the answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from hyperhive.settings import StallSettings

What = Literal["thinking", "approval", "question", "lease"]
# What the tracker is fed as sets (the rest of "what" comes from turns).
POOLED: Final[tuple[What, ...]] = ("approval", "question", "lease")
# How often the watch looks: a quarter of the shortest threshold, within these bounds.
MIN_TICK: Final = 0.05
MAX_TICK: Final = 30.0


@dataclass(frozen=True, slots=True)
class Waiting:
    """One thing that may stall: what, whose, which (an approval, question or message id)
    and since when (epoch seconds) it has waited; ``label`` names it in a sentence."""

    what: What
    agent: str | None
    id: int | None
    since: float
    label: str


@dataclass(frozen=True, slots=True)
class StallChange:
    """A stall that began (``stall``) or ended (``stall_cleared``), as of ``now``."""

    type: Literal["stall", "stall_cleared"]
    waiting: Waiting
    now: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.now - self.waiting.since)

    def to_event(self) -> dict[str, Any]:
        w = self.waiting
        return {
            "type": self.type,
            "what": w.what,
            "agent": w.agent,
            "id": w.id,
            "since": w.since,
            "seconds": round(self.seconds, 3),
            "text": self.text,
        }

    @property
    def text(self) -> str:
        waited = duration(self.seconds)
        if self.type == "stall_cleared":
            return f"{self.waiting.label} is no longer stalled (after {waited})"
        if self.waiting.what == "thinking":
            return f"{self.waiting.label} has had no engine event for {waited}"
        if self.waiting.what == "lease":
            return f"{self.waiting.label} has not been acked for {waited}"
        return f"{self.waiting.label} has waited {waited} for the operator"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def threshold(what: What, settings: StallSettings) -> float | None:
    if what == "thinking":
        return settings.thinking
    if what == "lease":
        return settings.lease
    return settings.approval  # questions wait for the operator as approvals do


def tick_seconds(settings: StallSettings) -> float:
    """How long the watch may sleep between looks and still report near the threshold."""
    given = [t for t in (settings.thinking, settings.approval, settings.lease) if t is not None]
    return min(max(min(given) / 4, MIN_TICK), MAX_TICK) if given else MAX_TICK


@dataclass(frozen=True, slots=True)
class _Turn:
    turn: int
    quiet_since: float  # the turn's start or its last engine event


class StallTracker:
    """The turns running and what waits, and the stalls reported and not yet cleared."""

    def __init__(self) -> None:
        self._turns: dict[str, _Turn] = {}  # one per agent: a harness runs one turn at a time
        self._pools: dict[What, tuple[Waiting, ...]] = {what: () for what in POOLED}
        self._stalled: dict[Waiting, None] = {}  # ordered: oldest report first

    # -- feeding --------------------------------------------------------------------

    def turn_started(self, agent: str, turn: int, now: float) -> None:
        self._turns[agent] = _Turn(turn, now)

    def activity(self, agent: str, turn: int, now: float) -> None:
        """An engine event of ``turn``; a turn the tracker missed the start of counts too."""
        self._turns[agent] = _Turn(turn, now)

    def turn_ended(self, agent: str, turn: int) -> bool:
        """Whether ``turn`` was the one running (a repeated end changes nothing)."""
        running = self._turns.get(agent)
        if running is None or running.turn != turn:
            return False
        del self._turns[agent]
        return True

    def agent_gone(self, agent: str) -> None:
        """Its harness is not running (stopped, failed, destroyed): no turn of it runs."""
        self._turns.pop(agent, None)

    def waiting(self, what: What, items: Iterable[Waiting]) -> None:
        """Everything of kind ``what`` (approval, question, lease) that waits now."""
        if what not in POOLED:
            raise ValueError(f"turns are fed one by one, not as a pool: {what!r}")
        self._pools[what] = tuple(items)

    def settled(self, what: What, item_id: int) -> None:
        """One of a pool was decided, answered or acked: it waits no more."""
        self._pools[what] = tuple(w for w in self._pools[what] if w.id != item_id)

    # -- deciding -------------------------------------------------------------------

    def _candidates(self) -> Iterable[Waiting]:
        for agent, turn in self._turns.items():
            yield Waiting("thinking", agent, None, turn.quiet_since, f"{agent}'s turn")
        for pool in self._pools.values():
            yield from pool

    def check(self, now: float, thresholds: StallSettings) -> list[StallChange]:
        """Stalls that ended, then stalls that began, since the last check."""
        current: dict[Waiting, None] = {}
        for waiting in self._candidates():
            limit = threshold(waiting.what, thresholds)
            if limit is not None and now - waiting.since >= limit:
                current[waiting] = None
        changes = [StallChange("stall_cleared", w, now) for w in self._stalled if w not in current]
        changes += [StallChange("stall", w, now) for w in current if w not in self._stalled]
        # Those reported before keep their place; the new ones follow.
        self._stalled = {w: None for w in self._stalled if w in current} | current
        return changes

    def stalled(self) -> list[Waiting]:
        """The stalls reported and not cleared, oldest report first."""
        return list(self._stalled)
