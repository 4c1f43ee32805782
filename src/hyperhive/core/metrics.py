"""The core's figures for a metrics scrape (web/metrics.py renders them for Prometheus).

Most figures are read at scrape time from their owners (core/ops/metrics.py gathers them);
:class:`Metrics` keeps only what nothing else stores: turns ended per agent (from the
harness's ``activity`` reports) and dead letters (from the bus). The helpers here shape
what was read into the snapshot, without I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final

from hyperhive.core.bus import Event
from hyperhive.core.gateway.budget import Spend
from hyperhive.core.gateway.prices import NANO_PER_USD

APPROVAL_KINDS: Final = ("spawn", "apply_commit", "tool_use")
STALL_KINDS: Final = ("thinking", "approval", "question", "lease")
TOKEN_KINDS: Final = ("input", "output", "cache_creation", "cache_read")
NOTIFY_OUTCOMES: Final = ("delivered", "failed", "dropped", "folded", "pending")


class Metrics:
    """Counters the core keeps in memory; they start at zero with the core."""

    def __init__(self) -> None:
        # agent → (turns ended, the last turn counted), so a repeated report counts once.
        self._turns: dict[str, tuple[int, int]] = {}
        self.dead_letters = 0

    def observe(self, event: Event) -> None:
        """For ``bus.observe``: cheap, synchronous."""
        kind = event.get("type")
        if kind == "dead_letter":
            self.dead_letters += 1
        elif kind == "agent_removed":
            self._turns.pop(str(event.get("agent")), None)  # labels stay bounded by the registry

    def turn_ended(self, agent: str, turn: int) -> None:
        count, last = self._turns.get(agent, (0, -1))
        if turn != last:
            self._turns[agent] = (count + 1, turn)

    def turns(self) -> dict[str, int]:
        return {agent: count for agent, (count, _) in self._turns.items()}


def agents_by_state(
    names: Iterable[str], states: Mapping[str, str], containers: bool
) -> dict[str, int]:
    """How many agents are in each state; one without a container record is ``missing``
    (or ``external`` on a core that runs no containers), as the dashboard says it."""
    absent = "missing" if containers else "external"
    return dict(Counter(states.get(name, absent) for name in names))


def approvals_by_kind(kinds: Iterable[str]) -> dict[str, int]:
    found = Counter(kinds)
    return {kind: found.get(kind, 0) for kind in APPROVAL_KINDS}


def stalls_by_kind(stalls: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    found = Counter(str(s.get("what")) for s in stalls)
    return {what: found.get(what, 0) for what in STALL_KINDS}


def spend_totals(days: Iterable[tuple[str, str, Spend]], names: Iterable[str]) -> dict[str, Any]:
    """Every day's spend summed per agent of ``names`` (a removed agent's figures go)."""
    known = set(names)
    totals: dict[str, Spend] = {}
    for agent, _day, spend in days:
        if agent in known:
            totals[agent] = totals.get(agent, Spend()) + spend
    return {agent: _spend_wire(spend) for agent, spend in sorted(totals.items())}


def _spend_wire(spend: Spend) -> dict[str, Any]:
    u = spend.usage
    return {
        "tokens": {
            "input": u.input_tokens,
            "output": u.output_tokens,
            "cache_creation": u.cache_creation_input_tokens,
            "cache_read": u.cache_read_input_tokens,
        },
        "cost_usd": spend.cost_nusd / NANO_PER_USD,
    }


def notification_stats(stats: Mapping[str, Mapping[str, int]] | None) -> dict[str, dict[str, int]]:
    """Per sink: delivered, failed (tries), dropped, folded (into a digest) and pending;
    {} without notifications."""
    if stats is None:
        return {}
    return {
        sink: {outcome: int(found.get(outcome, 0)) for outcome in NOTIFY_OUTCOMES}
        for sink, found in stats.items()
    }
