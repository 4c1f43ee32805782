"""``hive dead``, ``hive retry``, ``hive drop``: dead letters for people (``--json`` gives
the ops' answers as they are). Bodies and reasons are agents' words: one line each,
escaped (see :func:`~hyperhive.cli.render.inline`)."""

from __future__ import annotations

from typing import Any

from hyperhive.cli.render import clock, inline, table

BODY_WIDTH = 40
REASON_WIDTH = 50


def dead_letters(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no dead letters"
    return table(
        [
            (
                d["id"],
                clock(d["dead_at"]),
                d["from"],
                d["to"],
                d["attempts"],
                _cut(d["dead_reason"] or "", REASON_WIDTH),
                _cut(d["body"], BODY_WIDTH, more=bool(d.get("truncated"))),
            )
            for d in rows
        ],
        ("ID", "DIED", "FROM", "TO", "TRIES", "REASON", "BODY"),
    )


def retried(m: dict[str, Any]) -> str:
    return inline(f"#{m['id']} is back in {m['to']}'s queue")


def dropped(d: dict[str, Any]) -> str:
    return inline(f"#{d['id']} to {d['to']} dropped for good by {d['dropped_by']}")


def _cut(text: str, width: int, *, more: bool = False) -> str:
    flat = inline(text)
    return flat if len(flat) <= width and not more else flat[: width - 1] + "…"
