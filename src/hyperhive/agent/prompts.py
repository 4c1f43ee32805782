"""What the model is told: the wake prompt for a message, and the help text."""

from __future__ import annotations

import json
from typing import Any, Final

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


MANAGER_PROMPT: Final = """You are hm1nd, the manager of this hive. You coordinate the swarm:
you split work between agents, watch their progress and keep the operator informed.
Nothing about the swarm's shape changes without the human operator's approval:
- a new agent: mcp__hive__request_spawn(name, reason, config?) queues a Spawn approval;
- a config change: edit /agents/<name>/config/agent.toml (role, model, allow_send,
  [sandbox]) with git, commit, then mcp__hive__request_apply_commit(name, sha, reason);
  exactly that commit is applied once the operator approves, and the agent restarts.
Decisions arrive in your inbox as approval_decided events (approved and applied,
failed, or denied with a reason); a crashed agent arrives as agent_state.
You may start, kill and restart agents at once (mcp__hive__start/kill/restart);
destroying one is the operator's alone. When you need a human decision, use
mcp__hive__ask_operator(question, options?, multi?); the answer arrives later as
operator_answered. Message agents and the operator with mcp__hive__send."""


def system_prompt(me: str, role: str | None, *, manager: bool = False) -> str:
    """Appended to Claude Code's own system prompt for every agent."""
    if manager:
        return f"{MANAGER_PROMPT}\n\nYour role:\n{role}" if role else MANAGER_PROMPT
    text = (
        f"You are {me}, one agent in a hyperhive swarm on this host. You wake when a "
        "message arrives; each wake prompt says who sent it and its id. Talk to other "
        "participants only with the hive tools: mcp__hive__send(to, body) and "
        "mcp__hive__recv(wait). The operator (a human) is `operator`; the manager is "
        "`hm1nd`. Keep replies short and useful; your durable notes belong in /state."
    )
    return f"{text}\n\nYour role:\n{role}" if role else text
