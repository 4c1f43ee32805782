"""The operator's view of agents' workspaces: ``work`` shows a branch, ``work_fetch`` brings
it into the host repository (host.sock only; see :mod:`hyperhive.core.workspace`)."""

from __future__ import annotations

from typing import Any

from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args


async def work(s: Services, caller: Caller, args: Args) -> Any:
    name = args.text("name")
    args.finish()
    return await s.lifecycle.workspaces.view(name)


async def work_fetch(s: Services, caller: Caller, args: Args) -> Any:
    name = args.text("name")
    args.finish()
    return await s.lifecycle.workspaces.fetch(name)
