"""Failing a lease (every agent) and the operator's dead letters (core/dead_letter.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from hyperhive.core.ops.base import Caller
from hyperhive.core.protocol import Args

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

MAX_LIMIT: Final = 1000


async def fail(hive: Hive, caller: Caller, args: Args) -> Any:
    """Finish a lease as a failure of the message itself: ``{id, attempts, dead}``."""
    token, reason = args.raw("lease"), args.raw("reason")
    args.finish()
    return hive.broker.fail(caller.name, token, reason)


async def dead_letters(hive: Hive, caller: Caller, args: Args) -> Any:
    """The live dead letters (to ``agent``), oldest first, bodies cut to a preview."""
    agent = args.opt_text("agent")
    limit = args.integer("limit", 50, 1, MAX_LIMIT)
    args.finish()
    if agent is not None:
        hive.registry.get(agent)
    return hive.broker.dead.listing(agent, limit)


async def retry(hive: Hive, caller: Caller, args: Args) -> Any:
    message_id = args.integer("id", None, 1, 2**62)
    args.finish()
    return hive.broker.retry_dead(message_id).to_wire()


async def drop(hive: Hive, caller: Caller, args: Args) -> Any:
    message_id = args.integer("id", None, 1, 2**62)
    args.finish()
    return hive.broker.drop_dead(message_id, caller.name)
