"""The gateway's metering (:class:`~.seams.Metering`): every response's cost into the
ledger, each scope's budget state kept, and a spent budget enforced.

A scope is an agent or (None) the hive as a whole. Its budget is the operator's override
(sqlite) over its configured one: an agent's ``[budget]`` in agent.toml, the hive's in
the daemon's config. When a scope's state changes the bus hears a ``budget`` event, and
hm1nd a core event for warn and paused. A paused agent (its own budget, or the hive's) is
refused new requests (:meth:`Meter.refusal`) and the broker holds its deliveries, so no
new turn starts; a stream already admitted finishes. The operator raises the budget or
resumes the scope for the rest of the UTC day; a new UTC day starts every scope at zero.

Pauses are not stored as such: they follow from the ledger, the budgets and the resumes,
all in sqlite, so :meth:`Meter.start` after a restart holds exactly who was held.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from hyperhive.config import Config
from hyperhive.core.db import Database
from hyperhive.core.gateway.budget import (
    Budget,
    Notice,
    Override,
    Spend,
    State,
    describe,
    notice,
    spent_words,
    state_of,
)
from hyperhive.core.gateway.ledger import Ledger
from hyperhive.core.gateway.prices import PriceTable, load_prices
from hyperhive.core.gateway.seams import Usage
from hyperhive.core.settings_source import hive_budget as hive_budget_in_force
from hyperhive.errors import DatabaseError
from hyperhive.names import MANAGER
from hyperhive.settings import LiveSettings

__all__ = ["Meter", "build_meter", "utc_day", "utc_day_span"]

log = logging.getLogger(__name__)

# How often states are looked at again without a request: a new UTC day, or a budget an
# applied agent.toml changed, takes effect within this (a held agent sends nothing).
REFRESH_SECONDS: Final = 30.0
PRICES_FILE: Final = "prices.toml"
DAY_SECONDS: Final = 86400

Scope = str | None


def utc_day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def utc_day_span(at: float) -> tuple[str, float, float]:
    """The UTC day unix time ``at`` falls in, and the instants it starts and ends (the
    end is the next day's start). Unix time has no leap seconds: every day is 86400 s."""
    start = float(math.floor(at / DAY_SECONDS) * DAY_SECONDS)
    return utc_day(start), start, start + DAY_SECONDS


class Holds(Protocol):
    """Stops and restarts an agent's deliveries (the broker)."""

    def hold(self, recipient: str, /) -> None: ...
    def release(self, recipient: str, /) -> None: ...


class Teller(Protocol):
    """The bus, and hm1nd's inbox (the notifier)."""

    def publish(self, event: dict[str, Any], /) -> None: ...
    def tell(self, agent: str, name: str, payload: dict[str, Any], /) -> bool: ...


class Meter:
    def __init__(
        self,
        ledger: Ledger,
        prices: PriceTable,
        *,
        holds: Holds,
        teller: Teller,
        agents: Callable[[], Iterable[str]],
        budgets_of: Callable[[str], Budget],
        hive_budget: Budget | Callable[[], Budget],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``hive_budget``: a callable is asked each time, so a reload takes effect."""
        self.ledger = ledger
        self.prices = prices
        self._holds = holds
        self._teller = teller
        self._agents = agents
        self._budgets_of = budgets_of
        self._hive_budget = hive_budget if callable(hive_budget) else (lambda: hive_budget)
        self._clock = clock
        # The current day and its bounds: each request compares two floats, and the day
        # is formatted again only when the clock leaves them (formatting costs more).
        self._day, self._day_start, self._day_end = utc_day_span(clock())
        self._resumed: set[Scope] = ledger.resumed(self._day)
        self._states: dict[Scope, State] = {}
        self._held: set[str] = set()
        self._unpriced_seen: set[str | None] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.on_close: list[Callable[[], None]] = []

    # -- running ------------------------------------------------------------------------

    def start(self) -> None:
        """Every scope's state from what is stored, silently; spent agents held again."""
        self._refresh(quiet=True)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): refresh() is called by hand
            return
        self._timer = loop.call_later(REFRESH_SECONDS, self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self.on_close:
            self.on_close.pop()()

    def _tick(self) -> None:
        self.refresh()
        self._timer = asyncio.get_running_loop().call_later(REFRESH_SECONDS, self._tick)

    def refresh(self) -> None:
        """Look at every scope again: a new day, a changed agent.toml budget."""
        self._refresh(quiet=False)

    def _refresh(self, *, quiet: bool) -> None:
        self._roll()
        scopes: set[Scope] = {None, *self._states, *self.ledger.spend_by_agent(self._day)}
        for scope in scopes:
            self._update(scope, quiet=quiet)
        self._apply_holds()

    def _roll(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        if self._day_start <= now < self._day_end:
            return
        day, self._day_start, self._day_end = utc_day_span(now)
        if day != self._day:
            self._day = day
            self._resumed = self.ledger.resumed(day)

    # -- Metering -------------------------------------------------------------------------

    def refusal(self, agent: str) -> str | None:
        now = self._clock()
        if not self._day_start <= now < self._day_end:
            self.refresh()
        if self._states.get(agent) == "paused":
            return describe(agent, "paused", self.today(agent), self.budget(agent))
        if self._states.get(None) == "paused":
            return describe(None, "paused", self.today(None), self.budget(None))
        return None

    def record(self, agent: str, model: str | None, usage: Usage) -> None:
        now = self._clock()
        self._roll(now)
        priced = self.prices.price_of(model)
        if not priced.known and model not in self._unpriced_seen and len(self._unpriced_seen) < 64:
            # Once per model, for a few models: the name is the agent's to choose, and
            # every request of a busy agent would flood the log.
            self._unpriced_seen.add(model)
            log.warning(
                "metering: %s used model %r, which no price names; priced dearest", agent, model
            )
        # Every response runs this on the loop: one write, then one read for both
        # totals and one for both overrides (the store may be shared: nothing cached).
        try:
            self.ledger.add(
                agent, self._day, now, usage, priced.price.cost(usage), unpriced=not priced.known
            )
            spend, hive_spend = self.ledger.spend_with_hive(agent, self._day)
            own, hive = self.ledger.overrides(agent)
        except DatabaseError as exc:  # the answer went out already: never fail the gateway
            log.error("metering: cannot record %s's usage (%s): %s", agent, usage, exc)
            return
        changed = (
            self._update(agent, publish=False, known=(spend, own.over(self.configured(agent)))),
            self._update(None, publish=False, known=(hive_spend, hive.over(self.configured(None)))),
        )
        state = self._states.get(agent, "ok")  # what _update just made it
        self._teller.publish(
            {"type": "usage", "agent": agent, "today": spend.to_wire(), "state": state}
        )
        for found in changed:
            if found is not None:
                self._announce(found)
        self._apply_holds()

    # -- reading ---------------------------------------------------------------------------

    @property
    def day(self) -> str:
        return self._day

    def today(self, scope: Scope) -> Spend:
        if scope is None:
            return self.ledger.hive_spend(self._day)
        return self.ledger.spend(scope, self._day)

    def configured(self, scope: Scope) -> Budget:
        """The budget agent.toml (or, for the hive, the daemon's config) gives."""
        return self._hive_budget() if scope is None else self._budgets_of(scope)

    def budget(self, scope: Scope) -> Budget:
        return self.ledger.override(scope).over(self.configured(scope))

    def state(self, scope: Scope) -> State:
        found = self._states.get(scope)
        return found if found is not None else self._compute(scope)

    def paused(self, agent: str) -> bool:
        """Whether ``agent`` is refused now (its own budget or the hive's)."""
        return (
            agent in self._held
            or self._states.get(agent) == "paused"
            or (self._states.get(None) == "paused")
        )

    # -- the operator --------------------------------------------------------------------

    def set_budget(self, scope: Scope, override: Override) -> State:
        """The operator's budget for ``scope`` (fields not set keep their override)."""
        old = self.ledger.override(scope)
        merged = Override(
            override.set_usd or old.set_usd,
            override.nusd_per_day if override.set_usd else old.nusd_per_day,
            override.set_tokens or old.set_tokens,
            override.tokens_per_day if override.set_tokens else old.tokens_per_day,
        )
        self.ledger.set_override(scope, merged, self._clock())
        self._update(scope)
        self._apply_holds()
        return self.state(scope)

    def resume(self, scope: Scope) -> State:
        """No pause for ``scope`` for the rest of today's UTC day, whatever it spends."""
        self._roll()
        spend, budget = self.today(scope), self.budget(scope)
        who = "the hive" if scope is None else scope
        text = f"the operator resumed {who} for the rest of today ({spent_words(spend, budget)})"
        self.ledger.note(scope, self._day, "resumed", text, self._clock())
        self._resumed.add(scope)
        before = self._states.get(scope, "ok")
        after = self._states[scope] = state_of(spend, budget, resumed=True)
        if before != after:
            self._teller.publish(Notice(scope, after, text).to_wire())
        self._apply_holds()
        return after

    # -- internals -------------------------------------------------------------------------

    def _compute(self, scope: Scope) -> State:
        return state_of(self.today(scope), self.budget(scope), resumed=scope in self._resumed)

    def _update(
        self,
        scope: Scope,
        *,
        quiet: bool = False,
        publish: bool = True,
        known: tuple[Spend, Budget] | None = None,
    ) -> Notice | None:
        """The state of ``scope`` again; its change announced (``publish``) or returned.
        ``known``: its spend and budget as just read, else they are read here."""
        spend, budget = known if known is not None else (self.today(scope), self.budget(scope))
        after = state_of(spend, budget, resumed=scope in self._resumed)
        before = self._states.get(scope, "ok")
        if after == "ok" and scope is not None:
            self._states.pop(scope, None)  # the map holds only scopes worth looking at
        else:
            self._states[scope] = after
        found = None if quiet else notice(scope, before, after, spend, budget)
        if found is not None and publish:
            self._announce(found)
            return None
        return found

    def _announce(self, found: Notice) -> None:
        self.ledger.note(found.scope, self._day, found.state, found.text, self._clock())
        self._teller.publish(found.to_wire())
        if found.tell_manager:
            payload = {"agent": found.scope, "state": found.state, "text": found.text}
            self._teller.tell(MANAGER, "budget", payload)

    def _apply_holds(self) -> None:
        if self._states.get(None) == "paused":
            wanted = set(self._agents())
        else:
            wanted = {s for s, state in self._states.items() if s is not None and state == "paused"}
        for agent in sorted(wanted - self._held):
            self._holds.hold(agent)
        for agent in sorted(self._held - wanted):
            self._holds.release(agent)
        self._held = wanted


def build_meter(
    config: Config,
    conn: Database,
    *,
    holds: Holds,
    teller: Teller,
    agents: Callable[[], Iterable[str]],
    budgets_of: Callable[[str], Budget],
    clock: Callable[[], float] = time.time,
    settings: LiveSettings | None = None,
) -> Meter:
    """The hive's meter: the shipped prices under ``<state>/prices.toml`` (a bad file is a
    ConfigError here, at start), the hive budget from ``settings`` as they are at each
    check (hive.toml's or the env's), else from ``config``."""
    prices = load_prices(Path(config.state_dir) / PRICES_FILE)
    live = settings if settings is not None else LiveSettings()

    def hive_budget() -> Budget:
        return Budget.of(*hive_budget_in_force(live.current(), config))

    meter = Meter(
        Ledger(conn),
        prices,
        holds=holds,
        teller=teller,
        agents=agents,
        budgets_of=budgets_of,
        hive_budget=hive_budget,
        clock=clock,
    )
    # A reloaded hive budget pauses or frees the hive now, not at the next tick.
    meter.on_close.append(live.watch(lambda _: meter.refresh()))
    return meter
