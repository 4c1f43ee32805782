"""Whether the model may make a tool call: the agent's tool policy, and the operator.

Claude Code decides most calls itself from the rules the harness hands it;
what it cannot decide it asks the engine's ``can_use_tool`` callback, which is
:class:`Gate`. Rules are weighed as Claude Code weighs them: deny, then ask,
then allow; a call no rule covers is refused. An ``ask`` call becomes a
ToolUse approval on the core (the ``tool_use`` op): the core answers at once
with allow (an approval for exactly this input was granted), pending (the
operator has not decided; the model is told to end its turn and retry the
identical call once ``approval_decided`` wakes it) or deny. Nothing here
fails open: an unreachable core, a malformed answer or a bug refuses the call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from hyperhive.client import Client
from hyperhive.errors import HiveError
from hyperhive.tool_match import Where, covered, matches
from hyperhive.tool_rules import Rule, ToolPolicy

log = logging.getLogger(__name__)
MAX_INPUT: Final = 64 * 1024  # the core refuses larger ToolUse inputs
ASK_TIMEOUT: Final = 30.0  # the core answers at once; a silent core refuses the call
NOT_PERMITTED: Final = "not permitted by this agent's tool policy"

# The core's ``tool_use`` op: (tool, input) → its answer. A seam, so the
# mapping is tested without a core and the engine runs against a real one.
Ask = Callable[[str, dict[str, Any]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy says about one call, and the rule that said it."""

    verdict: Literal["allow", "ask", "deny", "none"]
    rule: Rule | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the CLI is told: run the call, or refuse it with ``message``."""

    allow: bool
    message: str = ""


def decide(policy: ToolPolicy, tool: str, tool_input: dict[str, Any], where: Where) -> Decision:
    for rule in policy.deny or ():
        if matches(rule, tool, tool_input, where) is not False:
            return Decision("deny", rule)
    for rule in policy.ask or ():
        if matches(rule, tool, tool_input, where) is not False:
            return Decision("ask", rule)
    allowed = covered(policy.allow or (), tool, tool_input, where)
    return Decision("allow", allowed) if allowed is not None else Decision("none")


def canonical(tool_input: dict[str, Any]) -> str:
    """The input as the core stores and compares it."""
    return json.dumps(tool_input, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pending_message(tool: str, approval: object) -> str:
    return (
        f"This {tool} call waits for the operator: it is ToolUse approval #{approval}. "
        "Do not retry it now and do not try to get around it: end your turn. When the "
        f"operator decides you are woken by an approval_decided event for #{approval}; "
        f"if it was approved, call {tool} again with exactly the same input (any change "
        "makes it a new request that waits again)."
    )


def from_core(tool: str, answer: object) -> Verdict:
    """Map the ``tool_use`` op's answer; anything unexpected refuses the call."""
    if not isinstance(answer, dict):
        return Verdict(False, f"the hive core gave no usable answer about this {tool} call")
    decision, approval = answer.get("decision"), answer.get("approval")
    message = answer.get("message") if isinstance(answer.get("message"), str) else ""
    rule = answer.get("rule")
    by_rule = f" (by the operator's policy rule #{rule})" if isinstance(rule, int) else ""
    if decision == "allow":
        return Verdict(True)
    if decision == "pending" and isinstance(approval, int):
        return Verdict(False, pending_message(tool, approval))
    if decision == "deny":
        reason = f": {message}" if message else ""
        shown = f" #{approval}" if isinstance(approval, int) else ""
        return Verdict(False, f"the operator denied this {tool} call{shown}{by_rule}{reason}")
    return Verdict(False, f"the hive core gave no usable answer about this {tool} call")


def core_ask(socket: Path) -> Ask:
    """The real ``tool_use`` op over the agent's own socket (its identity)."""

    async def ask(tool: str, tool_input: dict[str, Any]) -> object:
        async with await Client.connect(socket) as client:
            return await client.call("tool_use", tool=tool, input=tool_input)

    return ask


class Gate:
    """The engine's ``can_use_tool``: the policy first, the operator for ``ask``."""

    def __init__(
        self, policy: ToolPolicy, ask: Ask, where: Where, *, ask_timeout: float = ASK_TIMEOUT
    ) -> None:
        self.policy = policy
        self._ask = ask
        self._where = where
        self._ask_timeout = ask_timeout

    async def verdict(self, tool: str, tool_input: dict[str, Any]) -> Verdict:
        decision = decide(self.policy, tool, tool_input, self._where)
        if decision.verdict == "deny":
            return Verdict(False, f"denied by this agent's tool policy (rule {decision.rule})")
        if decision.verdict == "allow":
            return Verdict(True)
        if decision.verdict == "none":
            return Verdict(False, NOT_PERMITTED)
        if len(canonical(tool_input).encode()) > MAX_INPUT:
            return Verdict(
                False,
                f"this {tool} call needs the operator's approval, but its input is over "
                f"{MAX_INPUT // 1024} KiB and cannot be shown; make a smaller call",
            )
        try:
            async with asyncio.timeout(self._ask_timeout):
                answer = await self._ask(tool, tool_input)
        except (HiveError, OSError, TimeoutError) as exc:
            text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            return Verdict(
                False,
                f"this {tool} call needs the operator's approval and the hive core could "
                f"not be asked ({text}); it was not run",
            )
        return from_core(tool, answer)

    async def __call__(self, tool: str, tool_input: dict[str, Any], context: object) -> Any:
        # Imported here, like the hive tools: only a running engine needs the SDK.
        from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny

        try:
            verdict = await self.verdict(tool, tool_input)
        except Exception:  # a bug here must refuse the call, never allow it
            log.exception("the permission check of a %s call failed", tool)
            verdict = Verdict(
                False, f"the permission check of this {tool} call failed; it was not run"
            )
        if verdict.allow:
            # Unchanged: an approval covers exactly the input the operator saw.
            return PermissionResultAllow(updated_input=tool_input)
        return PermissionResultDeny(message=verdict.message)
