"""Plain-text rendering of the core's answers for people (``--json`` skips this).

Everything printed passes :func:`safe` (``main`` applies it to every line it writes):
bodies, questions, reasons and logs come from agents, and a terminal obeys the control
characters in them (clear the screen, set the title, OSC 52 writes the clipboard).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any, Final

# C0 and C1 controls and DEL, which terminals act on, and the bidi overrides, which make
# text read differently from what it is. A block keeps its newlines and tabs.
_UNSAFE_IN_BLOCK: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_IN_LINE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED: Final = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe(text: str) -> str:
    """``text`` with every control character shown escaped (``\\x1b``), newlines and tabs kept."""
    return _UNSAFE_IN_BLOCK.sub(_escaped, text)


def inline(value: object) -> str:
    """``value`` as one safe line: newlines and tabs are escaped too."""
    return _UNSAFE_IN_LINE.sub(_escaped, str(value))


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    cells = [[inline(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(map(inline, value)) or "-"
    return inline(value)


def clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _agent_state(a: dict[str, Any]) -> str:
    c = a.get("container")
    if not c:
        return "external"
    return f"{c['state']} ({c['last_error']})" if c.get("last_error") else str(c["state"])


def agents(rows: list[dict[str, Any]]) -> str:
    """A HOST column once the agents are on more than one host: one host's hive stays
    as it was."""
    if not rows:
        return "no agents"
    hosts = len({a.get("host") for a in rows}) > 1
    return table(
        [
            (
                a["name"],
                a["role"],
                *((_agent_host(a),) if hosts else ()),
                _agent_state(a),
                a.get("port"),
                a["allow_send"],
                a["pending"],
                a["socket"],
            )
            for a in rows
        ],
        (
            "NAME",
            "ROLE",
            *(("HOST",) if hosts else ()),
            *("STATE", "PORT", "ALLOW_SEND", "PENDING", "SOCKET"),
        ),
    )


def _agent_host(a: dict[str, Any]) -> str:
    """Its host, and the host's state when that is not up: an agent there may be gone."""
    state = a.get("host_state")
    return str(a["host"]) + (f" ({state})" if state not in (None, "up") else "")


def agent(a: dict[str, Any]) -> str:
    """One agent, with the tool policy its container runs with."""
    lines = [
        inline(f"{a['name']} ({a['role']}) — {_agent_state(a)}"),
        inline(f"allow_send {_cell(a['allow_send'])}"),
        inline(f"pending    {a['pending']}"),
        inline(f"port       {_cell(a.get('port'))}"),
        inline(f"socket     {a['socket']}"),
    ]
    tools = a.get("tools")
    if not tools:
        lines.append("tools      - (no container: its own harness decides)")
        return "\n".join(lines)
    lines.append("tools:")
    for key in ("allow", "ask", "deny"):
        default = " (default)" if tools["default"][key] else ""
        lines.append(inline(f"  {key:<5}{default} {_cell(tools[key])}"))
    return "\n".join(lines)


def messages(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no messages"
    return table(
        [
            (m["id"], clock(m["created_at"]), m["from"], m["to"], m["kind"], _preview(m))
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


def message(m: dict[str, Any]) -> str:
    """One whole message: a header line, then its body as a block."""
    head = f"#{m['id']} {clock(m['created_at'])} {m['from']} → {m['to']} [{m['kind']}]"
    lines = [inline(head)]
    if m.get("payload") is not None:
        lines.append(inline(f"payload: {m['payload']}"))
    if m.get("truncated"):
        lines.append(f"(first part only of {m['size']} bytes: hive message {m['id']})")
    return "\n".join([*lines, "", safe(m["body"])])


def event(e: dict[str, Any]) -> str:
    """One line per event, whatever the body holds."""
    if e.get("type") == "message":
        m = e["message"]
        head = f"{clock(m['created_at'])} #{m['id']} {m['from']} → {m['to']}"
        more = "…" if m.get("truncated") else ""
        return inline(f"{head} [{m['kind']}] {m['body']}") + more
    return inline(
        f"{clock(time.time())} {e.get('type')} "
        + " ".join(f"{k}={v}" for k, v in e.items() if k not in ("type", "seq"))
    )


def _short(body: str, width: int = 60) -> str:
    flat = inline(body)
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _preview(m: dict[str, Any], width: int = 60) -> str:
    if not m.get("truncated"):
        return _short(m["body"], width)
    return inline(m["body"])[: width - 1] + "…"


def container(c: dict[str, Any]) -> str:
    error = f" — {c['last_error']}" if c.get("last_error") else ""
    return f"{c['name']}: {c.get('state', '?')}{error}"


def approvals(a: dict[str, Any]) -> str:
    def rows(items: list[dict[str, Any]]) -> list[tuple[object, ...]]:
        return [
            (x["id"], x["kind"], x["agent"], x["requester"], x["state"], _short(_what(x), 50))
            for x in items
        ]

    headers = ("ID", "KIND", "AGENT", "BY", "STATE", "REASON")
    parts = ["pending:", table(rows(a["pending"]), headers) if a["pending"] else "  none"]
    # A tool use is decided on its exact input: show every pending one whole.
    for x in a["pending"]:
        if x["kind"] == "tool_use":
            parts += ["", inline(f"tool use #{x['id']} by {x['agent']}: {x['tool']}")]
            parts.append(tool_input(x["input_json"]))
    if a["decided"]:
        parts += ["", "decided:", table(rows(a["decided"]), headers)]
    return "\n".join(parts)


def _what(x: dict[str, Any]) -> str:
    if x["kind"] == "tool_use":
        return f"{x['tool']} {x['input_json']}"
    return str(x["reason"])


def tool_input(text: str) -> str:
    """A tool's input as the operator reads it: indented JSON, every string escaped."""
    return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)


def approval(a: dict[str, Any]) -> str:
    lines = [
        inline(f"#{a['id']} {a['kind']} {a['agent']} — {a['state']}"),
        inline(f"requested by {a['requester']}: {a['reason']}"),
    ]
    if a.get("sha"):
        lines.append(inline(f"commit {a['sha']}"))
    if a["kind"] == "tool_use":
        lines.append(inline(f"tool {a['tool']}" + (" (approved always)" if a["always"] else "")))
    if a.get("tree"):
        lines.append(inline(f"tree {a['tree']} (what approving applies; sha256 {a['digest']})"))
    if a.get("decision_reason"):
        lines.append(inline(f"decision: {a['decision_reason']}"))
    if a.get("error"):
        lines.append(inline(f"error: {a['error']}"))
    if "diff" in a:
        lines += ["", a["diff"] or "(no changes)"]
    if a.get("input_json") is not None:
        lines += ["", "input:", tool_input(a["input_json"])]
    return "\n".join(lines)


def decided(a: dict[str, Any]) -> str:
    error = f": {a['error']}" if a.get("error") else ""
    if a["kind"] == "tool_use" and a["state"] != "denied":
        once = "every identical call from now on" if a["always"] else "its next identical call"
        return inline(f"approval #{a['id']} {a['state']}: {a['agent']} may run {once}")
    return f"approval #{a['id']} {a['state']}{error}"


def rules(items: list[dict[str, Any]]) -> str:
    """One line per rule, its input whole: what an agent may run without asking."""
    if not items:
        return "no tool rules"

    def line(r: dict[str, Any]) -> str:
        since = f"since {clock(r['created_at'])}"
        state = f"revoked {clock(r['revoked_at'])}" if r["revoked_at"] else "active"
        origin = f" (approval #{r['approval_id']})" if r["approval_id"] else ""
        return inline(
            f"#{r['id']} {r['agent']} {r['tool']} {r['input_json']} — {state}, {since}{origin}"
        )

    return "\n".join(line(r) for r in items)


def questions(q: dict[str, Any]) -> str:
    def line(x: dict[str, Any]) -> str:
        kind = (
            "free text" if not x.get("options") else ("choose any" if x["multi"] else "choose one")
        )
        opts = f" [{' | '.join(x['options'])}]" if x.get("options") else ""
        answer = f" → {x['answer']}" if x.get("answer") is not None else ""
        return inline(f"#{x['id']} {x['asker']}: {x['question']} ({kind}){opts}{answer}")

    parts = (
        ["pending:", *[line(x) for x in q["pending"]]] if q["pending"] else ["no pending questions"]
    )
    if q["answered"]:
        parts += ["", "answered:", *[line(x) for x in q["answered"]]]
    return "\n".join(parts)
