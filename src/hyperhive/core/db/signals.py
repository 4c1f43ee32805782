"""What the cores sharing a store tell each other, after they commit.

A core commits first and signals second, so a signal is only ever a hint to look
in the store again: a lost one delays a wake, never loses a message. With sqlite
there is one core per store and nobody to tell (:class:`LocalSignals`); with
PostgreSQL a signal is a ``NOTIFY`` (core/db/pg_signals.py).

Channels and their payloads (plain text, never a body: bodies stay in the store):
  ``hive_message``    "<id> <recipient>": a message waits for an agent of another host
  ``hive_delivered``  "<sender> <bytes>": a message of another host's agent was delivered
  ``hive_agents``     "<name>": an agent was added, changed or removed
  ``hive_approved``   "<id>": an approval was decided here for hm1nd's host to carry out
  ``hive_config``     "<id> <agent>": a config was recorded (or applied) for an agent of
                      another host (core/applied_configs.py)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

MESSAGES: Final = "hive_message"
DELIVERED: Final = "hive_delivered"
AGENTS: Final = "hive_agents"
APPROVED: Final = "hive_approved"
CONFIGS: Final = "hive_config"
CHANNELS: Final = (MESSAGES, DELIVERED, AGENTS, APPROVED, CONFIGS)
MAX_PAYLOAD: Final = 512  # ours are short; PostgreSQL's own limit is 8000 bytes

Handler = Callable[[str], None]


class Signals(Protocol):
    def notify(self, channel: str, payload: str) -> None:
        """Tell every other core (after the commit it is about)."""
        ...

    def listen(self, channel: str, handler: Handler) -> None:
        """Call ``handler(payload)`` on the loop for each signal on ``channel``."""
        ...

    def on_resync(self, handler: Callable[[], object]) -> None:
        """Call ``handler`` whenever signals may have been missed: after every
        (re)connection, and on the bounded re-check interval."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalSignals:
    """One core per store: every change is already known where it is made."""

    def notify(self, channel: str, payload: str) -> None:
        return None

    def listen(self, channel: str, handler: Handler) -> None:
        return None

    def on_resync(self, handler: Callable[[], object]) -> None:
        return None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
