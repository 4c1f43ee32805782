"""What the dashboard shows, and how it reads a posted request.

The views are JSON over a :class:`Hive`, shaped like the host socket's answers (the page and
``hive --json`` see the same fields). The readers check every field before anything is
called, so bad input is a 400 that changed nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import stat
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from starlette.requests import Request

from hyperhive.agent.settings import port_for
from hyperhive.core.agent_config import parse_agent_toml
from hyperhive.core.containers import agent_paths
from hyperhive.core.ops.agents import agent_tools
from hyperhive.errors import HiveError
from hyperhive.tokens import page_key
from hyperhive.web.bodies import BadInput, content_kind, json_object, read_text
from hyperhive.web.security import agent_page_host

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

MAX_BODY_BYTES: Final = 1024 * 1024  # a 256 KiB message, JSON-escaped, with room to spare
HISTORY_LIMIT: Final = 30
FLOW_LIMIT: Final = 200
FLOW_MAX: Final = 1000
RULES_LIMIT: Final = 200
DEAD_LIMIT: Final = 200
MAX_PRETTY: Final = 256 * 1024  # a 64 KiB input of tiny values indents to a lot more
MAX_MODEL_FILE: Final = 256

logger = logging.getLogger(__name__)


async def read_json(request: Request) -> dict[str, Any]:
    """The JSON object body of a request, bounded in size."""
    if content_kind(request) != "application/json":
        raise BadInput("send the fields as application/json")
    return json_object(await read_text(request, MAX_BODY_BYTES))


def only(fields: dict[str, Any], *allowed: str) -> None:
    """Refuse unknown fields, as the sockets do: a typo must not be silently ignored."""
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(unknown)}")


def text_field(fields: dict[str, Any], name: str, default: str | None = None) -> str:
    value = fields.get(name, default)
    if value is None:
        raise BadInput(f"missing field {name!r}")
    if not isinstance(value, str):
        raise BadInput(f"field {name!r} must be a string")
    return value


def int_param(raw: str | None, name: str, low: int, high: int) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18 or not low <= int(raw) <= high:
        raise BadInput(f"{name} must be an integer from {low} to {high}")
    return int(raw)


def path_id(raw: str, what: str) -> int:
    value = int_param(raw, what, 1, 2**62)
    if value is None:
        raise BadInput(f"missing {what}")
    return value


# -- agents ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    turns: int
    cost_usd: float
    input_tokens: int
    output_tokens: int


class StatsReader:
    """Cost and tokens so far, summed from the ``turn_end`` events of an agent's history.db.

    The file is written by the agent, so it is untrusted: opened read-only, never through a
    symlink, with SQLite's untrusted-schema guard on. Results are cached until the file (or
    its WAL) changes, because a long history makes the sum a full scan.
    """

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[tuple[int, ...], Stats | None]] = {}

    def read(self, db: Path) -> Stats | None:
        try:
            info = os.lstat(db)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        signature = (info.st_mtime_ns, info.st_size, *_wal_signature(db))
        cached = self._cache.get(db)
        if cached is not None and cached[0] == signature:
            return cached[1]
        stats = self._query(db)
        self._cache[db] = (signature, stats)
        return stats

    @staticmethod
    def _query(db: Path) -> Stats | None:
        try:
            conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=0.5)
        except sqlite3.Error:
            return None
        try:
            conn.execute("PRAGMA trusted_schema = OFF")
            conn.execute("PRAGMA query_only = ON")
            row = conn.execute(
                "SELECT count(*), total(json_extract(data, '$.cost_usd')),"
                " total(json_extract(data, '$.input_tokens')),"
                " total(json_extract(data, '$.output_tokens'))"
                " FROM events WHERE kind = 'turn_end'"
            ).fetchone()
            return Stats(int(row[0]), float(row[1]), int(row[2]), int(row[3]))
        except (sqlite3.Error, TypeError, ValueError) as exc:
            logger.debug("no stats from %s: %s", db, exc)
            return None
        finally:
            conn.close()


def _wal_signature(db: Path) -> tuple[int, int]:
    try:
        info = os.lstat(db.with_name(db.name + "-wal"))
    except OSError:
        return (0, 0)
    return (info.st_mtime_ns, info.st_size)


def agent_model(hive: Hive, name: str, state_dir: Path) -> str | None:
    """The model the agent runs: its persisted ``/model`` choice, else its applied config."""
    saved = state_dir / "hyperhive-model"
    try:
        if stat.S_ISREG(os.lstat(saved).st_mode):
            with saved.open("rb") as fh:
                text = fh.read(MAX_MODEL_FILE).decode("utf-8", "replace").strip()
            if text:
                return text
    except OSError:
        pass
    if not hive.has_containers:
        return None
    try:
        toml = hive.lifecycle.repos.read_applied(name, "agent.toml")
        return parse_agent_toml(toml).model if toml else None
    except HiveError:
        return None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def agents_view(hive: Hive, host: str, reader: StatsReader, token: str) -> dict[str, Any]:
    """Every agent for the dashboard viewed on ``host``; each page link carries that agent's
    page key (this view is only served behind the operator token)."""
    pending = hive.broker.pending()
    page_host = _url_host(agent_page_host(host))
    containers = hive.lifecycle.records.all() if hive.has_containers else {}
    rows = []
    # The manager first: it is the one the operator talks to most.
    for agent in sorted(hive.registry.all(), key=lambda a: (a.role != "manager", a.name)):
        paths = agent_paths(hive.config, agent.name)
        stats = await asyncio.to_thread(reader.read, paths.state / "history.db")
        record = containers.get(agent.name)
        rows.append(
            {
                **agent.to_wire(),
                "container": record.to_wire() if record else None,
                "pending": pending.get(agent.name, 0),
                "model": agent_model(hive, agent.name, paths.state),
                "tools": agent_tools(hive, agent.name) if record else None,
                "workspace": workspace_of(hive, agent.name),
                "stats": asdict(stats) if stats else None,
                "url": f"http://{page_host}:{port_for(agent.name)}/"
                f"?token={page_key(token, agent.name)}",
            }
        )
    return {"now": time.time(), "containers": hive.has_containers, "agents": rows}


def workspace_of(hive: Hive, name: str) -> dict[str, Any] | None:
    """What an agent's workspace was cloned from (a small file; the branch itself is
    :func:`work_view`, fetched when the page shows it)."""
    if not hive.has_containers:
        return None
    record = hive.lifecycle.workspaces.record(name)
    return record.to_wire() if record else None


async def work_view(hive: Hive, name: str, with_diff: bool = True) -> dict[str, Any]:
    """The ``work`` op's answer: branch, commits ahead, diffstat and diff (bounded)."""
    view = await hive.lifecycle.workspaces.view(name)
    return view if with_diff else {k: v for k, v in view.items() if k != "diff"}


# -- approvals, questions, messages -------------------------------------------------


async def approvals_view(hive: Hive) -> dict[str, Any]:
    listed = hive.governance.approvals(HISTORY_LIMIT)
    # Pending ApplyCommits carry their diff, so the operator reads what they approve.
    pending = [
        await hive.governance.show(a["id"]) if a["kind"] == "apply_commit" else a
        for a in listed["pending"]
    ]
    for a in pending:
        if a["kind"] == "tool_use":
            # Indented here, not in the browser: JavaScript would round big integers.
            a["input_pretty"] = pretty_input(a["input_json"])
    return {"now": time.time(), "pending": pending, "decided": listed["decided"]}


def pretty_input(canonical: str) -> str:
    """Indented for reading, unless indenting would blow it up: then as approved."""
    pretty = json.dumps(json.loads(canonical), indent=2, sort_keys=True, ensure_ascii=False)
    return pretty if len(pretty) <= MAX_PRETTY else canonical


def rules_view(hive: Hive) -> dict[str, Any]:
    """The operator's "always" rules, newest first; revoked ones are history."""
    rules = [r.to_wire() for r in hive.governance.tool_rules(None, RULES_LIMIT)]
    for r in rules:
        r["input_pretty"] = pretty_input(r["input_json"])
    return {"now": time.time(), "rules": rules}


def mark_waiting(view: dict[str, Any], hive: Hive, dashboard: str) -> None:
    """Flag the agents whose requests wait for the operator, and tell each agent's page
    where the dashboard is, so it can send the operator here to decide (no key in it)."""
    waiting = Counter(a.requester for a in hive.governance.queue.pending())
    for row in view["agents"]:
        row["waiting"] = waiting.get(row["name"], 0)
        row["url"] += "&" + urlencode({"dashboard": dashboard})


def questions_view(hive: Hive) -> dict[str, Any]:
    return {"now": time.time(), **hive.governance.questions(HISTORY_LIMIT)}


def dead_view(hive: Hive) -> dict[str, Any]:
    """The ``dead_letters`` op's answer: the live dead letters, bodies as previews."""
    return {"now": time.time(), "dead": hive.broker.dead.listing(None, DEAD_LIMIT)}


def messages_view(
    hive: Hive, agent: str | None, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    """The ``messages`` op's page: previews, capped in bytes, older than ``before``."""
    return hive.broker.page(agent, limit, before)
