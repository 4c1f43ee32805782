"""The spend ledger in sqlite (migration 7 of core/store.py): what each agent used per UTC
day and per time bucket, the operator's budget overrides, and the log of pauses and
resumes.

Every write is one short upsert on a primary key, run on the event loop thread like the
broker's. Scope ``None`` (stored as ``''``, which no agent name can be) is the hive.
"""

from __future__ import annotations

from typing import Final

from hyperhive.core.db import Database
from hyperhive.core.gateway.budget import Override, Spend
from hyperhive.core.gateway.seams import Usage

__all__ = ["BUCKET_SECONDS", "Ledger"]

BUCKET_SECONDS: Final = 60
# The plot looks back a day or a week; older buckets are dropped (the days stay).
KEEP_BUCKETS_SECONDS: Final = 35 * 86400
_PRUNE_EVERY: Final = 3600.0
HIVE: Final = ""
_DAY_COLUMNS: Final = (
    "requests, input_tokens, output_tokens, cache_creation_input_tokens,"
    " cache_read_input_tokens, cost_nusd"
)


def _scope(scope: str | None) -> str:
    return HIVE if scope is None else scope


def _spend(row: tuple[int, ...] | None) -> Spend:
    if row is None:
        return Spend()
    requests, i, o, cw, cr, cost = (int(v or 0) for v in row)
    return Spend(requests, Usage(i, o, cw, cr), cost)


def _total(column: str) -> str:
    # sqlite's total() is not PostgreSQL's; sum() of no rows is NULL in both, and of
    # BIGINTs a NUMERIC in PostgreSQL: cast back to a plain integer.
    return f"CAST(coalesce(sum({column}), 0) AS BIGINT)"


_COLUMNS: Final = tuple(c.strip() for c in _DAY_COLUMNS.split(","))
_SPEND_WITH_HIVE: Final = (
    "SELECT "
    + ", ".join(_total(f"CASE WHEN agent = ? THEN {c} ELSE 0 END") for c in _COLUMNS)
    + ", "
    + ", ".join(_total(c) for c in _COLUMNS)
    + " FROM usage_days WHERE day = ?"
)


class Ledger:
    def __init__(self, conn: Database) -> None:
        self._conn = conn
        self._pruned_at = float("-inf")

    # -- spend ----------------------------------------------------------------------

    def add(
        self, agent: str, day: str, at: float, usage: Usage, cost_nusd: int, *, unpriced: bool
    ) -> None:
        """One response of ``agent``'s, at unix time ``at`` (UTC ``day``), in one commit."""
        start = int(at) - int(at) % BUCKET_SECONDS
        with self._conn.transaction():
            self._conn.execute(
                "INSERT INTO usage_days (agent, day, requests, input_tokens, output_tokens,"
                " cache_creation_input_tokens, cache_read_input_tokens, cost_nusd, unpriced)"
                " VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent, day) DO UPDATE SET"
                " requests = usage_days.requests + 1,"
                " input_tokens = usage_days.input_tokens + excluded.input_tokens,"
                " output_tokens = usage_days.output_tokens + excluded.output_tokens,"
                " cache_creation_input_tokens ="
                "  usage_days.cache_creation_input_tokens + excluded.cache_creation_input_tokens,"
                " cache_read_input_tokens ="
                "  usage_days.cache_read_input_tokens + excluded.cache_read_input_tokens,"
                " cost_nusd = usage_days.cost_nusd + excluded.cost_nusd,"
                " unpriced = usage_days.unpriced + excluded.unpriced",
                (
                    agent,
                    day,
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.cache_creation_input_tokens,
                    usage.cache_read_input_tokens,
                    cost_nusd,
                    int(unpriced),
                ),
            )
            self._conn.execute(
                "INSERT INTO usage_buckets (agent, start, requests, tokens, cost_nusd)"
                " VALUES (?, ?, 1, ?, ?) ON CONFLICT (agent, start) DO UPDATE SET"
                " requests = usage_buckets.requests + 1,"
                " tokens = usage_buckets.tokens + excluded.tokens,"
                " cost_nusd = usage_buckets.cost_nusd + excluded.cost_nusd",
                (agent, start, usage.tokens, cost_nusd),
            )
        if at - self._pruned_at >= _PRUNE_EVERY:
            self._pruned_at = at
            self._conn.execute(
                "DELETE FROM usage_buckets WHERE start < ?", (at - KEEP_BUCKETS_SECONDS,)
            )

    def spend(self, agent: str, day: str) -> Spend:
        return _spend(
            self._conn.execute(
                f"SELECT {_DAY_COLUMNS} FROM usage_days WHERE agent = ? AND day = ?",
                (agent, day),
            ).fetchone()
        )

    def spend_by_agent(self, day: str) -> dict[str, Spend]:
        rows = self._conn.execute(
            f"SELECT agent, {_DAY_COLUMNS} FROM usage_days WHERE day = ?", (day,)
        )
        return {row[0]: _spend(row[1:]) for row in rows}

    def hive_spend(self, day: str) -> Spend:
        sums = ", ".join(_total(c.strip()) for c in _DAY_COLUMNS.split(","))
        return _spend(
            self._conn.execute(f"SELECT {sums} FROM usage_days WHERE day = ?", (day,)).fetchone()
        )

    def spend_with_hive(self, agent: str, day: str) -> tuple[Spend, Spend]:
        """``agent``'s spend on ``day`` and the hive's, in one read (the gateway's, after
        every response: cheaper than two, and the day's rows are summed for the hive anyway)."""
        row = self._conn.execute(_SPEND_WITH_HIVE, (agent,) * len(_COLUMNS) + (day,)).fetchone()
        return _spend(row[: len(_COLUMNS)]), _spend(row[len(_COLUMNS) :])

    def days(self, agent: str | None, since: str) -> list[tuple[str, str, Spend]]:
        """``(agent, day, spend)`` from UTC day ``since`` on, by day then agent."""
        where, params = "day >= ?", [since]
        if agent is not None:
            where, params = "day >= ? AND agent = ?", [since, agent]
        rows = self._conn.execute(
            f"SELECT agent, day, {_DAY_COLUMNS} FROM usage_days WHERE {where} ORDER BY day, agent",
            params,
        )
        return [(row[0], row[1], _spend(row[2:])) for row in rows]

    def unpriced(self, day: str) -> int:
        """How many of ``day``'s responses were of a model the price table does not name."""
        row = self._conn.execute(
            f"SELECT {_total('unpriced')} FROM usage_days WHERE day = ?", (day,)
        ).fetchone()
        return int(row[0])

    def series(
        self, agent: str | None, since: float, bucket: int
    ) -> dict[str, list[tuple[int, int, int]]]:
        """``{agent: [(bucket_start, cost_nusd, tokens), …]}`` for buckets with traffic
        since unix time ``since``; each stored bucket falls wholly in the one it starts in."""
        params: list[object] = [int(since) - int(since) % BUCKET_SECONDS]
        where = "start >= ?"
        if agent is not None:
            where, params = "start >= ? AND agent = ?", [*params, agent]
        rows = self._conn.execute(
            f"SELECT agent, start - start % {int(bucket)} AS b, {_total('cost_nusd')},"
            f" {_total('tokens')} FROM usage_buckets WHERE {where}"
            " GROUP BY agent, b ORDER BY agent, b",
            params,
        )
        series: dict[str, list[tuple[int, int, int]]] = {}
        for name, start, cost, tokens in rows:
            series.setdefault(name, []).append((int(start), int(cost), int(tokens)))
        return series

    # -- budgets ----------------------------------------------------------------------

    def override(self, scope: str | None) -> Override:
        row = self._conn.execute(
            "SELECT has_usd, usd_nusd, has_tokens, tokens FROM budget_overrides WHERE scope = ?",
            (_scope(scope),),
        ).fetchone()
        return Override() if row is None else Override(bool(row[0]), row[1], bool(row[2]), row[3])

    def overrides(self, agent: str) -> tuple[Override, Override]:
        """``agent``'s override and the hive's, in one read."""
        rows = self._conn.execute(
            "SELECT scope, has_usd, usd_nusd, has_tokens, tokens FROM budget_overrides"
            " WHERE scope IN (?, ?)",
            (agent, HIVE),
        ).fetchall()
        found = {scope: Override(bool(a), b, bool(c), d) for scope, a, b, c, d in rows}
        return found.get(agent, Override()), found.get(HIVE, Override())

    def set_override(self, scope: str | None, override: Override, at: float) -> None:
        self._conn.execute(
            "INSERT INTO budget_overrides (scope, has_usd, usd_nusd, has_tokens, tokens, set_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET"
            " has_usd = excluded.has_usd, usd_nusd = excluded.usd_nusd,"
            " has_tokens = excluded.has_tokens, tokens = excluded.tokens,"
            " set_at = excluded.set_at",
            (
                _scope(scope),
                int(override.set_usd),
                override.nusd_per_day,
                int(override.set_tokens),
                override.tokens_per_day,
                at,
            ),
        )

    # -- pauses and resumes -------------------------------------------------------------

    def note(self, scope: str | None, day: str, what: str, text: str, at: float) -> None:
        """A change of state (warn, paused, ok) or the operator's resume, for the record."""
        self._conn.execute(
            "INSERT INTO budget_log (scope, day, what, text, at) VALUES (?, ?, ?, ?, ?)",
            (_scope(scope), day, what, text, at),
        )

    def resumed(self, day: str) -> set[str | None]:
        """The scopes the operator resumed on ``day`` (None: the hive)."""
        rows = self._conn.execute(
            "SELECT DISTINCT scope FROM budget_log WHERE day = ? AND what = 'resumed'", (day,)
        )
        return {None if scope == HIVE else str(scope) for (scope,) in rows}

    def log(self, scope: str | None, limit: int = 50) -> list[dict[str, object]]:
        rows = self._conn.execute(
            "SELECT day, what, text, at FROM budget_log WHERE scope = ? ORDER BY id DESC LIMIT ?",
            (_scope(scope), limit),
        )
        return [{"day": d, "what": w, "text": t, "at": a} for d, w, t, a in rows]
