"""The operator's ops as plain calls, for the operator's surfaces besides ``host.sock``.

The dashboard acts through an :class:`OperatorDesk`: every call runs the same handler,
argument checks and error tree as the same op sent on ``host.sock``, as ``operator``. What
a surface adds is only its mapping of form fields to op arguments and of results to pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hyperhive.core.bus import EventBus
from hyperhive.core.caller import Caller
from hyperhive.names import OPERATOR

OPERATOR_CALLER: Final = Caller(OPERATOR, "operator", via="dashboard")

# (who asks, op, its arguments) → the op's result; raises the HiveError tree.
Dispatch = Callable[[Caller, str, Mapping[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class OperatorDesk:
    dispatch: Dispatch
    bus: EventBus  # the core's events, for live views
    state_dir_of: Callable[[str], Path]  # an agent's /state on the host, which it writes

    async def call(self, op: str, **args: Any) -> Any:
        """Run ``op`` as the operator; ``None`` arguments are left out, as unset."""
        given = {k: v for k, v in args.items() if v is not None}
        return await self.dispatch(OPERATOR_CALLER, op, given)
