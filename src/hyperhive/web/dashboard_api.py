"""What the dashboard shows: its JSON views, each read through the :class:`OperatorDesk`.

Each view is the answer of the same op on ``host.sock`` (the page and ``hive --json`` see
the same fields), with what only the page needs added: links to agents' pages, their saved
``/model`` choice and cost so far, and the pretty form of tool inputs.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from collections.abc import Awaitable
from typing import Any, Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hyperhive.core.operator_desk import OperatorDesk
from hyperhive.errors import HiveError
from hyperhive.tokens import page_key
from hyperhive.web.agent_states import AgentStates
from hyperhive.web.answers import NO_STORE, refused, view
from hyperhive.web.dashboard_state import dashboard_of
from hyperhive.web.listing_cache import Rendered
from hyperhive.web.request_args import int_param
from hyperhive.web.security import agent_page_host

HISTORY_LIMIT: Final = 30
# Backends whose agents each have a network namespace (backends/user_net.py, nixos).
OWN_NETWORK: Final = frozenset({"bwrap", "nixos"})
FLOW_LIMIT: Final = 200
FLOW_MAX: Final = 1000
RULES_LIMIT: Final = 200
DEAD_LIMIT: Final = 200
MAX_PRETTY: Final = 256 * 1024  # a 64 KiB input of tiny values indents to a lot more


# -- the endpoints -------------------------------------------------------------------


async def agents(request: Request) -> Response:
    state = dashboard_of(request)
    host, base = request.url.hostname or "127.0.0.1", str(request.base_url)

    async def render() -> Rendered:
        shown = await agents_view(state.desk, host, state.states, state.token)
        await mark_waiting(shown, state.desk, base)
        await mark_stalled(shown["agents"], state.desk)
        return Rendered(bytes(JSONResponse(shown).body), len(shown["agents"]))

    try:
        # A big hive's listing may be served again (web/listing_cache.py).
        body = await state.listings.of((host, base), render).get()
    except HiveError as exc:
        return refused(exc)
    return Response(body, media_type="application/json", headers=NO_STORE)


async def approvals(request: Request) -> Response:
    return await _shown(approvals_view(dashboard_of(request).desk))


async def questions(request: Request) -> Response:
    return await _shown(questions_view(dashboard_of(request).desk))


async def rules(request: Request) -> Response:
    return await _shown(rules_view(dashboard_of(request).desk))


async def dead(request: Request) -> Response:
    return await _shown(dead_view(dashboard_of(request).desk))


async def work(request: Request) -> Response:
    # ?diff=0: the line and the commits only, for a page refreshing a closed view.
    with_diff = request.query_params.get("diff") != "0"
    desk = dashboard_of(request).desk
    return await _shown(work_view(desk, request.path_params["name"], with_diff))


async def messages(request: Request) -> Response:
    desk = dashboard_of(request).desk
    query = request.query_params
    try:
        limit = int_param(query.get("limit"), "limit", 1, FLOW_MAX)
        before = int_param(query.get("before"), "before", 1, 2**62)
    except HiveError as exc:
        return refused(exc)
    agent = query.get("agent") or None
    return await _shown(messages_view(desk, agent, limit or FLOW_LIMIT, before))


async def _shown(reading: Awaitable[Any]) -> Response:
    """The view ``reading`` (an awaitable) gives, or why the hive would not give it."""
    try:
        return view(await reading)
    except HiveError as exc:
        return refused(exc)


# -- the views -----------------------------------------------------------------------


async def agents_view(
    desk: OperatorDesk, host: str, states: AgentStates, token: str
) -> dict[str, Any]:
    """Every agent for the dashboard viewed on ``host``. ``page`` is its page behind the
    dashboard's own door (relative to it), or, for an agent another host runs, behind that
    host's front door; ``url`` the page on its own port, carrying that agent's page key
    (this view is only served behind the operator token)."""
    listed: list[dict[str, Any]] = await desk.call("agents")
    page_host = _url_host(agent_page_host(host))
    # The manager first: it is the one the operator talks to most.
    listed.sort(key=lambda a: (a["role"] != "manager", a["name"]))
    # What each wrote in its /state, in one trip to a thread (web/agent_states.py).
    found = await states.of([r["name"] for r in listed], desk.state_dir_of)
    rows = []
    for row, (model, stats) in zip(listed, found, strict=True):
        name = row["name"]
        row.pop("socket", None)  # a host path, of no use to a browser
        key = _page_key(token, name)
        row["model"] = model or row.get("model")
        row["stats"] = stats.to_wire() if stats else None
        row["page"] = f"agents/{name}/"
        door = row.get("host_url")
        if row["elsewhere"]:
            row["page"] = f"{door.rstrip('/')}/agents/{name}/" if door else None
        port = row.get("port") if _port_reachable(row) and not row["elsewhere"] else None
        row["url"] = f"http://{page_host}:{port}/?token={key}" if port is not None else None
        rows.append(row)
    return {
        "now": time.time(),
        "containers": await _has_containers(desk),
        "agents": rows,
        "hosts": len({r.get("host") for r in rows}),
        "tool_sets": shared_tool_sets(rows),
    }


def shared_tool_sets(rows: list[dict[str, Any]]) -> list[Any]:
    """Each distinct tool policy once; a row's ``tools`` becomes its index. At 200 agents
    the same defaults repeated were 40 % of the listing's bytes and of its encoding."""
    sets: list[Any] = []
    index: dict[int, int] = {}
    for row in rows:
        tools = row.get("tools")
        if tools is None:
            continue
        # The op hands equal policies out as one shared object (ops/agents.py _shown),
        # alive through this call: its id names it.
        if id(tools) not in index:
            index[id(tools)] = len(sets)
            sets.append(tools)
        row["tools"] = index[id(tools)]
    return sets


def _port_reachable(row: dict[str, Any]) -> bool:
    """Whether the host reaches the agent's own port: on a backend that gives each agent
    a network of its own (its 127.0.0.1 is its own) only while the core relays the port
    (core/page_relay.py); the front door (``page``) reaches every agent."""
    if row.get("port_relayed") is not None:
        return bool(row["port_relayed"])
    container = row.get("container") or {}
    return container.get("backend") not in OWN_NETWORK


async def _has_containers(desk: OperatorDesk) -> bool:
    status: dict[str, Any] = await desk.call("status")
    return bool(status["containers"])


async def mark_waiting(shown: dict[str, Any], desk: OperatorDesk, dashboard: str) -> None:
    """Flag the agents whose requests wait for the operator, and tell each agent's page
    where the dashboard is, so it can send the operator here to decide (no key in it)."""
    listed = await desk.call("approvals", limit=1)
    waiting = Counter(a["requester"] for a in listed["pending"])
    suffix = "&" + urlencode({"dashboard": dashboard})  # the same for every row
    for row in shown["agents"]:
        row["waiting"] = waiting.get(row["name"], 0)
        if row["url"] is not None:
            row["url"] += suffix


async def mark_stalled(rows: list[dict[str, Any]], desk: OperatorDesk) -> None:
    """Flag each agent whose turn or lease is stalled (core/stall_watch.py) with the
    ``stall`` events that say so; an approval stalls on its own card, not on the row."""
    current: list[dict[str, Any]] = await desk.call("stalls")
    for row in rows:
        row["stalled"] = [
            s for s in current if s["agent"] == row["name"] and s["what"] in ("thinking", "lease")
        ]


# An HMAC per agent per listing adds up at 200 agents; the token is fixed for the app.
_page_key = functools.lru_cache(maxsize=4096)(page_key)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def work_view(desk: OperatorDesk, name: str, with_diff: bool = True) -> dict[str, Any]:
    """The ``work`` op's answer: branch, commits ahead, diffstat and diff (bounded)."""
    shown: dict[str, Any] = await desk.call("work", name=name)
    return shown if with_diff else {k: v for k, v in shown.items() if k != "diff"}


async def approvals_view(desk: OperatorDesk) -> dict[str, Any]:
    listed = await desk.call("approvals", limit=HISTORY_LIMIT)
    # Pending ApplyCommits carry their diff, so the operator reads what they approve.
    pending = [
        await desk.call("approval", id=a["id"]) if a["kind"] == "apply_commit" else a
        for a in listed["pending"]
    ]
    stalled = {s["id"]: s for s in await desk.call("stalls") if s["what"] == "approval"}
    for a in pending:
        a["stalled"] = stalled.get(a["id"])
        if a["kind"] == "tool_use":
            # Indented here, not in the browser: JavaScript would round big integers.
            a["input_pretty"] = pretty_input(a["input_json"])
    return {"now": time.time(), "pending": pending, "decided": listed["decided"]}


def pretty_input(canonical: str) -> str:
    """Indented for reading, unless indenting would blow it up: then as approved."""
    pretty = json.dumps(json.loads(canonical), indent=2, sort_keys=True, ensure_ascii=False)
    return pretty if len(pretty) <= MAX_PRETTY else canonical


async def rules_view(desk: OperatorDesk) -> dict[str, Any]:
    """The operator's "always" rules, newest first; revoked ones are history."""
    listed: list[dict[str, Any]] = await desk.call("tool_rules", limit=RULES_LIMIT)
    for r in listed:
        r["input_pretty"] = pretty_input(r["input_json"])
    return {"now": time.time(), "rules": listed}


async def questions_view(desk: OperatorDesk) -> dict[str, Any]:
    return {"now": time.time(), **await desk.call("questions", limit=HISTORY_LIMIT)}


async def dead_view(desk: OperatorDesk) -> dict[str, Any]:
    """The ``dead_letters`` op's answer: the live dead letters, bodies as previews."""
    return {"now": time.time(), "dead": await desk.call("dead_letters", limit=DEAD_LIMIT)}


async def messages_view(
    desk: OperatorDesk, agent: str | None, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    """The ``messages`` op's page: previews, capped in bytes, older than ``before``."""
    page: list[dict[str, Any]] = await desk.call(
        "messages", agent=agent, limit=limit, before=before
    )
    return page
