"""What an agent's web page may see and do: the seam between harness and web.

The harness implements :class:`AgentControl`; the web app (``hyperhive.web``)
only talks to this Protocol, so the page can be tested against any
implementation and the harness never imports Starlette.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Badge = Literal["idle", "thinking", "backoff", "offline"]


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """One line of the agent's history: an engine event or a harness event.

    ``id`` grows monotonically per agent and survives restarts (it is the
    history.db row id), so it doubles as the SSE event id for Last-Event-ID.

    kinds (``data`` fields):
      state          {state: Badge, since: float, reason: str | None}
      turn_start     {turn: int, trigger: "message" | "operator", message_id?: int, from?: str,
                      prompt: str}
      turn_end       {turn: int, ok: bool, error: str | None, cost_usd: float | None,
                      input_tokens: int | None, output_tokens: int | None,
                      duration_ms: int | None, session_id: str | None}
      operator_prompt {text: str}
      command        {name: str, arg: str | None, ok: bool, message: str}
      notice         {level: "info" | "warning" | "error", text: str}
      system         {subtype: str, session_id?: str, model?: str, ...}   (engine)
      assistant      {text: str}                                            (engine)
      tool_use       {id: str, name: str, input: dict}                     (engine)
      tool_result    {tool_use_id: str, content: str, is_error: bool}      (engine)
      result         {is_error: bool, text: str, cost_usd, usage, session_id, duration_ms}
      tool_approval  {approval: int | None, tool: str, input: dict, decision: "pending" |
                      "allow" | "deny" | "approved" | "denied", message: str, always: bool,
                      rule: int | None}   (a tool use and the operator: agent/tool_requests.py)
    """

    id: int
    ts: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "kind": self.kind, "data": self.data}


@dataclass(frozen=True, slots=True)
class Status:
    name: str
    state: Badge
    since: float  # wall-clock time the state began (for the age timer)
    # Why offline: "core" (socket gone) or "login" (not authenticated); why backoff: the
    # trouble ("upstream: …", "engine: …") that sent the last message back to the queue.
    reason: str | None
    model: str | None
    session_id: str | None
    queued: int  # operator prompts and messages waiting behind the current turn
    needs_login: bool

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "since": self.since,
            "reason": self.reason,
            "model": self.model,
            "session_id": self.session_id,
            "queued": self.queued,
            "needs_login": self.needs_login,
        }


@dataclass(frozen=True, slots=True)
class CommandResult:
    ok: bool
    message: str


class AgentControl(Protocol):
    def status(self) -> Status: ...

    def history(self, after: int | None, limit: int) -> list[AgentEvent]:
        """Events with id > ``after`` (else the newest ``limit``), oldest first."""
        ...

    def subscribe(self, after: int | None) -> AsyncIterator[AgentEvent]:
        """Backfill after ``after`` then live events, with no gap and no duplicate."""
        ...

    async def prompt(self, text: str) -> CommandResult:
        """Operator text: a slash command (``/help /clear /cancel /compact /model [name]``)
        runs as a command; anything else is queued as a turn behind a running one."""
        ...

    async def cancel(self) -> CommandResult:
        """Interrupt the running turn (same as ``/cancel``)."""
        ...

    async def save_api_key(self, key: str) -> CommandResult:
        """Store an API key (0600, in the credentials dir); never echoed or published."""
        ...

    async def start_setup_token(self) -> CommandResult:
        """Start ``claude setup-token`` in a PTY; ``message`` carries the authorize URL."""
        ...

    async def finish_setup_token(self, code: str) -> CommandResult:
        """Feed the code the operator pasted; stores the resulting token (0600)."""
        ...
