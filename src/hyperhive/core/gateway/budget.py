"""Budgets, pure: given what a scope (an agent, or the whole hive) spent today and its
budget, is it ok, near its limit (warn, at 80 %), or spent (paused, at 100 %)?

Money is integer nano-USD throughout (see :mod:`.prices`), so "at 100 %" is an exact
comparison, never a float's opinion. Nothing here reads a clock or a file: the meter
(:mod:`.meter`) feeds these functions and acts on what they answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from hyperhive.core.gateway.prices import NANO_PER_USD
from hyperhive.core.gateway.seams import Usage

__all__ = ["Budget", "Notice", "Override", "Spend", "State", "notice", "state_of", "usd"]

State = Literal["ok", "warn", "paused"]
WARN_PERCENT: Final = 80
_RANK: Final[dict[State, int]] = {"ok": 0, "warn": 1, "paused": 2}


@dataclass(frozen=True, slots=True)
class Budget:
    """A daily limit in money and in tokens; None: no limit of that kind."""

    nusd_per_day: int | None = None
    tokens_per_day: int | None = None

    @classmethod
    def of(cls, usd_per_day: float | None = None, tokens_per_day: int | None = None) -> Budget:
        nusd = None if usd_per_day is None else round(usd_per_day * NANO_PER_USD)
        return cls(nusd, tokens_per_day)

    @property
    def usd_per_day(self) -> float | None:
        return None if self.nusd_per_day is None else self.nusd_per_day / NANO_PER_USD

    @property
    def limited(self) -> bool:
        return self.nusd_per_day is not None or self.tokens_per_day is not None

    def to_wire(self) -> dict[str, float | int | None]:
        return {"usd_per_day": self.usd_per_day, "tokens_per_day": self.tokens_per_day}


@dataclass(frozen=True, slots=True)
class Override:
    """The operator's budget for a scope, field by field: ``set_*`` False keeps the
    configured value; True replaces it (its value None: no limit)."""

    set_usd: bool = False
    nusd_per_day: int | None = None
    set_tokens: bool = False
    tokens_per_day: int | None = None

    def over(self, base: Budget) -> Budget:
        return Budget(
            self.nusd_per_day if self.set_usd else base.nusd_per_day,
            self.tokens_per_day if self.set_tokens else base.tokens_per_day,
        )


@dataclass(frozen=True, slots=True)
class Spend:
    """A scope's counters for one day."""

    requests: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_nusd: int = 0

    @property
    def tokens(self) -> int:
        return self.usage.tokens

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.requests + other.requests,
            self.usage + other.usage,
            self.cost_nusd + other.cost_nusd,
        )

    def to_wire(self) -> dict[str, int | float]:
        u = self.usage
        return {
            "requests": self.requests,
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "tokens": u.tokens,
            "cost_usd": self.cost_nusd / NANO_PER_USD,
        }


def _level(spent: int, limit: int | None) -> State:
    if limit is None:
        return "ok"
    if spent >= limit:
        return "paused"
    # spent / limit >= 80 %, in integers.
    return "warn" if spent * 100 >= limit * WARN_PERCENT else "ok"


def state_of(spend: Spend, budget: Budget, *, resumed: bool = False) -> State:
    """``resumed``: the operator resumed the scope for the rest of today, so a spent
    budget warns but no longer pauses."""
    levels = (
        _level(spend.cost_nusd, budget.nusd_per_day),
        _level(spend.tokens, budget.tokens_per_day),
    )
    state = max(levels, key=_RANK.__getitem__)
    return "warn" if resumed and state == "paused" else state


def usd(nusd: int) -> str:
    """Money for people: cents, or four decimals below a cent."""
    return (
        f"${nusd / NANO_PER_USD:.2f}"
        if nusd >= NANO_PER_USD // 100
        else f"${nusd / NANO_PER_USD:.4f}"
    )


def spent_words(spend: Spend, budget: Budget) -> str:
    """What of ``budget`` is spent, the nearer limit first: "$1.02 of $1.00 today"."""
    parts: list[tuple[float, str]] = []
    if budget.nusd_per_day is not None:
        ratio = spend.cost_nusd / max(budget.nusd_per_day, 1)
        parts.append((ratio, f"{usd(spend.cost_nusd)} of {usd(budget.nusd_per_day)} today"))
    if budget.tokens_per_day is not None:
        ratio = spend.tokens / max(budget.tokens_per_day, 1)
        parts.append((ratio, f"{spend.tokens:,} of {budget.tokens_per_day:,} tokens today"))
    parts.sort(key=lambda p: -p[0])
    return "; ".join(text for _, text in parts) or "no budget"


def describe(scope: str | None, state: State, spend: Spend, budget: Budget) -> str:
    """The words of a state, for the bus, hm1nd, the operator and the model (a refusal).
    ``scope`` None is the hive as a whole."""
    who = "the hive" if scope is None else scope
    whose = "the hive's" if scope is None else "its"
    spent = spent_words(spend, budget)
    if state == "paused":
        return (
            f"{who} is paused: budget ({spent}); the operator can raise {whose} budget or resume it"
        )
    if state == "warn":
        return f"{who} has used {WARN_PERCENT} % or more of {whose} budget ({spent})"
    return f"{who} is within {whose} budget ({spent})"


@dataclass(frozen=True, slots=True)
class Notice:
    """A change of a scope's state: published on the bus, and (warn, paused) told to hm1nd."""

    scope: str | None
    state: State
    text: str

    @property
    def tell_manager(self) -> bool:
        return self.state != "ok"

    def to_wire(self) -> dict[str, str | None]:
        return {"type": "budget", "agent": self.scope, "state": self.state, "text": self.text}


def notice(
    scope: str | None, before: State, after: State, spend: Spend, budget: Budget
) -> Notice | None:
    """What to say when ``scope`` goes from ``before`` to ``after``; None if it stays."""
    if before == after:
        return None
    return Notice(scope, after, describe(scope, after, spend, budget))
