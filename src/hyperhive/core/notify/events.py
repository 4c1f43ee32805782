"""What a bus event tells the operator: a :class:`Notification`, or nothing.

Pure: the :class:`Translator` is fed the core's bus events and answers what to send.
``data`` carries the exact request (a tool's canonical input, a spawn's config text, a
commit's sha and diffstat); the title and body are for people and are bounded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

TITLE_MAX: Final = 200
BODY_MAX: Final = 2000  # the readable text; ``data`` keeps what was asked in full
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

# ntfy's scale: 1 min, 3 default, 4 high, 5 max.
PRIORITY: Final = {"approval": 4, "question": 4, "failed": 5, "budget": 4, "stall": 3, "digest": 3}
TAGS: Final = {
    "approval": "raising_hand",
    "question": "question",
    "failed": "rotating_light",
    "budget": "money_with_wings",
    "stall": "hourglass",
    "digest": "bell",
}


@dataclass(frozen=True, slots=True)
class Notification:
    kind: str  # one of settings.NOTIFY_EVENTS
    title: str
    body: str
    priority: int
    tags: tuple[str, ...]
    link: str  # a path on the dashboard, such as "/#approval-7"
    data: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "body": self.body,
            "priority": self.priority,
            "tags": list(self.tags),
            "link": self.link,
            "data": self.data,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Notification:
        return cls(
            kind=str(wire["kind"]),
            title=str(wire["title"]),
            body=str(wire["body"]),
            priority=int(wire["priority"]),
            tags=tuple(str(t) for t in wire["tags"]),
            link=str(wire["link"]),
            data=dict(wire["data"]),
        )


def one_line(text: object, limit: int = TITLE_MAX) -> str:
    """Text fit for a header: no control characters (no CR/LF to inject), bounded."""
    flat = _CONTROL.sub(" ", str(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def bounded(text: str, limit: int = BODY_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def make(
    kind: str, title: str, body: str, link: str, data: dict[str, Any], priority: int | None = None
) -> Notification:
    level = PRIORITY[kind] if priority is None else priority
    return Notification(kind, one_line(title), bounded(body), level, (TAGS[kind],), link, data)


def agent_link(agent: object) -> str:
    return f"/#agent-row-{agent}" if isinstance(agent, str) and agent else "/#agents"


class Translator:
    """Bus events in, notifications out. It remembers each agent's last state, so a
    ``failed`` agent is told of once, when it fails, not on every later update."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}

    def translate(self, event: dict[str, Any]) -> Notification | None:
        kind = event.get("type")
        if kind == "approval_requested" and "auto" not in event:
            return _approval(event)
        if kind == "question_asked" and isinstance(event.get("question"), dict):
            return _question(event["question"])
        if kind == "agent_state":
            return self._agent_state(event)
        if kind == "agent_removed":
            self._states.pop(str(event.get("agent")), None)
        if kind == "budget" and event.get("state") in ("warn", "paused"):
            return _budget(event)
        if kind == "stall":
            return _stall(event)
        return None

    def _agent_state(self, event: dict[str, Any]) -> Notification | None:
        agent, state = str(event.get("agent")), str(event.get("state"))
        before = self._states.get(agent)
        if state == "destroyed":
            self._states.pop(agent, None)
        else:
            self._states[agent] = state
        if state != "failed" or before == "failed":
            return None
        error = event.get("last_error") or "no error was recorded"
        data = {
            "agent": agent,
            "state": state,
            "last_error": event.get("last_error"),
            "restarts": event.get("restarts"),
        }
        return make("failed", f"{agent} failed", str(error), agent_link(agent), data)


def _approval(event: dict[str, Any]) -> Notification | None:
    approval = event.get("approval")
    if not isinstance(approval, dict):
        return None
    what = approval.get("kind")
    agent, requester = approval.get("agent"), approval.get("requester")
    data: dict[str, Any] = {
        "id": approval.get("id"),
        "kind": what,
        "agent": agent,
        "requester": requester,
        "reason": approval.get("reason"),
    }
    lines = [f"reason: {approval.get('reason')}"]
    if what == "tool_use":
        data |= {"tool": approval.get("tool"), "input": approval.get("input")}
        data["input_json"] = approval.get("input_json")
        title = f"{agent} asks to use {approval.get('tool')}"
        lines.append(f"input: {approval.get('input_json')}")
    elif what == "spawn":
        data["config"] = approval.get("config")
        title = f"{requester} asks to spawn {agent}"
        if approval.get("config"):
            lines.append(f"config:\n{approval.get('config')}")
    elif what == "apply_commit":
        data |= {"sha": approval.get("sha"), "diffstat": event.get("diffstat")}
        title = f"{requester} asks to change {agent}'s config"
        lines.append(f"commit {approval.get('sha')}")
        lines.extend(_diffstat_lines(event.get("diffstat")))
    else:
        return None
    return make("approval", title, "\n".join(lines), f"/#approval-{data['id']}", data)


def _diffstat_lines(diffstat: object) -> list[str]:
    if not isinstance(diffstat, dict):
        return []
    files = diffstat.get("files")
    files = files if isinstance(files, list) else []
    lines = [
        f"{f.get('path')} +{f.get('added')} -{f.get('removed')}"
        for f in files[:20]
        if isinstance(f, dict)
    ]
    lines.append(f"{len(files)} file(s), +{diffstat.get('added')} -{diffstat.get('removed')}")
    return lines


def _question(question: dict[str, Any]) -> Notification:
    options = question.get("options")
    data = {
        "id": question.get("id"),
        "asker": question.get("asker"),
        "question": question.get("question"),
        "options": options,
        "multi": question.get("multi"),
    }
    body = str(question.get("question"))
    if options:
        body += "\noptions: " + json.dumps(options, ensure_ascii=False)
    title = f"{question.get('asker')} asks you a question"
    return make("question", title, body, f"/#question-{data['id']}", data)


def _budget(event: dict[str, Any]) -> Notification:
    scope = event.get("agent")
    who = scope if scope else "the hive"
    data = {"agent": scope, "state": event.get("state"), "text": event.get("text")}
    title = f"budget {event.get('state')}: {who}"
    level = 3 if event.get("state") == "warn" else 4
    return make("budget", title, str(event.get("text") or title), "/#spend", data, level)


def _stall(event: dict[str, Any]) -> Notification:
    what, ident = event.get("what"), event.get("id")
    if what == "approval" and ident is not None:
        link = f"/#approval-{ident}"
    elif what == "question" and ident is not None:
        link = f"/#question-{ident}"
    else:
        link = agent_link(event.get("agent"))
    data = {k: v for k, v in event.items() if k not in ("type", "seq")}
    who = event.get("agent") or "the hive"
    text = str(event.get("text") or f"{what} stalled")
    return make("stall", f"stalled {what}: {who}", text, link, data)
