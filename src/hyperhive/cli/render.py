"""Plain-text rendering of the core's answers for people (``--json`` skips this)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "-"
    return str(value).replace("\n", " ")


def clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def agents(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no agents"
    return table(
        [(a["name"], a["role"], a["allow_send"], a["pending"], a["socket"]) for a in rows],
        ("NAME", "ROLE", "ALLOW_SEND", "PENDING", "SOCKET"),
    )


def messages(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no messages"
    return table(
        [
            (m["id"], clock(m["created_at"]), m["from"], m["to"], m["kind"], _short(m["body"]))
            for m in rows
        ],
        ("ID", "AT", "FROM", "TO", "KIND", "BODY"),
    )


def status(s: dict[str, Any]) -> str:
    pending = ", ".join(f"{k}={v}" for k, v in sorted(s["pending"].items())) or "none"
    refusals = ", ".join(f"{k}={v}" for k, v in sorted(s["refusals"].items())) or "none"
    return "\n".join(
        [
            f"hive-c0re {s['version']} pid {s['pid']} up {s['uptime_s']:.0f}s",
            f"state   {s['state_dir']}",
            f"run     {s['run_dir']}",
            f"agents  {s['agents']}",
            f"pending {pending}",
            f"refused {refusals}",
        ]
    )


def event(e: dict[str, Any]) -> str:
    if e.get("type") == "message":
        m = e["message"]
        head = f"{clock(m['created_at'])} #{m['id']} {m['from']} → {m['to']}"
        return f"{head} [{m['kind']}] {m['body']}"
    return f"{clock(time.time())} {e.get('type')} " + " ".join(
        f"{k}={v}" for k, v in e.items() if k not in ("type", "seq")
    )


def _short(body: str, width: int = 60) -> str:
    flat = body.replace("\n", " ")
    return flat if len(flat) <= width else flat[: width - 1] + "…"
