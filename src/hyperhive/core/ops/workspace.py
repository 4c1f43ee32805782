"""The operator's view of agents' workspaces: ``work`` shows a branch, ``work_fetch`` brings
it into the host repository (host.sock only; see :mod:`hyperhive.core.workspace`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hyperhive.core.ops.base import Caller
from hyperhive.core.protocol import Args

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive


async def work(hive: Hive, caller: Caller, args: Args) -> Any:
    name = args.text("name")
    args.finish()
    return await hive.lifecycle.workspaces.view(name)


async def work_fetch(hive: Hive, caller: Caller, args: Args) -> Any:
    name = args.text("name")
    args.finish()
    return await hive.lifecycle.workspaces.fetch(name)
