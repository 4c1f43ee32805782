"""The operator's way back into the dashboard: its URL with the operator token (host only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hyperhive.core.operator_token import DashboardOff
from hyperhive.core.ops.base import Caller
from hyperhive.core.protocol import Args

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive


async def dashboard_url(hive: Hive, caller: Caller, args: Args) -> Any:
    args.finish()
    link = hive.dashboard_link
    if link is None:
        raise DashboardOff("this hive-c0re serves no dashboard (started with --no-dashboard)")
    return {"url": link.login_url()}
