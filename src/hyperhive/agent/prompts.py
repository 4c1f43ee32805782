"""What the model is told: the wake prompt for a message, and the help text."""

from __future__ import annotations

import json
from typing import Any, Final

from hyperhive.tool_rules import Rule, ToolPolicy

HELP: Final = """commands:
  /help           this text
  /cancel         stop the running turn
  /clear          start a new session (forget the conversation)
  /compact        summarise the conversation to free context
  /model [name]   show or set the model (persists across restarts)
anything else is a prompt, run as a turn (queued behind a running one)"""


def wake_prompt(me: str, message: dict[str, Any]) -> str:
    """Tell the model who sent what and how to answer."""
    sender, mid = message["from"], message["id"]
    if message.get("kind") == "event":
        tool_use = tool_decision_prompt(me, message)
        if tool_use is not None:
            return tool_use
        payload = json.dumps(message.get("payload") or {}, sort_keys=True)
        return (
            f"hive event #{mid} for {me}: {message['body']}\n"
            f"details: {payload}\n"
            "Act on it if it needs action; reply with mcp__hive__send if someone needs an answer."
        )
    return (
        f"You are {me}, an agent in a hive. New message #{mid} from {sender}:\n"
        f"---\n{message['body']}\n---\n"
        f'To reply, call mcp__hive__send with to="{sender}". '
        "Call mcp__hive__recv to read further messages. "
        "Message ids let you ignore a message you have already handled."
    )


# The input is repeated so the model can call again byte for byte; a huge one it still
# has in its context is named, not pasted.
MAX_INPUT_IN_PROMPT: Final = 4000


def tool_decision_prompt(me: str, message: dict[str, Any]) -> str | None:
    """The wake prompt for the operator's decision on one of ``me``'s tool uses, else None."""
    payload = message.get("payload") or {}
    if message.get("body") != "approval_decided" or payload.get("kind") != "tool_use":
        return None
    tool, number, state = payload.get("tool"), payload.get("id"), payload.get("state")
    text = str(payload.get("input_json") or "{}")
    shown = text if len(text) <= MAX_INPUT_IN_PROMPT else f"(the same {len(text)} chars as before)"
    head = f"hive event #{message['id']} for {me}: approval #{number}, your call of {tool}, "
    if state == "denied":
        return (
            f"{head}was DENIED by the operator.\n"
            f"The operator's reason: {payload.get('decision_reason')}\n"
            f"Do not retry the same {tool} call. Take the reason into account: do the work "
            "another way, or ask (mcp__hive__send) if you need something else."
        )
    if state == "approved" or (state == "applied" and payload.get("always")):
        future = (
            "From now on identical calls pass without asking."
            if payload.get("always")
            else "It is allowed once; a different input asks again."
        )
        return (
            f"{head}was APPROVED by the operator.\n"
            f"Call {tool} again with exactly the same input now: {shown}\n{future}"
        )
    return f"{head}is {state}: nothing to do for it now."


MANAGER_PROMPT: Final = """You are hm1nd, the manager of this hive. You coordinate the swarm:
you split work between agents, watch their progress and keep the operator informed.
Nothing about the swarm's shape changes without the human operator's approval:
- a new agent: mcp__hive__request_spawn(name, reason, config?) queues a Spawn approval;
- a config change: edit /agents/<name>/config/agent.toml (role, model, allow_send,
  [sandbox]) with git, commit, then mcp__hive__request_apply_commit(name, sha, reason);
  exactly that commit is applied once the operator approves, and the agent restarts.
Decisions arrive in your inbox as approval_decided events (approved and applied,
failed, or denied with a reason); a crashed agent arrives as agent_state, and a
message an agent's turns kept failing on as dead_letter (the operator retries or drops it).
You may start, kill and restart agents at once (mcp__hive__start/kill/restart);
destroying one is the operator's alone. When you need a human decision, use
mcp__hive__ask_operator(question, options?, multi?); the answer arrives later as
operator_answered. Message agents and the operator with mcp__hive__send."""


def tools_prompt(tools: ToolPolicy) -> str:
    """Where the agent works, and what its tool policy lets it do."""

    def listed(rules: tuple[Rule, ...] | None) -> str:
        return ", ".join(map(str, rules or ())) or "none"

    text = (
        "You work in /work (your cwd, your workspace); keep durable notes in /state. "
        "The hive tools (mcp__hive__*) are always yours.\n"
        f"Tools you may use freely: {listed(tools.allow)}.\n"
        f"Tools that wait for the operator each time: {listed(tools.ask)}. Such a call "
        "is refused at first with the number of its ToolUse approval: end your turn then. "
        "An approval_decided event wakes you; if it was approved, make exactly the same "
        "call with exactly the same input (anything else asks again).\n"
        f"Tools you may not use: {listed(tools.deny)}, nor any use that none of these "
        "lists covers."
    )
    return text


def system_prompt(
    me: str, role: str | None, *, manager: bool = False, tools: ToolPolicy | None = None
) -> str:
    """Appended to Claude Code's own system prompt for every agent."""
    if manager:
        text = MANAGER_PROMPT
    else:
        text = (
            f"You are {me}, one agent in a hyperhive swarm on this host. You wake when a "
            "message arrives; each wake prompt says who sent it and its id. Talk to other "
            "participants only with the hive tools: mcp__hive__send(to, body) and "
            "mcp__hive__recv(wait). The operator (a human) is `operator`; the manager is "
            "`hm1nd`. Keep replies short and useful; your durable notes belong in /state."
        )
    if tools is not None:
        text += "\n\n" + tools_prompt(tools)
    return f"{text}\n\nYour role:\n{role}" if role else text
