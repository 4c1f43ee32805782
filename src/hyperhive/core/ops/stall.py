"""The harness's reports on its turns (``activity``, agent and manager sockets) and the
operator's view of what is stalled (``stalls``); core/stall_watch.py decides."""

from __future__ import annotations

from typing import Any, Final

from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args
from hyperhive.core.stall_watch import PHASES
from hyperhive.errors import BadRequest

MAX_TURN: Final = 2**62


async def activity(s: Services, caller: Caller, args: Args) -> Any:
    """``{"turn": id, "phase": "start"|"event"|"end"}``: the caller's turn began, its engine
    is still talking, or it ended. The core keeps one small record per agent."""
    turn = args.integer("turn", None, 0, MAX_TURN)
    phase = args.raw("phase")
    args.finish()
    if phase not in PHASES:
        raise BadRequest(f"argument 'phase' must be one of {', '.join(PHASES)} (got {phase!r})")
    if s.stalls is not None:
        s.stalls.activity(caller.name, turn, phase)
    if phase == "end" and s.metrics is not None:
        s.metrics.turn_ended(caller.name, turn)
    return None


async def stalls(s: Services, caller: Caller, args: Args) -> Any:
    """The current stalls, oldest first, as their ``stall`` events would say it now."""
    args.finish()
    return [] if s.stalls is None else s.stalls.stalls()
