"""Failing a lease (every agent) and the operator's dead letters (core/dead_letter.py)."""

from __future__ import annotations

from typing import Any, Final

from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args

MAX_LIMIT: Final = 1000


async def fail(s: Services, caller: Caller, args: Args) -> Any:
    """Finish a lease as a failure of the message itself: ``{id, attempts, dead}``."""
    token, reason = args.raw("lease"), args.raw("reason")
    args.finish()
    return s.broker.fail(caller.name, token, reason)


async def dead_letters(s: Services, caller: Caller, args: Args) -> Any:
    """The live dead letters (to ``agent``), oldest first, bodies cut to a preview."""
    agent = args.opt_text("agent")
    limit = args.integer("limit", 50, 1, MAX_LIMIT)
    args.finish()
    if agent is not None:
        s.registry.get(agent)
    return s.broker.dead.listing(agent, limit)


async def retry(s: Services, caller: Caller, args: Args) -> Any:
    message_id = args.integer("id", None, 1, 2**62)
    args.finish()
    return s.broker.retry_dead(message_id).to_wire()


async def drop(s: Services, caller: Caller, args: Args) -> Any:
    message_id = args.integer("id", None, 1, 2**62)
    args.finish()
    return s.broker.drop_dead(message_id, caller.name)
