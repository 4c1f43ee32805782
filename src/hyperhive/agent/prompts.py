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
