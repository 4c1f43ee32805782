"""The agent's own view of its tool uses that wait for the operator, for its page.

The harness learns of them twice: from the core's answer each time the permission gate
asks (op ``tool_use``), and from the ``approval_decided`` event the core posts when the
operator decides. Both become one history event kind, ``tool_approval``:

    {approval: int | None, tool: str, input: dict, decision: str, message: str,
     always: bool, rule: int | None}

``decision`` is the core's answer (``pending``, ``allow``, ``deny``) or the operator's
decision (``approved``, ``denied``). The page shows an approval as waiting from its
``pending`` event until a later event for the same approval; its buttons only open the
dashboard, where the operator decides: nothing the agent serves can decide for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

log = logging.getLogger(__name__)
KIND: Final = "tool_approval"
DECISIONS: Final = frozenset({"allow", "pending", "deny"})
Ask = Callable[[str, dict[str, Any]], Awaitable[object]]
Note = Callable[[str, dict[str, Any], object], None]


class Publisher(Protocol):
    def publish(self, kind: str, data: dict[str, Any]) -> object: ...


def from_answer(tool: str, tool_input: dict[str, Any], answer: object) -> dict[str, Any] | None:
    """The ``tool_approval`` event for the core's answer to one ask; None if unusable."""
    if not isinstance(answer, dict) or answer.get("decision") not in DECISIONS:
        return None
    approval, rule = answer.get("approval"), answer.get("rule")
    return {
        "approval": approval if isinstance(approval, int) else None,
        "tool": tool,
        "input": tool_input,
        "decision": answer["decision"],
        "message": str(answer.get("message") or ""),
        "always": False,
        "rule": rule if isinstance(rule, int) else None,
    }


def from_decision(me: str, message: dict[str, Any]) -> dict[str, Any] | None:
    """The ``tool_approval`` event for an ``approval_decided`` core event about one of
    ``me``'s tool uses; None for any other message."""
    payload = message.get("payload")
    if message.get("kind") != "event" or message.get("body") != "approval_decided":
        return None
    if not isinstance(payload, dict) or payload.get("kind") != "tool_use":
        return None
    if payload.get("agent") != me or not isinstance(payload.get("id"), int):
        return None
    state, always = payload.get("state"), payload.get("always") is True
    decision = "denied" if state == "denied" else "approved" if state else "unknown"
    try:
        tool_input = json.loads(str(payload.get("input_json") or "{}"))
    except ValueError:
        tool_input = {}
    reason = payload.get("decision_reason")
    return {
        "approval": payload["id"],
        "tool": str(payload.get("tool") or "?"),
        "input": tool_input,
        "decision": decision,
        "message": str(reason) if decision == "denied" and reason else "",
        "always": always,
        "rule": None,
    }


def recorder(history: Publisher) -> Note:
    """A :data:`Note` that records each answer as a ``tool_approval`` event in ``history``."""

    def note(tool: str, tool_input: dict[str, Any], answer: object) -> None:
        data = from_answer(tool, tool_input, answer)
        if data is not None:
            history.publish(KIND, data)

    return note


def noting(ask: Ask, note: Note) -> Ask:
    """``ask`` (the ``tool_use`` op) that also hands every answer to ``note`` (e.g.
    :meth:`Harness.note_tool_request`); the answer itself is passed on unchanged."""

    async def noted(tool: str, tool_input: dict[str, Any]) -> object:
        answer = await ask(tool, tool_input)
        try:
            note(tool, tool_input, answer)
        except Exception:  # the page's copy must never change the answer
            log.exception("could not record the answer about a %s call", tool)
        return answer

    return noted
