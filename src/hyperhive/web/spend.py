"""The pure parts of the spend views: the budget form read as ``budget_set`` arguments,
the ``usage`` answer as rows, and the metering's bus events as the pages may see them.

No I/O: the dashboard and an agent's page at the front door both send a raised budget
through here, so a bad field is refused the same way everywhere, before any op runs. A
field is the text typed in the form (or a JSON number); an empty one leaves that limit as
it is, and "none" (or JSON null) lifts it.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from hyperhive.errors import BadRequest
from hyperhive.web.request_args import only

# Far beyond any hive's day; a typo of six extra zeros must not pass as a budget.
MAX_USD_PER_DAY: Final = 1_000_000.0
MAX_TOKENS_PER_DAY: Final = 10**12
MAX_FIELD_CHARS: Final = 32
_DECIMAL: Final = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)")
_INTEGER: Final = re.compile(r"\d+")
_SPACERS: Final = str.maketrans("", "", "_, ")  # "1_000_000", "1,000,000", "1 000 000"
COUNTERS: Final = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "tokens",
    "cost_usd",
)
SPEND_EVENTS: Final = frozenset({"usage", "budget"})
STATES: Final = frozenset({"ok", "warn", "paused"})
MAX_TEXT: Final = 500

# Typed in a budget box, each lifts that limit (the op's null).
LIFT_WORDS: Final = frozenset({"none", "no limit", "unlimited", "off"})
Budget = dict[str, float | int | None]


class _Lift:
    """A field that lifts its limit, as :func:`_amount` reads it."""


LIFT: Final = _Lift()


def budget_args(fields: dict[str, Any]) -> Budget:
    """``usd_per_day`` and/or ``tokens_per_day`` from ``fields``, checked; at least one.
    A lifted limit is ``None`` in the answer: ``budget_set``'s null."""
    only(fields, "usd_per_day", "tokens_per_day")
    args: Budget = {}
    usd = _amount(fields.get("usd_per_day", ""), "usd_per_day", MAX_USD_PER_DAY, integer=False)
    if usd is not None:
        args["usd_per_day"] = None if isinstance(usd, _Lift) else float(usd)
    tokens = _amount(fields.get("tokens_per_day", ""), "tokens_per_day", MAX_TOKENS_PER_DAY, True)
    if tokens is not None:
        args["tokens_per_day"] = None if isinstance(tokens, _Lift) else int(tokens)
    if not args:
        raise BadRequest(
            "give a budget: usd_per_day (dollars a day) and/or tokens_per_day, or none to lift one"
        )
    return args


def _amount(raw: Any, name: str, high: float, integer: bool) -> float | int | _Lift | None:
    """One limit, above 0 and at most ``high``; None when the field is blank, LIFT when it
    says none (or is JSON null)."""
    what = "a whole number of tokens, like 200000" if integer else "dollars, like 5 or 2.50"
    if raw is None:
        return LIFT
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise BadRequest(f"{name} must be {what}")
    if isinstance(raw, str):
        text = raw.strip().translate(_SPACERS)
        if raw.strip().lower() in LIFT_WORDS:
            return LIFT
        if not integer:
            text = text.removeprefix("$")
        if not text:
            return None
        pattern = _INTEGER if integer else _DECIMAL
        if len(text) > MAX_FIELD_CHARS or not pattern.fullmatch(text):
            shown = raw if len(raw) <= MAX_FIELD_CHARS else raw[:MAX_FIELD_CHARS] + "…"
            raise BadRequest(f"{name} must be {what} (got {shown!r})")
        value: float | int = int(text) if integer else float(text)
    else:
        value = raw
        if integer and isinstance(value, float):
            if not value.is_integer():
                raise BadRequest(f"{name} must be {what}")
            value = int(value) if math.isfinite(value) else value
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{name} must be {what}")
    if value <= 0:
        raise BadRequest(f"{name} must be above 0 (to stop an agent, stop it)")
    if value > high:
        raise BadRequest(f"{name} must be at most {high:,.0f}")
    return value


def described(budget: dict[str, Any]) -> str:
    """A budget in words: "$5.00/day · 200,000 tokens/day", or "no limit"."""
    usd, tokens = budget.get("usd_per_day"), budget.get("tokens_per_day")
    parts = []
    if usd is not None:
        parts.append(f"${usd:,.2f}/day")
    if tokens is not None:
        parts.append(f"{tokens:,} tokens/day")
    return " · ".join(parts) or "no limit"


def spent_fraction(today: dict[str, Any], budget: dict[str, Any]) -> float | None:
    """How much of its budget a day's usage is (the larger of dollars and tokens); None
    without a budget. The page's bar and the 80 % mark read it; it may exceed 1."""
    shares = []
    usd, tokens = budget.get("usd_per_day"), budget.get("tokens_per_day")
    if usd:
        shares.append(float(today.get("cost_usd", 0.0)) / float(usd))
    if tokens:
        shares.append(int(today.get("tokens", 0)) / int(tokens))
    return max(shares) if shares else None


def spend_rows(usage: dict[str, Any]) -> dict[str, Any]:
    """The ``usage`` op's answer as the spend view shows it: one row per agent (by name,
    so live updates never reorder them), each with its share of its budget, and the
    hive's total."""
    rows = []
    for name, entry in usage.get("agents", {}).items():
        today, budget = entry.get("today", {}), entry.get("budget", {})
        rows.append(
            {
                "agent": name,
                "today": today,
                "budget": budget,
                "state": entry.get("state", "ok"),
                "fraction": spent_fraction(today, budget),
            }
        )
    rows.sort(key=lambda r: str(r["agent"]))
    hive = dict(usage.get("hive", {}))
    hive["fraction"] = spent_fraction(hive.get("today", {}), hive.get("budget", {}))
    return {"agents": rows, "hive": hive}


def spend_event(event: dict[str, Any]) -> dict[str, Any]:
    """A ``usage`` or ``budget`` bus event with only the fields the pages show: numbers,
    a known state, a bounded text. Whatever else the metering may one day put in an event
    stays in the core, so no secret can ride along to a browser."""
    agent = event.get("agent")
    shown: dict[str, Any] = {
        "type": event.get("type"),
        "agent": agent if isinstance(agent, str) else None,
        "seq": event.get("seq"),
    }
    state = event.get("state")
    shown["state"] = state if state in STATES else "ok"
    if event.get("type") == "usage":
        today = event.get("today")
        counted = today if isinstance(today, dict) else {}
        shown["today"] = {
            k: v
            for k in COUNTERS
            if isinstance(v := counted.get(k, 0), int | float) and not isinstance(v, bool)
        }
    else:
        text = event.get("text")
        shown["text"] = text[:MAX_TEXT] if isinstance(text, str) else ""
    return shown


def concerns(event: dict[str, Any], agent: str) -> bool:
    """Whether an agent's page shows ``event``: its own usage and budget, and the hive's
    budget (a hive paused pauses every agent)."""
    kind, about = event.get("type"), event.get("agent")
    return (kind == "usage" and about == agent) or (kind == "budget" and about in (agent, None))
