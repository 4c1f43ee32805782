"""``hive audit [--since …] [--agent …] [--limit N]`` and ``hive audit verify``."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from hyperhive.cli.render import clock, inline, table
from hyperhive.client import Client
from hyperhive.errors import HiveError

DURATION: Final = re.compile(r"(\d{1,9})([smhd])")
UNIT: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DETAIL_WIDTH: Final = 60


class AuditBroken(HiveError):
    code = "audit_broken"


async def command(client: Client, args: argparse.Namespace) -> tuple[Any, Callable[[Any], str]]:
    if args.action == "verify":
        result = await client.call("audit_verify")
        if not result["ok"]:
            raise AuditBroken(f"the audit log does not verify: {result['reason']}")
        return result, verified
    extra: dict[str, object] = {"limit": args.limit}
    if args.agent:
        extra["agent"] = args.agent
    if args.since is not None:
        extra["since"] = since_epoch(args.since, time.time())
    return await client.call("audit", **extra), entries


def since_epoch(given: str, now: float) -> float:
    """``30m``, ``2h``, ``7d`` ago, or an ISO time (UTC unless it says otherwise)."""
    found = DURATION.fullmatch(given.strip())
    if found:
        return now - int(found[1]) * UNIT[found[2]]
    try:
        when = datetime.fromisoformat(given.strip())
    except ValueError:
        raise HiveError(
            f"--since: expected a duration (30m, 2h, 7d) or an ISO time (got {given!r})"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def entries(result: dict[str, Any]) -> str:
    rows = result["entries"]
    if not rows:
        return "no audit entries"
    return table(
        [
            (e["id"], clock(e["at"]), e["actor"], e["via"], e["action"], e["agent"] or "-",
             _short(e["detail"]))
            for e in rows
        ],
        ("ID", "AT", "ACTOR", "VIA", "ACTION", "AGENT", "DETAIL"),
    )  # fmt: skip


def verified(result: dict[str, Any]) -> str:
    return f"audit log ok: {result['count']} entries, each chained to the one before"


def _short(detail: dict[str, Any]) -> str:
    text = inline(" ".join(f"{k}={_value(v)}" for k, v in detail.items()))
    return text if len(text) <= DETAIL_WIDTH else text[: DETAIL_WIDTH - 1] + "…"


def _value(value: object) -> str:
    if isinstance(value, dict) and "preview" in value:
        return f"{value['preview']}…"
    return str(value)
