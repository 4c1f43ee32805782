"""What the audit log learns from the bus: agents added and removed, and their containers'
state changes (a bus observer: cheap, synchronous, in publish order).

An ``agent_state`` event is published on every record update (a restart count, a config
sha); only a change of ``state`` is an entry.
"""

from __future__ import annotations

from typing import Any, Protocol


class Appender(Protocol):
    def append(
        self, actor: str, via: str, action: str, agent: str | None, detail: dict[str, Any], /
    ) -> object: ...


class AgentAudit:
    def __init__(self, log: Appender) -> None:
        self._log = log
        self._states: dict[str, str] = {}

    def observe(self, event: dict[str, Any]) -> None:
        kind, agent = event.get("type"), event.get("agent")
        if kind == "agent_state" and isinstance(agent, str):
            self._state(agent, event)
        elif kind == "agent_added" and isinstance(agent, dict):
            name = agent.get("name")
            self._log.append("core", "core", "agent_added", name, {"role": agent.get("role")})
        elif kind == "agent_removed" and isinstance(agent, str):
            self._states.pop(agent, None)
            self._log.append("core", "core", "agent_removed", agent, {})

    def _state(self, agent: str, event: dict[str, Any]) -> None:
        state = str(event.get("state"))
        previous = self._states.get(agent)
        if state == previous:
            return
        self._states[agent] = state
        detail: dict[str, Any] = {"state": state, "previous": previous}
        if state in ("failed", "restarting") and event.get("last_error"):
            detail["error"] = event["last_error"]
        self._log.append("core", "core", "agent_state", agent, detail)
