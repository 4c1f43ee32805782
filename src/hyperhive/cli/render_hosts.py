"""``hive hosts`` for people (``--json`` gives the op's answer as it is): the cores sharing
the store, this one marked, each with its beat and its load."""

from __future__ import annotations

import time
from typing import Any, Final

from hyperhive.cli.render import table

THIS: Final = " (this)"
_MIB: Final = 1024 * 1024
_GIB: Final = 1024 * _MIB


def hosts(answer: dict[str, Any], now: float | None = None) -> str:
    """``now``: the time ages are measured from (the CLI's clock; the core's is the same
    machine's)."""
    rows = answer["hosts"]
    if not rows:
        return "no hosts"
    at = time.time() if now is None else now
    return table(
        [
            (
                h["name"] + (THIS if h["name"] == answer["this"] else ""),
                # A core started with --no-containers: never a spawn's host.
                h["state"] + (" (no containers)" if h.get("runs_agents") is False else ""),
                len(h["agents"]),
                _load(h),
                _memory(h["mem_available"]),
                _age(h["heartbeat_at"], at),
                h["url"],
            )
            for h in rows
        ],
        ("HOST", "STATE", "AGENTS", "LOAD", "FREE", "BEAT", "URL"),
    )


def _load(h: dict[str, Any]) -> str | None:
    if h["load"] is None:
        return None
    return f"{h['load']:.2f}/{h['cpus']}"


def _memory(size: int | None) -> str | None:
    if size is None:
        return None
    return f"{size / _GIB:.1f} GiB" if size >= _GIB else f"{size // _MIB} MiB"


def _age(at: float | None, now: float) -> str | None:
    """How long ago, in its largest unit; a beat "from the future" (clocks of two hosts
    apart) is shown as just now."""
    if at is None:
        return None
    seconds = max(0, int(now - at))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"
