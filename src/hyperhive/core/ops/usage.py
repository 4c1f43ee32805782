"""The operator's spend and budget ops (core/gateway/meter.py): ``usage``, ``usage_series``,
``budget_set`` and ``budget_resume``. Every argument is checked before anything changes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from hyperhive.core.gateway.budget import Override
from hyperhive.core.gateway.meter import Meter
from hyperhive.core.gateway.prices import NANO_PER_USD
from hyperhive.core.ops.audit import record
from hyperhive.core.ops.base import Caller, Services, agent_or_hive
from hyperhive.core.protocol import Args
from hyperhive.errors import BadRequest, HiveError

DEFAULT_DAYS: Final = 6  # a week with today
DEFAULT_SERIES_SECONDS: Final = 24 * 3600.0
DEFAULT_BUCKET: Final = 300
MIN_BUCKET: Final = 60
MAX_BUCKET: Final = 86400
MAX_USD: Final = 1_000_000
MAX_TOKENS: Final = 10**12


class MeteringOff(HiveError):
    code = "metering_off"


def _meter(s: Services) -> Meter:
    if s.meter is None:
        raise MeteringOff("this hive-c0re meters nothing")
    return s.meter


def _since_day(args: Args, today: str) -> str:
    raw = args.raw("since")
    if raw is None:
        start = datetime.strptime(today, "%Y-%m-%d") - timedelta(days=DEFAULT_DAYS)
        return start.strftime("%Y-%m-%d")
    try:
        if not isinstance(raw, str) or len(raw) != 10:
            raise ValueError
        datetime.strptime(raw, "%Y-%m-%d")
    except ValueError:
        raise BadRequest(f"argument 'since' must be a day as YYYY-MM-DD (got {raw!r})") from None
    return raw


def scope_wire(meter: Meter, scope: str | None) -> dict[str, Any]:
    return {
        "today": meter.today(scope).to_wire(),
        "budget": meter.budget(scope).to_wire(),
        "state": meter.state(scope),
    }


async def usage(s: Services, caller: Caller, args: Args) -> Any:
    meter = _meter(s)
    agent = agent_or_hive(s, args)
    since = _since_day(args, meter.day)
    args.finish()
    days = [
        {"agent": name, "day": day, **spend.to_wire()}
        for name, day, spend in meter.ledger.days(agent, since)
    ]
    names = [agent] if agent is not None else [a.name for a in s.registry.all()]
    return {
        "days": days,
        "agents": {name: scope_wire(meter, name) for name in names},
        "hive": scope_wire(meter, None),
        "day": meter.day,
    }


async def usage_series(s: Services, caller: Caller, args: Args) -> Any:
    meter = _meter(s)
    agent = agent_or_hive(s, args)
    now = datetime.now(UTC).timestamp()
    since = args.number("since", now - DEFAULT_SERIES_SECONDS, 0.0, now + 86400)
    bucket = args.integer("bucket", DEFAULT_BUCKET, MIN_BUCKET, MAX_BUCKET)
    args.finish()
    found = meter.ledger.series(agent, since, bucket)
    return {
        "bucket": bucket,
        "series": {
            name: [[start, cost / NANO_PER_USD, tokens] for start, cost, tokens in points]
            for name, points in found.items()
        },
    }


def _usd_arg(args: Args) -> tuple[bool, int | None]:
    if not args.given("usd_per_day"):
        return False, None
    value = args.raw("usd_per_day")
    if value is None:
        return True, None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_USD
    ):
        raise BadRequest(
            f"argument 'usd_per_day' must be a positive number of dollars up to {MAX_USD}, "
            f"or null for no limit (got {value!r})"
        )
    return True, round(value * NANO_PER_USD)


def _tokens_arg(args: Args) -> tuple[bool, int | None]:
    if not args.given("tokens_per_day"):
        return False, None
    value = args.raw("tokens_per_day")
    if value is None:
        return True, None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_TOKENS:
        raise BadRequest(
            f"argument 'tokens_per_day' must be a positive integer up to {MAX_TOKENS}, "
            f"or null for no limit (got {value!r})"
        )
    return True, value


async def budget_set(s: Services, caller: Caller, args: Args) -> Any:
    """The operator's budget for an agent (or, without ``agent``, the hive): an absent
    field keeps its value, ``null`` lifts that limit."""
    meter = _meter(s)
    agent = agent_or_hive(s, args)
    set_usd, nusd = _usd_arg(args)
    set_tokens, tokens = _tokens_arg(args)
    args.finish()
    if not set_usd and not set_tokens:
        raise BadRequest("give usd_per_day or tokens_per_day (null lifts a limit)")
    state = meter.set_budget(agent, Override(set_usd, nusd, set_tokens, tokens))
    detail: dict[str, Any] = {"state": state}
    if set_usd:
        detail["usd_per_day"] = None if nusd is None else nusd / NANO_PER_USD
    if set_tokens:
        detail["tokens_per_day"] = tokens
    record(s, caller, "budget_set", agent, detail)
    return {"agent": agent, "budget": meter.budget(agent).to_wire(), "state": state}


async def budget_resume(s: Services, caller: Caller, args: Args) -> Any:
    """No budget pause for ``agent`` (or, without it, the hive) for the rest of today."""
    meter = _meter(s)
    agent = agent_or_hive(s, args)
    args.finish()
    state = meter.resume(agent)
    record(s, caller, "budget_resumed", agent, {"state": state})
    return {"agent": agent, "state": state}
