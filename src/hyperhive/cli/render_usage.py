"""``hive usage`` and ``hive budget`` for people (``--json`` gives the ops' answers as they
are): spend per day per agent, and today's state against each budget."""

from __future__ import annotations

from typing import Any

from hyperhive.cli.render import inline, table


def money(usd: float | None) -> str:
    """Cents from a cent up; below it enough decimals that a small spend is not "$0.00"."""
    if usd is None:
        return "-"
    return f"${usd:,.2f}" if usd >= 0.01 or usd == 0 else f"${usd:.6f}"


def _tokens(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _budget(b: dict[str, Any]) -> str:
    parts = []
    if b.get("usd_per_day") is not None:
        parts.append(f"{money(b['usd_per_day'])}/day")
    if b.get("tokens_per_day") is not None:
        parts.append(f"{_tokens(b['tokens_per_day'])} tokens/day")
    return ", ".join(parts) or "none"


def _spent(t: dict[str, Any]) -> str:
    return f"{money(t['cost_usd'])}, {_tokens(t['tokens'])} tokens"


def usage(u: dict[str, Any]) -> str:
    rows = [
        (
            d["day"],
            d["agent"],
            d["requests"],
            _tokens(d["input_tokens"]),
            _tokens(d["output_tokens"]),
            _tokens(d["cache_creation_input_tokens"]),
            _tokens(d["cache_read_input_tokens"]),
            money(d["cost_usd"]),
        )
        for d in u["days"]
    ]
    headers = ("DAY", "AGENT", "REQUESTS", "IN", "OUT", "CACHE WRITE", "CACHE READ", "COST")
    spent = table(rows, headers) if rows else "no model requests in these days"
    today = [
        (name, a["state"], _spent(a["today"]), _budget(a["budget"]))
        for name, a in sorted(u["agents"].items())
    ]
    hive = u["hive"]
    today.append(("(hive)", hive["state"], _spent(hive["today"]), _budget(hive["budget"])))
    states = table(today, ("AGENT", "STATE", "TODAY", "BUDGET"))
    return f"{spent}\n\ntoday ({inline(u.get('day', 'UTC'))}, UTC):\n{states}"


def budget_set(b: dict[str, Any]) -> str:
    who = "the hive" if b.get("agent") is None else b["agent"]
    return inline(f"{who}: budget {_budget(b['budget'])}; state {b['state']}")


def resumed(r: dict[str, Any]) -> str:
    who = "the hive" if r.get("agent") is None else r["agent"]
    return inline(f"{who} resumed for the rest of today (UTC); state {r['state']}")
